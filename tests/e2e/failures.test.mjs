// The browser under failure: a model that does not download, an index that does not, a
// manifest of a newer layout, a damaged file in the cache, a server without the wasm MIME type, and a strict
// Content-Security-Policy. Each must leave a working (or clearly explained) page and no
// uncaught exception.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, newPage, waitForState, search } from './harness.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

const isModel = (p) => /\/model\.[0-9a-f]+\.gguf$/.test(p);
const isIndex = (p) => /\/index\.[0-9a-f]+\.cidx$/.test(p);
// Chromium logs every failed request as a console error; the tests allow exactly those.
const unexpected = (errors) => errors.filter((e) => !/Failed to load resource/.test(e));

function failWhile(server, match, status = 503) {
  const state = { failing: true };
  server.setHook((req, res, url, entry) => {
    if (state.failing && match(url.pathname)) {
      entry.status = status;
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end('unavailable');
      return true;
    }
    return false;
  });
  return state;
}

test('a failed model download keeps keyword search, says so, and Retry recovers', async () => {
  const server = await startServer();
  const state = failWhile(server, isModel);
  const context = await browser.newContext();
  const page = await newPage(context);
  await page.goto(server.url);
  await page.waitForFunction(() => /Semantic search unavailable/.test(
    document.querySelector('cairn-search').shadowRoot.querySelector('.status').textContent));
  assert.equal(await page.locator('cairn-search').getAttribute('data-state'), 'keyword');
  const r = await search(page, 'image segmentation', 'lexical');
  assert.ok(r.hits.length > 0, 'keyword search still answers');
  state.failing = false;
  await page.locator('cairn-search .status button').click();
  await waitForState(page, 'ready');
  await page.waitForFunction(() => document.querySelector('cairn-search').dataset.mode === 'hybrid');
  assert.deepEqual(unexpected(page.errors), []);
  await context.close();
  await server.close();
});

test('a failed index download is a clear message, not an exception', async () => {
  const server = await startServer();
  failWhile(server, isIndex, 404);
  const context = await browser.newContext();
  const page = await newPage(context);
  await page.goto(server.url);
  await waitForState(page, 'error');
  const status = await page.locator('cairn-search .status').textContent();
  assert.match(status, /search index could not be loaded: index\.[0-9a-f]+\.cidx: HTTP 404/);
  assert.equal(await page.locator('cairn-search .status button').textContent(), 'Retry');
  assert.deepEqual(unexpected(page.errors), []);
  await context.close();
  await server.close();
});

test('a manifest of a newer layout is refused with both versions named', async () => {
  const server = await startServer();
  server.setHook((req, res, url) => {
    if (!url.pathname.endsWith('/cairn-entry.json')) return false;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ version: 9, shards: [] }));
    return true;
  });
  const context = await browser.newContext();
  const page = await newPage(context);
  await page.goto(server.url);
  await waitForState(page, 'error');
  const status = await page.locator('cairn-search .status').textContent();
  assert.match(status, /cairn-entry\.json has layout version 9; this Cairn reads versions 1 to 2/);
  assert.deepEqual(unexpected(page.errors), []);
  await context.close();
  await server.close();
});

test('a damaged file in the cache is detected, evicted and fetched again', async () => {
  const server = await startServer();
  const context = await browser.newContext();
  const page = await newPage(context);
  await page.goto(server.url);
  await waitForState(page, 'ready');
  // Damage the cached index: same name, flipped bytes in the middle.
  const damaged = await page.evaluate(async () => {
    const cache = await caches.open('cairn-v1');
    const key = (await cache.keys()).find((r) => /index\.[0-9a-f]+\.cidx$/.test(r.url));
    const bytes = new Uint8Array(await (await cache.match(key)).arrayBuffer());
    for (let i = 1000; i < 1100; i++) bytes[i] ^= 0x5a;
    await cache.put(key, new Response(bytes));
    return key.url;
  });
  const mark = server.log.length;
  const again = await newPage(context);
  await again.goto(server.url);
  await waitForState(again, 'ready');
  const refetched = server.log.slice(mark).filter((e) => isIndex(e.path));
  assert.equal(refetched.length, 1, 'the damaged index was fetched once more');
  assert.ok(damaged.endsWith(refetched[0].path));
  await search(again, 'graph neural networks', 'hybrid');
  // And the cache holds a good copy now: a third visit fetches nothing.
  const mark2 = server.log.length;
  const third = await newPage(context);
  await third.goto(server.url);
  await waitForState(third, 'ready');
  assert.deepEqual(server.log.slice(mark2).filter((e) => isIndex(e.path) || isModel(e.path)), []);
  assert.deepEqual(unexpected([...page.errors, ...again.errors, ...third.errors]), []);
  await context.close();
  await server.close();
});

test('a server that sends wasm as application/octet-stream still works', async () => {
  const server = await startServer({ mime: { '.wasm': 'application/octet-stream' } });
  const context = await browser.newContext();
  const page = await newPage(context);
  await page.goto(server.url);
  await waitForState(page, 'ready');
  const r = await search(page, 'reinforcement learning from human feedback', 'hybrid');
  assert.ok(r.hits.length > 0);
  assert.deepEqual(unexpected(page.errors), []);
  await context.close();
  await server.close();
});

test('the demo works under a strict Content-Security-Policy', async () => {
  const csp = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'";
  const server = await startServer({ headers: { 'content-security-policy': csp } });
  const context = await browser.newContext();
  const page = await newPage(context);
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  await page.goto(server.url);
  await waitForState(page, 'ready');
  const r = await search(page, 'speech recognition', 'hybrid');
  assert.ok(r.hits.length > 0);
  // The element's styles applied (constructed stylesheets are not inline styles).
  const radius = await page.evaluate(() => getComputedStyle(
    document.querySelector('cairn-search').shadowRoot.querySelector('input')).borderTopLeftRadius);
  assert.notEqual(radius, '0px');
  assert.deepEqual(await page.evaluate(() => window.__violations), []);
  assert.deepEqual(unexpected(page.errors), []);
  await context.close();
  await server.close();
});
