// Helpers of the peer benchmarks (bench/peers-*.mjs), beside bench/lib.mjs.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { ROOT } from '../tests/e2e/harness.mjs';

export { opt } from './lib.mjs';

const pkgVersion = (p) => {
  try {
    return JSON.parse(fs.readFileSync(path.join(ROOT, p), 'utf8')).version;
  } catch {
    return '?';
  }
};

export function versions() {
  let rev = '';
  try {
    rev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT }).toString().trim();
  } catch {
    rev = '';
  }
  const cargo = fs.readFileSync(path.join(ROOT, 'Cargo.toml'), 'utf8').match(/^version\s*=\s*"([^"]+)"/m);
  return {
    cairn: `${cargo ? cargo[1] : '?'}${rev ? ` (${rev})` : ''}`,
    transformers: pkgVersion('bench/node_modules/@huggingface/transformers/package.json'),
    ort: pkgVersion('bench/node_modules/onnxruntime-web/package.json'),
    pagefind: pkgVersion('bench/node_modules/pagefind/package.json'),
    playwright: pkgVersion('node_modules/playwright-core/package.json'),
  };
}

export function loadAverage() {
  return os.loadavg().map((x) => x.toFixed(2)).join(' / ');
}

export function readQrels(file) {
  const q = new Map();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const [qid, did, score] = line.split('\t');
    if (!qid || !did || qid === 'query-id' || score === undefined) continue;
    if (!q.has(qid)) q.set(qid, new Map());
    q.get(qid).set(did, Number(score));
  }
  return q;
}

// BEIR nDCG@10: gain = grade, log2 discount, ideal from the qrels.
export function ndcg10(ranked, rels) {
  let dcg = 0;
  ranked.slice(0, 10).forEach((d, i) => {
    dcg += (rels.get(d) || 0) / Math.log2(i + 2);
  });
  const ideal = [...rels.values()].filter((g) => g > 0).sort((a, b) => b - a).slice(0, 10);
  const idcg = ideal.reduce((a, g, i) => a + g / Math.log2(i + 2), 0);
  return idcg > 0 ? dcg / idcg : 0;
}

// The file a mount table serves for a URL path (the harness's rule: longest prefix wins).
export function fileFor(mounts, urlPath) {
  const prefix = Object.keys(mounts).filter((p) => urlPath.startsWith(p)).sort((a, b) => b.length - a.length)[0];
  if (!prefix) return null;
  let file = path.join(mounts[prefix], decodeURIComponent(urlPath.slice(prefix.length)));
  if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, 'index.html');
  return fs.existsSync(file) ? file : null;
}

const gzCache = new Map();
// gzip -6 (zlib's default level) size of a file or buffer.
export function gzipSize(fileOrBuf) {
  if (typeof fileOrBuf === 'string') {
    if (!gzCache.has(fileOrBuf)) gzCache.set(fileOrBuf, zlib.gzipSync(fs.readFileSync(fileOrBuf), { level: 6 }).length);
    return gzCache.get(fileOrBuf);
  }
  return zlib.gzipSync(fileOrBuf, { level: 6 }).length;
}

export function dirBytes(dir) {
  let n = 0;
  let files = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      const s = dirBytes(p);
      n += s.bytes;
      files += s.files;
    } else if (e.isFile()) {
      n += fs.statSync(p).size;
      files += 1;
    }
  }
  return { bytes: n, files };
}

export const mb = (b) => (b / 1e6).toFixed(2);
