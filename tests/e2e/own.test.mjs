// www/own.html: the visitor's own files indexed in the browser. The demo corpus dropped on
// the page must give the same top 10 as the CLI-built demo index with the same bundle (same
// readers, encoder and writer), with no request carrying the files; the index survives a
// reload (origin private file system) until forgotten; a cancel leaves the index in use; a
// mix of bad files is reported file by file while the rest is indexed; and on SwiftShader's
// WebGPU, asked for, the batches run there and search the same.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, startServer, launch, newPage, waitForState, search } from './harness.mjs';

const PAPERS = path.join(ROOT, 'www/data/papers.jsonl');
const QUERIES = [
  'making language models smaller for phones',
  'diffusion image generation',
  'robots learning from human videos',
  'reinforcement learning from human feedback',
  'graph neural networks for molecules',
];
// The CLI-built index of the same corpus, searched by the same element and engine.
const REF = `<!doctype html><meta charset="utf-8"><title>ref</title><link rel="icon" href="data:,">
<script type="module" src="/cairn/cairn-search.js"></script>
<cairn-search index="/indexes/papers/" results="10"></cairn-search>`;

let server;
let browser;
let tmp;

before(async () => {
  server = await startServer({ pages: { '/ref.html': REF } });
  browser = await launch();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-own-'));
});

after(async () => {
  await browser?.close();
  await server?.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const ids = (r) => r.hits.map((h) => h.id);

async function openOwn(context, backend = 'cpu') {
  const page = await newPage(context);
  await page.goto(`${server.url}own.html?backend=${backend}`);
  await waitForState(page, 'ready');
  return page;
}

async function phase(page, want, timeout = 300000) {
  await page.waitForFunction((w) => w.includes(document.getElementById('ingest').dataset.phase), want, { timeout });
  return page.evaluate(() => document.getElementById('ingest').dataset.phase);
}

test('the demo corpus dropped on own.html searches like the CLI-built index, and stays until forgotten', async () => {
  const context = await browser.newContext();
  const ref = await newPage(context);
  await ref.goto(server.url + 'ref.html');
  await waitForState(ref, 'ready');
  const want = [];
  for (const q of QUERIES) want.push(ids(await search(ref, q, 'hybrid')));
  await ref.close();

  const page = await openOwn(context);
  assert.equal(await page.locator('#own-index').getAttribute('data-passages'), '0');
  const from = server.log.length;
  // A cancelled run leaves nothing in use.
  await page.setInputFiles('#pick-files', PAPERS);
  await page.waitForFunction(() => {
    const t = document.getElementById('progress-text').textContent;
    return /^Embedding: [1-9]/.test(t);
  }, null, { timeout: 120000 });
  await page.click('#cancel');
  assert.equal(await phase(page, ['cancelled', 'done']), 'cancelled');
  assert.equal(await page.locator('#own-index').getAttribute('data-passages'), '0');

  const started = Date.now();
  await page.setInputFiles('#pick-files', PAPERS);
  assert.equal(await phase(page, ['done', 'error']), 'done', await page.locator('#progress-text').textContent());
  const secs = (Date.now() - started) / 1000;
  const notes = await page.locator('#files li').evaluateAll((lis) => lis.map((li) => [li.dataset.name, li.dataset.status, li.textContent]));
  assert.deepEqual(notes.map((n) => n.slice(0, 2)), [['papers.jsonl', 'indexed']]);
  assert.match(notes[0][2], /332 passages/);
  assert.equal(await page.locator('#own-index').getAttribute('data-passages'), '332');
  console.log(`# 332 passages indexed in the browser in ${secs.toFixed(1)} s (${await page.locator('#ingest').getAttribute('data-per-sec')} passages/s embedding)`);

  for (let i = 0; i < QUERIES.length; i++) {
    assert.deepEqual(ids(await search(page, QUERIES[i], 'hybrid')), want[i], QUERIES[i]);
  }
  // Nothing of the file went out: after the drop the page fetched only the ingest module.
  const after = server.log.slice(from);
  for (const r of after) {
    assert.equal(r.method, 'GET', `${r.method} ${r.path}`);
    assert.ok(['/cairn/cairn_ingest.js', '/cairn/cairn_ingest_bg.wasm'].includes(r.path), `requested ${r.path}`);
  }

  // A reload finds the index kept in the private file system.
  await page.reload();
  await waitForState(page, 'ready');
  await page.waitForFunction(() => document.getElementById('own-index').dataset.passages === '332', null, { timeout: 60000 });
  assert.deepEqual(ids(await search(page, QUERIES[0], 'hybrid')), want[0]);
  assert.match(await page.locator('#own-text').textContent(), /kept in this browser/);

  // Forgotten: gone now and after a reload.
  await page.click('#forget');
  await page.waitForFunction(() => document.getElementById('own-index').dataset.passages === '0');
  await page.reload();
  await waitForState(page, 'ready');
  await page.waitForFunction(() => document.getElementById('own-index').dataset.passages === '0', null, { timeout: 60000 });
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('bad files are each reported, the rest indexed, and nothing crashes', async () => {
  const write = (name, data) => {
    const p = path.join(tmp, name);
    fs.writeFileSync(p, data);
    return p;
  };
  const big = path.join(tmp, 'big.txt');
  const fd = fs.openSync(big, 'w');
  fs.ftruncateSync(fd, 50 * 1024 * 1024); // 50 MB (of NULs): refused by its size, unread
  fs.closeSync(fd);
  const files = [
    write('notes.md', '# Sourdough\n\nFeed the starter with rye flour twice a day.\n\n## Baking\n\nBake the loaf in a dutch oven at 250 degrees.\n'),
    write('empty.txt', ''),
    write('photo.png', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13])),
    write('binary.txt', Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0, 0, 0])),
    big,
    write('latin1.txt', Buffer.concat([Buffer.from('Caf'), Buffer.from([0xe9]), Buffer.from(' au lait and croissants for breakfast in Lyon, every morning of the week.')])),
    write('hostile.html', '<title>Hostile</title><h1>Hostile page</h1><p>Zebra crossings <img src=x onerror="window.pwned=1"> are striped.<script>window.pwned=2</script></p><style>p{}</style>'),
    write('broken.jsonl', '{"_id": "a", "text": "fine"}\n{not json\n'),
  ];
  const context = await browser.newContext();
  const page = await openOwn(context);
  await page.setInputFiles('#pick-files', files);
  assert.equal(await phase(page, ['done', 'error']), 'done', await page.locator('#progress-text').textContent());
  const notes = Object.fromEntries(await page.locator('#files li').evaluateAll((lis) => lis.map((li) => [li.dataset.name, [li.dataset.status, li.textContent]])));
  const status = (n) => notes[n]?.[0];
  const text = (n) => notes[n]?.[1] || '';
  assert.equal(Object.keys(notes).length, files.length);
  assert.equal(status('notes.md'), 'indexed');
  assert.match(text('notes.md'), /2 passages/);
  assert.equal(status('empty.txt'), 'skipped');
  assert.match(text('empty.txt'), /empty file/);
  assert.equal(status('photo.png'), 'skipped');
  assert.match(text('photo.png'), /unsupported type \(\.png\)/);
  assert.equal(status('binary.txt'), 'skipped');
  assert.match(text('binary.txt'), /not a text file/);
  assert.equal(status('big.txt'), 'skipped');
  assert.match(text('big.txt'), /too large: 52\.4 MB \(at most 16\.0 MB a file\)/);
  assert.equal(status('latin1.txt'), 'indexed');
  assert.match(text('latin1.txt'), /cleaned: 1 invalid UTF-8 sequence replaced/);
  assert.equal(status('hostile.html'), 'indexed');
  assert.equal(status('broken.jsonl'), 'skipped');
  assert.match(text('broken.jsonl'), /line 2/);
  assert.equal(await page.locator('#own-index').getAttribute('data-passages'), '4');

  const r = await search(page, 'how do I bake bread', 'hybrid');
  assert.equal(r.hits[0].id, 'notes.md#baking');
  const z = await search(page, 'zebra crossings', 'hybrid');
  assert.equal(z.hits[0].title, 'Hostile page');
  assert.ok(!/pwned|script/.test(z.hits[0].excerpt), z.hits[0].excerpt);
  const l = await search(page, 'croissants for breakfast', 'hybrid');
  assert.equal(l.hits[0].id, 'latin1.txt');
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('?backend=webgpu embeds the batches on WebGPU (SwiftShader) after checking them against the CPU', async (t) => {
  const files = [
    ['notes.md', '# Sourdough\n\nFeed the starter with rye flour twice a day.\n\n## Baking\n\nBake the loaf in a dutch oven at 250 degrees.\n'],
    ['tea.txt', 'Green tea is steeped at 80 degrees for two minutes; black tea wants boiling water.'],
    ['bikes.md', '# Bicycles\n\nOil the chain every few hundred kilometres and check the tyre pressure weekly.\n'],
  ].map(([name, text]) => {
    const p = path.join(tmp, name);
    fs.writeFileSync(p, text);
    return p;
  });
  const gpuBrowser = await launch(['--enable-unsafe-webgpu']);
  try {
    const context = await gpuBrowser.newContext();
    const page = await newPage(context);
    await page.goto(`${server.url}own.html?backend=webgpu`);
    await waitForState(page, 'ready');
    // The WebGPU set-up reports after the model is in (a second `ready`).
    await page.waitForFunction(() => document.querySelector('cairn-search').stateDetail?.gpu, null, { timeout: 120000 });
    const gpu = await page.evaluate(() => document.querySelector('cairn-search').stateDetail.gpu);
    if (!gpu?.available || gpu.reason) {
      t.skip(`SKIPPED: no WebGPU adapter in this Chromium (${gpu?.reason})`);
      console.log(`SKIPPED: no WebGPU adapter in this Chromium (${gpu?.reason})`);
      return;
    }
    await page.setInputFiles('#pick-files', files);
    assert.equal(await phase(page, ['done', 'error']), 'done', await page.locator('#progress-text').textContent());
    assert.equal(await page.locator('#ingest').getAttribute('data-backend'), 'webgpu', await page.locator('#progress-text').textContent());
    assert.match(await page.locator('#progress-text').textContent(), /on WebGPU: WebGPU was asked for/);
    assert.equal((await search(page, 'how do I bake bread', 'hybrid')).hits[0].id, 'notes.md#baking');
    assert.match((await search(page, 'maintaining a bike', 'hybrid')).hits[0].id, /^bikes\.md/);
    assert.deepEqual(page.errors, []);
    await context.close();
  } finally {
    await gpuBrowser.close();
  }
});
