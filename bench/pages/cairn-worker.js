// Benchmark worker: drives Cairn's wasm Engine directly (no UI layer), timing the query
// encoding and the search separately around the wasm calls.
//   { type: 'load', base, wasm }       base: URL of an index folder (cairn-entry.json);
//                                      wasm: the engine build (cairn_bg.wasm or
//                                      cairn_relaxed_bg.wasm; default the former)
//   { type: 'query', query, k, mode }  -> { type: 'result', encodeMs, searchMs, hits }
import init, { Engine } from '/cairn/cairn.js';

let engine = null;

async function bytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

self.onmessage = async (event) => {
  const m = event.data;
  try {
    if (m.type === 'load') {
      const t0 = performance.now();
      await init({ module_or_path: `/cairn/${m.wasm || 'cairn_bg.wasm'}` });
      engine = new Engine();
      const base = new URL(m.base, self.location.href);
      const manifest = await (await fetch(new URL('cairn-entry.json', base))).json();
      engine.loadIndex(await bytes(new URL(manifest.index, base)));
      const t1 = performance.now();
      engine.loadModel(await bytes(new URL(manifest.model, base)));
      const t2 = performance.now();
      self.postMessage({ type: 'loaded', indexMs: t1 - t0, readyMs: t2 - t0, quant: engine.quant, kernel: engine.kernel, kernelTimes: engine.kernelTimes, passages: manifest.passages });
    } else if (m.type === 'query') {
      const t0 = performance.now();
      const mode = m.mode || 'hybrid';
      const vector = mode === 'lexical' ? undefined : engine.embedQuery(m.query);
      const t1 = performance.now();
      const out = engine.searchWith(vector, m.query, m.k || 10, mode);
      const t2 = performance.now();
      self.postMessage({
        type: 'result',
        encodeMs: t1 - t0,
        searchMs: t2 - t1,
        hits: out.hits.map((h) => ({ id: h.id, url: h.url, anchor: h.anchor })),
      });
    }
  } catch (e) {
    self.postMessage({ type: 'error', message: String((e && e.message) || e) });
  }
};
