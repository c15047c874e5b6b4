// Cairn's optional service worker: the pages that embed <cairn-search>, and everything the
// search needs, served from the browser's caches when the network is gone.
//
// A service worker serves only the pages inside its scope (the folder it is served from), so
// it has to sit at or above them: copy this file to the site's root, or put a one-line
// `/sw.js` there that runs `importScripts('/_cairn/cairn-sw.js')`. Registering it is the site
// owner's opt-in; the element does it when given the script's URL:
//
//   <cairn-search index="/_cairn/" service-worker="/sw.js"></cairn-search>
//
// What it keeps, in the cache `cairn-sw-v1`:
// - a page that embeds the element, with the same-origin files it loaded (its styles,
//   scripts, images), the element, the worker and the engine: the element sends their URLs
//   once search is ready (message `cairn-cache`), and the answer says what was kept;
// - on later visits, fresh copies of those as they come from the network.
// The index (one file, or a sharded index's meta file and parts), the model and the manifest
// are kept by the worker itself (cache `cairn-v1`, after it has verified their checksums);
// this worker serves them from there but never stores them twice.
//
// Strategy: content-hashed files (`name.<16 hex>.ext`, never changed in place) come from the
// cache first; everything else from the network first, so a deploy shows at once, and from
// the cache only when the network fails (or the server answers 5xx). A page is kept under
// its address without the query. Requests to other origins and non-GET requests are not
// touched. Pages that do not embed the element are not stored.

const CACHE = 'cairn-sw-v1';
// Caches of older versions of this worker, removed on activation.
const OURS = /^cairn-sw-/;
// `name.<16 hex>.ext`: written once under that name by `cairn index`.
const HASHED = /^(.*)\.[0-9a-f]{16}(\.[a-z0-9]+)$/;
// The index and the model (verified) and the manifest (always revalidated): the worker's own
// cache holds them.
const WORKER_KEPT = /(\.(cidx|gguf)|\/cairn-entry\.json)$/;

self.addEventListener('install', () => self.skipWaiting());

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (OURS.test(name) && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

function handled(request) {
  if (request.method !== 'GET' || request.headers.has('range')) return false;
  const url = new URL(request.url);
  return url.origin === self.location.origin;
}

// The key a response is kept under: a page under its address without the query (one copy
// per page, whatever query a visit came with; the element asks for it so), anything else
// under its full URL.
function keyOf(request) {
  if (request.mode !== 'navigate') return request.url;
  const url = new URL(request.url);
  return url.origin + url.pathname;
}

// Lookups ignore `Vary`: kept entries are stored under bare URLs, without request headers.
const MATCH = { ignoreVary: true };

// Stores a copy of a good response, unless it is a file the worker keeps itself.
async function keep(key, response) {
  const path = new URL(key).pathname;
  if (!response.ok || response.type !== 'basic' || WORKER_KEPT.test(path)) return;
  const cache = await caches.open(CACHE);
  await cache.put(key, response);
}

// Network first; the kept copy when the network fails or the server fails (5xx).
async function networkFirst(event) {
  const { request } = event;
  const key = keyOf(request);
  const kept = () => caches.match(key, MATCH);
  let response;
  try {
    response = await fetch(request);
  } catch (e) {
    const cached = await kept();
    if (cached) return cached;
    throw e;
  }
  if (response.status >= 500) return (await kept()) || response;
  // Refresh only what an earlier visit chose to keep (pages that embed the element and
  // their files); anything else passes through untouched.
  if (response.ok && !response.redirected && (await caches.open(CACHE).then((c) => c.match(key, MATCH)))) {
    event.waitUntil(keep(key, response.clone()));
  }
  return response;
}

async function cacheFirst(event) {
  const cached = await caches.match(event.request, MATCH);
  return cached || fetch(event.request);
}

// `/dir/name.<hash>.ext` without its hash, or null for a name without one.
function unhashed(pathname) {
  const m = HASHED.exec(pathname);
  return m ? m[1] + m[2] : null;
}

self.addEventListener('fetch', (event) => {
  if (!handled(event.request)) return;
  const path = new URL(event.request.url).pathname;
  event.respondWith(HASHED.test(path) ? cacheFirst(event) : networkFirst(event));
});

// `{ type: 'cairn-cache', urls }` from the element: stores each same-origin URL not yet
// kept (fetched again, from the HTTP cache where it can), and answers on the message's port
// with `{ kept, failed }`.
self.addEventListener('message', (event) => {
  const msg = event.data || {};
  if (msg.type !== 'cairn-cache' || !Array.isArray(msg.urls)) return;
  const port = event.ports && event.ports[0];
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    let kept = 0;
    const failed = [];
    for (const raw of msg.urls) {
      let url;
      try {
        url = new URL(String(raw), self.location.href);
      } catch {
        failed.push(String(raw));
        continue;
      }
      url.hash = '';
      if (url.origin !== self.location.origin) continue;
      if (WORKER_KEPT.test(url.pathname)) continue;
      try {
        // A new build of a hashed file replaces the older ones kept under its name.
        const plain = unhashed(url.pathname);
        if (plain) {
          for (const req of await cache.keys()) {
            const other = new URL(req.url);
            if (other.pathname !== url.pathname && unhashed(other.pathname) === plain) await cache.delete(req);
          }
        }
        if (!(await cache.match(url.href, MATCH))) {
          let response = await fetch(url.href);
          if (!response.ok) throw new Error(`HTTP ${response.status}`);
          // A browser refuses a redirected response as the answer to a navigation: keep
          // the final page's bytes and headers as a plain response.
          if (response.redirected) {
            response = new Response(await response.blob(), { status: response.status, statusText: response.statusText, headers: response.headers });
          }
          await cache.put(url.href, response);
        }
        kept += 1;
      } catch (e) {
        failed.push(`${url.href} (${e.message})`);
      }
    }
    if (port) port.postMessage({ kept, failed });
  })());
});
