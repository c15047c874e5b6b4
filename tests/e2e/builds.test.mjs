// The two engine builds (SIMD128 and relaxed SIMD) in Chromium: each loads the demo's small
// bundle, embeds the parity sentences, and must match the native vectors of the same bundle
// (models/parity-native-q4_mix.jsonl, written by `make model`) and each other, the relaxed
// build with each of its two kernels. Then the demo page: the element reports a relaxed
// kernel by default (the one the engine timed faster) and SIMD128 when asked (?wasm=).
// Last, bge-small's q8_0 bundle (12 layers, CLS pooling, a query prompt; converted from ONNX)
// against its native vectors (models/parity-native-bge-q8_0.jsonl).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, startServer, launch, newPage, waitForState } from './harness.mjs';

const BUNDLE = 'all-minilm-l6-v2-q4_mix.gguf';
const sentences = JSON.parse(fs.readFileSync(path.join(ROOT, 'tests/fixtures/parity/sentences.json'))).sentences;
const readJsonl = (file) => fs
  .readFileSync(path.join(ROOT, 'models', file), 'utf8')
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l));
const native = readJsonl('parity-native-q4_mix.jsonl');

const PAGE = `<!doctype html><meta charset="utf-8"><title>builds</title><link rel="icon" href="data:,">
<script type="module">
import init, { Engine, Encoder } from '/cairn/cairn.js';
window.embedAll = async (wasmFile, bundleUrl, sentences, kernel) => {
  await init({ module_or_path: '/cairn/' + wasmFile });
  const engine = new Engine();
  if (kernel) engine.setKernel(kernel);
  kernel = engine.kernel;
  const enc = new Encoder(new Uint8Array(await (await fetch(bundleUrl)).arrayBuffer()));
  const vectors = sentences.map((s) => Array.from(enc.embed(s, 'query')));
  return { kernel, vectors };
};
window.refusedKernel = async (wasmFile, name) => {
  await init({ module_or_path: '/cairn/' + wasmFile });
  const engine = new Engine();
  try {
    engine.setKernel(name);
    return { refused: false, kernel: engine.kernel };
  } catch (e) {
    return { refused: true, message: String(e.message || e), kernel: engine.kernel, kernels: engine.kernels };
  }
};
window.ready = true;
</script>`;

let server;
let browser;

before(async () => {
  server = await startServer({
    mounts: { '/': path.join(ROOT, 'www'), '/models/': path.join(ROOT, 'models') },
    pages: { '/builds.html': PAGE },
  });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

function cosine(a, b) {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / Math.max(Math.sqrt(na * nb), 1e-12);
}

async function embedWith(wasmFile, bundle = BUNDLE, kernel = null) {
  const context = await browser.newContext();
  const page = await newPage(context);
  await page.goto(server.url + 'builds.html');
  await page.waitForFunction(() => window.ready === true);
  const out = await page.evaluate(([f, b, s, k]) => window.embedAll(f, b, s, k), [wasmFile, `/models/${bundle}`, sentences, kernel]);
  assert.deepEqual(page.errors, []);
  await context.close();
  return out;
}

test('both engine builds embed like the native build, and identically to each other', async () => {
  const plain = await embedWith('cairn_bg.wasm');
  // The relaxed build's default before any timing, and its other kernel forced.
  const relaxed = await embedWith('cairn_relaxed_bg.wasm');
  const dotAdd = await embedWith('cairn_relaxed_bg.wasm', BUNDLE, 'relaxed-simd');
  assert.equal(plain.kernel, 'simd128');
  assert.equal(relaxed.kernel, 'relaxed-pairs');
  assert.equal(dotAdd.kernel, 'relaxed-simd');
  const worst = { plain: 1, relaxed: 1 };
  for (let i = 0; i < sentences.length; i++) {
    const cp = cosine(plain.vectors[i], native[i]);
    const cr = cosine(relaxed.vectors[i], native[i]);
    worst.plain = Math.min(worst.plain, cp);
    worst.relaxed = Math.min(worst.relaxed, cr);
    assert.ok(cp >= 0.9999, `sentence ${i}: SIMD128 build vs native cosine ${cp}`);
    assert.ok(cr >= 0.9999, `sentence ${i}: relaxed build vs native cosine ${cr}`);
    // Same integers, same float operations, same engine: the same bits.
    assert.deepEqual(relaxed.vectors[i], plain.vectors[i], `sentence ${i}: the builds differ`);
    assert.deepEqual(dotAdd.vectors[i], plain.vectors[i], `sentence ${i}: relaxed-simd differs`);
  }
  console.log(`worst cosine to native: simd128 ${worst.plain.toFixed(6)}, relaxed ${worst.relaxed.toFixed(6)}`);
});

test('a kernel the build lacks is refused by name, and the kernel stays', async () => {
  const context = await browser.newContext();
  const page = await newPage(context);
  await page.goto(server.url + 'builds.html');
  await page.waitForFunction(() => window.ready === true);
  const plain = await page.evaluate(() => window.refusedKernel('cairn_bg.wasm', 'relaxed-pairs'));
  assert.equal(plain.refused, true);
  assert.match(plain.message, /relaxed-pairs.*not available.*simd128/);
  assert.equal(plain.kernel, 'simd128');
  assert.deepEqual(plain.kernels, ['scalar', 'simd128']);
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('the demo runs the relaxed build where the browser has it, SIMD128 when asked', async () => {
  for (const [query, kernel] of [['', /^relaxed-(pairs|simd)$/], ['?wasm=simd128', /^simd128$/]]) {
    const context = await browser.newContext();
    const page = await newPage(context);
    await page.goto(server.url + 'index.html' + query);
    await waitForState(page, 'ready');
    const got = await page.evaluate(() => document.querySelector('cairn-search').dataset.kernel);
    assert.match(got, kernel, `demo${query}`);
    const status = await page.evaluate(() => document.querySelector('cairn-search').shadowRoot.textContent);
    assert.ok(status.includes(got), `the status names the kernel ${got}`);
    assert.deepEqual(page.errors, []);
    await context.close();
  }
});

test('bge-small (12 layers, CLS pooling, query prompt) embeds in the browser as natively', async () => {
  const bge = readJsonl('parity-native-bge-q8_0.jsonl');
  const got = await embedWith('cairn_relaxed_bg.wasm', 'bge-small-en-v1.5-q8_0.gguf');
  let worst = 1;
  for (let i = 0; i < sentences.length; i++) {
    assert.equal(got.vectors[i].length, 384);
    const c = cosine(got.vectors[i], bge[i]);
    worst = Math.min(worst, c);
    assert.ok(c >= 0.9999, `sentence ${i}: browser vs native cosine ${c}`);
  }
  console.log(`bge-small q8_0: worst cosine to native ${worst.toFixed(6)}`);
});
