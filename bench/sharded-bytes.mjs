// Bytes a cold visit fetches from a sharded index (`cairn index --sharded`), per query: each
// query runs in a fresh `cairn search` (the CLI reads the parts as the browser's worker
// fetches them: the meta file, then the parts each round of the search names), once with
// keywords only (the first answer a page shows, before the model is in) and once hybrid.
// Sizes are gzip -6 of each file read, as a server would send them.
//
// usage: node bench/sharded-bytes.mjs --index DIR --name NAME --queries FILE.json
//          [--cli target/release/cairn] [--compare ONE_FILE_DIR] [--ui pkg] [--write BENCHMARKS.md]
//   --ui: the built UI (scripts/build-wasm.sh): the element, the worker and the keyword
//   engine a sharded index starts on are added to the keyword answer's bytes ("everything
//   counted"), the full engine to the hybrid answer's.
//   --compare: the same passages as a one-file index; each cold answer's top 10 is compared
//   with the one-file index's (dense and hybrid), to show what probing a few shards costs.
//   FILE.json: { "questions": [{ "q": "..." }, ...] } (bench/rust-book-questions.json's shape)
// Writes the section `sharded-bytes-NAME`.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { percentile, machine, today, updateSection, fmt, opt } from './lib.mjs';
import { gzipSize, loadAverage } from './peers-lib.mjs';

const args = process.argv.slice(2);
const dir = opt(args, '--index', null);
const name = opt(args, '--name', null);
const queriesFile = opt(args, '--queries', null);
const cli = opt(args, '--cli', 'target/release/cairn');
const write = opt(args, '--write', null);
const compare = opt(args, '--compare', null);
const ui = opt(args, '--ui', 'pkg');
if (!dir || !name || !queriesFile) {
  console.error('usage: node bench/sharded-bytes.mjs --index DIR --name NAME --queries FILE.json [--write BENCHMARKS.md]');
  process.exit(2);
}
const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'cairn-entry.json'), 'utf8'));
if (manifest.index_format !== 2) throw new Error(`${dir} is not a sharded index (index_format ${manifest.index_format})`);
const questions = JSON.parse(fs.readFileSync(queriesFile, 'utf8')).questions.map((x) => x.q);
const load = loadAverage();

const kb = (n) => fmt(n / 1024, 1);
const meta = gzipSize(path.join(dir, manifest.index));
const model = gzipSize(path.join(dir, manifest.model));
const parts = fs.readdirSync(dir).filter((n) => /^(terms|text|vecs|cent)\.[0-9a-f]{16}\.cidx$/.test(n));
const total = parts.reduce((s, n) => s + gzipSize(path.join(dir, n)), 0);
const kindOf = (n) => n.split('.')[0];
// What a cold visit fetches beside the index: the entry files, the keyword engine first; the
// full engine (the relaxed build, what Chrome and Firefox load) after the first answer.
const hasUi = fs.existsSync(path.join(ui, 'cairn_keyword_bg.wasm'));
const uiSize = (files) => (hasUi ? files.reduce((s, f) => s + gzipSize(path.join(ui, f)), 0) : 0);
const entryBytes = uiSize(['cairn-search.js', 'cairn-worker.js']);
const keywordBytes = uiSize(['cairn_keyword.js', 'cairn_keyword_bg.wasm']);
const fullBytes = uiSize(['cairn.js', 'cairn_relaxed_bg.wasm']);
const manifestBytes = gzipSize(path.join(dir, 'cairn-entry.json'));

// `cairn search` prints the parts it read on stderr; execFileSync gives stderr only on
// failure, so run it through a shell that swaps the streams.
function reads(q, mode) {
  const cmd = `"$0" search --index "$1" --mode "$2" -k 10 --show-reads --json "$3" 2>&1 >/dev/null`;
  const err = execFileSync('bash', ['-c', cmd, cli, dir, mode, q], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const by = { terms: 0, text: 0, vecs: 0, cent: 0 };
  let files = 0;
  for (const line of err.split('\n')) {
    const m = /^read (\S+) (\d+)$/.exec(line);
    if (!m) continue;
    by[kindOf(m[1])] += gzipSize(path.join(dir, m[1]));
    files += 1;
  }
  return { ...by, files, bytes: meta + by.terms + by.text + by.vecs + by.cent };
}

// The top 10 ids `cairn search` answers in `mode` (a sharded folder reads its parts cold).
function top10(index, q, mode) {
  const out = execFileSync(cli, ['search', '--index', index, '--mode', mode, '-k', '10', '--json', q], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
    maxBuffer: 64 << 20,
  });
  return JSON.parse(out).hits.map((h) => h.id);
}
const overlap = (a, b) => a.filter((x) => b.includes(x)).length / Math.max(1, b.length);

const rows = [];
for (const q of questions) {
  const row = { q, lexical: reads(q, 'lexical'), hybrid: reads(q, 'hybrid') };
  if (compare) {
    for (const mode of ['dense', 'hybrid']) row[`same-${mode}`] = overlap(top10(dir, q, mode), top10(compare, q, mode));
  }
  rows.push(row);
}
const mean = (xs) => xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length);
const col = (mode, key) => rows.map((r) => r[mode][key]);
const stat = (mode, key) => `${kb(percentile(col(mode, key), 0.5))} / ${kb(Math.max(...col(mode, key)))}`;

let body = `Measured ${today()} on ${machine()}, load average ${load}; \`node bench/sharded-bytes.mjs --name ${name}\`.
A sharded index (\`cairn index --sharded\`, ${manifest.passages} passages): ${parts.length} parts, ${kb(total)} KB gzip in all; the meta file ${kb(meta)} KB gzip; the model ${kb(model)} KB gzip.
Each of ${rows.length} queries runs cold in a fresh \`cairn search\`, which reads the parts as the browser's worker fetches them. Index bytes per query, gzip, KB, median / max:

| first answer | meta file | term chunks | centroids | vector shards | text groups | index total | parts |
|---|---:|---:|---:|---:|---:|---:|---:|
| keywords (before the model) | ${kb(meta)} | ${stat('lexical', 'terms')} | 0 | 0 | ${stat('lexical', 'text')} | ${stat('lexical', 'bytes')} | ${fmt(percentile(col('lexical', 'files'), 0.5), 0)} |
| hybrid | ${kb(meta)} | ${stat('hybrid', 'terms')} | ${stat('hybrid', 'cent')} | ${stat('hybrid', 'vecs')} | ${stat('hybrid', 'text')} | ${stat('hybrid', 'bytes')} | ${fmt(percentile(col('hybrid', 'files'), 0.5), 0)} |

${hasUi ? `Everything a cold visit fetches before its **first keyword results** (the sharded index starts on the keyword engine; the full engine and the model come after that answer), gzip, KB: the element and the worker ${kb(entryBytes)}, the keyword engine (glue and wasm) ${kb(keywordBytes)}, the manifest ${kb(manifestBytes)}, the index data above: **${kb(entryBytes + keywordBytes + manifestBytes + percentile(col('lexical', 'bytes'), 0.5))} median, ${kb(entryBytes + keywordBytes + manifestBytes + Math.max(...col('lexical', 'bytes')))} max** (the page itself not counted). The first hybrid answer adds the full engine (glue and relaxed-SIMD wasm, ${kb(fullBytes)}) and the model (${kb(model)}) to its index data.` : `(No built UI in ${ui}: the engine and the JS are not counted.)`}
${compare ? `
What a cold answer gives up (it probes only the nearest vector shards until the rest is prefetched): its top 10 shares on average ${fmt(100 * mean(rows.map((r) => r['same-dense'])), 0)}% of the dense and ${fmt(100 * mean(rows.map((r) => r['same-hybrid'])), 0)}% of the hybrid top 10 of the one-file index of the same passages (which, past 20,000 passages, rescores 400 candidates by binary codes).
` : ''}`;
console.log(body);
if (write) updateSection(write, `sharded-bytes-${name}`, body);
