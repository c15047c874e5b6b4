// README's "Use it on your site" path, run as written with the `cairn` that `make install`
// put in a prefix (the Makefile's e2e-install: the same recipe, dev profile): index the
// fixture site with no --model and no --ui, add README's two HTML lines to a page, search.
// Then a redeploy: a page whose browser holds the previous engine in its HTTP cache meets a
// new index and recovers by itself, because the manifest names the engine that goes with it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { ROOT, startServer, launch, newPage, waitForState, search } from './harness.mjs';

const PREFIX = path.join(ROOT, 'target/e2e-prefix');
const CAIRN = path.join(PREFIX, 'bin/cairn');
// README's two lines.
const README_LINES =
  '<script type="module" src="/_cairn/cairn-search.js"></script>\n' +
  '<cairn-search index="/_cairn/" placeholder="Search the docs"></cairn-search>';
const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>t</title></head><body>\n${README_LINES}\n</body></html>`;

let browser;
let tmp;
const servers = []; // closed in after(), so a failed test does not leave the process running
before(async () => {
  assert.ok(
    fs.existsSync(CAIRN),
    `${CAIRN} is missing: run \`make e2e-install\` (or \`make test-e2e\`, which does) first`,
  );
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-install-'));
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await Promise.all(servers.map((s) => s.close()));
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

// README's command, with the installed binary (its embedding cache kept in the temp folder).
// Returns what it printed (on stderr).
function cairnIndex(site, out, extra = []) {
  const r = spawnSync(CAIRN, ['index', '--site', site, '--out', out, ...extra], {
    cwd: ROOT,
    env: { ...process.env, CAIRN_CACHE_DIR: path.join(tmp, 'cache') },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`cairn index failed (${r.status}): ${r.stderr}`);
  return r.stderr;
}

// Serves `root()` under /_cairn/ (the folder can change between visits, as a redeploy does),
// PAGE at / and the fixture site's images (a result's meta image is shown with it). The engine's files are cached for a day, as a host caches static assets;
// the manifest and the entry scripts are revalidated. `gate(path)` may hold a request back.
async function deployServer(root, gate = async () => {}) {
  const server = await startServer({
    mounts: { '/img/': path.join(ROOT, 'tests/fixtures/site/img') },
    pages: { '/': PAGE },
  });
  servers.push(server);
  server.setHook(async (req, res, url, entry) => {
    if (url.pathname === '/favicon.ico') {
      res.writeHead(204);
      res.end();
      return true;
    }
    if (!url.pathname.startsWith('/_cairn/')) return false;
    await gate(url.pathname);
    const file = path.join(root(), decodeURIComponent(url.pathname.slice('/_cairn/'.length)));
    if (!file.startsWith(root()) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      entry.status = 404;
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return true;
    }
    const body = fs.readFileSync(file);
    const type = file.endsWith('.js') ? 'text/javascript' : file.endsWith('.wasm') ? 'application/wasm' : 'application/octet-stream';
    const entryPoint = /(cairn-entry\.json|cairn-search\.js|cairn-worker\.js|cairn-sw\.js)$/.test(file);
    res.writeHead(200, {
      'content-type': file.endsWith('.json') ? 'application/json' : type,
      'content-length': body.length,
      'cache-control': entryPoint ? 'no-cache' : 'max-age=86400',
    });
    entry.status = 200;
    entry.bytes = body.length;
    res.end(body);
    return true;
  });
  return server;
}

// Every state the element reported, kept in the page.
async function recordStates(context) {
  await context.addInitScript(() => {
    window.cairnStates = [];
    document.addEventListener('cairn-state', (e) => window.cairnStates.push({ state: e.detail.state, message: e.detail.message }), true);
  });
}

test('cairn --version names the engine it carries', () => {
  const v = execFileSync(CAIRN, ['--version']).toString();
  assert.match(v, /carries the browser UI and engine cairn_bg\.[0-9a-f]{16}\.wasm/);
});

test("README's path: make install, cairn index --site --out (no --model, no --ui), two HTML lines", async () => {
  const out = path.join(tmp, 'public/_cairn');
  const log = cairnIndex(path.join(ROOT, 'tests/fixtures/site'), out);
  assert.match(log, /model: .*share\/cairn\/all-minilm-l6-v2-q4_mix\.gguf/, 'the installed default bundle');
  const manifest = JSON.parse(fs.readFileSync(path.join(out, 'cairn-entry.json'), 'utf8'));
  assert.match(manifest.engine.js, /^cairn\.[0-9a-f]{16}\.js$/);
  for (const f of ['cairn-search.js', 'cairn-worker.js', 'cairn-sw.js', manifest.engine.js, manifest.engine.wasm, manifest.engine.relaxed_wasm]) {
    assert.ok(fs.existsSync(path.join(out, f)), `${f} written`);
  }

  // The model waits until the keyword answer is checked: keyword first, then hybrid.
  let releaseModel;
  const modelGate = new Promise((r) => (releaseModel = r));
  const server = await deployServer(
    () => out,
    (p) => (/\/model\.[0-9a-f]+\.gguf$/.test(p) ? modelGate : undefined),
  );
  const serve = server.log; // requests, for the engine check below
  const context = await browser.newContext();
  const page = await newPage(context);
  await page.goto(server.url);
  await waitForState(page, 'keyword');
  const kw = await search(page, 'box smart pointer', 'lexical');
  assert.ok(kw.hits.some((h) => h.url.includes('boxes.html')), JSON.stringify(kw.hits.map((h) => h.url)));
  releaseModel();
  await waitForState(page, 'ready');
  const hy = await search(page, 'running code at the same time', 'hybrid');
  assert.ok(hy.hits.some((h) => h.url.includes('threads.html')), JSON.stringify(hy.hits.map((h) => h.url)));
  const paths = serve.map((e) => e.path);
  assert.ok(paths.includes(`/_cairn/${manifest.engine.js}`), 'the engine the manifest names was loaded');
  assert.ok(!paths.includes('/_cairn/cairn.js'), 'no unhashed engine asked for');
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('a redeploy with a new engine and index: a browser holding the previous engine recovers by itself', async () => {
  // The new deploy: README's path over the fixture site plus one new page.
  const siteV2 = path.join(tmp, 'site-v2');
  fs.cpSync(path.join(ROOT, 'tests/fixtures/site'), siteV2, { recursive: true });
  fs.writeFileSync(
    path.join(siteV2, 'lighthouses.html'),
    '<!doctype html><html><head><title>Lighthouses</title></head><body><main><h1 id="keepers">Lighthouse keepers</h1>' +
      '<p>Lighthouse keepers trimmed the wicks of the lamps every night on the rocky coast.</p></main></body></html>',
  );
  const v2 = path.join(tmp, 'v2/_cairn');
  cairnIndex(siteV2, v2);
  const m2 = JSON.parse(fs.readFileSync(path.join(v2, 'cairn-entry.json'), 'utf8'));

  // The previous deploy, as the previous release wrote it: a layout-1 manifest naming no
  // engine, the engine under fixed names beside the worker. Its engine is this build's
  // engine behind the one check a layout-1 engine makes (it reads manifest layout 1 only,
  // with the message the real one gives); everything else is the real engine.
  const v1 = path.join(tmp, 'v1/_cairn');
  cairnIndex(path.join(ROOT, 'tests/fixtures/site'), v1, ['--no-ui']);
  for (const f of ['cairn-search.js', 'cairn-worker.js']) fs.copyFileSync(path.join(v2, f), path.join(v1, f));
  fs.mkdirSync(path.join(v1, 'prev'));
  fs.copyFileSync(path.join(v2, m2.engine.js), path.join(v1, 'prev/cairn.js'));
  fs.copyFileSync(path.join(v2, m2.engine.wasm), path.join(v1, 'cairn_bg.wasm'));
  fs.copyFileSync(path.join(v2, m2.engine.relaxed_wasm), path.join(v1, 'cairn_relaxed_bg.wasm'));
  fs.writeFileSync(
    path.join(v1, 'cairn.js'),
    "import init, { Engine as Current } from './prev/cairn.js';\n" +
      'export default init;\n' +
      'export class Engine extends Current {\n' +
      '  static readManifest(bytes) {\n' +
      '    const v = JSON.parse(new TextDecoder().decode(bytes)).version;\n' +
      "    if (v !== 1) throw new Error(`cairn-entry.json has layout version ${v}; this Cairn reads version 1 (was the folder written by a newer \\`cairn index\\`?)`);\n" +
      '    return Current.readManifest(bytes);\n' +
      '  }\n' +
      '}\n',
  );
  const m1 = JSON.parse(fs.readFileSync(path.join(v1, 'cairn-entry.json'), 'utf8'));
  m1.version = 1;
  delete m1.engine;
  fs.writeFileSync(path.join(v1, 'cairn-entry.json'), JSON.stringify(m1));

  // The control: the new deploy's manifest without the engine's names, as a manifest that
  // left the choice to the browser's cache would be.
  const v2NoEngine = path.join(tmp, 'v2-no-engine/_cairn');
  fs.cpSync(v2, v2NoEngine, { recursive: true });
  const m2n = { ...m2 };
  delete m2n.engine;
  fs.writeFileSync(path.join(v2NoEngine, 'cairn-entry.json'), JSON.stringify(m2n));

  let root = v1;
  const server = await deployServer(() => root);
  const context = await browser.newContext(); // one HTTP cache for every visit below
  await recordStates(context);

  // First visit: the previous deploy works, and its engine lands in the HTTP cache.
  let page = await newPage(context);
  await page.goto(server.url);
  await waitForState(page, 'ready');
  await search(page, 'box smart pointer', 'hybrid');
  assert.deepEqual(page.errors, []);
  await page.close();

  // The control: without the engine's names the page meets the cached previous engine, which
  // refuses the new manifest. This shows the stale engine is really there.
  root = v2NoEngine;
  page = await newPage(context);
  const before = server.log.length;
  await page.goto(server.url);
  await waitForState(page, 'error');
  const status = await page.evaluate(() => document.querySelector('cairn-search').shadowRoot.querySelector('.status').textContent);
  assert.match(status, /layout version 2; this Cairn reads version 1/);
  assert.ok(!server.log.slice(before).some((e) => e.path === '/_cairn/cairn.js'), 'the previous engine came from the HTTP cache');
  await page.close();

  // The new deploy: the manifest names its engine, the page loads it, and answers from the
  // new index with no error on the way.
  root = v2;
  page = await newPage(context);
  const from = server.log.length;
  await page.goto(server.url);
  await waitForState(page, 'ready');
  const r = await search(page, 'lighthouse keepers', 'hybrid');
  assert.ok(r.hits[0].url.includes('lighthouses.html'), JSON.stringify(r.hits.map((h) => h.url)));
  const states = await page.evaluate(() => window.cairnStates);
  assert.ok(!states.some((s) => s.state === 'error'), JSON.stringify(states));
  const asked = server.log.slice(from).map((e) => e.path);
  assert.ok(asked.includes(`/_cairn/${m2.engine.js}`), `the new engine was loaded: ${asked.join(' ')}`);
  assert.deepEqual(page.errors, []);
  await context.close();
});
