// <cairn-search>: a search box that answers from the visitor's own machine.
//
//   <script type="module" src="/_cairn/cairn-search.js"></script>
//   <cairn-search index="/_cairn/" placeholder="Search the docs" results="8"></cairn-search>
//
// The element only renders: a worker (cairn-worker.js, beside this file) fetches, caches and
// searches. Text from the index is always inserted as text, never as HTML, and only http(s)
// and relative links are followed.
//
// Attributes read:    index (URL of the index folder), placeholder, results, mode
//                     (hybrid | dense | lexical), label (accessible name), backend
//                     (auto | webgpu | cpu; the page's ?backend= overrides it), wasm
//                     (auto | simd128: which engine build; auto takes the relaxed-SIMD
//                     build where the browser has relaxed SIMD; the page's ?wasm= overrides),
//                     service-worker (URL of cairn-sw.js, or of a script that imports it,
//                     at or above this page: registered, then told what to keep once search
//                     is ready, so the page and its search work offline on the next visit),
//                     offline-files (more URLs for it to keep: files the page fetches later),
//                     filters (filters chosen at the start: "section:Guide, tag:rust"),
//                     sort (order by a sort key instead of relevance: "date:desc"),
//                     ranking (keyword ranking settings other than the index's:
//                     "titleWeight:4, headingWeight:2, termSaturation:1.2, pageLength:0.75";
//                     a bad one is reported as the search's error)
// Filters:            an index built from pages with data-cairn-filter shows its filter
//                     values as toggle buttons with counts (for the query typed, or the
//                     whole index); values of one key are alternatives (any of them), keys
//                     combine (all of them). With a filter chosen and nothing typed, the
//                     results list what it selects. Results show their data-cairn-meta date
//                     and image.
// Attributes written: data-state   loading | keyword | ready | error
//                     data-backend cpu | webgpu (where queries are embedded, once the model
//                                  runs; the status line's details say why)
//                     data-kernel  the engine's int8 kernel: simd128 | relaxed-pairs | relaxed-simd
//                     data-engine  the engine answering: keyword (the small module a
//                                  sharded index starts on) | full | full-cpu
//                     data-mode    the mode of the results on screen
//                     data-offline ready (the service worker keeps this page and its search)
//                                  | partial (some files could not be kept) | unavailable
//                                  (no service worker here, or it failed; the details say)
// Events:             cairn-state   { state, message, detail }
//                     cairn-results { query, mode, hits, timings, total, counts, totalCounts,
//                                     filters }
// Properties:         lastResults   the detail of the last cairn-results event

const STYLE = `
:host { display: block; position: relative; font: inherit; color: inherit; max-width: 42rem; }
.box { position: relative; }
input {
  box-sizing: border-box; width: 100%; font: inherit; font-size: 1.05em; padding: .6em .8em;
  border: 1px solid #9aa3ad; border-radius: .5em; background: Canvas; color: CanvasText;
}
input:focus { outline: 2px solid #2f6fdf; outline-offset: 1px; }
.status { font-size: .8em; color: #5b6570; margin: .35em .2em; min-height: 1.2em; display: flex; gap: .6em; align-items: center; }
.status button { font: inherit; font-size: .95em; padding: .1em .6em; cursor: pointer; }
.status details { display: inline; }
.status summary { cursor: pointer; color: #2f6fdf; list-style: none; }
.status summary::-webkit-details-marker { display: none; }
.status details[open] { display: block; flex-basis: 100%; }
.status details p { margin: .2em 0; }
ul { list-style: none; margin: .2em 0 0; padding: 0; border: 1px solid #d3d8de; border-radius: .5em;
  background: Canvas; max-height: 70vh; overflow: auto; box-shadow: 0 6px 24px rgba(0,0,0,.12); }
ul[hidden] { display: none; }
li { border-bottom: 1px solid #eceff2; }
li:last-child { border-bottom: 0; }
li a { display: block; padding: .6em .8em; color: inherit; text-decoration: none; }
li[aria-selected="true"] a, li a:hover { background: #eef3fd; }
.title { font-weight: 600; }
.heading { color: #44505c; }
.excerpt { display: block; font-size: .9em; color: #44505c; margin-top: .25em; line-height: 1.4; }
mark { background: #ffe58a; color: inherit; padding: 0 .05em; border-radius: .15em; }
.badge { font-size: .7em; padding: .1em .5em; border-radius: 1em; margin-left: .5em; vertical-align: .15em;
  border: 1px solid currentColor; white-space: nowrap; }
.badge.keyword { color: #7a5a00; }
.badge.meaning { color: #1f5fbf; }
.badge.both { color: #1d7a3a; }
.empty { padding: .6em .8em; color: #5b6570; }
.filters { display: flex; flex-wrap: wrap; gap: .3em .8em; margin: .4em .2em 0; font-size: .85em; }
.filters[hidden] { display: none; }
.fkey { display: flex; flex-wrap: wrap; gap: .3em; align-items: center; }
.fkey > span { color: #5b6570; }
.chip { font: inherit; padding: .15em .6em; border: 1px solid #9aa3ad; border-radius: 1em;
  background: Canvas; color: CanvasText; cursor: pointer; }
.chip[aria-pressed="true"] { background: #2f6fdf; border-color: #2f6fdf; color: #fff; }
.chip:focus-visible { outline: 2px solid #2f6fdf; outline-offset: 1px; }
.chip .count { opacity: .75; margin-left: .3em; }
.chip.zero { opacity: .55; }
.meta { display: flex; gap: .6em; align-items: center; font-size: .8em; color: #5b6570; margin-top: .2em; }
.meta img { max-height: 2.5em; max-width: 4em; border-radius: .2em; }
`;

// Values shown per filter key before its "more" button (chosen values always show).
const CHIPS_SHOWN = 12;

// "section:Guide, tag:rust" -> { section: ['Guide'], tag: ['rust'] }
function parseFilters(text) {
  const out = {};
  for (const part of (text || '').split(',')) {
    const at = part.indexOf(':');
    if (at <= 0) continue;
    const key = part.slice(0, at).trim();
    const value = part.slice(at + 1).trim();
    if (key && value) (out[key] ||= []).includes(value) || out[key].push(value);
  }
  return out;
}

// The ranking attribute as the engine's `ranking` option: "titleWeight:4, pageLength:0.5" ->
// { titleWeight: 4, pageLength: 0.5 } (undefined for none). Values are numbers as written:
// one that is not is passed on as NaN, for the engine to report.
function parseRanking(text) {
  const out = {};
  for (const part of (text || '').split(',')) {
    if (!part.trim()) continue;
    const at = part.indexOf(':');
    // A part without "name:" goes on as a name the engine does not know, to be reported.
    if (at <= 0) {
      out[part.trim()] = NaN;
      continue;
    }
    const value = part.slice(at + 1).trim();
    out[part.slice(0, at).trim()] = value === '' ? NaN : Number(value);
  }
  return Object.keys(out).length ? out : undefined;
}

const BADGE = { keyword: 'keyword', meaning: 'meaning', both: 'keyword + meaning', filter: 'filter' };
let instances = 0;

function mb(bytes) {
  return (bytes / 1e6).toFixed(1);
}

// A link for a result, or null when the target is not http(s) or relative.
export function safeHref(url, anchor) {
  let raw = url || '';
  if (anchor) raw += '#' + encodeURI(anchor).replace(/#/g, '%23');
  if (!raw) return null;
  const scheme = /^\s*([a-z][a-z0-9+.-]*):/i.exec(raw);
  if (scheme && !/^https?$/i.test(scheme[1])) return null;
  try {
    const u = new URL(raw, document.baseURI);
    if (scheme && u.protocol !== 'http:' && u.protocol !== 'https:') return null;
    return u.href;
  } catch {
    return null;
  }
}

// Appends `text` to `parent` with the UTF-16 ranges `marks` wrapped in <mark>.
function appendMarked(parent, text, marks) {
  let at = 0;
  for (const [s, e] of [...(marks || [])].sort((a, b) => a[0] - b[0])) {
    if (s < at || e <= s || e > text.length) continue;
    if (s > at) parent.append(document.createTextNode(text.slice(at, s)));
    const m = document.createElement('mark');
    m.textContent = text.slice(s, e);
    parent.append(m);
    at = e;
  }
  if (at < text.length) parent.append(document.createTextNode(text.slice(at)));
}

// This page's address without its query and fragment: the service worker keeps a page
// under that one key, whatever query a visit came with.
function pageUrl() {
  return location.origin + location.pathname;
}

// The registration's active worker, once it has one (a first registration installs and
// activates in the background); rejects after a minute.
function activated(reg) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the service worker did not activate')), 60000);
    const check = () => {
      if (reg.active && reg.active.state === 'activated') {
        clearTimeout(timer);
        resolve(reg.active);
        return true;
      }
      return false;
    };
    if (check()) return;
    for (const w of [reg.installing, reg.waiting, reg.active]) {
      if (w) w.addEventListener('statechange', check);
    }
    reg.addEventListener('updatefound', () => reg.installing?.addEventListener('statechange', check));
  });
}

class CairnSearch extends HTMLElement {
  static get observedAttributes() {
    return ['placeholder', 'label'];
  }

  constructor() {
    super();
    this.uid = `cairn-${++instances}`;
    this.seq = 0;
    this.shownSeq = 0;
    this.active = -1;
    this.hits = [];
    this.progress = {};
    this.stateMessage = '';
    const root = this.attachShadow({ mode: 'open' });
    try {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(STYLE);
      root.adoptedStyleSheets = [sheet];
    } catch {
      const style = document.createElement('style');
      style.textContent = STYLE;
      root.append(style);
    }
    const box = document.createElement('div');
    box.className = 'box';
    this.input = document.createElement('input');
    Object.assign(this.input, { type: 'search', autocomplete: 'off', spellcheck: false });
    this.input.setAttribute('role', 'combobox');
    this.input.setAttribute('aria-autocomplete', 'list');
    this.input.setAttribute('aria-expanded', 'false');
    this.input.setAttribute('aria-controls', `${this.uid}-list`);
    this.statusLine = document.createElement('div');
    this.statusLine.className = 'status';
    this.statusLine.setAttribute('role', 'status');
    this.statusText = document.createElement('span');
    this.statusDetails = document.createElement('details');
    this.statusDetails.hidden = true;
    const summary = document.createElement('summary');
    summary.textContent = 'details';
    this.statusDetailsBody = document.createElement('div');
    this.statusDetails.append(summary, this.statusDetailsBody);
    this.statusLine.append(this.statusText, this.statusDetails);
    this.list = document.createElement('ul');
    this.list.id = `${this.uid}-list`;
    this.list.setAttribute('role', 'listbox');
    this.list.hidden = true;
    this.filterBar = document.createElement('div');
    this.filterBar.className = 'filters';
    this.filterBar.setAttribute('role', 'group');
    this.filterBar.setAttribute('aria-label', 'Filters');
    this.filterBar.hidden = true;
    this.chosen = {}; // key -> [values]: any of a key's values, all of the keys
    this.facets = null; // { filters: { key: { value: total } }, sortKeys }
    this.counts = null; // the last results' counts, for the chips
    this.expanded = new Set(); // keys whose every value is shown
    box.append(this.input, this.filterBar, this.statusLine, this.list);
    root.append(box);

    this.input.addEventListener('input', () => this.query());
    this.input.addEventListener('keydown', (e) => this.onKey(e));
    this.input.addEventListener('focus', () => this.hits.length && this.open(true));
    this.addEventListener('focusout', (e) => {
      if (!this.shadowRoot.contains(e.relatedTarget) && e.relatedTarget !== this) this.open(false);
    });
    this.onGlobalKey = (e) => this.globalKey(e);
  }

  connectedCallback() {
    this.attributeChangedCallback();
    document.addEventListener('keydown', this.onGlobalKey);
    if (this.worker) return;
    this.setState('loading', 'Loading search…');
    this.chosen = parseFilters(this.getAttribute('filters'));
    const base = new URL(this.getAttribute('index') || './_cairn/', document.baseURI).href;
    try {
      this.worker = new Worker(new URL('./cairn-worker.js', import.meta.url), { type: 'module' });
    } catch (e) {
      this.setState('error', `Search could not start: ${e.message}`);
      return;
    }
    this.worker.onmessage = (e) => this.onWorker(e.data);
    this.worker.onerror = (e) => this.setState('error', `Search could not start: ${e.message || 'worker failed'}`);
    const params = new URLSearchParams(location.search);
    const backend = params.get('backend') || this.getAttribute('backend') || 'auto';
    const wasm = params.get('wasm') || this.getAttribute('wasm') || 'auto';
    // prefetch="off": a sharded index's parts are fetched only as queries need them.
    const prefetch = (this.getAttribute('prefetch') || 'on') !== 'off';
    // own: the visitor's files are indexed here (ingest); the folder gives the model only.
    this.own = this.hasAttribute('own');
    this.worker.postMessage({ type: 'init', base, backend, wasm, prefetch, own: this.own });
    this.workerUrl = new URL('./cairn-worker.js', import.meta.url).href;
    this.registerServiceWorker();
  }

  // With the `own` attribute: indexes `files` (File objects, or { name, file } to give each
  // its path, e.g. a folder's `webkitRelativePath`) in the worker, replacing the index in
  // use. Progress comes as `cairn-ingest` events, whose detail is the worker's message
  // (`ingest-file`, `ingest-progress`, `ingest-done`, `ingest-cancelled`, `ingest-error`,
  // `own`). Nothing of the files leaves the browser.
  ingest(files) {
    const list = [...files].map((f) => (f instanceof Blob ? { name: f.webkitRelativePath || f.name, file: f } : f));
    this.worker?.postMessage({ type: 'ingest', files: list });
  }

  cancelIngest() {
    this.worker?.postMessage({ type: 'ingest-cancel' });
  }

  // Drops the own index, and the copy kept for the next visit.
  forget() {
    this.worker?.postMessage({ type: 'forget' });
  }

  // Registers the service worker named by the `service-worker` attribute (the site owner's
  // opt-in to offline use). What it should keep is sent once search is ready (keepOffline).
  async registerServiceWorker() {
    const src = this.getAttribute('service-worker');
    if (!src) return;
    const fail = (reason) => {
      this.offline = { state: 'unavailable', reason };
      this.dataset.offline = 'unavailable';
      this.renderStatus();
    };
    if (!('serviceWorker' in navigator)) return fail('this browser (or a page not served over https) has no service workers');
    const script = new URL(src, document.baseURI);
    // A service worker's scope is its own folder: check before registering, so a script
    // that cannot serve this page is not left installed.
    const scope = new URL('./', script).href;
    if (!pageUrl().startsWith(scope)) {
      return fail(`the service worker's scope ${scope} does not include this page: serve it from a folder at or above the page`);
    }
    try {
      const reg = await navigator.serviceWorker.register(script.href);
      this.serviceWorker = activated(reg);
      // Handled in keepOffline; a worker that never activates before search is ready (or
      // search that never gets ready) is not an uncaught error in the page.
      this.serviceWorker.catch(() => {});
      if (this.dataset.state === 'ready') this.keepOffline();
    } catch (e) {
      fail(`the service worker could not be registered: ${e.message}`);
    }
  }

  // Asks the service worker to keep this page, the files it loaded from its own site, those
  // named by the `offline-files` attribute (files the page fetches later, such as data
  // shown on a click), the element, the worker and the engine. (The worker keeps the index
  // and the model itself.)
  async keepOffline() {
    if (!this.serviceWorker || this.offlineAsked) return;
    this.offlineAsked = true;
    const origin = location.origin;
    const engine = (this.stateDetail || {}).engine || {};
    const loaded = performance.getEntriesByType('resource')
      .filter((e) => !['fetch', 'xmlhttprequest', 'beacon'].includes(e.initiatorType))
      .map((e) => e.name);
    const extra = (this.getAttribute('offline-files') || '').split(/\s+/).filter(Boolean)
      .map((u) => new URL(u, document.baseURI).href);
    const urls = [pageUrl(), import.meta.url, this.workerUrl, engine.js, engine.wasm, engine.keywordJs, engine.keywordWasm, ...extra, ...loaded]
      .filter((u) => typeof u === 'string' && u.startsWith(origin));
    try {
      const sw = await this.serviceWorker;
      const answer = await new Promise((resolve, reject) => {
        const channel = new MessageChannel();
        channel.port1.onmessage = (e) => resolve(e.data);
        setTimeout(() => reject(new Error('no answer from the service worker')), 60000);
        sw.postMessage({ type: 'cairn-cache', urls: [...new Set(urls)] }, [channel.port2]);
      });
      this.offline = { state: answer.failed.length ? 'partial' : 'ready', kept: answer.kept, failed: answer.failed };
    } catch (e) {
      this.offline = { state: 'unavailable', reason: e.message };
    }
    this.dataset.offline = this.offline.state;
    this.renderStatus();
  }

  disconnectedCallback() {
    document.removeEventListener('keydown', this.onGlobalKey);
  }

  attributeChangedCallback() {
    this.input.placeholder = this.getAttribute('placeholder') || 'Search';
    this.input.setAttribute('aria-label', this.getAttribute('label') || this.input.placeholder);
  }

  get resultCount() {
    const n = parseInt(this.getAttribute('results') || '8', 10);
    return Number.isFinite(n) && n > 0 ? Math.min(n, 50) : 8;
  }

  setState(state, message, detail = {}) {
    this.dataset.state = state;
    this.stateMessage = message;
    this.stateDetail = detail;
    if (detail.backend) this.dataset.backend = detail.backend;
    if (detail.kernel) this.dataset.kernel = detail.kernel;
    if (detail.build) this.dataset.engine = detail.build;
    this.renderStatus();
    if (state === 'ready') this.keepOffline();
    this.dispatchEvent(new CustomEvent('cairn-state', { detail: { state, message, detail } }));
  }

  renderStatus() {
    const d = this.stateDetail || {};
    let text = this.stateMessage;
    const model = this.progress.model;
    const index = this.progress.index;
    if (this.dataset.state === 'loading' && index && !index.cached && index.total) {
      text = `Loading the index: ${mb(index.loaded)} of ${mb(index.total)} MB`;
    } else if (this.dataset.state === 'keyword' && !d.modelError && model && !model.cached && model.total) {
      text = `Keyword results only; downloading the model: ${mb(model.loaded)} of ${mb(model.total)} MB`;
    } else if (this.dataset.state === 'keyword' && !d.modelError) {
      text = 'Keyword results only; loading the model…';
    } else if (this.dataset.state === 'ready' && this.own && !this.ownPassages) {
      text = 'Ready: add files to search them';
    } else if (this.dataset.state === 'ready') {
      const parts = [d.backend || 'cpu', d.quant, d.backend !== 'webgpu' && d.kernel].filter(Boolean);
      const what = this.own ? ` over ${this.ownPassages} passages of your files` : '';
      text = `Ready: keyword + meaning search${what} (${parts.join(', ')})`;
    }
    this.statusText.textContent = text;
    this.renderDetails(d);
    const failed = d.modelError || d.indexError;
    if (failed && !this.retryButton) {
      this.retryButton = document.createElement('button');
      this.retryButton.type = 'button';
      this.retryButton.textContent = 'Retry';
      this.retryButton.addEventListener('click', () => {
        this.retryButton.remove();
        this.retryButton = null;
        this.worker.postMessage({ type: 'retry' });
      });
      this.statusLine.append(this.retryButton);
    } else if (!failed && this.retryButton) {
      this.retryButton.remove();
      this.retryButton = null;
    }
  }

  // The backend choice and its calibration, as plain text lines.
  renderDetails(d) {
    const g = d.gpu;
    const lines = [];
    if (g) {
      lines.push(g.available ? `WebGPU adapter: ${g.adapter || 'yes'}` : 'WebGPU: not used');
      lines.push(g.reason);
      if (g.query) {
        const ms = (t) => `WebGPU ${t.gpuMs.toFixed(1)} ms, CPU ${t.cpuMs.toFixed(1)} ms`;
        lines.push(`Query: ${ms(g.query)} → ${g.queryBackend}`);
        lines.push(`Batch (per passage): ${ms(g.batch)} → ${g.batchBackend}`);
        if (g.scan && (g.scan.gpuMs || g.scan.cpuMs)) lines.push(`Dense scan: ${ms(g.scan)} → ${g.scanBackend}`);
        lines.push(`Least cosine to the CPU's vectors: ${Number(g.minCosine).toFixed(5)}`);
      }
    }
    const o = this.offline;
    if (o && o.state === 'unavailable') lines.push(`Offline use: unavailable (${o.reason})`);
    else if (o) {
      lines.push(`Offline use: this page and its search are kept for offline visits (${o.kept} files, and the index and model)`);
      for (const f of o.failed) lines.push(`Not kept: ${f}`);
    }
    this.statusDetails.hidden = lines.length === 0;
    this.statusDetailsBody.replaceChildren(...lines.map((l) => {
      const p = document.createElement('p');
      p.textContent = l;
      return p;
    }));
  }

  onWorker(msg) {
    switch (msg.type) {
      case 'state':
        // Keyword results upgrade to hybrid by themselves once the model is in: the worker
        // reruns the latest query (with its seq), so the element does not.
        this.setState(msg.state, msg.message, msg.detail || {});
        break;
      case 'progress':
        this.progress[msg.what] = msg;
        this.renderStatus();
        break;
      case 'results':
        if (msg.seq < this.shownSeq || msg.seq !== this.seq) return; // stale
        this.shownSeq = msg.seq;
        this.dataset.mode = msg.mode;
        this.lastResults = { query: msg.query, mode: msg.mode, hits: msg.hits, timings: msg.timings, missing: msg.missing || [], parts: msg.parts, build: msg.build, total: msg.total, counts: msg.counts, totalCounts: msg.totalCounts, filters: this.chosenFilters() };
        this.counts = msg.counts && Object.keys(msg.counts).length ? { within: msg.counts, without: msg.totalCounts || msg.counts } : null;
        this.renderFilters();
        this.render(msg.hits, msg.query, undefined, msg.missing || []);
        this.dispatchEvent(new CustomEvent('cairn-results', {
          detail: { query: msg.query, mode: msg.mode, hits: msg.hits, timings: msg.timings, total: msg.total, counts: msg.counts, totalCounts: msg.totalCounts, filters: this.lastResults.filters },
        }));
        break;
      case 'facets':
        this.facets = { filters: msg.filters || {}, sortKeys: msg.sortKeys || [] };
        // Chosen filters the index does not have (a key, or a value of a key) are dropped
        // and said in the console: no chip could unchoose them.
        for (const key of Object.keys(this.chosen)) {
          const values = this.facets.filters[key];
          const kept = values ? this.chosen[key].filter((v) => v in values) : [];
          if (kept.length < this.chosen[key].length) {
            console.warn(`<cairn-search>: this index has no filter value ${this.chosen[key].filter((v) => !kept.includes(v)).map((v) => `${key}:${v}`).join(', ')}`);
          }
          if (kept.length) this.chosen[key] = kept;
          else delete this.chosen[key];
        }
        this.renderFilters();
        if (this.hasFilters() && this.input.value.trim()) this.query();
        break;
      case 'prefetch':
        // A sharded index's idle prefetch: `done` once every part was tried.
        this.dataset.prefetch = msg.loaded + msg.failed >= msg.total ? 'done' : 'running';
        break;
      case 'search-error':
        if (msg.seq === this.seq) this.render([], this.input.value, msg.message);
        break;
      case 'own':
        this.ownPassages = msg.passages || 0;
        if (!this.ownPassages) this.render([], '');
        this.renderStatus();
        this.dispatchEvent(new CustomEvent('cairn-ingest', { detail: msg }));
        break;
      case 'ingest-file':
      case 'ingest-progress':
      case 'ingest-done':
      case 'ingest-cancelled':
      case 'ingest-error':
        this.dispatchEvent(new CustomEvent('cairn-ingest', { detail: msg }));
        break;
      default:
        break;
    }
  }

  // Whether filters are chosen (known once the index's filters are: a preset waits for them).
  hasFilters() {
    return Boolean(this.facets) && Object.values(this.chosen).some((v) => v.length);
  }

  // The chosen filters as the engine takes them (undefined for none, and until the index's
  // filters are known: a preset the index lacks is dropped then, not sent).
  chosenFilters() {
    if (!this.hasFilters()) return undefined;
    return Object.fromEntries(Object.entries(this.chosen).filter(([, v]) => v.length).map(([k, v]) => [k, [...v]]));
  }

  query() {
    const q = this.input.value;
    this.seq += 1;
    // Nothing typed: the chosen filters' listing, or nothing (and the chips show totals).
    if (!q.trim() && !this.hasFilters()) {
      this.shownSeq = this.seq;
      this.counts = null;
      this.renderFilters();
      this.render([], '');
      return;
    }
    this.worker?.postMessage({
      type: 'search',
      seq: this.seq,
      query: q,
      k: this.resultCount,
      mode: this.getAttribute('mode') || 'hybrid',
      filters: this.chosenFilters(),
      sort: this.getAttribute('sort') || undefined,
      ranking: parseRanking(this.getAttribute('ranking')),
    });
  }

  toggleFilter(key, value) {
    const list = (this.chosen[key] ||= []);
    const at = list.indexOf(value);
    if (at >= 0) list.splice(at, 1);
    else list.push(value);
    this.renderFilters();
    this.query();
  }

  // One toggle button per filter value, with its count for the results on screen (or the
  // whole index before a search); a key's chosen values always show, the rest up to
  // CHIPS_SHOWN by count, then a "more" button. Text only (values come from the index).
  renderFilters() {
    const all = this.facets?.filters || {};
    const keys = Object.keys(all);
    this.filterBar.hidden = keys.length === 0;
    const focused = this.shadowRoot.activeElement;
    const refocus = focused && focused.classList.contains('chip') ? [focused.dataset.key, focused.dataset.value] : null;
    this.filterBar.replaceChildren();
    for (const key of keys) {
      const group = document.createElement('div');
      group.className = 'fkey';
      group.setAttribute('role', 'group');
      group.setAttribute('aria-label', key);
      const label = document.createElement('span');
      label.textContent = `${key}:`;
      group.append(label);
      const chosen = this.chosen[key] || [];
      // A value's count: in the results on screen; for an unchosen value of a key already
      // narrowed, what the query has without the filters (what choosing it would add).
      const count = (v) => {
        if (!this.counts) return all[key][v];
        const from = chosen.length && !chosen.includes(v) ? this.counts.without : this.counts.within;
        return from[key]?.[v] ?? 0;
      };
      const values = Object.keys(all[key]).sort((a, b) => count(b) - count(a) || a.localeCompare(b));
      const shown = this.expanded.has(key) ? values : values.filter((v, i) => i < CHIPS_SHOWN || chosen.includes(v));
      for (const value of shown) {
        const chip = document.createElement('button');
        chip.type = 'button';
        chip.className = 'chip';
        chip.dataset.key = key;
        chip.dataset.value = value;
        const on = chosen.includes(value);
        chip.setAttribute('aria-pressed', String(on));
        const n = count(value);
        if (!n && !on) chip.classList.add('zero');
        chip.append(document.createTextNode(value));
        const c = document.createElement('span');
        c.className = 'count';
        c.textContent = `(${n})`;
        chip.append(c);
        chip.setAttribute('aria-label', `${key}: ${value}, ${n} ${n === 1 ? 'result' : 'results'}`);
        chip.addEventListener('click', () => this.toggleFilter(key, value));
        group.append(chip);
        if (refocus && refocus[0] === key && refocus[1] === value) queueMicrotask(() => chip.focus());
      }
      if (shown.length < values.length) {
        const more = document.createElement('button');
        more.type = 'button';
        more.className = 'chip more';
        more.textContent = `${values.length - shown.length} more`;
        more.addEventListener('click', () => {
          this.expanded.add(key);
          this.renderFilters();
        });
        group.append(more);
      }
      this.filterBar.append(group);
    }
  }

  render(hits, query, error, missing = []) {
    this.hits = hits;
    this.select(-1);
    this.list.replaceChildren();
    hits.forEach((hit, i) => {
      const li = document.createElement('li');
      li.id = `${this.uid}-opt-${i}`;
      li.setAttribute('role', 'option');
      li.setAttribute('aria-selected', 'false');
      li.dataset.why = hit.why;
      const a = document.createElement('a');
      // The visitor's own files have no page to open: their results are not links.
      const href = this.own ? null : safeHref(hit.url, hit.anchor);
      if (href) a.href = href;
      a.tabIndex = -1;
      const title = document.createElement('span');
      title.className = 'title';
      title.textContent = hit.title || hit.url || hit.id;
      a.append(title);
      if (hit.heading && hit.heading !== hit.title) {
        const h = document.createElement('span');
        h.className = 'heading';
        h.textContent = ` › ${hit.heading}`;
        a.append(h);
      }
      const badge = document.createElement('span');
      badge.className = `badge ${hit.why}`;
      badge.textContent = BADGE[hit.why] || hit.why;
      a.append(badge);
      const ex = document.createElement('span');
      ex.className = 'excerpt';
      appendMarked(ex, hit.excerpt || '', hit.marks);
      a.append(ex);
      const meta = hit.meta || {};
      if (meta.date || meta.image) {
        const m = document.createElement('span');
        m.className = 'meta';
        const src = meta.image && safeHref(meta.image);
        if (src) {
          const img = document.createElement('img');
          img.src = src;
          img.alt = '';
          img.loading = 'lazy';
          m.append(img);
        }
        if (meta.date) {
          const d = document.createElement('span');
          d.className = 'date';
          d.textContent = meta.date;
          m.append(d);
        }
        a.append(m);
      }
      li.append(a);
      li.addEventListener('mousedown', (e) => e.preventDefault()); // keep focus in the input
      this.list.append(li);
    });
    const listing = query.trim() || this.hasFilters();
    if (!hits.length && listing) {
      const li = document.createElement('li');
      li.className = 'empty';
      li.textContent = error ? `Search failed: ${error}` : 'No results';
      this.list.append(li);
    }
    // Parts of a sharded index that could not be had: said, with the other results above.
    if (missing.length && listing) {
      const li = document.createElement('li');
      li.className = 'empty missing';
      const first = missing[0];
      const more = missing.length > 1 ? ` (and ${missing.length - 1} more)` : '';
      li.textContent = `Some results could not be loaded: ${first.reason}${more}`;
      this.list.append(li);
    }
    this.open(Boolean(listing));
  }

  open(yes) {
    this.list.hidden = !yes;
    this.input.setAttribute('aria-expanded', String(yes));
    if (!yes) this.select(-1);
  }

  select(i) {
    this.active = i;
    [...this.list.children].forEach((li, j) => li.setAttribute('aria-selected', String(j === i)));
    const li = i >= 0 ? this.list.children[i] : null;
    if (li) {
      this.input.setAttribute('aria-activedescendant', li.id);
      li.scrollIntoView({ block: 'nearest' });
    } else {
      this.input.removeAttribute('aria-activedescendant');
    }
  }

  move(delta) {
    if (!this.hits.length) return;
    this.open(true);
    const n = this.hits.length;
    this.select(this.active < 0 ? (delta > 0 ? 0 : n - 1) : (this.active + delta + n) % n);
  }

  onKey(e) {
    if (e.key === 'ArrowDown') {
      e.preventDefault();
      this.move(1);
    } else if (e.key === 'ArrowUp') {
      e.preventDefault();
      this.move(-1);
    } else if (e.key === 'Enter') {
      const li = this.list.children[this.active >= 0 ? this.active : 0];
      const a = li && li.querySelector('a[href]');
      if (a && this.hits.length) {
        e.preventDefault();
        a.click();
      }
    } else if (e.key === 'Escape') {
      e.preventDefault();
      if (!this.list.hidden) this.open(false);
      else {
        this.input.value = '';
        this.query();
      }
    }
  }

  globalKey(e) {
    const t = e.composedPath()[0];
    const typing = t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
    const slash = e.key === '/' && !typing && !e.ctrlKey && !e.metaKey && !e.altKey;
    const ctrlK = (e.ctrlKey || e.metaKey) && (e.key === 'k' || e.key === 'K');
    if (slash || ctrlK) {
      e.preventDefault();
      this.input.focus();
      this.input.select();
    }
  }
}

if (!customElements.get('cairn-search')) customElements.define('cairn-search', CairnSearch);
export { CairnSearch };
