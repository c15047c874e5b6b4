// Benchmark worker: transformers.js (onnxruntime-web, wasm, one thread) with the int8 ONNX
// export of all-MiniLM-L6-v2, and a brute-force dot product over the corpus vectors loaded
// from JSON, as in-browser semantic search demos ship them. Everything is served locally.
//   { type: 'load', modelPath, model, dtype, vectors, ort }
//   { type: 'query', query, k }  -> { type: 'result', encodeMs, searchMs, ids }
import { env, pipeline } from '/tjs/transformers.min.js';

let extractor = null;
let ids = [];
let matrix = null; // all vectors, row after row (Float32Array)
let dim = 0;

self.onmessage = async (event) => {
  const m = event.data;
  try {
    if (m.type === 'load') {
      const t0 = performance.now();
      env.allowRemoteModels = false;
      env.allowLocalModels = true;
      env.localModelPath = m.modelPath;
      env.useBrowserCache = false;
      env.useWasmCache = false;
      env.backends.onnx.wasm.wasmPaths = { mjs: `${m.ort}ort-wasm-simd-threaded.asyncify.mjs`, wasm: `${m.ort}ort-wasm-simd-threaded.asyncify.wasm` };
      env.backends.onnx.wasm.numThreads = 1;
      extractor = await pipeline('feature-extraction', m.model, { dtype: m.dtype, device: 'wasm' });
      const t1 = performance.now();
      let vectorsMs = 0;
      if (m.vectors) {
        const j = await (await fetch(m.vectors)).json();
        ids = j.ids;
        dim = j.dim;
        matrix = new Float32Array(ids.length * dim);
        j.vectors.forEach((v, i) => matrix.set(v, i * dim));
        vectorsMs = performance.now() - t1;
      }
      self.postMessage({ type: 'loaded', modelMs: t1 - t0, vectorsMs, readyMs: performance.now() - t0, version: env.version, ort: env.backends.onnx.versions });
    } else if (m.type === 'query') {
      const k = m.k || 10;
      const t0 = performance.now();
      const out = await extractor(m.query, { pooling: 'mean', normalize: true });
      const q = out.data;
      const t1 = performance.now();
      const n = ids.length;
      const scores = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        let s = 0;
        const off = i * dim;
        for (let j = 0; j < dim; j++) s += q[j] * matrix[off + j];
        scores[i] = s;
      }
      const top = []; // indices of the k best, best first
      for (let i = 0; i < n; i++) {
        const s = scores[i];
        let at;
        if (top.length < k) {
          top.push(i);
          at = top.length - 1;
        } else if (s > scores[top[k - 1]]) {
          at = k - 1;
          top[at] = i;
        } else {
          continue;
        }
        while (at > 0 && scores[top[at - 1]] < s) {
          top[at] = top[at - 1];
          top[at - 1] = i;
          at--;
        }
      }
      const t2 = performance.now();
      self.postMessage({ type: 'result', encodeMs: t1 - t0, searchMs: t2 - t1, ids: top.map((i) => ids[i]), vector: m.wantVector ? Array.from(q) : undefined });
    }
  } catch (e) {
    self.postMessage({ type: 'error', message: String((e && e.stack) || e) });
  }
};
