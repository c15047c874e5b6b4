// The WebGPU path in headless Chromium (--enable-unsafe-webgpu: SwiftShader's software
// adapter runs the WGSL kernels): GPU vectors and GPU dense rankings against the CPU's on
// the parity fixture, the demo's automatic choice, a forced WebGPU path, and a browser
// without WebGPU. Software adapters say nothing about real GPU speed; these tests check
// correctness and the choice, never timings.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { ROOT, startServer, launch, newPage, waitForState, search } from './harness.mjs';

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
  engine.loadModel(bundle);
  const report = await engine.initGpu(bundle, 'webgpu');
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

let server;
before(async () => {
  server = await startServer({
    mounts: { '/': path.join(ROOT, 'www'), '/fixtures/': path.join(ROOT, 'tests/fixtures') },
    pages: { '/gpu-parity.html': PARITY_PAGE },
  });
});
after(async () => {
  await server?.close();
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
