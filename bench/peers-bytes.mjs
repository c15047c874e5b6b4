// Bytes on the wire for a first visit, counted from the server log of headless page loads (as
// bench/browser.mjs counts them), raw and gzip -6:
//   * SciFact: Cairn's element (<cairn-search>: its JS, the wasm engine, the manifest, the
//     index, the model bundle), q8_0 and q4_0, until it is ready for hybrid search, against
//     transformers.js (its JS, onnxruntime-web's wasm, the int8 ONNX model, tokenizer and
//     config, and the corpus vectors as JSON) until its first query is answered.
//   * The Rust Book: Cairn's element on the book index (bench/out/book-q4_0) against
//     Pagefind (first visit and one query, from bench/out/rustbook.json, and its whole folder).
//
// usage: node bench/peers-bytes.mjs --book BOOK_DIR [--write BENCHMARKS.md]
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, startServer, launch, newPage, waitForState } from '../tests/e2e/harness.mjs';
import { machine, today, chromiumVersion, updateSection, percentile } from './lib.mjs';
import { opt, versions, fileFor, gzipSize, dirBytes, mb } from './peers-lib.mjs';

const args = process.argv.slice(2);
const write = opt(args, '--write', null);
const book = opt(args, '--book', null);
const bundles = opt(args, '--bundles', 'q8_0,q4_0').split(',');
const OUT = path.join(ROOT, 'bench/out');
const vectors = path.join(ROOT, 'bench/data/scifact-vectors.json');
if (!fs.existsSync(vectors)) throw new Error(`missing ${vectors}: run bench/run-all.sh quality`);

const mounts = {
  '/': path.join(ROOT, 'www'),
  '/bench/': path.join(ROOT, 'bench/pages'),
  '/tjs/': path.join(ROOT, 'bench/node_modules/@huggingface/transformers/dist'),
  '/ort/': path.join(ROOT, 'bench/node_modules/onnxruntime-web/dist'),
  '/tjs-models/': path.join(ROOT, 'bench/models/tjs'),
  '/data/': path.dirname(vectors),
  '/scifact-q8_0/': path.join(ROOT, 'target/scifact/q8_0'),
  '/scifact-q4_0/': path.join(ROOT, 'target/scifact/q4_0'),
  '/book-index/': path.join(OUT, 'book-q4_0'),
};
if (book) mounts['/book/'] = book;
const cairnPage = (index) => `<!doctype html><meta charset="utf-8"><title>first visit</title><link rel="icon" href="data:,">
<script type="module" src="/cairn/cairn-search.js"></script>
<cairn-search index="${index}" results="10"></cairn-search>`;
const TJS_PAGE = `<!doctype html><meta charset="utf-8"><title>first visit</title><link rel="icon" href="data:,">
<script type="module">
  import { worker } from '/bench/bench.js';
  const w = worker('/bench/tjs-worker.js');
  window.done = w.call({ type: 'load', modelPath: '/tjs-models/', model: 'all-MiniLM-L6-v2', dtype: 'q8',
    vectors: '/data/${path.basename(vectors)}', ort: '/ort/' })
    .then(() => w.call({ type: 'query', query: 'vitamin D and cancer', k: 10 }));
</script>`;
const server = await startServer({
  mounts,
  pages: {
    '/cairn-q8_0.html': cairnPage('/scifact-q8_0/'),
    '/cairn-q4_0.html': cairnPage('/scifact-q4_0/'),
    '/cairn-book.html': cairnPage('/book-index/'),
    '/tjs.html': TJS_PAGE,
  },
});
const browser = await launch();

const kindOf = (p) => (/\.wasm$/.test(p) ? 'wasm' : /\.(m?js)$/.test(p) ? 'js' : /\.(gguf|onnx)$/.test(p) ? 'model'
  : /\.cidx$/.test(p) || /vectors\.json$/.test(p) ? 'index' : 'other');

async function visit(pageName, until) {
  const context = await browser.newContext();
  const page = await newPage(context);
  page.setDefaultTimeout(600000);
  const before = server.log.length;
  await page.goto(new URL(pageName, server.url).href);
  await until(page);
  await context.close();
  const files = server.log.slice(before).filter((e) => e.status === 200 && e.path !== `/${pageName}`);
  const rows = files.map((e) => {
    const file = fileFor(mounts, e.path);
    return { path: e.path, kind: kindOf(e.path), bytes: e.bytes, gzip: file ? gzipSize(file) : e.bytes };
  });
  if (page.errors.length) console.error(`${pageName}: ${page.errors.join('; ')}`);
  return rows;
}

const visits = {};
for (const q of bundles) {
  console.error(`first visit: Cairn ${q} ...`);
  visits[`Cairn ${q}`] = await visit(`cairn-${q}.html`, (p) => waitForState(p, 'ready', 600000));
}
console.error('first visit: transformers.js ...');
visits['transformers.js + vectors JSON'] = await visit('tjs.html', (p) => p.evaluate(() => window.done));
let bookVisit = null;
if (fs.existsSync(path.join(OUT, 'book-q4_0/cairn-entry.json'))) {
  console.error('first visit: Cairn on the Rust Book ...');
  bookVisit = await visit('cairn-book.html', (p) => waitForState(p, 'ready', 600000));
}
await browser.close();
await server.close();

const sum = (rows, key, kind) => rows.filter((r) => !kind || r.kind === kind).reduce((a, r) => a + r[key], 0);
const cell = (rows, kind) => `${mb(sum(rows, 'bytes', kind))} / ${mb(sum(rows, 'gzip', kind))}`;
const v = versions();
let md = `Measured ${today()} on ${machine()} by \`make bench\` (bench/peers-bytes.mjs): Cairn ${v.cairn}, transformers.js ${v.transformers} `
  + `with onnxruntime-web ${v.ort}, Pagefind ${v.pagefind}, ${chromiumVersion()} headless. Each row is one first visit in a fresh `
  + `browser context (empty cache), counted from the local server's log: every file the page really requested, until Cairn's `
  + `element reports \`ready\` (hybrid search possible) or transformers.js has answered its first query.\n\n`
  + `Figures are MB as raw / gzip -6 (zlib's default level, what static hosts that compress on the fly typically send). `
  + `Whether a host compresses a file depends on its content type: most compress JavaScript, JSON and (often) wasm, many send `
  + `\`application/octet-stream\` files (Cairn's .gguf and .cidx, the .onnx model) as they are, so the raw figure is what those cost there.\n\n`;
const baseName = visits['Cairn q4_0'] ? 'Cairn q4_0' : `Cairn ${bundles[0]}`;
md += `| first visit (SciFact, 5,183 abstracts) | requests | JS | wasm | model | index / vectors JSON | other | total raw / gzip | vs ${baseName} (gzip) |\n`;
md += '|---|---:|---:|---:|---:|---:|---:|---:|---:|\n';
const base = sum(visits[baseName], 'gzip');
for (const [name, rows] of Object.entries(visits)) {
  md += `| ${name} | ${rows.length} | ${cell(rows, 'js')} | ${cell(rows, 'wasm')} | ${cell(rows, 'model')} | ${cell(rows, 'index')} | ${cell(rows, 'other')} `
    + `| **${cell(rows)}** | ${(sum(rows, 'gzip') / base).toFixed(2)}× |\n`;
}
const smallest = Object.entries(visits).sort((a, b) => sum(a[1], 'gzip') - sum(b[1], 'gzip'))[0][0];
const tjsRows = visits['transformers.js + vectors JSON'];
const vec = tjsRows.find((r) => r.kind === 'index');
const ortWasm = tjsRows.find((r) => r.kind === 'wasm');
md += `\nSmallest first visit (gzip): **${smallest}**.`;
if (!smallest.startsWith('Cairn')) md += ' **Cairn loses on bytes here.**';
md += ` transformers.js fetched onnxruntime-web's \`${ortWasm ? path.basename(ortWasm.path) : '?'}\` (the build it picks by default, with WebGPU support); `
  + `its CPU-only \`ort-wasm-simd-threaded.wasm\` is ${mb(fs.statSync(path.join(ROOT, 'bench/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm')).size)} MB raw. `
  + `The vectors JSON (${vec ? mb(vec.bytes) : '?'} MB) holds only ids and vectors, no text to show; Cairn's index also carries every passage's text `
  + `(for excerpts and keyword search) and its BM25 postings.\n`;
if (bookVisit) {
  const rb = fs.existsSync(path.join(OUT, 'rustbook.json')) ? JSON.parse(fs.readFileSync(path.join(OUT, 'rustbook.json'), 'utf8')) : null;
  md += '\n| first visit (the Rust Book) | requests | raw (MB) | gzip -6 (MB) |\n|---|---:|---:|---:|\n';
  md += `| Cairn q4_0 element, until ready | ${bookVisit.length} | ${mb(sum(bookVisit, 'bytes'))} | ${mb(sum(bookVisit, 'gzip'))} |\n`;
  if (rb) {
    const cold = rb.pagefind.map((r) => r.coldBytes);
    const reqs = rb.pagefind.map((r) => r.coldRequests);
    md += `| Pagefind, first visit + one query (median over ${cold.length} questions; max ${mb(Math.max(...cold))}) | ${percentile(reqs, 0.5)} | ${mb(percentile(cold, 0.5))} | (already gzip'd) |\n`;
  }
  const pf = path.join(OUT, 'book-pagefind');
  if (fs.existsSync(pf)) {
    const d = dirBytes(pf);
    md += `| Pagefind's whole output folder (stored, never fetched whole) | ${d.files} files | ${mb(d.bytes)} | |\n`;
  }
  md += '\nPagefind splits its index into chunks and fetches the ones a query needs, plus one fragment per result shown (its files are served gzip-compressed as stored); '
    + 'Cairn fetches its whole index and model once (then from the Cache API), and answers every later query, by meaning as well as by keyword, without the network. '
    + (sum(bookVisit, 'gzip') > (rb ? percentile(rb.pagefind.map((r) => r.coldBytes), 0.5) : 0) ? '**On bytes for a first query, Cairn loses to Pagefind.**\n' : '\n');
}
console.log(md);
fs.writeFileSync(path.join(OUT, 'bytes.json'), JSON.stringify({ date: today(), visits, bookVisit }, null, 1));
if (write) {
  updateSection(write, 'peers-bytes', md);
  console.error(`updated the \`peers-bytes\` section of ${write}`);
}
