// The WebGPU path in headless Chromium (--enable-unsafe-webgpu: SwiftShader's software
// adapter runs the WGSL kernels): GPU vectors and GPU dense rankings against the CPU's on
// the parity fixture, the demo's automatic choice, a forced WebGPU path, and a browser
// without WebGPU. Software adapters say nothing about real GPU speed; these tests check
// correctness and the choice, never timings.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, startServer, launch, newPage, waitForState, search, buildIndex } from './harness.mjs';

const PARITY_PAGE = `<!doctype html><meta charset="utf-8"><title>gpu parity</title><link rel="icon" href="/favicon.svg">
<script type="module">
import init, { Engine } from '/cairn/cairn.js';
const cosine = (a, b) => { let d = 0, na = 0, nb = 0; for (let i = 0; i < a.length; i++) { d += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; } return d / Math.sqrt(na * nb); };
window.result = (async () => {
  await init();
  const base = '/indexes/papers/';
  const m = await (await fetch(base + 'cairn-entry.json')).json();
  const engine = new Engine();
  engine.loadIndex(new Uint8Array(await (await fetch(base + m.index)).arrayBuffer()));
  const bundle = new Uint8Array(await (await fetch(base + m.model)).arrayBuffer());
  engine.loadModel(bundle, true); // keeps the bytes for initGpu
  const report = await engine.initGpu('webgpu');
  if (!report.accepted) return { report };
  const { sentences } = await (await fetch('/fixtures/parity/sentences.json')).json();
  const rows = [];
  for (const s of sentences) {
    const cpu = engine.embedQuery(s);
    const gpu = await engine.embedQueryAsync(s, 'webgpu');
    const cpuTop = engine.searchWith(cpu, s, 10, 'dense').hits.map((h) => h.id);
    const gpuTop = (await engine.searchWithAsync(cpu, s, 10, 'dense', 'webgpu')).hits.map((h) => h.id);
    rows.push({ cosine: cosine(cpu, gpu), sameTop10: JSON.stringify(cpuTop) === JSON.stringify(gpuTop) });
  }
  return { report, rows, backend: engine.backend };
})().catch((e) => ({ error: String(e && e.message || e) }));
</script>`;

// 1,000 engine calls: dense scans forced onto WebGPU, interleaved with loadIndex switching
// between two indexes of one model (the demo's papers and the fixture site), and GPU set-ups
// that start before a switch. Query vectors are the CPU's, so the GPU scorer alone decides
// (its candidates are rescored on the CPU: the same top 10 as the CPU's ranking); each answer
// is compared with the CPU's ranking of the index that was loaded when the search was called.
const RACE_PAGE = `<!doctype html><meta charset="utf-8"><title>gpu race</title><link rel="icon" href="/favicon.svg">
<script type="module">
import init, { Engine } from '/cairn/cairn.js';
window.race = async (rounds, ops) => {
  await init();
  const get = async (u) => new Uint8Array(await (await fetch(u)).arrayBuffer());
  const load = async (base) => {
    const m = await (await fetch(base + 'cairn-entry.json')).json();
    return { m, bytes: await get(base + m.index) };
  };
  const A = await load('/indexes/papers/');
  const B = await load('/index-b/');
  if (A.m.model_fingerprint !== B.m.model_fingerprint) return { error: 'the two indexes must share one model' };
  const bundle = await get('/indexes/papers/' + A.m.model);
  const engine = new Engine();
  const queries = ['graph neural networks', 'threads and message passing', 'box smart pointer', 'image segmentation'];
  const expected = { A: {}, B: {} };
  const vectors = {};
  for (const [name, x] of [['A', A], ['B', B]]) {
    engine.loadIndex(x.bytes);
    if (!engine.hasModel) engine.loadModel(bundle);
    for (const q of queries) {
      vectors[q] = engine.embedQuery(q);
      expected[name][q] = engine.searchWith(vectors[q], q, 10, 'dense').hits.map((h) => h.id);
    }
  }
  let current = 'B';
  let calls = 0;
  const answers = [];
  const reports = [];
  for (let r = 0; r < rounds; r++) {
    engine.loadModel(bundle, true);
    const report = await engine.initGpu('webgpu');
    reports.push({ accepted: report.accepted, reason: report.reason });
    const jobs = [];
    for (let i = 0; i < ops; i++, calls++) {
      if (i % 25 === 24) {
        current = current === 'A' ? 'B' : 'A';
        engine.loadIndex((current === 'A' ? A : B).bytes);
      } else if (i === 15) {
        // A set-up that is still awaiting the GPU when the next loadIndex comes.
        engine.loadModel(bundle, true);
        jobs.push(engine.initGpu('webgpu').then((rep) => ({ init: true, accepted: rep.accepted, reason: rep.reason })));
      } else {
        const q = queries[(r + i) % queries.length];
        const at = current;
        jobs.push(engine.searchWithAsync(vectors[q], q, 10, 'dense', 'webgpu').then(
          (res) => ({ at, q, ids: res.hits.map((h) => h.id) }),
          (e) => ({ at, q, error: String((e && e.message) || e) }),
        ));
      }
      if (i % 8 === 7) await new Promise((res) => setTimeout(res, 0));
    }
    answers.push(...(await Promise.all(jobs)));
  }
  return { calls, expected, answers, reports };
};
window.ready = true;
</script>`;

let server;
let tmp;
before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-webgpu-'));
  // The second index of the race: the fixture site, with the papers index's model.
  const bundle = path.join(ROOT, 'models/all-minilm-l6-v2-q4_mix.gguf');
  const indexB = buildIndex(['--no-ui', '--no-cache', '--model', bundle, '--site', path.join(ROOT, 'tests/fixtures/site')], path.join(tmp, 'index-b'));
  server = await startServer({
    mounts: { '/': path.join(ROOT, 'www'), '/fixtures/': path.join(ROOT, 'tests/fixtures'), '/index-b/': indexB },
    pages: { '/gpu-parity.html': PARITY_PAGE, '/gpu-race.html': RACE_PAGE },
  });
});
after(async () => {
  await server?.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

async function withBrowser(args, fn) {
  const browser = await launch(args);
  try {
    return await fn(browser);
  } finally {
    await browser.close();
  }
}

test('on SwiftShader, GPU vectors and rankings match the CPU (cosine >= 0.999, same top 10)', async (t) => {
  await withBrowser(['--enable-unsafe-webgpu'], async (browser) => {
    const page = await newPage(await browser.newContext());
    await page.goto(new URL('gpu-parity.html', server.url).href);
    const out = await page.evaluate(() => window.result);
    assert.equal(out.error, undefined, out.error);
    if (!out.report.available) {
      t.skip(`SKIPPED: no WebGPU adapter in this Chromium (${out.report.reason})`);
      console.log(`SKIPPED: no WebGPU adapter in this Chromium (${out.report.reason})`);
      return;
    }
    assert.ok(out.report.accepted, out.report.reason);
    const worst = Math.min(...out.rows.map((r) => r.cosine));
    console.log(`browser WebGPU (${out.report.adapter}) vs CPU: worst cosine ${worst.toFixed(6)} over ${out.rows.length} sentences`);
    out.rows.forEach((r, i) => assert.ok(r.cosine >= 0.999, `sentence ${i}: cosine ${r.cosine}`));
    out.rows.forEach((r, i) => assert.ok(r.sameTop10, `sentence ${i}: GPU top 10 differs from the CPU's`));
    assert.equal(out.backend, 'webgpu');
    assert.deepEqual(page.errors, []);
  });
});

test('?backend=webgpu runs queries on WebGPU and says why; auto mode calibrates', async () => {
  await withBrowser(['--enable-unsafe-webgpu'], async (browser) => {
    const context = await browser.newContext();
    const page = await newPage(context);
    await page.goto(new URL('?backend=webgpu', server.url).href);
    await page.waitForFunction(() => document.querySelector('cairn-search').dataset.backend === 'webgpu', null, { timeout: 120000 });
    const details = await page.locator('cairn-search .status details').textContent();
    assert.match(details, /WebGPU forced; it matched the CPU/);
    assert.match(details, /Query: WebGPU [\d.]+ ms, CPU [\d.]+ ms → webgpu/);
    const gpuHits = await search(page, 'dataset of face photos paired with text descriptions', 'hybrid');
    assert.equal(gpuHits.hits[0].id, 'p0000');
    assert.match(await page.locator('cairn-search .status').textContent(), /\(webgpu, q4_mix\)/);

    const auto = await newPage(context);
    await auto.goto(server.url);
    await auto.waitForFunction(() => /Query: WebGPU/.test(
      document.querySelector('cairn-search').shadowRoot.querySelector('.status details').textContent), null, { timeout: 120000 });
    const backend = await auto.locator('cairn-search').getAttribute('data-backend');
    assert.ok(['cpu', 'webgpu'].includes(backend));
    assert.deepEqual([...page.errors, ...auto.errors], []);
  });
});

test('without WebGPU, a forced WebGPU path says so and the CPU answers', async () => {
  await withBrowser([], async (browser) => {
    const page = await newPage(await browser.newContext());
    await page.goto(new URL('?backend=webgpu', server.url).href);
    await waitForState(page, 'ready');
    await page.waitForFunction(() => /WebGPU/.test(
      document.querySelector('cairn-search').shadowRoot.querySelector('.status details').textContent));
    const details = await page.locator('cairn-search .status details').textContent();
    assert.match(details, /WebGPU: not used/);
    assert.match(details, /no adapter|not available/);
    assert.equal(await page.locator('cairn-search').getAttribute('data-backend'), 'cpu');
    const r = await search(page, 'graph neural networks', 'hybrid');
    assert.ok(r.hits.length > 0);
    assert.deepEqual(page.errors, []);
  });
});

test('1,000 calls interleaving loadIndex, initGpu and WebGPU searches: every answer is its own index\'s', async (t) => {
  await withBrowser(['--enable-unsafe-webgpu'], async (browser) => {
    const page = await newPage(await browser.newContext());
    await page.goto(new URL('gpu-race.html', server.url).href);
    await page.waitForFunction(() => window.ready);
    const out = await page.evaluate(() => window.race(2, 500));
    assert.equal(out.error, undefined, out.error);
    if (!out.reports[0].accepted && /no adapter|not available/.test(out.reports[0].reason)) {
      t.skip(`SKIPPED: no WebGPU adapter in this Chromium (${out.reports[0].reason})`);
      return;
    }
    assert.equal(out.calls, 1000);
    out.reports.forEach((r, i) => assert.ok(r.accepted, `round ${i}: ${r.reason}`));
    const searches = out.answers.filter((a) => !a.init);
    const answered = searches.filter((a) => !a.error);
    for (const a of answered) {
      assert.deepEqual(a.ids, out.expected[a.at][a.q], `"${a.q}" on index ${a.at}`);
    }
    // WebGPU is forced: a search is answered only through a session, and one with no session
    // for its index is refused, never answered from another index's session.
    for (const a of searches.filter((x) => x.error)) assert.match(a.error, /not set up/);
    const onGpu = answered.length;
    console.log(`race: ${searches.length} searches, ${answered.length} answered on WebGPU, ` +
      `${searches.length - answered.length} refused for want of a session; set-ups started mid-burst: ` +
      out.answers.filter((a) => a.init).map((a) => (a.accepted ? 'installed' : 'dropped')).join(', '));
    assert.ok(onGpu >= 25, `only ${onGpu} answers came from WebGPU: the race was not exercised`);
    assert.deepEqual(page.errors, []);
  });
});
