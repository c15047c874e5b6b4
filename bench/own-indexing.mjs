// `make bench-own`: indexing the visitor's own files in the browser (www/own.html) against
// `cairn index` natively, on the same records and bundle, in one run. The browser runs are
// the page itself: the first N records of the demo corpus (www/data/papers.jsonl) dropped on
// it, timed by the worker (embedding passages/s, the whole ingest in seconds); on the CPU
// with each wasm build (relaxed SIMD, SIMD128; one thread), and on WebGPU (Chromium's
// SwiftShader here, a software adapter: run it where a real GPU is for a GPU's number).
// Native: the release CLI on the same file, no embedding cache, on every core and on one.
//
// SwiftShader takes seconds a passage, so WebGPU asked for gets only the first GPU_N records.
//
// usage: node bench/own-indexing.mjs [--n 64] [--gpu-n 8] [--write BENCHMARKS.md]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { ROOT, startServer, launch, newPage, waitForState } from '../tests/e2e/harness.mjs';
import { machine, today, chromiumVersion, updateSection, fmt, opt } from './lib.mjs';

const args = process.argv.slice(2);
const write = opt(args, '--write', null);
const N = Number(opt(args, '--n', '64'));
const GPU_N = Number(opt(args, '--gpu-n', '8'));
const BUNDLE = path.join(ROOT, 'models/all-minilm-l6-v2-q4_mix.gguf');
const CLI = path.join(ROOT, 'target/release/cairn');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-bench-own-'));
const all = fs.readFileSync(path.join(ROOT, 'www/data/papers.jsonl'), 'utf8').split('\n').filter(Boolean);
function firstRecords(n) {
  const file = path.join(tmp, `papers-${n}.jsonl`);
  fs.writeFileSync(file, `${all.slice(0, n).join('\n')}\n`);
  return file;
}
const corpus = firstRecords(N);
const gpuCorpus = firstRecords(GPU_N);
const loadStart = os.loadavg()[0];

// `cairn index` on the same file: its own embedding rate ("texts/s embedding") and wall time.
function native(threads) {
  const env = { ...process.env };
  if (threads) env.RAYON_NUM_THREADS = String(threads);
  const started = Date.now();
  const run = spawnSync(CLI, ['index', '--model', BUNDLE, '--jsonl', corpus, '--no-ui', '--no-cache', '--out', path.join(tmp, `native-${threads}`)], { env, encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`cairn index failed: ${run.stderr}`);
  const m = /\(([\d.]+) (?:texts|passages)\/s embedding/.exec(run.stderr);
  const k = /int8 kernel ([\w-]+), (\d+) threads/.exec(run.stderr);
  return { perSec: Number(m?.[1]), secs: (Date.now() - started) / 1000, kernel: k?.[1], threads: Number(k?.[2]) };
}

async function browserRun(query, flags, file) {
  const server = await startServer({ mounts: { '/': path.join(ROOT, 'www') } });
  const browser = await launch(flags);
  try {
    const page = await newPage(await browser.newContext());
    await page.goto(`${server.url}own.html?${query}`);
    await waitForState(page, 'ready', 300000);
    const done = page.evaluate(() => new Promise((resolve) => {
      document.querySelector('cairn-search').addEventListener('cairn-ingest', (e) => {
        if (['ingest-done', 'ingest-error'].includes(e.detail.type)) resolve(e.detail);
      });
    }));
    await page.setInputFiles('#pick-files', file);
    const r = await done;
    if (r.type !== 'ingest-done') throw new Error(`own.html?${query}: ${r.message}`);
    const detail = await page.evaluate(() => document.querySelector('cairn-search').stateDetail);
    const sent = server.log.filter((e) => e.method !== 'GET').length;
    return { ...r, kernel: detail.kernel, gpu: detail.gpu, sent };
  } finally {
    await browser.close();
    await server.close();
  }
}

const rows = [];
let calibrations = '';
for (const [label, query, flags, file] of [
  ['Chromium, CPU (relaxed-SIMD build)', 'backend=cpu', [], corpus],
  ['Chromium, CPU (SIMD128 build)', 'backend=cpu&wasm=simd128', [], corpus],
  ['Chromium, WebGPU available, auto', 'backend=auto', ['--enable-unsafe-webgpu'], corpus],
  [`Chromium, WebGPU asked for (first ${GPU_N} records)`, 'backend=webgpu', ['--enable-unsafe-webgpu'], gpuCorpus],
]) {
  console.error(`${label}…`);
  const r = await browserRun(query, flags, file);
  const c = r.calibration || {};
  const on = r.backend === 'webgpu' ? `WebGPU (${r.gpu?.adapter})` : `CPU, kernel ${r.kernel}, 1 thread`;
  rows.push(`| ${label} | ${on} | ${fmt(r.perSec, 2)} | ${fmt(r.embedMs / 1000, 1)} | ${fmt(r.ms / 1000, 1)} | ${c.reason || '—'} |`);
  if (c.gpuOneMs != null) {
    const gpu = c.gpuMs != null ? `${fmt(c.gpuMs, 0)} ms on WebGPU` : `not timed on WebGPU, whose first text alone took ${fmt(c.gpuOneMs, 0)} ms`;
    calibrations += `${label}: the calibration batch (${c.texts} texts of at most 48 words) took ${fmt(c.cpuMs, 0)} ms on the CPU, ${gpu} (${r.gpu?.adapter}); worst cosine ${c.minCosine.toFixed(5)}. `;
  }
  if (r.sent) throw new Error(`${label}: ${r.sent} requests other than GET`);
}
for (const threads of [0, 1]) {
  console.error(`native, ${threads || 'all'} threads…`);
  const r = native(threads);
  rows.push(`| native \`cairn index\` (release) | CPU, kernel ${r.kernel}, ${r.threads} thread${r.threads === 1 ? '' : 's'} | ${fmt(r.perSec, 2)} | ${fmt(N / r.perSec, 1)} | ${fmt(r.secs, 1)} (process, model load included) | — |`);
}
fs.rmSync(tmp, { recursive: true, force: true });

let md = `Measured ${today()} on ${machine()} with \`make bench-own\` (bench/own-indexing.mjs; ${chromiumVersion()}, headless; `
  + `load average ${loadStart.toFixed(2)} at the start, ${os.loadavg()[0].toFixed(2)} at the end): the first ${N} records (${GPU_N} where WebGPU is asked for) of `
  + '`www/data/papers.jsonl` (abstracts, most at the 256-token cut) indexed with the demo\'s q4_mix bundle, dropped on '
  + '`www/own.html` (the worker\'s own timing: embedding rate, then the whole ingest: reading, embedding, writing, keeping '
  + 'it in the private file system) and given to `cairn index --jsonl --no-cache`.\n\n'
  + '| run | embedded on | passages/s (embedding) | embedding (s) | whole run (s) | backend choice |\n|---|---|---:|---:|---:|---|\n'
  + `${rows.join('\n')}\n`;
if (calibrations) md += `\n${calibrations.trim()}\n`;
console.log(md);
if (write) updateSection(write, 'own-indexing', md);
