//! The only `#[wasm_bindgen]` code: a thin boundary of bytes in, results out.
//!
//! JavaScript (the worker in `www/cairn-worker.js`) fetches and caches the files and hands
//! their bytes to an [`Engine`]; every fallible call returns `Result<_, JsError>`, so bad
//! input becomes a JavaScript exception with a readable message instead of a trapped module.

#[cfg(feature = "ingest")]
mod ingest;
#[cfg(feature = "encoder")]
mod model;

use std::cell::RefCell;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::index::facets::{Condition, Counts, Filters, Sort};
use crate::index::lexical::RankingOptions;
use crate::index::sharded::ShardedIndex;
use crate::index::Index;
use crate::search::{Found, Hit, Mode, Refine, Searcher, Why};

fn js_err(e: crate::Error) -> JsError {
    JsError::new(&e.to_string())
}

/// What a loaded index holds, for status lines.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IndexInfo {
    passages: usize,
    dim: usize,
    model_name: String,
    model_fingerprint: String,
    bytes: usize,
}

impl IndexInfo {
    /// The status line's facts of an index (either layout): `bytes` is what was loaded.
    fn new(m: &crate::index::IndexMeta, passages: usize, bytes: usize) -> Self {
        IndexInfo {
            passages,
            dim: m.dim,
            model_name: m.model_name.clone(),
            model_fingerprint: m.model_fingerprint.clone(),
            bytes,
        }
    }
}

/// A search result as JavaScript sees it. Excerpt marks are UTF-16 offsets (what
/// `String.prototype.slice` takes), converted from the core's byte ranges.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WebHit {
    id: String,
    url: String,
    anchor: String,
    title: String,
    heading: String,
    score: f32,
    why: Why,
    excerpt: String,
    marks: Vec<(u32, u32)>,
    /// The page's meta values (`data-cairn-meta`: a date, an image's URL), as text.
    meta: std::collections::BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WebResults {
    /// The mode that ran ([`Mode::runs_as`]): `lexical` while the model is not loaded or
    /// for a blank query, what was asked otherwise.
    mode: Mode,
    hits: Vec<WebHit>,
    /// Where the query was embedded: `cpu` or `webgpu` (`cpu` when it was not embedded).
    backend: &'static str,
    timings: Timings,
    /// A sharded index's parts this search needed and the engine does not have yet: fetch
    /// them, `addPart` each, and search again (empty for a one-file index).
    need: Vec<String>,
    /// Parts it needed that were marked missing (`markMissing`): the search answered without
    /// them.
    missing: Vec<String>,
    /// How many passages matched, filters applied, before the cut to `k`.
    total: usize,
    /// Of those, how many carry each filter value: `{ key: { value: count } }` (every key
    /// and value of the index; empty for an index without filters).
    counts: Counts,
    /// The counts without the filters (Pagefind's `totalFilters`); left out for a search
    /// without filters (they are `counts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    total_counts: Option<Counts>,
}

/// Milliseconds spent in one search call.
#[derive(Serialize, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct Timings {
    /// Embedding the query (0 when it was not embedded).
    encode_ms: f64,
    /// Ranking: keywords, the dense scan, fusion, excerpts.
    search_ms: f64,
}

/// The options of [`Engine::search`]: `{ k, mode, filters, sort, ranking, backend }`, all
/// optional.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SearchOptions {
    /// Results wanted: 1 to 100 (default 10).
    k: Option<usize>,
    /// `hybrid` (default), `dense` or `lexical`.
    mode: Option<String>,
    /// Where to embed and scan: `auto` (default: `initGpu`'s choice), `cpu` or `webgpu`.
    backend: Option<String>,
    /// `filters`, `sort` and `ranking`, read by hand ([`filters_from_js`], [`sort_from_js`],
    /// [`ranking_from_js`]): serde's untagged enums would add a fifth to the keyword engine's
    /// size.
    #[serde(skip)]
    refine: Refine,
}

/// A JavaScript string, or array of strings, as a list.
fn strings(v: &JsValue, what: &str) -> Result<Vec<String>, JsError> {
    if let Some(s) = v.as_string() {
        return Ok(vec![s]);
    }
    if js_sys::Array::is_array(v) {
        return js_sys::Array::from(v)
            .iter()
            .map(|x| {
                x.as_string().ok_or_else(|| {
                    JsError::new(&format!("search options: {what}: every value is a string"))
                })
            })
            .collect();
    }
    Err(JsError::new(&format!(
        "search options: {what}: expected a value, a list of values, or {{ any, all, none }}"
    )))
}

/// A plain object's entries (not an array, not null).
fn entries(v: &JsValue, what: &str) -> Result<Vec<(String, JsValue)>, JsError> {
    match v.dyn_ref::<js_sys::Object>() {
        Some(o) if !js_sys::Array::is_array(v) && v.as_string().is_none() => {
            Ok(js_sys::Object::entries(o)
                .iter()
                .map(|e| {
                    let pair = js_sys::Array::from(&e);
                    (pair.get(0).as_string().unwrap_or_default(), pair.get(1))
                })
                .collect())
        }
        _ => Err(JsError::new(&format!(
            "search options: `{what}` is an object"
        ))),
    }
}

/// The `filters` option: `{ key: "value" | ["v1", "v2"] | { any, all, none } }`.
fn filters_from_js(v: &JsValue) -> Result<Filters, JsError> {
    let mut out = Filters::default();
    if v.is_undefined() || v.is_null() {
        return Ok(out);
    }
    for (key, value) in entries(v, "filters")? {
        let what = format!("filter `{key}`");
        let mut c = Condition::default();
        if value.as_string().is_some() || js_sys::Array::is_array(&value) {
            c.any = strings(&value, &what)?;
        } else {
            for (op, values) in entries(&value, &what)? {
                let list = strings(&values, &what)?;
                match op.as_str() {
                    "any" => c.any = list,
                    "all" => c.all = list,
                    "none" => c.none = list,
                    other => {
                        return Err(JsError::new(&format!(
                            "search options: {what}: unknown `{other}`, expected `any`, `all` \
                             or `none`"
                        )))
                    }
                }
            }
        }
        out.0.insert(key, c);
    }
    Ok(out)
}

/// The `sort` option: `"date:desc"`, or `{ date: "desc" }` (Pagefind's shape).
fn sort_from_js(v: &JsValue) -> Result<Option<Sort>, JsError> {
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    let text = match v.as_string() {
        Some(s) => s,
        None => match entries(v, "sort")?.as_slice() {
            [(key, order)] => format!("{key}:{}", order.as_string().unwrap_or_default()),
            _ => {
                return Err(JsError::new(
                    "search options: `sort` names one key, as { date: \"desc\" }",
                ))
            }
        },
    };
    text.parse::<Sort>().map(Some).map_err(js_err)
}

/// The `ranking` option: `{ titleWeight, headingWeight, termSaturation, pageLength }` (the
/// last two are BM25's k1 and b, named as Pagefind names its ranking settings), each
/// optional.
fn ranking_from_js(v: &JsValue) -> Result<RankingOptions, JsError> {
    let mut out = RankingOptions::default();
    if v.is_undefined() || v.is_null() {
        return Ok(out);
    }
    const NAMES: &str = "`titleWeight`, `headingWeight`, `termSaturation`, `pageLength`";
    for (key, value) in entries(v, "ranking")? {
        let slot = match key.as_str() {
            "titleWeight" => &mut out.title,
            "headingWeight" => &mut out.heading,
            "termSaturation" => &mut out.k1,
            "pageLength" => &mut out.b,
            other => {
                return Err(JsError::new(&format!(
                    "search options: ranking: unknown `{other}`, expected {NAMES}"
                )))
            }
        };
        match value.as_f64() {
            Some(x) => *slot = Some(x as f32),
            None if value.is_undefined() => {}
            None => {
                return Err(JsError::new(&format!(
                    "search options: ranking: `{key}` is a number"
                )))
            }
        }
    }
    // Ranges are checked by the search, in every mode (`Ranking::check`).
    Ok(out)
}

impl SearchOptions {
    fn from_js(options: JsValue) -> Result<Self, JsError> {
        let o: SearchOptions = if options.is_undefined() || options.is_null() {
            SearchOptions::default()
        } else {
            // serde-wasm-bindgen reads a struct's own fields by name and never sees the
            // others, so unknown fields are looked for here.
            if let Some(obj) = options.dyn_ref::<js_sys::Object>() {
                const KNOWN: [&str; 6] = ["k", "mode", "filters", "sort", "ranking", "backend"];
                for key in js_sys::Object::keys(obj).iter() {
                    let key = key.as_string().unwrap_or_default();
                    if !KNOWN.contains(&key.as_str()) {
                        return Err(JsError::new(&format!(
                            "search options: unknown field `{key}`, expected one of `k`, \
                             `mode`, `filters`, `sort`, `ranking`, `backend`"
                        )));
                    }
                }
            }
            let mut o: SearchOptions = serde_wasm_bindgen::from_value(options.clone())
                .map_err(|e| JsError::new(&format!("search options: {e}")))?;
            let get = |name: &str| js_sys::Reflect::get(&options, &name.into()).unwrap_or_default();
            o.refine = Refine {
                filters: filters_from_js(&get("filters"))?,
                sort: sort_from_js(&get("sort"))?,
                ranking: ranking_from_js(&get("ranking"))?,
            };
            o
        };
        if let Some(b) = o.backend.as_deref() {
            wants_gpu(Some(b), false)?;
        }
        Ok(o)
    }

    /// The filters and sort key asked for.
    fn refine(&self) -> &Refine {
        &self.refine
    }

    fn k(&self) -> usize {
        self.k.unwrap_or(10).clamp(1, 100)
    }

    #[cfg(not(feature = "encoder"))]
    fn mode_name(&self) -> &str {
        self.mode.as_deref().unwrap_or("hybrid")
    }

    #[cfg_attr(not(feature = "encoder"), allow(dead_code))]
    fn mode(&self) -> Result<Mode, JsError> {
        self.mode
            .as_deref()
            .map_or(Ok(Mode::Hybrid), str::parse)
            .map_err(js_err)
    }
}

/// Whether the `backend` option asks for the GPU (`chosen`: what `initGpu` chose, for
/// `auto`); an unknown name is an error.
fn wants_gpu(backend: Option<&str>, chosen: bool) -> Result<bool, JsError> {
    match backend {
        None | Some("") | Some("auto") => Ok(chosen),
        Some("cpu") => Ok(false),
        Some("webgpu") | Some("gpu") => Ok(true),
        Some(other) => Err(JsError::new(&format!(
            "unknown backend `{other}`; use cpu or webgpu"
        ))),
    }
}

fn web_hit(h: Hit) -> WebHit {
    let meta = h.meta;
    let marks = h.excerpt.utf16_marks();
    WebHit {
        id: h.id,
        url: h.url,
        anchor: h.anchor,
        title: h.title,
        heading: h.heading,
        score: h.score,
        why: h.why,
        excerpt: h.excerpt.text,
        marks,
        meta,
    }
}

/// The search engine of one page: an index, and later its model (and, where the browser has
/// WebGPU and it passes its check, a GPU path).
///
/// Keyword search works as soon as the index is loaded; once the model is loaded, queries
/// are embedded and searches are hybrid (or dense) as asked.
#[wasm_bindgen]
pub struct Engine {
    index: Option<Rc<Index>>,
    /// A sharded index (`loadMeta`), instead of `index`; its parts arrive by `addPart`.
    sharded: Option<Rc<RefCell<ShardedIndex>>>,
    /// The encoder and its GPU path (feature `encoder`; the keyword engine has neither).
    #[cfg(feature = "encoder")]
    model: model::ModelState,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

/// Plain objects for maps (the counts), as every other result field is.
fn to_js<T: Serialize>(v: &T) -> Result<JsValue, JsError> {
    let ser = serde_wasm_bindgen::Serializer::new().serialize_maps_as_objects(true);
    Ok(v.serialize(&ser)?)
}

fn results(
    ran: Mode,
    found: Found,
    backend: &'static str,
    timings: Timings,
) -> Result<JsValue, JsError> {
    let out = WebResults {
        mode: ran,
        hits: found.hits.into_iter().map(web_hit).collect(),
        backend,
        timings,
        need: found.gaps.need,
        missing: found.gaps.missing,
        total: found.total,
        counts: found.counts,
        total_counts: found.total_counts,
    };
    to_js(&out)
}

#[wasm_bindgen]
impl Engine {
    #[wasm_bindgen(constructor)]
    pub fn new() -> Engine {
        Engine {
            index: None,
            sharded: None,
            #[cfg(feature = "encoder")]
            model: model::ModelState::default(),
        }
    }

    /// Reads an index folder's `cairn-entry.json` with the one manifest reader (the checks
    /// `cairn search` makes): its layout version and the format versions of the files it
    /// names, each refused with both versions named. Returns the manifest as a plain object
    /// (`index`, `index_bytes`, `model`, `model_bytes`, `passages`, `index_format`, ...).
    #[wasm_bindgen(js_name = readManifest)]
    pub fn read_manifest(bytes: &[u8]) -> Result<JsValue, JsError> {
        let m = crate::index::manifest::Manifest::parse(bytes).map_err(js_err)?;
        Ok(serde_wasm_bindgen::to_value(&m)?)
    }

    /// Loads an index file (`index.<hash>.cidx`). Validates magic, version, checksum and
    /// structure; a model loaded earlier is dropped if the index was built with another one.
    /// A GPU path set up for the previous index is dropped too (call `initGpu` again).
    #[wasm_bindgen(js_name = loadIndex)]
    pub fn load_index(&mut self, bytes: Vec<u8>) -> Result<JsValue, JsError> {
        let index = Index::from_bytes(bytes).map_err(js_err)?;
        #[cfg(feature = "encoder")]
        self.model
            .index_changed(|fingerprint| index.check_model(fingerprint).is_ok());
        let info = IndexInfo::new(index.meta(), index.len(), index.byte_len());
        self.index = Some(Rc::new(index));
        self.sharded = None;
        Ok(serde_wasm_bindgen::to_value(&info)?)
    }

    /// Drops the loaded index (a page forgetting the visitor's own index); the model stays.
    /// Searches fail until the next `loadIndex`.
    #[wasm_bindgen(js_name = unloadIndex)]
    pub fn unload_index(&mut self) {
        #[cfg(feature = "encoder")]
        self.model.index_changed(|_| true);
        self.index = None;
        self.sharded = None;
    }

    /// Loads a sharded index's meta file (the manifest's `index` when its `index_format` is
    /// 2), instead of a one-file index. Its parts come by `addPart`, as searches name them
    /// (`need` in a search's result); `partFiles` lists them all for a prefetch. Searches
    /// run on the CPU (WebGPU embeds queries only with a one-file index, for now).
    #[wasm_bindgen(js_name = loadMeta)]
    pub fn load_meta(&mut self, bytes: Vec<u8>) -> Result<JsValue, JsError> {
        let index = ShardedIndex::from_meta(bytes).map_err(js_err)?;
        #[cfg(feature = "encoder")]
        self.model
            .index_changed(|fingerprint| index.check_model(fingerprint).is_ok());
        let info = IndexInfo::new(index.meta(), index.len(), index.meta_byte_len());
        self.sharded = Some(Rc::new(RefCell::new(index)));
        self.index = None;
        Ok(serde_wasm_bindgen::to_value(&info)?)
    }

    /// Adds a part of the sharded index: refused, naming the file, when its bytes are cut
    /// short, fail their checksum or are not the file its name hashes (evict it from any
    /// cache and fetch it again).
    #[wasm_bindgen(js_name = addPart)]
    pub fn add_part(&self, name: &str, bytes: Vec<u8>) -> Result<(), JsError> {
        let sharded = self
            .sharded
            .as_ref()
            .ok_or_else(|| JsError::new("no sharded index is loaded; call loadMeta first"))?;
        sharded.borrow_mut().add_part(name, bytes).map_err(js_err)
    }

    /// Records that a part cannot be had (its fetch failed): searches answer without it and
    /// name it in `missing`.
    #[wasm_bindgen(js_name = markMissing)]
    pub fn mark_missing(&self, name: &str) {
        if let Some(s) = &self.sharded {
            s.borrow_mut().mark_missing(name);
        }
    }

    /// Every part of the sharded index (its files' names); empty for a one-file index.
    #[wasm_bindgen(js_name = partFiles)]
    pub fn part_files(&self) -> Vec<String> {
        match &self.sharded {
            Some(s) => s.borrow().files().into_iter().map(String::from).collect(),
            None => Vec::new(),
        }
    }

    /// Every part of the sharded index not loaded yet, in the order to prefetch them (term
    /// chunks, vector shards, text groups); empty for a one-file index.
    #[wasm_bindgen(js_name = partsToFetch)]
    pub fn parts_to_fetch(&self) -> Vec<String> {
        match &self.sharded {
            Some(s) => {
                let s = s.borrow();
                s.files()
                    .into_iter()
                    .filter(|f| !s.has(f))
                    .map(String::from)
                    .collect()
            }
            None => Vec::new(),
        }
    }

    /// Whether an index is loaded (keyword search works).
    #[wasm_bindgen(getter, js_name = hasIndex)]
    pub fn has_index(&self) -> bool {
        self.index.is_some() || self.sharded.is_some()
    }

    /// Whether the model is loaded (meaning search works); always false in the keyword
    /// engine, which has no encoder.
    #[wasm_bindgen(getter, js_name = hasModel)]
    pub fn has_model(&self) -> bool {
        #[cfg(feature = "encoder")]
        return self.model.has_encoder();
        #[cfg(not(feature = "encoder"))]
        false
    }

    /// Whether a search of `query` in `mode` would use the query's vector (the one rule,
    /// [`Mode::embeds`]): a worker that embeds queries in another module (the keyword engine
    /// has no encoder) asks this before it embeds.
    #[wasm_bindgen(js_name = wantsVector)]
    pub fn wants_vector(query: &str, mode: &str) -> Result<bool, JsError> {
        let mode: Mode = mode.parse().map_err(js_err)?;
        Ok(mode.embeds(query))
    }

    /// Which engine this is: `full` (the encoder, and WebGPU where built with it) or
    /// `keyword` (the small module: index, keyword and vector ranking, no encoder).
    #[wasm_bindgen(getter)]
    pub fn build(&self) -> String {
        match (cfg!(feature = "encoder"), cfg!(feature = "gpu")) {
            (false, _) => "keyword".into(),
            (true, false) => "full-cpu".into(),
            (true, true) => "full".into(),
        }
    }

    /// Searches with a vector from [`Engine::embed_query`] (or `null`/`undefined` for
    /// keywords only), on the CPU. `mode` is `hybrid`, `dense` or `lexical`. Returns what
    /// [`Engine::search`] resolves to. For benchmarks that time the two steps apart; pages
    /// call `search`.
    #[wasm_bindgen(js_name = searchWith)]
    pub fn search_with(
        &self,
        vector: Option<Vec<f32>>,
        query: &str,
        k: usize,
        mode: &str,
    ) -> Result<JsValue, JsError> {
        let mode: Mode = mode.parse().map_err(js_err)?;
        self.search_refined(vector, query, k, mode, &Refine::default())
    }

    /// [`Engine::search_with`] with filters and a sort key, on the CPU.
    fn search_refined(
        &self,
        vector: Option<Vec<f32>>,
        query: &str,
        k: usize,
        mode: Mode,
        refine: &Refine,
    ) -> Result<JsValue, JsError> {
        let ran = mode.runs_as(vector.is_some(), query);
        let t0 = crate::clock::now_ms();
        let k = k.clamp(1, 100);
        let found = if let Some(sharded) = &self.sharded {
            let index = sharded.borrow();
            Searcher::new(&*index).find_refined(vector.as_deref(), None, query, k, mode, refine)
        } else {
            let index = self
                .index
                .as_ref()
                .ok_or_else(|| JsError::new("no index is loaded; call loadIndex first"))?;
            Searcher::new(&**index).find_refined(vector.as_deref(), None, query, k, mode, refine)
        }
        .map_err(js_err)?;
        let timings = Timings {
            encode_ms: 0.0,
            search_ms: crate::clock::now_ms() - t0,
        };
        results(ran, found, "cpu", timings)
    }

    /// The index's filters, each value with its number of passages: `{ key: { value: count
    /// } }` (empty for an index without filters), for a filter panel before any search.
    #[wasm_bindgen(getter)]
    pub fn filters(&self) -> Result<JsValue, JsError> {
        let totals = if let Some(s) = &self.sharded {
            s.borrow().facets().totals()
        } else if let Some(i) = &self.index {
            i.facets().totals()
        } else {
            Counts::new()
        };
        to_js(&totals)
    }

    /// The index's sort keys.
    #[wasm_bindgen(getter, js_name = sortKeys)]
    pub fn sort_keys(&self) -> Vec<String> {
        if let Some(s) = &self.sharded {
            s.borrow().facets().sort_keys().map(String::from).collect()
        } else if let Some(i) = &self.index {
            i.facets().sort_keys().map(String::from).collect()
        } else {
            Vec::new()
        }
    }

    /// The one search call: embeds the query when the model is loaded and the mode needs
    /// it (on the backend `initGpu` chose), then ranks; keyword results until the model is
    /// in ([`Mode::runs_as`], the one fallback rule). `options`: `{ k, mode, filters,
    /// sort, ranking, backend }`, all optional (see `SearchOptions`). Resolves to `{ mode, hits: [{ id,
    /// url, anchor, title, heading, score, why, excerpt, marks }], backend, timings: {
    /// encodeMs, searchMs }, need, missing }`, `mode` being the mode that ran; rejects with a
    /// readable message for bad options. The keyword engine, which has no encoder, answers
    /// with keywords (`searchWith` takes a vector made elsewhere).
    pub fn search(&self, query: String, options: JsValue) -> js_sys::Promise {
        let options = SearchOptions::from_js(options);
        #[cfg(feature = "encoder")]
        return model::search(self, query, options);
        #[cfg(not(feature = "encoder"))]
        {
            let out = options.and_then(|o| {
                let mode: Mode = o.mode_name().parse().map_err(js_err)?;
                self.search_refined(None, &query, o.k(), mode, o.refine())
            });
            match out {
                Ok(v) => js_sys::Promise::resolve(&v),
                Err(e) => js_sys::Promise::reject(&e.into()),
            }
        }
    }

    /// The int8 kernel the CPU path runs: `simd128`, or in the relaxed-SIMD build of the
    /// engine (the worker loads it where the browser validates it) `relaxed-pairs` or
    /// `relaxed-simd`, whichever ran this model faster when `loadModel` timed them.
    #[wasm_bindgen(getter)]
    pub fn kernel(&self) -> String {
        crate::kernels::Kernel::current().name().into()
    }

    /// The int8 kernels this build can run, the reference (`scalar`) first.
    #[wasm_bindgen(getter)]
    pub fn kernels(&self) -> Vec<String> {
        crate::kernels::Kernel::available()
            .into_iter()
            .map(|k| k.name().to_string())
            .collect()
    }

    /// Makes the CPU path run the int8 kernel named (one of `kernels`), for benchmarks and
    /// tests, until `loadModel` chooses again (the relaxed-SIMD build times its kernels on
    /// each model it loads; the SIMD128 build keeps the one named): every kernel gives the same vectors, only
    /// speed differs. Refused, with the names this build has, for any other name.
    #[wasm_bindgen(js_name = setKernel)]
    pub fn set_kernel(&self, name: &str) -> Result<(), JsError> {
        use crate::kernels::Kernel;
        let k = Kernel::by_name(name).map_err(|e| js_err(e.into()))?;
        Kernel::set_current(Some(k)).map_err(|e| js_err(e.into()))
    }
}
