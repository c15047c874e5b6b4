// Test harness for the browser tests: a static server whose behaviour tests can bend (slow or
// failing files, wrong MIME types, extra headers), and headless Chromium via playwright-core.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const ARTIFACTS = path.join(ROOT, 'tests/e2e/artifacts');

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.jsonl': 'application/jsonl',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

// Starts a server on 127.0.0.1 with a free port.
//   mounts:  { '/': dir, '/site-index/': otherDir }   (longest prefix wins)
//   pages:   { '/x.html': '<html>…' }                  (generated pages)
//   hook(req, res) -> true when it answered the request itself (failures, delays)
//   headers: extra headers on every response; mime: overrides by extension
export async function startServer({ mounts = { '/': path.join(ROOT, 'www') }, pages = {}, headers = {}, mime = {} } = {}) {
  const log = [];
  const state = { hook: null };
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    const entry = { method: req.method, path: url.pathname, status: 0, bytes: 0, at: Date.now() };
    log.push(entry);
    for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
    if (state.hook && (await state.hook(req, res, url, entry))) return;
    if (pages[url.pathname] !== undefined) {
      const body = Buffer.from(pages[url.pathname]);
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': body.length });
      entry.status = 200;
      entry.bytes = body.length;
      res.end(body);
      return;
    }
    const prefix = Object.keys(mounts)
      .filter((p) => url.pathname.startsWith(p))
      .sort((a, b) => b.length - a.length)[0];
    let file = prefix && path.join(mounts[prefix], decodeURIComponent(url.pathname.slice(prefix.length)));
    if (file && file.endsWith(path.sep)) file = path.join(file, 'index.html');
    if (file && fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, 'index.html');
    if (!file || !fs.existsSync(file)) {
      entry.status = 404;
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    const body = fs.readFileSync(file);
    const ext = path.extname(file);
    const type = mime[ext] ?? MIME[ext] ?? 'application/octet-stream';
    res.writeHead(200, { 'content-type': type, 'content-length': body.length, 'cache-control': 'no-cache' });
    entry.status = 200;
    entry.bytes = body.length;
    res.end(body);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/`,
    log,
    setHook(fn) {
      state.hook = fn;
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

export const CHROME_ARGS = [
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

export async function launch(extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [...CHROME_ARGS, ...extraArgs],
  });
}

// A page that records console errors and uncaught exceptions.
export async function newPage(context) {
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') page.errors.push(`console: ${m.text()}`);
  });
  return page;
}

// Waits until the first <cairn-search> reaches `state` (data-state).
export async function waitForState(page, state, timeout = 120000) {
  await page.waitForFunction(
    (s) => document.querySelector('cairn-search')?.dataset.state === s,
    state,
    { timeout },
  );
}

// Types a query and waits for results of `mode` (the mode the worker ran) to be shown.
export async function search(page, query, mode) {
  const input = page.locator('cairn-search input');
  await input.fill(query);
  await page.waitForFunction(
    ([q, m]) => {
      const el = document.querySelector('cairn-search');
      const items = el.shadowRoot.querySelectorAll('li[role=option]');
      return el.lastResults && el.lastResults.query === q && (!m || el.dataset.mode === m) && items.length > 0;
    },
    [query, mode],
    { timeout: 60000 },
  );
  return page.evaluate(() => document.querySelector('cairn-search').lastResults);
}

// Builds an index folder with the debug CLI (as `make` builds the demo's).
export function buildIndex(args, out) {
  const cli = path.join(ROOT, 'target/debug/cairn');
  try {
    execFileSync(cli, ['index', ...args, '--out', out], { cwd: ROOT, stdio: 'pipe' });
  } catch (e) {
    throw new Error(`cairn index failed: ${e.stderr}`);
  }
  return out;
}

export function artifact(name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  return path.join(ARTIFACTS, name);
}
