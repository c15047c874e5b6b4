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
//                                     own: true for a page that indexes the visitor's files
//                                     (the element's `own` attribute): the folder at `base`
//                                     gives the model and its index is not loaded; an index
//                                     kept by an earlier visit (origin private file system)
//                                     is loaded once the model is in
//   { type: 'search', seq, query, k, mode, filters, sort, ranking }
//   { type: 'retry' }                 fetch again whatever failed (index or model)
//   { type: 'ingest', files: [{ name, file }] }
//                                     (own) index these File objects, in place of the index
//                                     in use: read by the ingest module (cairn_ingest.js,
//                                     loaded on first use), embedded here in batches, written
//                                     by the CLI's index writer, kept in the private file
//                                     system; nothing of them leaves the browser
//   { type: 'ingest-cancel' }         stop the running ingest (the index in use stays)
//   { type: 'forget' }                (own) drop the index in use and the kept copy
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
//   { type: 'ingest-file', name, status: 'indexed' | 'skipped', kind, passages, texts,
//     replaced, message }             each file as it is read (message: why it was skipped,
//                                     or what was cleaned)
//   { type: 'ingest-progress', phase: 'reading' | 'embedding' | 'writing', done, total,
//     perSec, etaMs }                 (embedding: texts done of total, rate, time left)
//   { type: 'ingest-done', passages, texts, files, skipped, ms, embedMs, perSec, backend,
//     calibration, bytes, kept, reason }
//                                     the new index is in use (backend: 'cpu' or 'webgpu',
//                                     as calibration chose: { onGpu, cpuMs, gpuMs, gpuOneMs,
//                                     minCosine, reason }; kept: saved for the next visit;
//                                     reason: why not)
//   { type: 'ingest-cancelled' } | { type: 'ingest-error', message }
//   { type: 'own', passages, files, builtAt, kept, reason }
//                                     (own) the index in use: after a restore, a build or a
//                                     forget (passages 0: none)

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

let ownMode = false; // the page indexes the visitor's files (init's `own`)
let ownInfo = null; // what the own index in use holds ({ passages, files, builtAt, ... })
let ingestJob = null; // the running ingest: { cancelled }
let ownGen = 0; // bumped by every ingest and forget: a restore or ingest begun before one yields
let ownRestored = null; // the restore of the kept index (an ingest waits for it)
let opfsQueue = Promise.resolve(); // private file system work, one job at a time

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
    passages: ownMode ? ownInfo?.passages || 0 : manifest.passages,
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
  if (ownMode) {
    // No index to search on the GPU: WebGPU serves the ingest's batches, chosen per ingest
    // by timing its first batch on both (ingest).
    if (backendPref === 'cpu') gpuReport = { available: false, reason: 'the CPU was asked for (backend=cpu)' };
    else if (!self.navigator?.gpu) gpuReport = { available: false, reason: 'WebGPU is not available in this browser' };
    else {
      try {
        gpuReport = await engine.initGpuBatches();
      } catch (e) {
        gpuReport = { available: false, reason: `WebGPU failed: ${e.message}` };
      }
    }
    return;
  }
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
    // The visitor's kept index, before anything else can start an ingest or a forget.
    if (ownMode && !ownInfo && !ownRestored) {
      ownRestored = onOpfs(restoreOwn);
      await ownRestored;
    }
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
    // A page of the visitor's own files takes only the model from the folder.
    if (ownMode) manifest = await readManifest(manifestBytes);
    else if (!indexReady) await loadIndex(manifestBytes);
  } catch (e) {
    state('error', `The search index could not be loaded: ${e.message}`, { indexError: e.message });
    return;
  }
  if (modelState === 'failed' || (modelState === 'none' && !onKeyword)) await loadModel();
  else if (modelState === 'none') modelIn(MODEL_DELAY_MS);
}

// ---- The visitor's own files (own.html) ----

const OWN_DIR = 'cairn-own'; // in the origin private file system
const OWN_INDEX = 'index.cidx';
const OWN_META = 'own.json';
const OWN_OVERLAP = 32; // tokens shared by the parts of a long section (as `cairn index`)
const INGEST_BATCH = 8; // texts per embedding call: a cancel waits for at most one batch
const INGEST_GPU_BATCH = 32; // on WebGPU (the CPU path's batch size)
const CALIBRATION_WORDS = 48; // the calibration batch's texts are cut to this (software adapters are slow)

function minCosine(a, b, dim) {
  let worst = 1;
  for (let r = 0; r < a.length / dim; r++) {
    let dot = 0;
    for (let i = r * dim; i < (r + 1) * dim; i++) dot += a[i] * b[i];
    worst = Math.min(worst, dot); // both are unit vectors
  }
  return worst;
}

// Times one batch of `texts` (cut short) on the CPU and on WebGPU, after a warm-up of the
// GPU's pipelines, and says which embeds the ingest: the GPU where its vectors agree with the
// CPU's (cosine >= 0.999) and it is faster, or where the page asked for it (backend=webgpu).
// A GPU slower on one text than the CPU on the whole batch cannot win (a batch takes it at
// least as long as one text): the rest of the batch is not timed then, which spares a
// software adapter's seconds a text.
async function calibrateBatches(texts) {
  const sample = texts.map((t) => t.split(/\s+/).slice(0, CALIBRATION_WORDS).join(' '));
  let t = now();
  const cpu = engine.embedDocuments(sample);
  const cpuMs = now() - t;
  const dim = cpu.length / sample.length;
  await engine.embedDocumentsGpu(sample.slice(0, 1)); // warm-up: the pipelines compile
  t = now();
  const one = await engine.embedDocumentsGpu(sample.slice(0, 1));
  const oneMs = now() - t;
  let gpuMs = null;
  let cosine = minCosine(cpu.subarray(0, dim), one, dim);
  if (cosine >= 0.999 && (backendPref === 'webgpu' || oneMs < cpuMs)) {
    t = now();
    const gpu = await engine.embedDocumentsGpu(sample);
    gpuMs = now() - t;
    cosine = Math.min(cosine, minCosine(cpu, gpu, dim));
  }
  const accepted = cosine >= 0.999;
  const onGpu = accepted && (backendPref === 'webgpu' || (gpuMs !== null && gpuMs < cpuMs));
  const reason = !accepted
    ? `WebGPU's vectors differ from the CPU's (cosine ${cosine.toFixed(5)})`
    : onGpu
      ? (backendPref === 'webgpu' ? 'WebGPU was asked for' : 'WebGPU was faster')
      : 'the CPU was faster';
  return { onGpu, cpuMs, gpuMs, gpuOneMs: oneMs, minCosine: cosine, accepted, texts: sample.length, reason };
}

let ingestModule = null;

async function openIngest() {
  if (!ingestModule) {
    const mod = await import(new URL('./cairn_ingest.js', import.meta.url).href);
    await mod.default({ module_or_path: new URL('./cairn_ingest_bg.wasm', import.meta.url).href });
    ingestModule = mod;
  }
  return ingestModule;
}

// The folder the own index is kept in, or null where the browser has no private file system.
async function ownDir(create) {
  if (!self.navigator?.storage?.getDirectory) return null;
  const root = await navigator.storage.getDirectory();
  try {
    return await root.getDirectoryHandle(OWN_DIR, { create });
  } catch (e) {
    if (e.name === 'NotFoundError') return null;
    throw e;
  }
}

async function writeOwnFile(dir, name, data) {
  const handle = await dir.getFileHandle(name, { create: true });
  if (handle.createWritable) {
    const w = await handle.createWritable();
    await w.write(data);
    await w.close();
    return;
  }
  const sync = await handle.createSyncAccessHandle(); // Safari: workers only, as here
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  sync.truncate(0);
  sync.write(bytes, { at: 0 });
  sync.flush();
  sync.close();
}

async function readOwnFile(dir, name) {
  return (await dir.getFileHandle(name)).getFile();
}

function useOwnIndex(bytes, info) {
  engine.loadIndex(bytes); // the model stays: the index was built with it
  indexReady = true;
  ownInfo = info;
  post({ type: 'facets', filters: engine.filters, sortKeys: engine.sortKeys });
  post({ type: 'own', ...info });
  state('ready', 'Ready', readyDetail());
  if (lastQuery && !pending) pending = lastQuery;
  schedule();
}

function noOwnIndex(reason) {
  ownInfo = null;
  indexReady = false;
  post({ type: 'own', passages: 0, reason });
}

// The index an earlier visit kept, when it was built with this model.
async function restoreOwn() {
  const gen = ownGen;
  let dir;
  try {
    dir = await ownDir(false);
  } catch (e) {
    noOwnIndex(`The private file system is not available here (${e.message}): an index lasts until you leave.`);
    return;
  }
  if (!dir) {
    noOwnIndex();
    return;
  }
  try {
    const meta = JSON.parse(await (await readOwnFile(dir, OWN_META)).text());
    if (meta.fingerprint !== engine.modelInfo().fingerprint) {
      await forgetOwn();
      noOwnIndex('The index kept from an earlier visit was built with another model: index your files again.');
      return;
    }
    const bytes = new Uint8Array(await (await readOwnFile(dir, OWN_INDEX)).arrayBuffer());
    if (gen !== ownGen) return; // an ingest or a forget came meanwhile: theirs is what counts
    useOwnIndex(bytes, { ...meta, kept: true });
  } catch (e) {
    if (e.name === 'NotFoundError') {
      noOwnIndex();
      return;
    }
    await forgetOwn().catch(() => {});
    noOwnIndex(`The index kept from an earlier visit could not be read (${e.message}); it was forgotten.`);
  }
}

async function forgetOwn() {
  if (!self.navigator?.storage?.getDirectory) return;
  const root = await navigator.storage.getDirectory();
  try {
    await root.removeEntry(OWN_DIR, { recursive: true });
  } catch (e) {
    if (e.name !== 'NotFoundError') throw e;
  }
}

const megabytes = (n) => `${(n / 1e6).toFixed(1)} MB`;
const MAX_INGEST_BYTES = 128e6; // all files of one ingest: wasm32 memory holds their text twice

// Runs `job` after every private file system job queued before it (restore, write, forget).
function onOpfs(job) {
  const run = opfsQueue.then(job);
  opfsQueue = run.catch(() => {});
  return run;
}

// Reads, embeds and indexes `files` ([{ name, file }]); the index in use is replaced only
// when the new one is complete.
async function ingest(files) {
  if (ingestJob) {
    post({ type: 'ingest-error', message: 'Files are being indexed already: cancel first.' });
    return;
  }
  if (!ownMode || modelState !== 'ready') {
    post({ type: 'ingest-error', message: ownMode ? 'The model is not loaded yet.' : 'This page does not index its own files.' });
    return;
  }
  const job = { cancelled: false };
  ingestJob = job;
  const started = now();
  let builder = null;
  try {
    if (ownRestored) await ownRestored;
    ownGen += 1; // a restore still reading gives way to this ingest
    const mod = await openIngest();
    builder = new mod.IndexBuilder();
    const max = mod.IndexBuilder.maxFileBytes();
    const info = engine.modelInfo();
    const count = (text) => engine.tokenCount(text);
    let skipped = 0;
    let total = 0;
    for (let i = 0; i < files.length && !job.cancelled; i++) {
      const { name, file } = files[i];
      const skip = (message) => ({ name, status: 'skipped', kind: null, passages: 0, texts: 0, replaced: 0, message });
      let note;
      if (!(file instanceof Blob)) note = skip('not a file');
      else if (file.size > max) note = skip(`too large: ${megabytes(file.size)} (at most ${megabytes(max)} a file)`);
      else if (total + file.size > MAX_INGEST_BYTES) note = skip(`left out: the files before it reach ${megabytes(total)}, and one ingest reads at most ${megabytes(MAX_INGEST_BYTES)}`);
      else {
        total += file.size;
        let bytes = null;
        try {
          bytes = new Uint8Array(await file.arrayBuffer());
        } catch (e) {
          note = skip(`could not be read: ${e.message}`);
        }
        if (bytes) note = builder.addFile(name, bytes, info.maxTokens, OWN_OVERLAP, count);
      }
      if (note.status !== 'indexed') skipped += 1;
      post({ type: 'ingest-file', ...note });
      post({ type: 'ingest-progress', phase: 'reading', done: i + 1, total: files.length });
      await pause(0); // a cancel gets in
    }
    if (job.cancelled) throw new Error('cancelled');
    const n = builder.textCount;
    if (builder.passages === 0) throw new Error('None of the files had text to index.');
    const texts = builder.texts(0, n);
    // Longest first, so a batch pads little (the CLI orders its corpus the same way).
    const order = [...texts.keys()].sort((a, b) => texts[b].length - texts[a].length);
    const vectors = new Float32Array(n * info.dim);
    post({ type: 'ingest-progress', phase: 'embedding', done: 0, total: n, perSec: 0, etaMs: null });
    let calibration = null;
    if (gpuReport?.available && !gpuReport.reason) {
      try {
        calibration = await calibrateBatches(order.slice(0, INGEST_BATCH).map((j) => texts[j]));
      } catch (e) {
        calibration = { onGpu: false, reason: `WebGPU failed: ${e.message}` };
      }
    }
    const onGpu = Boolean(calibration?.onGpu);
    const size = onGpu ? INGEST_GPU_BATCH : INGEST_BATCH;
    const t0 = now();
    let done = 0;
    while (done < n && !job.cancelled) {
      const batch = order.slice(done, done + size);
      const chunk = batch.map((j) => texts[j]);
      const out = onGpu ? await engine.embedDocumentsGpu(chunk) : engine.embedDocuments(chunk);
      batch.forEach((j, k) => vectors.set(out.subarray(k * info.dim, (k + 1) * info.dim), j * info.dim));
      done += batch.length;
      const perSec = done / Math.max((now() - t0) / 1000, 1e-3);
      post({ type: 'ingest-progress', phase: 'embedding', done, total: n, perSec, etaMs: ((n - done) / perSec) * 1000 });
      await pause(0); // searches and a cancel get in between batches
    }
    if (job.cancelled) throw new Error('cancelled');
    const embedMs = now() - t0;
    post({ type: 'ingest-progress', phase: 'writing', done: n, total: n });
    const bytes = builder.build(vectors, info.dim, info.fingerprint, info.name);
    const meta = {
      version: 1,
      fingerprint: info.fingerprint,
      model: info.name,
      passages: builder.passages,
      texts: n,
      files: files.length - skipped,
      skipped,
      bytes: bytes.length,
      builtAt: new Date().toISOString(),
    };
    let kept = false;
    let reason;
    try {
      // In turn with a forget: one that comes during the write runs after it and removes it.
      kept = await onOpfs(async () => {
        if (job.cancelled) return false;
        await forgetOwn();
        const dir = await ownDir(true);
        if (!dir) return false;
        // The index first: a meta file names only a complete index.
        await writeOwnFile(dir, OWN_INDEX, bytes);
        await writeOwnFile(dir, OWN_META, JSON.stringify(meta));
        return true;
      });
      if (!kept) reason = 'this browser has no private file system: the index lasts until you leave';
    } catch (e) {
      reason = `it could not be kept (${e.message}): it lasts until you leave`;
    }
    if (job.cancelled) throw new Error('cancelled'); // a forget or cancel came while it was kept
    const done_ = {
      ...meta,
      ms: now() - started,
      embedMs,
      perSec: n / Math.max(embedMs / 1000, 1e-3),
      backend: onGpu ? 'webgpu' : 'cpu',
      calibration: calibration || { onGpu: false, reason: gpuReport?.reason || 'WebGPU is not set up' },
      kept,
      reason,
    };
    useOwnIndex(bytes, { ...meta, kept, reason });
    post({ type: 'ingest-done', ...done_ });
  } catch (e) {
    // A trap (out of memory) leaves the ingest module unusable: the next ingest loads a new one.
    if (e instanceof WebAssembly.RuntimeError) {
      ingestModule = null;
      builder = null;
    }
    if (job.cancelled) post({ type: 'ingest-cancelled' });
    else post({ type: 'ingest-error', message: e.message });
  } finally {
    try {
      builder?.free();
    } catch {
      ingestModule = null;
    }
    ingestJob = null;
  }
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
      ownMode = msg.own === true;
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
    case 'ingest':
      ingest(Array.isArray(msg.files) ? msg.files : []);
      break;
    case 'ingest-cancel':
      if (ingestJob) ingestJob.cancelled = true;
      break;
    case 'forget':
      if (!ownMode) break;
      ownGen += 1;
      if (ingestJob) ingestJob.cancelled = true;
      if (ownInfo) engine.unloadIndex();
      noOwnIndex();
      onOpfs(forgetOwn).catch((e) => post({ type: 'own', passages: 0, reason: `The kept index could not be removed: ${e.message}` }));
      break;
    default:
      break;
  }
};
