// The Rust Book (rustup's docs), Cairn against Pagefind: build time, index bytes, bytes a query
// fetches, and the rank of the right chapter for the questions in bench/rust-book-questions.json.
//
// Expects what bench/run-all.sh (step `rustbook`) builds in bench/out/: book-q4_0/ and
// book-q8_0/ (`cairn index --site BOOK --base-url /book/`, with .log and .wall beside them) and
// book-pagefind/ (`pagefind --site BOOK --output-path ...`, with .log and .wall).
// Both searches run in headless Chromium: Pagefind through its JS API (/pagefind/pagefind.js,
// search(), then data() for the URLs), Cairn through its wasm Engine in a module worker
// (hybrid, and lexical for comparison). Ranks count pages: several sections of one page are one.
//
// usage: node bench/peers-rustbook.mjs --book BOOK_DIR [--write BENCHMARKS.md]
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, startServer, launch, newPage } from '../tests/e2e/harness.mjs';
import { percentile, machine, today, chromiumVersion, updateSection, fmt } from './lib.mjs';
import { opt, versions, loadAverage, dirBytes, gzipSize, mb } from './peers-lib.mjs';

const args = process.argv.slice(2);
const write = opt(args, '--write', null);
const book = opt(args, '--book', null);
const DEPTH = 20; // pages looked at per question
const UI_RESULTS = 5; // results a first screen shows (Pagefind's default UI loads five)
if (!book) throw new Error('usage: node bench/peers-rustbook.mjs --book BOOK_DIR [--write FILE]');
const OUT = path.join(ROOT, 'bench/out');
const questions = JSON.parse(fs.readFileSync(path.join(ROOT, 'bench/rust-book-questions.json'), 'utf8')).questions;
const bundles = ['q4_0', 'q8_0'].filter((q) => fs.existsSync(path.join(OUT, `book-${q}/cairn-entry.json`)));
if (!bundles.length) throw new Error('no bench/out/book-<quant>: run bench/run-all.sh rustbook');
if (!fs.existsSync(path.join(OUT, 'book-pagefind/pagefind.js'))) throw new Error('no bench/out/book-pagefind: run bench/run-all.sh rustbook');

const mounts = {
  '/book/': book,
  '/pagefind/': path.join(OUT, 'book-pagefind'),
  '/cairn/': path.join(ROOT, 'www/cairn'),
  '/bench/': path.join(ROOT, 'bench/pages'),
};
for (const q of bundles) mounts[`/book-${q}/`] = path.join(OUT, `book-${q}`);
const PAGE = `<!doctype html><meta charset="utf-8"><title>peers rust book</title><link rel="icon" href="data:,">
<script type="module">
  import { worker } from '/bench/bench.js';
  window.workers = {};
  window.start = async (name, url, msg) => {
    window.workers[name] = worker(url);
    return window.workers[name].call(msg);
  };
  window.ask = (name, msg) => window.workers[name].call(msg);
  window.pagefindSearch = async (q, n) => {
    window.pf = window.pf || await import('/pagefind/pagefind.js');
    const t0 = performance.now();
    const r = await window.pf.search(q);
    const data = await Promise.all(r.results.slice(0, n).map((x) => x.data()));
    const ms = performance.now() - t0;
    return { count: r.results.length, urls: data.map((d) => d.url), ms };
  };
  window.ready = true;
</script>`;
const server = await startServer({ mounts, pages: { '/rustbook.html': PAGE } });
const browser = await launch();
const open = async () => {
  const context = await browser.newContext();
  const page = await newPage(context);
  page.setDefaultTimeout(300000);
  await page.goto(new URL('rustbook.html', server.url).href);
  await page.waitForFunction(() => window.ready === true);
  return { context, page };
};

// The page a URL names, relative to the book's root: '/book/ch15-01-box.html#x' -> 'ch15-01-box.html'.
const pageOf = (url) => {
  let p = new URL(url, 'http://x/').pathname.replace(/^\/book\//, '/').replace(/^\//, '');
  if (p === '' || p.endsWith('/')) p += 'index.html';
  return p;
};
const rankOf = (urls, expect) => {
  const pages = [];
  for (const u of urls) {
    const p = pageOf(u);
    if (!pages.includes(p)) pages.push(p);
  }
  const i = pages.slice(0, DEPTH).findIndex((p) => expect.includes(p));
  return { rank: i < 0 ? null : i + 1, pages: pages.slice(0, 5) };
};

const loadAvg = loadAverage();
// Pagefind, cold: one fresh browser context per question (an empty HTTP cache), counting what
// the search and the first screen of results fetch.
const pagefind = [];
let pagefindSessionBytes = 0;
for (const { q, expect } of questions) {
  const { context, page } = await open();
  const before = server.log.length;
  const r = await page.evaluate(([qq, n]) => window.pagefindSearch(qq, n), [q, UI_RESULTS]);
  const fetched = server.log.slice(before).filter((e) => e.path.startsWith('/pagefind/'));
  pagefind.push({ q, coldBytes: fetched.reduce((a, e) => a + e.bytes, 0), coldRequests: fetched.length, coldMs: r.ms });
  await context.close();
}
// Pagefind, one warm session: ranks (data() for the top DEPTH results) and per-query time.
{
  const { context, page } = await open();
  await page.evaluate(() => window.pagefindSearch('warm up', 1));
  const before = server.log.length;
  for (const [i, { q, expect }] of questions.entries()) {
    await page.evaluate(([qq]) => window.pagefindSearch(qq, 1), [q]); // warms this query's chunks
    const r = await page.evaluate(([qq, n]) => window.pagefindSearch(qq, n), [q, DEPTH]);
    Object.assign(pagefind[i], { count: r.count, warmMs: r.ms, ...rankOf(r.urls, expect) });
  }
  const session = server.log.slice(before).filter((e) => e.path.startsWith('/pagefind/'));
  pagefindSessionBytes = session.reduce((a, e) => a + e.bytes, 0);
  await context.close();
}

// Cairn: the wasm Engine in a worker, each bundle, hybrid and lexical.
const cairn = {};
for (const quant of bundles) {
  const { context, page } = await open();
  const info = await page.evaluate(([qq]) => window.start('cairn', '/bench/cairn-worker.js', { type: 'load', base: `/book-${qq}/` }), [quant]);
  await page.evaluate(() => window.ask('cairn', { type: 'query', query: 'warm up', k: 10, mode: 'hybrid' }));
  cairn[quant] = { loadMs: info.readyMs, passages: info.passages, hybrid: [], lexical: [] };
  for (const mode of ['hybrid', 'lexical']) {
    for (const { q, expect } of questions) {
      const r = await page.evaluate(([qq, m]) => window.ask('cairn', { type: 'query', query: qq, k: 100, mode: m }), [q, mode]);
      cairn[quant][mode].push({ ms: r.encodeMs + r.searchMs, ...rankOf(r.hits.map((h) => h.url), expect) });
    }
  }
  await context.close();
}
await browser.close();
await server.close();

// --- build figures ---
const wall = (name) => Number(fs.readFileSync(path.join(OUT, `${name}.wall`), 'utf8'));
const pfLog = fs.readFileSync(path.join(OUT, 'book-pagefind.log'), 'utf8');
const pfPages = (pfLog.match(/Indexed (\d+) pages?/) || [])[1];
const pfDir = dirBytes(path.join(OUT, 'book-pagefind'));
const build = { pagefind: { wall: wall('book-pagefind'), pages: pfPages ? Number(pfPages) : null, ...pfDir } };
for (const q of bundles) {
  const dir = path.join(OUT, `book-${q}`);
  const m = JSON.parse(fs.readFileSync(path.join(dir, 'cairn-entry.json'), 'utf8'));
  const log = fs.readFileSync(path.join(OUT, `book-${q}.log`), 'utf8');
  // `cairn index` counts texts embedded (a long section goes in parts), older builds passages.
  const ix = log.match(/indexed (\d+) passages in ([\d.]+) s \(([\d.]+) (?:texts|passages)\/s embedding[,)]/);
  const parts = log.match(/embedding (\d+) of (\d+) texts \((\d+) passages/);
  const pages = (log.match(/(\d+) pages?/) || [])[1];
  build[q] = {
    wall: wall(`book-${q}`),
    passages: m.passages,
    pages: pages ? Number(pages) : null,
    indexBytes: m.index_bytes,
    modelBytes: m.model_bytes,
    indexGzip: gzipSize(path.join(dir, m.index)),
    modelGzip: gzipSize(path.join(dir, m.model)),
    embedRate: ix ? Number(ix[3]) : null,
    texts: parts ? Number(parts[2]) : null,
  };
}

// --- report ---
const v = versions();
const mrr = (rows) => rows.reduce((a, r) => a + (r.rank ? 1 / r.rank : 0), 0) / rows.length;
const hits = (rows, k) => rows.filter((r) => r.rank && r.rank <= k).length;
const show = (r) => (r.rank ? String(r.rank) : '—');
let md = `Measured ${today()} on ${machine()} (load average ${loadAvg} at the start of the searches) by \`make bench\` `
  + `(bench/run-all.sh, bench/peers-rustbook.mjs): Cairn ${v.cairn}, Pagefind ${v.pagefind} (npm \`pagefind\`, default settings), `
  + `${chromiumVersion()} headless. The Rust Book as rustup's \`rust-docs\` ships it (${book}), the same HTML for both, `
  + `indexed whole (the old editions' folders included).\n\n`;
md += '| | build (s) | what it indexed | files | index bytes: raw / gzip -6 (MB) | first visit + one query fetches (MB) |\n|---|---:|---|---:|---:|---:|\n';
const pfCold = pagefind.map((r) => r.coldBytes);
md += `| Pagefind | ${fmt(build.pagefind.wall, 1)} | ${build.pagefind.pages ?? '?'} pages | ${build.pagefind.files} `
  + `| ${mb(build.pagefind.bytes)} (its files are already compressed) `
  + `| ${mb(percentile(pfCold, 0.5))} median, ${mb(Math.max(...pfCold))} max over the ${questions.length} questions (pagefind.js, wasm, metadata, the query's index chunks, ${UI_RESULTS} result fragments) |\n`;
for (const q of bundles) {
  const b = build[q];
  md += `| Cairn, ${q} bundle | ${fmt(b.wall, 1)} | ${b.passages} passages (sections) | 3 `
    + `| ${mb(b.indexBytes + b.modelBytes)} / ${mb(b.indexGzip + b.modelGzip)} (index ${mb(b.indexBytes)} / ${mb(b.indexGzip)}, model ${mb(b.modelBytes)} / ${mb(b.modelGzip)}) `
    + `| all of it up front, plus the engine (see peers-bytes); later queries fetch nothing |\n`;
}
md += `\nPagefind's whole folder is what the host stores; a visit fetches only part of it. Over one session asking all ${questions.length} questions `
  + `Pagefind fetched ${mb(pagefindSessionBytes)} MB after its first query. Cairn's build embeds every section (${bundles.map((q) => `${q}: ${fmt(build[q].embedRate, 1)} texts/s`).join(', ')}${build[bundles[0]].texts ? `; ${build[bundles[0]].texts} texts for ${build[bundles[0]].passages} passages, a long section embedded in parts` : ''}).\n\n`;

md += `Rank of the first result on an expected page (pages counted once, first ${DEPTH} pages; — = not among them). `
  + `Cairn's hybrid search is what its element runs; its lexical mode (BM25 alone) is shown for comparison with Pagefind's keyword search.\n\n`;
const cols = bundles.flatMap((q) => [`Cairn ${q} hybrid`, `Cairn ${q} lexical`]);
md += `| question | expected page | Pagefind (results) | ${cols.join(' | ')} | better |\n|---|---|---:|${cols.map(() => '---:').join('|')}|---|\n`;
const main = bundles[0];
questions.forEach(({ q, expect }, i) => {
  const pf = pagefind[i];
  const ch = cairn[main].hybrid[i];
  const cells = bundles.flatMap((b) => [show(cairn[b].hybrid[i]), show(cairn[b].lexical[i])]);
  const a = ch.rank || Infinity;
  const p = pf.rank || Infinity;
  const better = a === p ? (a === Infinity ? 'neither' : 'tie') : a < p ? `Cairn` : '**Pagefind**';
  md += `| ${q} | ${expect.join(', ')} | ${show(pf)} (${pf.count}) | ${cells.join(' | ')} | ${better} |\n`;
});
md += `\n| search | MRR (first ${DEPTH} pages) | hits@1 | hits@5 | not found in ${DEPTH} | query time p50 (ms, warm) |\n|---|---:|---:|---:|---:|---:|\n`;
const summary = (name, rows, ms) => `| ${name} | ${fmt(mrr(rows), 3)} | ${hits(rows, 1)}/${rows.length} | ${hits(rows, 5)}/${rows.length} | ${rows.filter((r) => !r.rank).length} | ${fmt(percentile(ms, 0.5), 1)} |\n`;
md += summary('Pagefind', pagefind, pagefind.map((r) => r.warmMs));
for (const q of bundles) {
  md += summary(`Cairn ${q} hybrid`, cairn[q].hybrid, cairn[q].hybrid.map((r) => r.ms));
  md += summary(`Cairn ${q} lexical`, cairn[q].lexical, cairn[q].lexical.map((r) => r.ms));
}
const pfWins = questions.filter((_, i) => (pagefind[i].rank || Infinity) < (cairn[main].hybrid[i].rank || Infinity)).map((x) => `"${x.q}"`);
const cWins = questions.filter((_, i) => (cairn[main].hybrid[i].rank || Infinity) < (pagefind[i].rank || Infinity)).length;
md += `\nQuery time: Pagefind's search() plus data() of the top ${DEPTH} results, its chunks already fetched; Cairn's embedding plus search in the worker. `
  + `Cairn ${main} hybrid ranks the right page higher on ${cWins} of ${questions.length} questions; Pagefind on ${pfWins.length}`
  + `${pfWins.length ? ` (${pfWins.join(', ')})` : ''}.\n`;
const pfBetter = mrr(pagefind) > mrr(cairn[main].hybrid);
if (pfBetter) md += `\n**Pagefind wins on MRR** (${fmt(mrr(pagefind), 3)} vs ${fmt(mrr(cairn[main].hybrid), 3)} for Cairn ${main} hybrid).\n`;
const lossesHere = [];
if (build[main].wall > build.pagefind.wall) {
  lossesHere.push(`build time (${fmt(build[main].wall, 0)} s against Pagefind's ${fmt(build.pagefind.wall, 1)} s: Cairn embeds every section with the model)`);
}
const cairnUpFront = build[main].indexBytes + build[main].modelBytes;
if (cairnUpFront > percentile(pfCold, 0.5)) {
  lossesHere.push(`bytes before the first answer (Cairn fetches its index and model, ${mb(cairnUpFront)} MB raw before the engine, where Pagefind fetches ${mb(percentile(pfCold, 0.5))} MB for a typical query)`);
}
if (pfBetter) lossesHere.push('ranking (MRR above)');
if (lossesHere.length) md += `\n**Where Cairn loses here**: ${lossesHere.join('; ')}.\n`;
console.log(md);
fs.writeFileSync(path.join(OUT, 'rustbook.json'), JSON.stringify({ date: today(), build, pagefind, pagefindSessionBytes, cairn, uiResults: UI_RESULTS }, null, 1));
if (write) {
  updateSection(write, 'peers-rustbook', md);
  console.error(`updated the \`peers-rustbook\` section of ${write}`);
}
