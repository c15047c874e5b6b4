// `make bench-gpu` (browser half): the wasm CPU path against WebGPU in headless Chromium,
// through the calibration the engine runs when a page opens (Engine.initGpu): single queries,
// a batch of passages, and the dense scan over the index. Chromium runs with
// --enable-unsafe-webgpu; without a GPU its adapter is SwiftShader (software), so these
// numbers say which path wins here, nothing about a real GPU.
//
// usage: node bench/gpu-browser.mjs [INDEX_DIR] [--runs 3] [--write BENCHMARKS.md]
import path from 'node:path';
import { ROOT, startServer, launch, newPage } from '../tests/e2e/harness.mjs';
import { machine, today, chromiumVersion, updateSection, fmt, opt } from './lib.mjs';

const args = process.argv.slice(2);
const write = opt(args, '--write', null);
const runs = Number(opt(args, '--runs', '3'));
const indexDir = path.resolve(args[0] || path.join(ROOT, 'target/scifact/q4_0'));

const PAGE = `<!doctype html><meta charset="utf-8"><title>gpu bench</title><link rel="icon" href="data:,">
<script type="module">
import init, { Engine } from '/cairn/cairn.js';
window.run = async (runs) => {
  await init();
  const m = await (await fetch('/index/cairn-entry.json')).json();
  const engine = new Engine();
  engine.loadIndex(new Uint8Array(await (await fetch('/index/' + m.index)).arrayBuffer()));
  const bundle = new Uint8Array(await (await fetch('/index/' + m.model)).arrayBuffer());
  const out = [];
  for (let i = 0; i <= runs; i++) {
    engine.loadModel(bundle, true); // initGpu takes the bytes loadModel kept
    out.push(await engine.initGpu('auto'));
  }
  return { passages: engine.passageCount ?? null, reports: out.slice(1) };
};
window.ready = true;
</script>`;

const server = await startServer({
  mounts: { '/cairn/': path.join(ROOT, 'www/cairn'), '/index/': indexDir },
  pages: { '/gpu.html': PAGE },
});
const browser = await launch(['--enable-unsafe-webgpu']);
try {
  const page = await newPage(await browser.newContext());
  page.setDefaultTimeout(600000);
  await page.goto(new URL('gpu.html', server.url).href);
  await page.waitForFunction(() => window.ready === true);
  const { reports } = await page.evaluate((r) => window.run(r), runs);
  const first = reports[0];
  if (!first.available) {
    console.log(`no WebGPU adapter in this Chromium: ${first.reason}`);
    process.exit(1);
  }
  const median = (f) => {
    const v = reports.map(f).sort((a, b) => a - b);
    return v[Math.floor(v.length / 2)];
  };
  const last = reports[reports.length - 1];
  const rows = [
    ['one query (mean of the sample queries)', (r) => r.query.cpuMs, (r) => r.query.gpuMs, last.queryBackend],
    ['one passage, in a batch of 8 (48 words each)', (r) => r.batch.cpuMs, (r) => r.batch.gpuMs, last.batchBackend],
    ['dense scan of the index', (r) => r.scan.cpuMs, (r) => r.scan.gpuMs, last.scanBackend],
  ];
  let md = `Measured ${today()} on ${machine()} with \`node bench/gpu-browser.mjs\` in headless ${chromiumVersion()} ` +
    `(--enable-unsafe-webgpu; CPU: wasm SIMD, one thread; GPU: ${first.adapter}; median of ${reports.length} ` +
    `calibrations after one warm-up; index ${path.relative(ROOT, indexDir)}). Chromium's clock in a page is ` +
    `coarsened to 0.1 ms.\n\n`;
  md += '| workload | CPU (ms) | GPU (ms) | GPU / CPU | chosen |\n|---|---:|---:|---:|---|\n';
  for (const [name, c, g, chosen] of rows) {
    const cm = median(c);
    const gm = median(g);
    md += `| ${name} | ${fmt(cm, 2)} | ${fmt(gm, 2)} | ${fmt(gm / Math.max(cm, 1e-9), 1)}x | ${chosen} |\n`;
  }
  md += `\nCheck: least cosine GPU vs CPU ${Math.min(...reports.map((r) => r.minCosine)).toFixed(5)}, dense top 10 identical: ` +
    `${reports.every((r) => r.scanIdentical)}. The engine's own verdict: ${last.reason}\n`;
  console.log(md);
  if (write) {
    updateSection(write, 'gpu-browser', md);
    console.error(`updated the gpu-browser section of ${write}`);
  }
} finally {
  await browser.close();
  await server.close();
}
