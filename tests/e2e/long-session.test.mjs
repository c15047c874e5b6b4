// A long session: 10,000 queries (random lengths, unicode, empty, 10,000 characters) through
// the wasm engine's async search call (the worker's path) in one page, as a tab left open all
// day would send them. Every query must answer in the mode the fallback rule says, wasm memory
// must stop growing after warm-up, and bad options must be refused by name.
//
// The index is the SciFact one when it is here (CAIRN_LONG_INDEX, default target/scifact/q4_0,
// built by `make eval-scifact`), else the bundled paper demo's (a fresh clone has no SciFact).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, startServer, launch, newPage } from './harness.mjs';

const N = Number(process.env.CAIRN_LONG_QUERIES || 10000);
const WARMUP = 1000;
const scifact = path.resolve(ROOT, process.env.CAIRN_LONG_INDEX || 'target/scifact/q4_0');
const indexDir = fs.existsSync(path.join(scifact, 'cairn-entry.json')) ? scifact : path.join(ROOT, 'www/indexes/papers');

const PAGE = `<!doctype html><meta charset="utf-8"><title>long session</title><link rel="icon" href="data:,">
<script type="module">
import init, { Engine } from '/cairn/cairn.js';
// A seeded generator: the same 10,000 queries every run.
let seed = 42;
const rand = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
const WORDS = ['protein', 'cell', 'cancer', 'gene', 'the', 'of', 'risk', 'model', 'ünïcödé', '中文检索', 'émigré',
  '🦀', 'مرحبا', 'дом', 'AND', 'NOT', '"quoted"', '-', '<script>alert(1)<\\/script>', '\\u0000', 'x'.repeat(40)];
function query(i) {
  if (i % 97 === 0) return '';
  if (i % 89 === 0) return '   ';
  if (i % 101 === 0) return 'a'.repeat(10000);
  if (i % 103 === 0) return Array.from({ length: 10000 }, () => String.fromCodePoint(0x4e00 + Math.floor(rand() * 2000))).join('');
  const n = 1 + Math.floor(rand() * (rand() < 0.1 ? 200 : 12));
  return Array.from({ length: n }, () => WORDS[Math.floor(rand() * WORDS.length)]).join(' ');
}
window.run = async (n, warmup) => {
  const wasm = await init();
  const m = await (await fetch('/index/cairn-entry.json')).json();
  const engine = new Engine();
  engine.loadIndex(new Uint8Array(await (await fetch('/index/' + m.index)).arrayBuffer()));
  engine.loadModel(new Uint8Array(await (await fetch('/index/' + m.model)).arrayBuffer()));
  const modes = ['hybrid', 'lexical', 'dense'];
  const hasTopic = 'topic' in engine.filters;
  const out = { answered: 0, failures: [], memory: [], ms: 0 };
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const q = query(i);
    try {
      // The async call the worker makes (embedding, GPU choice, fallback rule inside).
      // Every seventh query filtered by the demo corpus's topics (one per paper, so the
      // counts add up to the total): filters keep memory flat too.
      const options = { k: 10, mode: modes[i % 3] };
      // (The SciFact index has no filters: there only the paper demo's is filtered.)
      if (i % 7 === 0 && hasTopic) options.filters = { topic: i % 2 ? ['Vision', 'Language'] : { none: 'Other' } };
      // Every eleventh weighs the keyword ranking otherwise (Pagefind's ranking settings).
      if (i % 11 === 0) options.ranking = { titleWeight: 1 + (i % 5), headingWeight: 2, termSaturation: 0.9, pageLength: (i % 10) / 10 };
      const r = await engine.search(q, options);
      if (options.filters) {
        const sum = Object.values(r.counts.topic).reduce((a, c) => a + c, 0);
        if (sum !== r.total || ((r.counts.topic.Other ?? 0) !== 0 && !(i % 2))) throw new Error('counts ' + JSON.stringify(r.counts) + ' against total ' + r.total);
      }
      if (!Array.isArray(r.hits)) throw new Error('no hits array');
      const expected = q.trim() === '' || modes[i % 3] === 'lexical' ? 'lexical' : modes[i % 3];
      if (r.mode !== expected) throw new Error('ran ' + r.mode + ', expected ' + expected);
      out.answered++;
    } catch (e) {
      if (out.failures.length < 10) out.failures.push({ i, len: q.length, error: String(e && e.message || e) });
    }
    if (i === warmup - 1 || (i + 1) % 1000 === 0) out.memory.push({ after: i + 1, bytes: wasm.memory.buffer.byteLength });
  }
  out.ms = performance.now() - t0;
  out.refused = [];
  for (const options of [{ filters: { year: '2020', tag: 'x' } }, { mode: 'fuzzy' }, { kk: 3 }, { k: 'ten' }, { mode: 'lexical', backend: 'tpu' }, { ranking: { titleWeight: -1 } }, { ranking: { boost: 2 } }]) {
    try {
      await engine.search('cell', options);
      out.refused.push('accepted');
    } catch (e) {
      out.refused.push(String(e && e.message || e));
    }
  }
  return out;
};
window.ready = true;
</script>`;

let server;
before(async () => {
  server = await startServer({
    mounts: { '/cairn/': path.join(ROOT, 'www/cairn'), '/index/': indexDir },
    pages: { '/long.html': PAGE },
  });
});
after(async () => {
  await server?.close();
});

test(`${N} queries in one session: all answer, wasm memory flat after warm-up`, { timeout: 1800000 }, async () => {
  const browser = await launch();
  try {
    const page = await newPage(await browser.newContext());
    await page.goto(new URL('long.html', server.url).href);
    await page.waitForFunction(() => window.ready === true, null, { timeout: 60000 });
    assert.deepEqual(page.errors, []);
    page.setDefaultTimeout(1800000);
    const out = await page.evaluate(([n, w]) => window.run(n, w), [N, WARMUP]);
    const mb = (b) => (b / 1048576).toFixed(1);
    console.log(`long session on ${path.relative(ROOT, indexDir)}: ${out.answered}/${N} answered in ${(out.ms / 1000).toFixed(1)} s ` +
      `(${(out.ms / N).toFixed(2)} ms per query); wasm memory ${out.memory.map((m) => `${m.after}:${mb(m.bytes)}MB`).join(' ')}`);
    assert.deepEqual(out.failures, []);
    assert.equal(out.answered, N);
    const atWarmup = out.memory[0].bytes;
    const last = out.memory[out.memory.length - 1].bytes;
    assert.equal(last, atWarmup, `wasm memory grew after warm-up: ${mb(atWarmup)} MB -> ${mb(last)} MB`);
    const [filters, mode, unknown, k, backend, weight, rankingName] = out.refused;
    assert.match(filters, /unknown filter keys `tag`, `year`: this index( has no filters|'s filter keys are `topic`)/);
    assert.match(mode, /unknown mode `fuzzy`/);
    assert.match(unknown, /unknown field `kk`/);
    assert.match(k, /search options/);
    assert.match(backend, /unknown backend `tpu`/);
    assert.match(weight, /the title weight must be between 0 and 100, not -1/);
    assert.match(rankingName, /ranking: unknown `boost`/);
    assert.deepEqual(page.errors, []);
  } finally {
    await browser.close();
  }
});
