// Cairn's worker: fetches, caches and verifies the index and the model, and runs every search
// in the wasm engine, so the page only renders.
//
// Messages from the page:
//   { type: 'init', base, backend, wasm, prefetch }
//                                     base: absolute URL of the index folder (cairn-entry.json);
//                                     backend: 'auto' (default), 'webgpu' or 'cpu';
//                                     wasm: 'auto' (default: the relaxed-SIMD build where the
//                                     browser validates relaxed SIMD) or 'simd128';
//                                     prefetch: false to fetch a sharded index's parts only as
//                                     queries need them (default: the rest after the first
//                                     answer, while no search runs)
//   { type: 'search', seq, query, k, mode, filters, sort, ranking }
//   { type: 'retry' }                 fetch again whatever failed (index or model)
// Messages to the page:
//   { type: 'progress', what: 'index' | 'model', loaded, total }
//   { type: 'state', state: 'loading' | 'keyword' | 'ready' | 'error', message, detail }
//   { type: 'results', seq, query, mode, hits, backend, timings: { encodeMs, searchMs },
//     missing: [{ file, reason }], parts: { fetched, bytes, cached }, build }
//                                     (what Engine.search resolves to; the worker reruns the
//                                     latest query once the model is in, same seq; `missing`
//                                     names the parts of a sharded index that could not be
//                                     had, the hits are what the rest gave; `parts` counts
//                                     the parts this worker has loaded so far; `build`:
//                                     the engine that answered, keyword or full)
//   { type: 'prefetch', loaded, total, failed }
//                                     a sharded index's idle prefetch, after each batch
//   { type: 'search-error', seq, message }

// The engine module is loaded by `startEngine`: the one the index folder's manifest names
// (content-hashed, written beside the index by `cairn index`), else `cairn.js` beside this
// worker. So a browser that holds an older engine in its HTTP cache never runs it against a
// newer index: a new build names a new file.
//
// A sharded index starts on the keyword engine instead (`cairn_keyword.js`: the index and
// its ranking without the encoder, a small download): it answers the first queries with
// keywords; the full engine and the model load after the first answer (or once the page has
// been idle MODEL_DELAY_MS), and the index is handed over to it (`handOver`). A one-file
// index is fetched whole anyway, so it starts on the full engine.
let Engine = null; // the engine module's Engine class
let engineUrl = null; // the module it came from
let engineWasm = null; // and its wasm file
let keywordFiles = null; // the keyword engine's files, when it answered first: { js, wasm }
let fullFiles = null; // the full engine's files, loaded by loadModel after the keyword engine
let heldMeta = null; // the meta file's bytes, kept for the hand-over to the full engine
let indexGen = 0; // bumped by every loadIndex and new engine: a part fetched before is dropped
let modelTimer = null;
let modelDue = Infinity; // when modelTimer fires
const MODEL_DELAY_MS = 3000; // after keyword search is ready, while no query has come
const AFTER_ANSWER_MS = 500; // after the keyword engine's first answer

// Loads the model (and the full engine) in `ms`, unless it is due sooner already.
function modelIn(ms) {
  if (modelState !== 'none' || now() + ms >= modelDue) return;
  clearTimeout(modelTimer);
  modelDue = now() + ms;
  modelTimer = setTimeout(loadModel, ms);
}

const CACHE_NAME = 'cairn-v1';
const MANIFEST = 'cairn-entry.json';

let engine = null;
let base = null;
let manifest = null;
let indexReady = false;
let modelState = 'none'; // none | loading | ready | failed
let pending = null; // the latest search not yet run
let scheduled = false;
let lastQuery = null;
let running = false;
let backendPref = 'auto';
let wasmPref = 'auto';
let gpuReport = null;
let freshManifest = null; // bytes of a manifest from the network, not yet kept
let sharded = false; // the index is sharded (manifest index_format 2): parts come on demand
let prefetchOn = true;
let prefetchState = 'idle'; // idle | running | done
const partLoads = new Map(); // part name -> the promise of its load
const partErrors = new Map(); // part name -> { message, at }: why it could not be had, and when
const RETRY_MISSING_MS = 30000; // a missing part is tried again by a search this much later
const partStats = { fetched: 0, bytes: 0, cached: 0 };

const post = (msg) => self.postMessage(msg);
const now = () => performance.now();

function state(s, message, detail = {}) {
  post({ type: 'state', state: s, message, detail });
}

async function openCache() {
  try {
    return await caches.open(CACHE_NAME);
  } catch {
    return null; // Cache API unavailable (opaque origin, private mode): network only.
  }
}

// Reads a response body with progress messages.
async function readWithProgress(response, what, expected) {
  const total = Number(response.headers.get('content-length')) || expected || 0;
  if (!response.body || !response.body.getReader) {
    const buf = new Uint8Array(await response.arrayBuffer());
    post({ type: 'progress', what, loaded: buf.length, total: buf.length });
    return buf;
  }
  const reader = response.body.getReader();
  const chunks = [];
  let loaded = 0;
  let lastPost = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    if (now() - lastPost > 100) {
      lastPost = now();
      post({ type: 'progress', what, loaded, total: Math.max(total, loaded) });
    }
  }
  post({ type: 'progress', what, loaded, total: loaded });
  const out = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

// A content-hashed file: from the cache when there, else from the network (then cached).
// `use(bytes)` parses it; if a cached copy fails to parse it is evicted and fetched again.
// `quiet`: no progress messages (the parts of a sharded index), and `reload` bypasses the HTTP
// cache (a second try after a damaged download).
async function loadHashed(name, what, expected, use, { quiet = false, reload = false } = {}) {
  const url = new URL(name, base).href;
  const cache = await openCache();
  if (cache) {
    const hit = await cache.match(url);
    if (hit) {
      const bytes = new Uint8Array(await hit.arrayBuffer());
      if (!quiet) post({ type: 'progress', what, loaded: bytes.length, total: bytes.length, cached: true });
      try {
        const result = use(bytes);
        if (quiet) partStats.cached += 1;
        return result;
      } catch (e) {
        console.warn(`cairn: cached ${name} is damaged (${e.message}); fetching it again`);
        await cache.delete(url);
      }
    }
  }
  const response = await fetch(url, reload ? { cache: 'reload' } : {});
  if (!response.ok) {
    throw new Error(`${name}: HTTP ${response.status} ${response.statusText}`.trim());
  }
  const bytes = quiet ? new Uint8Array(await response.arrayBuffer()) : await readWithProgress(response, what, expected);
  if (quiet) {
    partStats.fetched += 1;
    partStats.bytes += bytes.length;
  }
  const result = use(bytes); // throws on a corrupt download: nothing is cached then
  if (cache) {
    try {
      await cache.put(url, new Response(bytes, { headers: { 'content-type': 'application/octet-stream' } }));
    } catch (e) {
      console.warn(`cairn: could not cache ${name}: ${e.message}`);
    }
  }
  return result;
}

// The manifest names the current files: always revalidated, from the cache when offline.
// Returns its bytes; the engine reads them (`Engine.readManifest`, the one manifest reader, in
// Rust): a manifest of a newer layout, or naming an index or model format this engine does
// not read, is refused with both versions.
async function fetchManifest() {
  const url = new URL(MANIFEST, base).href;
  const cache = await openCache();
  let response;
  try {
    response = await fetch(url, { cache: 'no-cache' });
  } catch (e) {
    const cached = cache && (await cache.match(url));
    if (!cached) throw new Error(`cannot reach ${MANIFEST} (${e.message})`);
    return { bytes: new Uint8Array(await cached.arrayBuffer()), fresh: false };
  }
  if (!response.ok) {
    throw new Error(`${MANIFEST}: HTTP ${response.status} ${response.statusText}`.trim());
  }
  return { bytes: new Uint8Array(await response.arrayBuffer()), fresh: true };
}

async function readManifest({ bytes, fresh }) {
  let m;
  try {
    m = Engine.readManifest(bytes);
  } catch (e) {
    // Not JSON at all: most often an HTML page served for a wrong URL.
    throw new Error(/invalid JSON/.test(e.message) ? `${e.message} (is the index URL right?)` : e.message);
  }
  // Kept in the cache (for offline visits) only once the files it names are in too, so an
  // interrupted visit after a redeploy leaves the previous, complete set usable offline.
  freshManifest = fresh ? bytes : null;
  return m;
}

async function keepManifest() {
  const cache = freshManifest && (await openCache());
  if (cache) {
    await cache.put(new URL(MANIFEST, base).href, new Response(freshManifest, { headers: { 'content-type': 'application/json' } }));
  }
  freshManifest = null;
}

// Only the engine's file names are taken from the manifest here (everything else is read
// by the engine once loaded); a manifest that is not JSON, or names none, means the engine
// beside this worker.
// (And whether the index is sharded, to choose the engine that starts: the engine's reader
// checks the whole manifest once loaded.)
function engineNamed(bytes) {
  let m = null;
  try {
    m = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    // Not JSON: the engine's reader names the problem.
  }
  const sharded = m?.index_format === 2;
  const e = m?.engine;
  if (e && typeof e.js === 'string' && typeof e.wasm === 'string') {
    const named = (f) => (typeof f === 'string' ? new URL(f, base).href : null);
    const kjs = named(e.keyword_js);
    const kwasm = named(e.keyword_wasm);
    return {
      js: named(e.js),
      wasm: named(e.wasm),
      relaxed: named(e.relaxed_wasm),
      keyword: kjs && kwasm ? { js: kjs, wasm: kwasm } : null,
      sharded,
    };
  }
  const beside = (f) => new URL(f, import.meta.url).href;
  return {
    js: beside('./cairn.js'),
    wasm: beside('./cairn_bg.wasm'),
    relaxed: beside('./cairn_relaxed_bg.wasm'),
    keyword: { js: beside('./cairn_keyword.js'), wasm: beside('./cairn_keyword_bg.wasm') },
    sharded,
  };
}

// Removes cached files of earlier builds of this index folder.
async function pruneCache() {
  const cache = await openCache();
  if (!cache || !manifest) return;
  const names = [MANIFEST, manifest.index, manifest.model, ...(sharded ? engine.partFiles() : [])];
  const keep = new Set(names.map((n) => new URL(n, base).href));
  // (The engine files are not in the Cache API: the HTTP cache keeps them, by hashed name.)
  for (const req of await cache.keys()) {
    if (req.url.startsWith(base) && !keep.has(req.url)) await cache.delete(req);
  }
}

async function loadIndex(manifestBytes) {
  state('loading', 'Loading the index…');
  manifest = await readManifest(manifestBytes);
  // A sharded index: its small meta file now, its parts as queries name them (fetchPart).
  sharded = manifest.index_format === 2;
  partLoads.clear();
  partErrors.clear();
  prefetchState = 'idle';
  indexGen += 1;
  await loadHashed(manifest.index, 'index', manifest.index_bytes, (bytes) => {
    if (!sharded) return engine.loadIndex(bytes);
    const info = engine.loadMeta(bytes);
    heldMeta = keywordFiles ? bytes : null;
    return info;
  });
  indexReady = true;
  // The index's filters (each value's passage count) and sort keys, for a filter panel.
  post({ type: 'facets', filters: engine.filters, sortKeys: engine.sortKeys });
  const waiting = keywordFiles && modelState === 'none';
  state('keyword', waiting ? 'Keyword search ready' : 'Keyword search ready; loading the model…', {
    passages: manifest.passages,
    build: engine.build,
  });
  schedule();
}

// The full engine takes over from the keyword engine: the meta file is loaded into it (the
// parts the keyword engine had are read again from the cache as searches name them), and it
// answers from now on. Synchronous, so no search or part lands between the two.
function handOver(full) {
  full.loadMeta(heldMeta);
  // What could not be had stays missing (retried after RETRY_MISSING_MS, as before).
  for (const name of partErrors.keys()) full.markMissing(name);
  // A prefetch that ran on the keyword engine (the model had failed) starts again on this one.
  prefetchState = 'idle';
}

// One part of a sharded index into the engine: from the cache or the network, checked by the
// engine (cut short, failing its checksum, not the file its hash names: an error naming the
// file). A damaged cached copy is evicted and fetched again (loadHashed); a damaged or failed
// download is tried once more, past the HTTP cache; then the part is marked missing, and
// searches answer without it and name it (and try it again after RETRY_MISSING_MS).
function fetchPart(name) {
  if (partLoads.has(name)) return partLoads.get(name);
  // The engine at the time the bytes arrive (the keyword engine may have handed over to the
  // full one meanwhile), unless another index was loaded since.
  // A part of an older index is dropped without an error (an error would evict the cached
  // copy, which a new index with the same part may need).
  const gen = indexGen;
  const add = (bytes) => {
    if (gen === indexGen) engine.addPart(name, bytes);
  };
  const load = (reload) => loadHashed(name, 'part', 0, add, { quiet: true, reload });
  let p = null;
  p = (async () => {
    try {
      await load(false);
      if (gen === indexGen) partErrors.delete(name);
    } catch (first) {
      try {
        await load(true);
        if (gen === indexGen) partErrors.delete(name);
      } catch (e) {
        if (gen === indexGen) {
          partErrors.set(name, { message: e.message.includes(name) ? e.message : `${name}: ${e.message}`, at: now() });
          engine.markMissing(name);
        }
      }
    } finally {
      if (partLoads.get(name) === p) partLoads.delete(name);
    }
  })();
  partLoads.set(name, p);
  return p;
}

// A search over a sharded index: each round names the parts it lacks (term chunks and vector
// shards, then the text of its hits); they are fetched and the search runs again.
// A part that could not be had is tried again by a search once RETRY_MISSING_MS have passed
// (the network may be back).
// If the full engine takes over meanwhile, the rounds start again on it.
async function searchSharded(query, options) {
  let on = engine;
  let out = await on.search(query, options);
  for (let round = 0; round < 4; round += 1) {
    const stale = out.missing.filter((f) => now() - (partErrors.get(f)?.at ?? 0) > RETRY_MISSING_MS);
    const wanted = [...out.need, ...stale];
    if (!wanted.length && on === engine) break;
    await Promise.all(wanted.map(fetchPart));
    if (on !== engine) {
      on = engine;
      round = -1;
    }
    out = await on.search(query, options);
  }
  return out;
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// After the first answer, the rest of a sharded index, a few parts at a time and only while
// no search runs, so a later query (and an offline visit) needs no network.
async function prefetch() {
  if (!sharded || !prefetchOn || prefetchState !== 'idle') return;
  prefetchState = 'running';
  const gen = indexGen;
  const names = engine.partsToFetch();
  const total = names.length;
  for (let i = 0; i < names.length; i += 6) {
    while (running || pending) await pause(50);
    if (gen !== indexGen) return; // another index was loaded: it prefetches its own
    await Promise.all(names.slice(i, i + 6).map(fetchPart));
    const left = engine.partsToFetch().length;
    post({ type: 'prefetch', loaded: total - left, total, failed: partErrors.size });
    await pause(0);
  }
  prefetchState = 'done';
  pruneCache();
}

function readyDetail() {
  return {
    backend: engine.backend,
    kernel: engine.kernel,
    quant: engine.quant,
    passages: manifest.passages,
    gpu: gpuReport,
    engine: { js: engineUrl, wasm: engineWasm, keywordJs: keywordFiles?.js, keywordWasm: keywordFiles?.wasm },
    build: engine.build,
    sharded,
    parts: sharded ? { ...partStats, left: engine.partsToFetch().length } : undefined,
  };
}

// WebGPU, when the browser has it and the page did not ask for the CPU: calibrated against
// the CPU in the engine (refused if its results differ, else the faster path per workload).
async function setUpGpu() {
  if (backendPref === 'cpu') {
    gpuReport = { available: false, reason: 'the CPU was asked for (backend=cpu)' };
    return;
  }
  if (!self.navigator?.gpu) {
    gpuReport = { available: false, reason: 'WebGPU is not available in this browser' };
    return;
  }
  try {
    gpuReport = await engine.initGpu(backendPref);
  } catch (e) {
    gpuReport = { available: false, reason: `WebGPU failed: ${e.message}` };
  }
}

// The model, into the engine; on the keyword engine, the full engine is loaded first and
// takes over the index (handOver) when the model is in.
async function loadModel() {
  if (modelState === 'loading' || modelState === 'ready') return;
  clearTimeout(modelTimer);
  modelTimer = null;
  modelDue = Infinity;
  modelState = 'loading';
  // Where WebGPU may be set up, the engine keeps the bundle's bytes for it (one crossing);
  // a sharded index searches on the CPU.
  const forGpu = !sharded && backendPref !== 'cpu' && Boolean(self.navigator?.gpu);
  let full = null;
  try {
    if (onKeyword) {
      state('keyword', 'Keyword search ready; loading the model…', { passages: manifest.passages, build: engine.build });
      full = await openEngine(fullFiles);
    }
    await loadHashed(manifest.model, 'model', manifest.model_bytes, (bytes) => {
      if (!full) return engine.loadModel(bytes, forGpu);
      // Synchronous from here: no search or part lands between the two engines.
      handOver(full.engine);
      full.engine.loadModel(bytes, forGpu);
      const old = engine;
      install(full);
      full = null;
      onKeyword = false;
      heldMeta = null;
      old.free(); // its calls all return before they yield: nothing still runs on it
      return undefined;
    });
    modelState = 'ready';
    // A sharded index's centroids: every meaning search starts from them.
    if (sharded) engine.partFiles().filter((n) => n.startsWith('cent.')).forEach(fetchPart);
    state('ready', 'Ready', readyDetail());
    // Upgrade what is on screen to hybrid results.
    if (lastQuery && !pending) pending = lastQuery;
    schedule();
    await keepManifest();
    pruneCache();
    await setUpGpu();
    state('ready', 'Ready', readyDetail());
  } catch (e) {
    full?.engine.free(); // a full engine that did not take over
    modelState = 'failed';
    state('keyword', `Semantic search unavailable: ${e.message}. Keyword search still works.`, {
      modelError: e.message,
      build: engine.build,
    });
  }
}

// A minimal module whose one function runs i32x4.relaxed_dot_i8x16_i7x16_add_s, the
// instruction the relaxed build's kernel uses: it validates only where relaxed SIMD exists.
const RELAXED_SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, // magic, version
  1, 5, 1, 96, 0, 1, 123, // type: () -> v128
  3, 2, 1, 0, // one function of that type
  10, 19, 1, 17, 0, // code: one body of 17 bytes, no locals
  65, 1, 253, 15, 65, 2, 253, 15, 65, 3, 253, 17, // i8x16.splat 1, i8x16.splat 2, i32x4.splat 3
  253, 147, 2, 11, // i32x4.relaxed_dot_i8x16_i7x16_add_s, end
]);

function hasRelaxedSimd() {
  try {
    return WebAssembly.validate(RELAXED_SIMD_PROBE);
  } catch {
    return false;
  }
}

// Imports the full engine named by `files` (see engineNamed) and makes one: the relaxed-SIMD
// build where the browser has relaxed SIMD (and the page did not ask for the plain one), else
// the SIMD128 build. Both compute the same vectors.
async function openEngine(files) {
  const mod = await import(files.js);
  if (files.relaxed && wasmPref !== 'simd128' && hasRelaxedSimd()) {
    try {
      await mod.default({ module_or_path: files.relaxed });
      return { mod, engine: new mod.Engine(), js: files.js, wasm: files.relaxed };
    } catch (e) {
      console.warn(`cairn: the relaxed-SIMD engine did not load (${e.message}); using SIMD128`);
    }
  }
  await mod.default({ module_or_path: files.wasm });
  return { mod, engine: new mod.Engine(), js: files.js, wasm: files.wasm };
}

// The keyword engine (no encoder), or null when it cannot be had (the full engine starts).
async function openKeywordEngine(files) {
  try {
    const mod = await import(files.js);
    await mod.default({ module_or_path: files.wasm });
    return { mod, engine: new mod.Engine(), js: files.js, wasm: files.wasm };
  } catch (e) {
    console.warn(`cairn: the keyword engine did not load (${e.message}); starting the full engine`);
    return null;
  }
}

function install(opened) {
  engine = opened.engine;
  Engine = opened.mod.Engine;
  engineUrl = opened.js;
  engineWasm = opened.wasm;
}

let onKeyword = false; // the keyword engine answers (the full one has not taken over yet)

// Starts the engine for the manifest's files: the keyword engine for a sharded index (when
// the folder has one), else the full engine. A different engine than the one running replaces
// it, and what the old one had loaded is loaded again.
async function startEngine(files) {
  fullFiles = files;
  if (engine && [files.js, files.keyword?.js].includes(engineUrl)) return;
  let opened = files.sharded && files.keyword ? await openKeywordEngine(files.keyword) : null;
  const keyword = Boolean(opened);
  if (!opened) opened = await openEngine(files);
  if (engine) {
    // (Not freed: a search may still be running on it; the collector takes it after.)
    indexReady = false;
    modelState = 'none';
    indexGen += 1; // a part still arriving for the old engine is dropped
  }
  install(opened);
  onKeyword = keyword;
  keywordFiles = keyword ? files.keyword : null;
}

async function start() {
  let manifestBytes;
  try {
    manifestBytes = await fetchManifest();
  } catch (e) {
    state('error', `The search index could not be loaded: ${e.message}`, { indexError: e.message });
    return;
  }
  try {
    await startEngine(engineNamed(manifestBytes.bytes));
  } catch (e) {
    state('error', `Search could not start: ${e.message}`, { fatal: true });
    return;
  }
  try {
    if (!indexReady) await loadIndex(manifestBytes);
  } catch (e) {
    state('error', `The search index could not be loaded: ${e.message}`, { indexError: e.message });
    return;
  }
  if (modelState === 'failed' || (modelState === 'none' && !onKeyword)) await loadModel();
  else if (modelState === 'none') modelIn(MODEL_DELAY_MS);
}

function schedule() {
  if (scheduled || running || !pending || !indexReady) return;
  scheduled = true;
  // Let queued messages arrive first, so only the newest query runs.
  setTimeout(runPending, 0);
}

async function runPending() {
  scheduled = false;
  const job = pending;
  pending = null;
  if (!job) return;
  lastQuery = job;
  running = true;
  try {
    // One engine call: it embeds when the model is in and the mode needs it, and says
    // which mode answered (keywords until the model is loaded).
    const options = { k: job.k || 8, mode: job.mode || 'hybrid' };
    if (job.filters && Object.keys(job.filters).length) options.filters = job.filters;
    if (job.sort) options.sort = job.sort;
    if (job.ranking) options.ranking = job.ranking;
    const out = sharded ? await searchSharded(job.query, options) : await engine.search(job.query, options);
    post({
      type: 'results',
      seq: job.seq,
      query: job.query,
      mode: out.mode,
      hits: out.hits,
      total: out.total,
      counts: out.counts,
      totalCounts: out.totalCounts,
      backend: out.backend,
      timings: out.timings,
      missing: (out.missing || []).map((file) => ({ file, reason: partErrors.get(file)?.message || 'not available' })),
      parts: sharded ? { ...partStats } : undefined,
      build: engine.build,
    });
    // The rest of the index once the page has been idle a moment (typing goes first).
    if (sharded && (modelState === 'ready' || modelState === 'failed')) setTimeout(prefetch, 1000);
  } catch (e) {
    post({ type: 'search-error', seq: job.seq, message: e.message });
  }
  // The first answer came from the keyword engine: the encoder and the model next (a moment
  // later, so the next keystrokes' answers go first).
  if (onKeyword) modelIn(AFTER_ANSWER_MS);
  running = false;
  schedule();
}

self.onmessage = (event) => {
  const msg = event.data || {};
  switch (msg.type) {
    case 'init':
      backendPref = ['webgpu', 'cpu'].includes(msg.backend) ? msg.backend : 'auto';
      wasmPref = msg.wasm === 'simd128' ? 'simd128' : 'auto';
      prefetchOn = msg.prefetch !== false;
      base = new URL(msg.base, self.location.href).href;
      if (!base.endsWith('/')) base += '/';
      start();
      break;
    case 'search':
      // A query came: the model waits for its answer (modelIn after it), not for the timer.
      if (onKeyword && modelState === 'none' && modelDue > now() + AFTER_ANSWER_MS) {
        clearTimeout(modelTimer);
        modelTimer = null;
        modelDue = Infinity;
      }
      pending = { seq: msg.seq, query: String(msg.query ?? ''), k: msg.k, mode: msg.mode, filters: msg.filters, sort: msg.sort, ranking: msg.ranking };
      schedule();
      break;
    case 'retry':
      if (base) start();
      break;
    default:
      break;
  }
};
