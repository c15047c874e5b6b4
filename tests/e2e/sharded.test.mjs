// A sharded index (format version 2) in the browser: the worker loads its meta file, fetches
// the parts a query names (term chunks, the probed vector shards, the text of the hits),
// prefetches the rest once the first answer is shown, and then answers offline. A damaged
// part is fetched again; a part that cannot be had is named under the other results.
// The index is the demo's corpus in small parts (`make test-e2e` builds
// www/indexes/papers-sharded/).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, startServer, launch, newPage, waitForState, search } from './harness.mjs';

const DIR = path.join(ROOT, 'www/indexes/papers-sharded');
const manifest = JSON.parse(fs.readFileSync(path.join(DIR, 'cairn-entry.json'), 'utf8'));
const partNames = fs.readdirSync(DIR).filter((n) => /^(terms|text|vecs|cent)\.[0-9a-f]{16}\.cidx$/.test(n));
const isPart = (p) => /\/(terms|text|vecs|cent)\.[0-9a-f]{16}\.cidx$/.test(p);
const page = (attrs) => `<!doctype html><meta charset="utf-8"><title>Cairn sharded</title>
  <link rel="icon" href="data:,">
  <script type="module" src="/cairn/cairn-search.js"></script>
  <cairn-search index="/indexes/papers-sharded/" ${attrs}></cairn-search>`;
const QUERY = 'dataset of face photos paired with text descriptions';

let server;
let browser;

before(async () => {
  assert.equal(manifest.index_format, 2, 'the test index is sharded');
  assert.ok(partNames.length > 20, `${partNames.length} parts`);
  server = await startServer({
    pages: {
      '/sharded.html': page('service-worker="/sw.js"'),
      '/sharded-lazy.html': page('prefetch="off"'),
    },
  });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

const partsRequested = () => new Set(server.log.filter((e) => isPart(e.path)).map((e) => e.path));

test('a query fetches only the parts it needs, the rest comes while idle, and a reload answers offline', async () => {
  const context = await browser.newContext();
  const tab = await newPage(context);
  server.log.length = 0;
  await tab.goto(new URL('sharded.html', server.url).href);
  await waitForState(tab, 'ready');
  // Before any query only the centroids may come (fetched once the model is in).
  const early = [...partsRequested()].filter((p) => !/\/cent\.[0-9a-f]{16}\.cidx$/.test(p));
  assert.deepEqual(early, [], 'no term chunk, text or shard before the first query');
  const out = await search(tab, QUERY, 'hybrid');
  assert.equal(out.hits[0].id, 'p0000');
  assert.ok(out.hits.some((h) => h.why !== 'keyword'), 'meaning matches');
  assert.deepEqual(out.missing, []);
  const first = out.parts.fetched;
  assert.ok(first > 0 && first < partNames.length / 2, `${first} of ${partNames.length} parts for the first answer`);
  // The idle prefetch brings the rest, once each.
  await tab.waitForFunction(() => document.querySelector('cairn-search').dataset.prefetch === 'done', null, { timeout: 120000 });
  assert.equal(partsRequested().size, partNames.length, 'every part fetched');
  const twice = server.log.filter((e) => isPart(e.path)).length - partsRequested().size;
  assert.equal(twice, 0, 'no part fetched twice');
  await tab.waitForFunction(() => document.querySelector('cairn-search').dataset.offline === 'ready', null, { timeout: 120000 });

  // The network goes away: every request to the server is cut.
  server.setHook((req) => {
    req.socket.destroy();
    return true;
  });
  try {
    await tab.goto(new URL('sharded.html', server.url).href);
    await waitForState(tab, 'ready');
    const again = await search(tab, 'neural networks that describe images in words', 'hybrid');
    assert.ok(again.hits.length > 0);
    assert.deepEqual(again.missing, []);
    const off = await search(tab, QUERY, 'hybrid');
    assert.equal(off.hits[0].id, 'p0000');
    assert.deepEqual(tab.errors.filter((e) => !/Failed to load resource|ERR_/.test(e)), []);
  } finally {
    server.setHook(null);
  }
  await context.close();
});

test('the keyword engine answers first; the encoder and the model come after that answer and take over', async () => {
  const context = await browser.newContext();
  const tab = await newPage(context);
  try {
    server.log.length = 0;
    await tab.goto(new URL('sharded-lazy.html', server.url).href);
    // When the first results reached the page (the server log's clock: the same machine's).
    await tab.evaluate(() => document.querySelector('cairn-search').addEventListener('cairn-results', () => {
      window.firstResultsAt ??= Date.now();
    }));
    await waitForState(tab, 'keyword');
    const el = () => tab.evaluate(() => {
      const e = document.querySelector('cairn-search');
      return { engine: e.dataset.engine, build: e.lastResults?.build, at: window.firstResultsAt };
    });
    assert.equal((await el()).engine, 'keyword');
    const first = await search(tab, 'face photos', 'lexical');
    assert.ok(first.hits.length > 0);
    const { build, at } = await el();
    assert.equal(build, 'keyword', 'the first answer came from the keyword engine');
    const before = server.log.filter((e) => e.status === 200 && e.at <= at);
    const names = before.map((e) => path.basename(e.path));
    assert.ok(names.includes('cairn_keyword_bg.wasm'), names.join(' '));
    assert.ok(names.some((n) => n.startsWith('text.')), 'the text of the hits came before the answer');
    const heavy = names.filter((n) => /^model\.|^cairn(_relaxed)?_bg\.wasm$|^cairn\.js$/.test(n));
    assert.deepEqual(heavy, [], 'neither the full engine nor the model before the first answer');
    const bytes = before.reduce((s, e) => s + (e.bytes || 0), 0);
    console.log(`# before the first keyword answer: ${names.length} files, ${(bytes / 1024).toFixed(0)} KB raw`);
    // Then the model, into the full engine, which takes the index over.
    await waitForState(tab, 'ready');
    assert.equal((await el()).engine, 'full');
    const out = await search(tab, QUERY, 'hybrid');
    assert.equal(out.hits[0].id, 'p0000');
    assert.ok(out.hits.some((h) => h.why !== 'keyword'), 'meaning matches');
    assert.equal((await el()).build, 'full');
    assert.deepEqual(out.missing, []);
    assert.deepEqual(tab.errors.filter((e) => !/Failed to load resource/.test(e)), []);
  } finally {
    await context.close();
  }
});

test('a damaged part is fetched again; a part that cannot be fetched is named and the other results show', async () => {
  const context = await browser.newContext();
  const tab = await newPage(context);
  const served = new Map();
  let lost = null; // the first text group asked for: never served
  server.setHook((req, res, url, entry) => {
    if (!isPart(url.pathname)) return false;
    const name = path.basename(url.pathname);
    const n = (served.get(name) || 0) + 1;
    served.set(name, n);
    if (name.startsWith('text.') && (lost === null || lost === name)) {
      lost = name;
      entry.status = 404;
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return true;
    }
    if (n === 1) {
      // The first download of every other part is damaged: one byte flipped.
      const body = Buffer.from(fs.readFileSync(path.join(DIR, name)));
      body[body.length >> 1] ^= 0x40;
      entry.status = 200;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
      res.end(body);
      return true;
    }
    return false;
  });
  try {
    await tab.goto(new URL('sharded-lazy.html', server.url).href);
    await waitForState(tab, 'ready');
    const out = await search(tab, QUERY, 'hybrid');
    assert.ok(out.hits.length > 0, 'the other results show');
    assert.equal(out.missing.length, 1, JSON.stringify(out.missing));
    assert.equal(out.missing[0].file, lost);
    assert.match(out.missing[0].reason, new RegExp(`${lost.replace(/\./g, '\\.')}: HTTP 404`));
    const note = await tab.locator('cairn-search li.missing').textContent();
    assert.match(note, /Some results could not be loaded: text\.[0-9a-f]{16}\.cidx: HTTP 404/);
    for (const [name, n] of served) {
      if (name !== lost) assert.equal(n, 2, `${name}: damaged, then fetched again`);
    }
    // With prefetch="off", nothing else is fetched.
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(served.size < partNames.length / 2, `${served.size} parts`);
    assert.deepEqual(tab.errors.filter((e) => !/Failed to load resource/.test(e)), []);
  } finally {
    server.setHook(null);
  }
  await context.close();
});
