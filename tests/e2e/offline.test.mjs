// Offline after one visit: the demo registers Cairn's service worker (www/sw.js imports
// cairn-sw.js), which keeps the page, its files, the element, the worker and the engine;
// the worker keeps the index and the model. With the network gone (every connection to the
// server is cut), the page loads again, answers a hybrid query and opens a result.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, newPage, waitForState, search } from './harness.mjs';

let server;
let browser;

before(async () => {
  server = await startServer({
    pages: {
      // The service worker from the cairn folder: its scope cannot include a page at the root.
      '/wrong-scope.html': `<!doctype html><meta charset="utf-8"><title>wrong scope</title>
        <link rel="icon" href="data:,">
        <script type="module" src="/cairn/cairn-search.js"></script>
        <cairn-search index="/indexes/papers/" service-worker="/cairn/cairn-sw.js"></cairn-search>`,
    },
  });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

test('after one visit the demo loads again, answers a hybrid query and opens a result with the network gone', async () => {
  const context = await browser.newContext();
  const page = await newPage(context);
  // A first visit with a query: the page is kept under its address without it.
  await page.goto(server.url + '?from=newsletter');
  await waitForState(page, 'ready');
  await page.waitForFunction(() => document.querySelector('cairn-search').dataset.offline, null, { timeout: 120000 });
  const offline = await page.evaluate(() => document.querySelector('cairn-search').offline);
  assert.equal(offline.state, 'ready', JSON.stringify(offline));
  assert.ok(offline.kept >= 5, `page, element, worker, engine and the page's files: ${JSON.stringify(offline)}`);
  assert.ok(await page.evaluate(() => Boolean(navigator.serviceWorker.controller)), 'the page is controlled');

  // The network goes away: every request to the server is cut before it is answered.
  const cut = [];
  server.setHook((req) => {
    cut.push(new URL(req.url, 'http://x').pathname);
    req.socket.destroy();
    return true;
  });
  try {
    await page.goto(server.url);
    await waitForState(page, 'ready');
    const out = await search(page, 'dataset of face photos paired with text descriptions', 'hybrid');
    assert.equal(out.hits[0].id, 'p0000');
    assert.ok(out.hits.some((h) => h.why !== 'keyword'), 'meaning matches, so the model ran offline');
    assert.match(await page.title(), /Cairn/);
    // A result opens offline too: the demo names its abstracts file in offline-files.
    await page.locator('cairn-search li[role=option] a').first().click();
    await page.waitForFunction(() => !document.getElementById('paper').hidden, null, { timeout: 30000 });
    assert.doesNotMatch(await page.locator('#paper-title').textContent(), /could not be loaded/);
    assert.ok((await page.locator('#paper-text').textContent()).length > 100, 'the abstract is shown');
    assert.ok(cut.length > 0, 'the reload did try the network');
    assert.deepEqual(page.errors.filter((e) => !/Failed to load resource|ERR_/.test(e)), []);
  } finally {
    server.setHook(null);
  }
  await context.close();
});

test('a service worker whose scope cannot cover the page is reported, and search still works', async () => {
  const context = await browser.newContext();
  const page = await newPage(context);
  await page.goto(new URL('wrong-scope.html', server.url).href);
  await page.waitForFunction(() => document.querySelector('cairn-search').dataset.offline, null, { timeout: 60000 });
  const offline = await page.evaluate(() => document.querySelector('cairn-search').offline);
  assert.equal(offline.state, 'unavailable');
  assert.match(offline.reason, /scope .*\/cairn\/ does not include this page/);
  const registered = await page.evaluate(async () => (await navigator.serviceWorker.getRegistrations()).length);
  assert.equal(registered, 0, 'nothing is left installed');
  await waitForState(page, 'ready');
  const out = await search(page, 'dataset of face photos paired with text descriptions', 'hybrid');
  assert.ok(out.hits.length > 0);
  assert.deepEqual(page.errors, []);
  await context.close();
});
