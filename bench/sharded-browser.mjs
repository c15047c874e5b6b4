// A cold visit to a sharded Cairn index in headless Chromium, beside Pagefind over the same
// HTML: everything each fetches before its first results for a question, counted from the
// local server's log (every file but the page itself, each request counted from when it
// started). Files are counted gzip -6 (a static host's on-the-fly compression), except
// Pagefind's index files, which it stores gzip-compressed and are counted as served.
//
// Per question, a fresh browser context (empty caches) opens a page with the
// <cairn-search> element (prefetch="off", so nothing is fetched ahead), waits for keyword
// search, types the question and records the bytes until the first results (the keyword
// engine's), then until the hybrid answer (the worker reruns the query once the model is in),
// then asks the next question in the same page and records what that one adds. Pagefind: a
// fresh context per question, `search()` and `data()` of its first five results.
//
// usage: node bench/sharded-browser.mjs --name NAME --queries FILE.json --cairn DIR
//          --pagefind DIR [--write BENCHMARKS.md]
//   --cairn: `cairn index --sharded --ui pkg` output (the engines beside the index)
//   --pagefind: `pagefind --site SITE --output-path DIR` output
// Writes the section `sharded-browser-NAME`.
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, startServer, launch, newPage, waitForState } from '../tests/e2e/harness.mjs';
import { percentile, machine, today, chromiumVersion, updateSection, fmt, opt } from './lib.mjs';
import { gzipSize, loadAverage, fileFor } from './peers-lib.mjs';

const args = process.argv.slice(2);
const name = opt(args, '--name', null);
const queriesFile = opt(args, '--queries', null);
const cairnDir = opt(args, '--cairn', null);
const pfDir = opt(args, '--pagefind', null);
const write = opt(args, '--write', null);
if (!name || !queriesFile || !cairnDir || !pfDir) {
  console.error('usage: node bench/sharded-browser.mjs --name NAME --queries FILE.json --cairn DIR --pagefind DIR [--write FILE]');
  process.exit(2);
}
const manifest = JSON.parse(fs.readFileSync(path.join(cairnDir, 'cairn-entry.json'), 'utf8'));
if (manifest.index_format !== 2 || !manifest.engine?.keyword_wasm) {
  throw new Error(`${cairnDir}: not a sharded index written with the UI (cairn index --sharded --ui pkg)`);
}
const questions = JSON.parse(fs.readFileSync(queriesFile, 'utf8')).questions.map((x) => x.q);
const load = loadAverage();
const mounts = { '/idx/': cairnDir, '/pagefind/': pfDir };
const PAGE = `<!doctype html><meta charset="utf-8"><title>cold visit</title><link rel="icon" href="data:,">
<script type="module" src="/idx/cairn-search.js"></script>
<cairn-search index="/idx/" prefetch="off"></cairn-search>
<script type="module">
  // When each answer reached the page (the server log's clock: the same machine's).
  window.answers = [];
  document.querySelector('cairn-search').addEventListener('cairn-results', (e) => {
    window.answers.push({ query: e.detail.query, mode: e.detail.mode, at: Date.now() });
  });
</script>`;
const PF_PAGE = `<!doctype html><meta charset="utf-8"><title>pagefind</title><link rel="icon" href="data:,">
<script type="module">
  window.pagefindSearch = async (q, n) => {
    const pf = await import('/pagefind/pagefind.js');
    const r = await pf.search(q);
    const data = await Promise.all(r.results.slice(0, n).map((x) => x.data()));
    return data.length;
  };
</script>`;
const server = await startServer({ mounts, pages: { '/cold.html': PAGE, '/pf.html': PF_PAGE } });
const browser = await launch();

// As sent: a file stored gzip-compressed as it is, any other gzip -6.
const sent = (file) => {
  const head = Buffer.alloc(2);
  const fd = fs.openSync(file, 'r');
  fs.readSync(fd, head, 0, 2, 0);
  fs.closeSync(fd);
  return head[0] === 0x1f && head[1] === 0x8b ? fs.statSync(file).size : gzipSize(file);
};
const kindOf = (p) => {
  const f = path.basename(p);
  if (/^(terms|text|vecs|cent|index)\.[0-9a-f]{16}\.cidx$/.test(f) || f === 'cairn-entry.json') return 'index';
  if (/^model\./.test(f)) return 'model';
  if (/^cairn_keyword/.test(f)) return 'keyword engine';
  if (/^cairn(_relaxed)?(_bg)?\./.test(f)) return 'full engine';
  return 'entry JS';
};
const gz = (entries) => {
  const by = {};
  for (const e of entries) {
    if (e.status !== 200 || !e.path.startsWith('/idx/')) continue;
    const k = kindOf(e.path);
    by[k] = (by[k] || 0) + gzipSize(fileFor(mounts, e.path));
  }
  by.total = Object.values(by).reduce((s, x) => s + x, 0);
  by.files = entries.filter((e) => e.status === 200 && e.path.startsWith('/idx/')).length;
  return by;
};
const lastResults = (tab) => tab.evaluate(() => {
  const el = document.querySelector('cairn-search');
  return el.lastResults ? { query: el.lastResults.query, mode: el.lastResults.mode, build: el.lastResults.build, n: el.lastResults.hits.length } : null;
});
async function ask(tab, q, mode) {
  await tab.locator('cairn-search input').fill(q);
  await tab.waitForFunction(([qq, m]) => {
    const r = document.querySelector('cairn-search').lastResults;
    return r && r.query === qq && (!m || r.mode === m);
  }, [q, mode], { timeout: 300000 });
  return lastResults(tab);
}

const cairn = [];
for (let i = 0; i < questions.length; i += 1) {
  const q = questions[i];
  const next = questions[(i + 1) % questions.length];
  const context = await browser.newContext();
  const tab = await newPage(context);
  const start = server.log.length;
  await tab.goto(new URL('cold.html', server.url).href);
  await waitForState(tab, 'keyword');
  const first = await ask(tab, q, null);
  await waitForState(tab, 'ready', 300000);
  await ask(tab, q, 'hybrid');
  await ask(tab, next, 'hybrid');
  const answers = await tab.evaluate(() => window.answers);
  const when = (qq, mode) => answers.find((a) => a.query === qq && (!mode || a.mode === mode)).at;
  const [atFirst, atHybrid, atNext] = [when(q), when(q, 'hybrid'), when(next, 'hybrid')];
  const log = server.log.slice(start);
  const upTo = (t0, t1) => log.filter((e) => e.at > t0 && e.at <= t1);
  cairn.push({
    q,
    firstBuild: first.build,
    firstMode: first.mode,
    keyword: gz(upTo(0, atFirst)),
    hybrid: gz(upTo(0, atHybrid)),
    second: gz(upTo(atHybrid, atNext)),
  });
  if (tab.errors.length) console.error(`${q}: ${tab.errors.join('; ')}`);
  await context.close();
  console.error(`${q}: first ${(cairn.at(-1).keyword.total / 1024).toFixed(1)} KB (${first.build}, ${first.mode}), hybrid ${(cairn.at(-1).hybrid.total / 1024).toFixed(1)} KB`);
}

const pagefind = [];
for (const q of questions) {
  const context = await browser.newContext();
  const tab = await newPage(context);
  await tab.goto(new URL('pf.html', server.url).href);
  const start = server.log.length;
  await tab.evaluate(([qq]) => window.pagefindSearch(qq, 5), [q]);
  const got = server.log.slice(start).filter((e) => e.status === 200 && e.path.startsWith('/pagefind/'));
  pagefind.push({ q, bytes: got.reduce((s, e) => s + sent(fileFor(mounts, e.path)), 0), files: got.length });
  await context.close();
}
await browser.close();
await server.close();

const kb = (n) => fmt(n / 1024, 1);
const med = (xs) => percentile(xs, 0.5);
const stat = (xs) => `${kb(med(xs))} / ${kb(Math.max(...xs))}`;
const col = (phase, key) => cairn.map((r) => r[phase][key] || 0);
const wrongEngine = cairn.filter((r) => r.firstBuild !== 'keyword').length;
const heavyFirst = cairn.filter((r) => (r.keyword['full engine'] || 0) + (r.keyword.model || 0) > 0).length;
let body = `Measured ${today()} on ${machine()}, load average ${load}, ${chromiumVersion()} headless; \`node bench/sharded-browser.mjs --name ${name}\`.
A cold visit (fresh browser context, empty caches) to a page with \`<cairn-search prefetch="off">\` over a sharded index (${manifest.passages} passages, \`cairn index --sharded --ui pkg\`), beside Pagefind over the same HTML (its default settings). Every file each fetched (the page itself not counted), ${questions.length} questions, one fresh visit each, KB, median / max. Files as gzip -6, but Pagefind's index files, which it stores compressed, as served.

| before | files (median) | entry JS | keyword engine | full engine | model | index data | total |
|---|---:|---:|---:|---:|---:|---:|---:|
| Cairn, first results (keywords) | ${fmt(med(col('keyword', 'files')), 0)} | ${stat(col('keyword', 'entry JS'))} | ${stat(col('keyword', 'keyword engine'))} | ${stat(col('keyword', 'full engine'))} | ${stat(col('keyword', 'model'))} | ${stat(col('keyword', 'index'))} | **${stat(col('keyword', 'total'))}** |
| Cairn, first hybrid answer | ${fmt(med(col('hybrid', 'files')), 0)} | ${stat(col('hybrid', 'entry JS'))} | ${stat(col('hybrid', 'keyword engine'))} | ${stat(col('hybrid', 'full engine'))} | ${stat(col('hybrid', 'model'))} | **${stat(col('hybrid', 'index'))}** | ${stat(col('hybrid', 'total'))} |
| Cairn, the next question (hybrid, same page) | ${fmt(med(col('second', 'files')), 0)} | | | | | ${stat(col('second', 'index'))} | ${stat(col('second', 'total'))} |
| Pagefind, first results (search and 5 fragments) | ${fmt(med(pagefind.map((r) => r.files)), 0)} | | | | | | **${stat(pagefind.map((r) => r.bytes))}** |

${wrongEngine ? `**${wrongEngine} of ${cairn.length} first answers did not come from the keyword engine.** ` : 'Every first answer came from the keyword engine. '}${heavyFirst ? `**On ${heavyFirst} of ${cairn.length} visits the full engine or the model was requested before the first answer.** ` : 'No visit requested the full engine or the model before its first answer. '}The index data of a first hybrid answer includes the keyword answer's (term chunks, text) and the centroids and vector shards the query probed; a later question fetches only the parts it has not seen.
`;
console.log(body);
if (write) updateSection(write, `sharded-browser-${name}`, body);
