// `make bench-browser`: Cairn in headless Chromium on the SciFact index. Prints and writes to
// BENCHMARKS.md: per-query encode and search times (p50/p95 over 200 queries, measured in
// the worker around the wasm calls), the round trip seen by the page, the cold time to the
// first keyword result, and the bytes a first visit fetches.
//
// usage: node bench/browser.mjs INDEX_DIR [INDEX_DIR...] [--queries FILE] [--n N]
//          [--section NAME] [--write BENCHMARKS.md]
// (`--section browser-models` is the MiniLM / bge-small comparison: `make bench-browser-models`.)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, startServer, launch, newPage, waitForState } from '../tests/e2e/harness.mjs';
import { percentile, machine, today, chromiumVersion, updateSection, fmt, opt } from './lib.mjs';

const args = process.argv.slice(2);
const write = opt(args, '--write', null);
const section = opt(args, '--section', 'browser');
const command = section === 'browser' ? 'make bench-browser' : `make bench-${section}`;
const queriesFile = opt(args, '--queries', path.join(ROOT, '../shared/data/scifact/queries.jsonl'));
const N = Number(opt(args, '--n', '200'));
const indexes = args;
if (!indexes.length) {
  console.error('usage: node bench/browser.mjs INDEX_DIR [...] [--queries FILE] [--write FILE]');
  process.exit(2);
}
const queries = fs.readFileSync(queriesFile, 'utf8').split('\n').filter(Boolean)
  .map((l) => JSON.parse(l).text).slice(0, N);

const PAGE = `<!doctype html><meta charset="utf-8"><title>bench</title><link rel="icon" href="/favicon.svg">
<script type="module" src="/cairn/cairn-search.js"></script>
<cairn-search index="/bench-index/" results="10"></cairn-search>
<script type="module">
  const el = document.querySelector('cairn-search');
  window.firstKeyword = new Promise((resolve) => {
    el.addEventListener('cairn-results', (e) => { if (e.detail.hits.length) resolve(performance.now()); }, { once: false });
  });
  // Ask at once: the answer comes as soon as the index is in, before the model.
  customElements.whenDefined('cairn-search').then(() => {
    const input = el.shadowRoot.querySelector('input');
    input.value = 'cancer';
    input.dispatchEvent(new Event('input'));
  });
</script>`;

async function measure(indexDir, browser) {
  const manifest = JSON.parse(fs.readFileSync(path.join(indexDir, 'cairn-entry.json'), 'utf8'));
  const server = await startServer({
    mounts: { '/': path.join(ROOT, 'www'), '/bench-index/': indexDir },
    pages: { '/bench.html': PAGE },
  });
  // Cold load: a fresh context (empty cache).
  const context = await browser.newContext();
  const page = await newPage(context);
  await page.goto(new URL('bench.html', server.url).href);
  const firstKeywordMs = await page.evaluate(() => window.firstKeyword);
  await waitForState(page, 'ready', 300000);
  const readyMs = await page.evaluate(() => performance.now());
  const bytes = server.log.reduce((a, e) => a + e.bytes, 0);
  const byKind = {};
  for (const e of server.log) {
    const kind = /\.wasm$/.test(e.path) ? 'wasm' : /\.cidx$/.test(e.path) ? 'index'
      : /\.gguf$/.test(e.path) ? 'model' : /\.js$/.test(e.path) ? 'js' : 'other';
    byKind[kind] = (byKind[kind] || 0) + e.bytes;
  }
  // Warm-up, then the timed queries through the element (as a visitor types them).
  const run = (q) => page.evaluate(async (query) => {
    const el = document.querySelector('cairn-search');
    const input = el.shadowRoot.querySelector('input');
    const t0 = performance.now();
    const done = new Promise((resolve) => {
      const on = (e) => {
        if (e.detail.query === query && e.detail.mode === 'hybrid') {
          el.removeEventListener('cairn-results', on);
          resolve({ ...e.detail.timings, roundTripMs: performance.now() - t0 });
        }
      };
      el.addEventListener('cairn-results', on);
    });
    input.value = query;
    input.dispatchEvent(new Event('input'));
    return done;
  }, q);
  for (const q of queries.slice(0, 10)) await run(`${q} `);
  const encode = [];
  const search = [];
  const total = [];
  const roundTrip = [];
  for (const q of queries) {
    const t = await run(q);
    encode.push(t.encodeMs);
    search.push(t.searchMs);
    total.push(t.encodeMs + t.searchMs);
    roundTrip.push(t.roundTripMs);
  }
  await context.close();
  await server.close();
  return {
    name: path.basename(indexDir),
    model: (manifest.model_name || '?').split('/').pop(),
    quant: manifest.model_quant || '?',
    passages: manifest.passages,
    indexBytes: manifest.index_bytes,
    modelBytes: manifest.model_bytes,
    firstKeywordMs,
    readyMs,
    bytes,
    byKind,
    encode,
    search,
    total,
    roundTrip,
  };
}

const browser = await launch();
const rows = [];
for (const dir of indexes) {
  console.error(`measuring ${dir} ...`);
  rows.push(await measure(path.resolve(dir), browser));
}
await browser.close();

const mb = (b) => (b / 1e6).toFixed(2);
let md = `Measured ${today()} on ${machine()} with \`${command}\` (${chromiumVersion()}, headless, `
  + `one worker thread; ${queries.length} SciFact queries after 10 warm-up queries, typed into the `
  + `element one after another; encode and search timed in the worker around the wasm calls; round trip `
  + `from the input event to the results event; load average ${os.loadavg()[0].toFixed(2)} at the end).\n\n`;
md += '| index | model | bundle | passages | encode p50 / p95 (ms) | search p50 / p95 (ms) | encode + search p50 / p95 (ms) | page round trip p50 (ms) | cold: first keyword result (ms) | cold: ready (ms) | first-visit bytes (MB): total = wasm + JS + index + model + other |\n';
md += '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n';
for (const r of rows) {
  md += `| ${r.name} | ${r.model} | ${r.quant} | ${r.passages} | ${fmt(percentile(r.encode, 0.5), 2)} / ${fmt(percentile(r.encode, 0.95), 2)} `
    + `| ${fmt(percentile(r.search, 0.5), 2)} / ${fmt(percentile(r.search, 0.95), 2)} `
    + `| ${fmt(percentile(r.total, 0.5), 2)} / ${fmt(percentile(r.total, 0.95), 2)} `
    + `| ${fmt(percentile(r.roundTrip, 0.5), 2)} | ${fmt(r.firstKeywordMs, 0)} | ${fmt(r.readyMs, 0)} `
    + `| ${mb(r.bytes)} = ${mb(r.byKind.wasm || 0)} + ${mb(r.byKind.js || 0)} + ${mb(r.byKind.index || 0)} + ${mb(r.byKind.model || 0)} + ${mb(r.byKind.other || 0)} |\n`;
}
md += '\nBytes are as served by a local server without compression; a server that gzips or Brotli-compresses '
  + 'wasm and the index sends fewer.\n';
console.log(md);
if (write) {
  updateSection(write, section, md);
  console.error(`updated the \`${section}\` section of ${write}`);
}
