// Shared by the benchmark pages: a promise-based call into a module worker.
export function worker(url) {
  const w = new Worker(url, { type: 'module' });
  let queue = Promise.resolve();
  const call = (msg) => {
    const p = queue.then(() => new Promise((resolve, reject) => {
      w.onmessage = (e) => (e.data.type === 'error' ? reject(new Error(e.data.message)) : resolve(e.data));
      w.onerror = (e) => reject(new Error(e.message || 'worker error'));
      w.postMessage(msg);
    }));
    queue = p.catch(() => {});
    return p;
  };
  return { call, terminate: () => w.terminate() };
}
