// The paper demo in headless Chromium: keyword results before the model, the upgrade to
// hybrid, known queries, keyboard use, the status line, a second visit from the cache, and a
// site with hostile HTML that renders harmlessly. Screenshots go to tests/e2e/artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';
import { ROOT, startServer, launch, newPage, waitForState, search, buildIndex, artifact } from './harness.mjs';

let server;
let browser;

before(async () => {
  const siteIndex = buildIndex(
    ['--model', path.join(ROOT, 'models/all-minilm-l6-v2-q4_0.gguf'), '--site', path.join(ROOT, 'tests/fixtures/site')],
    path.join(ROOT, 'target/e2e/site-index'),
  );
  server = await startServer({
    // The fixture site's images too: its blog pages name one as their meta image.
    mounts: { '/': path.join(ROOT, 'www'), '/site-index/': siteIndex, '/img/': path.join(ROOT, 'tests/fixtures/site/img') },
    pages: {
      '/hostile.html': `<!doctype html><meta charset="utf-8"><title>hostile</title>
        <link rel="icon" href="/favicon.svg">
        <script type="module" src="/cairn/cairn-search.js"></script>
        <cairn-search index="/site-index/" results="10"></cairn-search>`,
    },
  });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

// Holds back the model download until `release()` is called.
function gateModel() {
  let release;
  const gate = new Promise((r) => (release = r));
  server.setHook(async (req, res, url) => {
    if (/\/model\.[0-9a-f]+\.gguf$/.test(url.pathname)) await gate;
    return false;
  });
  return () => {
    release();
    server.setHook(null);
  };
}

test('keyword results come first, then upgrade to hybrid by themselves', async () => {
  const context = await browser.newContext();
  const page = await newPage(context);
  const release = gateModel();
  await page.goto(server.url);
  await waitForState(page, 'keyword');
  const status = await page.locator('cairn-search .status').textContent();
  assert.match(status, /Keyword results only/);
  const kw = await search(page, 'facial image caption dataset', 'lexical');
  assert.ok(kw.hits.length > 0);
  assert.ok(kw.hits.every((h) => h.why === 'keyword'), 'before the model, every hit is a keyword hit');
  const badge = await page.locator('cairn-search li[role=option] .badge').first().textContent();
  assert.equal(badge, 'keyword');
  release();
  await waitForState(page, 'ready');
  // No typing: the same query's results are replaced by hybrid ones.
  await page.waitForFunction(() => document.querySelector('cairn-search').dataset.mode === 'hybrid', null, { timeout: 60000 });
  const hy = await page.evaluate(() => document.querySelector('cairn-search').lastResults);
  assert.equal(hy.query, 'facial image caption dataset');
  assert.ok(hy.hits.some((h) => h.why !== 'keyword'), 'hybrid results include meaning matches');
  assert.equal(await page.locator('cairn-search').getAttribute('data-backend'), 'cpu');
  assert.match(await page.locator('cairn-search .status').textContent(), /Ready: keyword \+ meaning search \(cpu/);
  assert.deepEqual(page.errors, []);
  await context.close();
});

// Queries whose right answer is plain from the paper titles.
const KNOWN = [
  ['dataset of face photos paired with text descriptions', 'p0000'],
];

test('known queries put the right paper first, and the screenshot shows it', async () => {
  const context = await browser.newContext({ viewport: { width: 1000, height: 800 } });
  const page = await newPage(context);
  await page.goto(server.url);
  await waitForState(page, 'ready');
  for (const [q, id] of KNOWN) {
    const r = await search(page, q, 'hybrid');
    assert.equal(r.hits[0].id, id, `top result for "${q}": ${r.hits[0].title}`);
  }
  const r = await search(page, 'making language models smaller for phones', 'hybrid');
  assert.ok(r.hits.length >= 5);
  const marks = await page.locator('cairn-search li[role=option] mark').count();
  assert.ok(marks > 0, 'matched words are marked');
  await page.screenshot({ path: artifact('demo.png') });
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('keyboard: / focuses, arrows move, Enter opens, Esc closes', async () => {
  const context = await browser.newContext();
  const page = await newPage(context);
  await page.goto(server.url);
  await waitForState(page, 'ready');
  await page.locator('h1').click();
  await page.keyboard.press('/');
  const focused = await page.evaluate(() => document.activeElement?.tagName === 'CAIRN-SEARCH'
    && document.activeElement.shadowRoot.activeElement?.tagName === 'INPUT');
  assert.ok(focused, '/ focuses the search input');
  await page.keyboard.type('diffusion image generation');
  await page.waitForFunction(() => document.querySelector('cairn-search').lastResults?.query === 'diffusion image generation'
    && document.querySelector('cairn-search').dataset.mode === 'hybrid');
  const input = page.locator('cairn-search input');
  assert.equal(await input.getAttribute('aria-expanded'), 'true');
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('ArrowDown');
  const active = await input.getAttribute('aria-activedescendant');
  assert.match(active, /-opt-1$/);
  assert.equal(await page.locator(`cairn-search li#${active}`).getAttribute('aria-selected'), 'true');
  await page.keyboard.press('ArrowUp');
  assert.match(await input.getAttribute('aria-activedescendant'), /-opt-0$/);
  const first = await page.evaluate(() => document.querySelector('cairn-search').lastResults.hits[0]);
  await page.keyboard.press('Escape');
  assert.equal(await input.getAttribute('aria-expanded'), 'false');
  await page.keyboard.press('ArrowDown'); // reopens on the first result
  await page.keyboard.press('Enter');
  await page.waitForFunction((id) => location.hash === `#paper-${id}`, first.id);
  await page.waitForSelector('#paper:not([hidden])');
  assert.equal(await page.locator('#paper-title').textContent(), first.title);
  // Ctrl+K focuses from anywhere too.
  await page.locator('#paper-title').click();
  await page.keyboard.press('Control+k');
  assert.ok(await page.evaluate(() => document.activeElement?.tagName === 'CAIRN-SEARCH'));
  assert.equal(await page.locator('cairn-search input').getAttribute('role'), 'combobox');
  assert.equal(await page.locator('cairn-search ul').getAttribute('role'), 'listbox');
  assert.deepEqual(page.errors, []);
  await context.close();
});

// The demo corpus's records carry a `topic` filter (scripts/paper-topics.py).
const TOPIC = new Map(fs.readFileSync(path.join(ROOT, 'www/data/papers.jsonl'), 'utf8').split('\n').filter(Boolean)
  .map((l) => JSON.parse(l)).map((r) => [r._id, r.filters.topic]));

test('a topic chip narrows the results, with counts, by mouse and by keyboard', async () => {
  const context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
  const page = await newPage(context);
  await page.goto(server.url);
  await waitForState(page, 'ready');
  const chip = (value) => page.locator(`cairn-search .chip[data-key="topic"][data-value="${value}"]`);
  // Before a search the chips count the whole corpus.
  const vision = [...TOPIC.values()].filter((t) => t === 'Vision').length;
  assert.equal(await chip('Vision').locator('.count').textContent(), `(${vision})`);
  const before = await search(page, 'efficient training of large models', 'hybrid');
  assert.ok(before.hits.some((h) => TOPIC.get(h.id) !== 'Vision'), 'unfiltered results mix topics');
  const shown = await chip('Vision').locator('.count').textContent();
  assert.equal(shown, `(${before.counts.topic.Vision})`, 'the chip shows the count for the query');
  await chip('Vision').click();
  await page.waitForFunction(() => {
    const r = document.querySelector('cairn-search').lastResults;
    return r.filters?.topic?.includes('Vision') && r.hits.length > 0;
  }, null, { timeout: 60000 });
  const after = await page.evaluate(() => document.querySelector('cairn-search').lastResults);
  assert.equal(await chip('Vision').getAttribute('aria-pressed'), 'true');
  assert.ok(after.hits.every((h) => TOPIC.get(h.id) === 'Vision'), 'only Vision papers');
  assert.equal(after.hits.length, 8, 'a full page: the filter applies before ranking');
  assert.equal(after.counts.topic.Vision, after.total);
  assert.equal(after.counts.topic.Language ?? 0, 0, 'a value no result carries is left out (0)');
  assert.equal(await chip('Vision').locator('.count').textContent(), `(${after.total})`);
  // The other topics show what the query has without the filter (what choosing them adds).
  assert.ok(after.totalCounts.topic.Language > 0);
  assert.equal(await chip('Language').locator('.count').textContent(), `(${after.totalCounts.topic.Language})`);
  const ids = await page.locator('cairn-search li[role=option]').evaluateAll((lis) => lis.length);
  assert.equal(ids, after.hits.length);
  await page.screenshot({ path: artifact('demo-filter.png') });
  // Keyboard: Tab from the input reaches the chips; Space toggles the chosen one off.
  await page.locator('cairn-search input').focus();
  await page.keyboard.press('Tab');
  const first = await page.evaluate(() => document.querySelector('cairn-search').shadowRoot.activeElement?.className);
  assert.match(first || '', /chip/);
  await chip('Vision').focus();
  await page.keyboard.press('Space');
  await page.waitForFunction(() => {
    const r = document.querySelector('cairn-search').lastResults;
    return !r.filters && r.query === 'efficient training of large models';
  }, null, { timeout: 60000 });
  assert.equal(await chip('Vision').getAttribute('aria-pressed'), 'false');
  // The element's `ranking` attribute reaches the engine: a value out of range is the
  // search's error, said in the list; a good one answers.
  await page.evaluate(() => document.querySelector('cairn-search').setAttribute('ranking', 'titleWeight:3, pageLength:2'));
  await page.locator('cairn-search input').fill('efficient training');
  await page.locator('cairn-search li.empty', { hasText: /Search failed: .*ranking: pageLength \(BM25's b\) must be between 0 and 1, not 2/ }).waitFor({ timeout: 60000 });
  await page.evaluate(() => document.querySelector('cairn-search').setAttribute('ranking', 'titleWeight:3, pageLength:0.5'));
  const weighted = await search(page, 'efficient training of models', 'hybrid');
  assert.ok(weighted.hits.length > 0);
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('a second visit downloads neither index nor model', async () => {
  const context = await browser.newContext();
  const page = await newPage(context);
  await page.goto(server.url);
  await waitForState(page, 'ready');
  const mark = server.log.length;
  const again = await newPage(context);
  await again.goto(server.url);
  await waitForState(again, 'ready');
  await search(again, 'robots learning from human videos', 'hybrid');
  const fetched = server.log.slice(mark).filter((e) => /\.(cidx|gguf)$/.test(e.path));
  assert.deepEqual(fetched, [], 'index and model come from the Cache API');
  assert.deepEqual([...page.errors, ...again.errors], []);
  await context.close();
});

test('hostile HTML in a page renders as text and runs nothing', async () => {
  const context = await browser.newContext();
  const page = await newPage(context);
  await page.goto(new URL('hostile.html', server.url).href);
  await waitForState(page, 'ready');
  const r = await search(page, 'zebra quagga', 'hybrid');
  const hit = r.hits.find((h) => h.url === '/hostile.html');
  assert.ok(hit, 'the hostile page is found');
  assert.equal(hit.title, 'Hostile page <b>bold</b>');
  const rendered = await page.evaluate(() => {
    const list = document.querySelector('cairn-search').shadowRoot.querySelector('ul');
    const mine = [...list.querySelectorAll('li')].find((li) => li.querySelector('a')?.getAttribute('href')?.includes('hostile.html'));
    return {
      title: list.querySelector('.title').textContent,
      elements: [...list.querySelectorAll('*')].map((e) => e.tagName.toLowerCase()),
      hrefs: [...list.querySelectorAll('a[href]')].map((a) => a.getAttribute('href')),
      images: [...list.querySelectorAll('img')].map((i) => i.getAttribute('src')),
      hostileDate: mine?.querySelector('.meta .date')?.textContent ?? null,
      hostileImages: mine ? mine.querySelectorAll('img').length : null,
      pwned: window.__cairnPwned ?? null,
    };
  });
  assert.equal(rendered.title, 'Hostile page <b>bold</b>');
  // Meta from the page: the date is text, the javascript: image is not shown; the only
  // images are other pages' meta images, at http(s) addresses of this site.
  assert.equal(hit.meta.image, "javascript:window.__cairnPwned='meta-image'");
  assert.equal(rendered.hostileDate, `<img src=x onerror="window.__cairnPwned='meta'">`);
  assert.equal(rendered.hostileImages, 0);
  assert.ok(rendered.images.every((src) => src.startsWith(server.url)), rendered.images.join(' '));
  assert.deepEqual([...new Set(rendered.elements)].filter((t) => !['li', 'a', 'span', 'mark', 'img'].includes(t)), []);
  assert.ok(rendered.hrefs.every((h) => h.startsWith(server.url)), rendered.hrefs.join(' '));
  assert.equal(rendered.pwned, null, 'no script from the page ran');
  await page.screenshot({ path: artifact('hostile.png') });
  assert.deepEqual(page.errors, []);
  await context.close();
});
