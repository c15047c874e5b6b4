//! The encoder's side of the engine (feature `encoder`): the model, query embedding, and
//! the WebGPU path where built with it (feature `gpu`). The keyword engine is built without
//! it (`scripts/build-wasm.sh`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use serde::Serialize;
use wasm_bindgen::prelude::*;

use super::{js_err, results, wants_gpu, Engine, SearchOptions, Timings};
use crate::index::sharded::ShardedIndex;
use crate::index::Index;
use crate::search::{Found, Mode, Refine, Searcher};
use crate::{Encoder, Role};

/// A sentence encoder for JavaScript: construct from the bundle's bytes, embed text.
#[wasm_bindgen(js_name = Encoder)]
pub struct WasmEncoder {
    inner: Encoder,
}

#[wasm_bindgen(js_class = Encoder)]
impl WasmEncoder {
    /// Loads a model bundle (the bytes of a `.gguf` file made by `cairn model convert`).
    #[wasm_bindgen(constructor)]
    pub fn new(bundle: &[u8]) -> Result<WasmEncoder, JsError> {
        let inner = Encoder::from_bytes(bundle).map_err(js_err)?;
        Ok(Self { inner })
    }

    /// Embeds one text as a query (`role = "query"`) or a document (`"document"`); returns a
    /// unit-length `Float32Array`.
    pub fn embed(&self, text: &str, role: &str) -> Result<Vec<f32>, JsError> {
        let role: Role = role.parse().map_err(js_err)?;
        let mut v = self.inner.embed(&[text], role).map_err(js_err)?;
        v.pop()
            .ok_or_else(|| JsError::new("the encoder returned no vector"))
    }

    /// Length of the vectors.
    #[wasm_bindgen(getter)]
    pub fn dim(&self) -> usize {
        self.inner.dim()
    }

    /// SHA-256 of the bundle's weights.
    #[wasm_bindgen(getter)]
    pub fn fingerprint(&self) -> String {
        self.inner.fingerprint().to_string()
    }

    /// The quantization of the bundle (`q8_0`, `q4_0`, ...).
    #[wasm_bindgen(getter)]
    pub fn quant(&self) -> String {
        self.inner.quant().to_string()
    }
}

/// What the engine holds for meaning search: the encoder, the GPU path, and the last query
/// vector of a sharded search.
pub(super) struct ModelState {
    /// The last query embedded for the sharded index, reused by the rounds of one search
    /// (search, fetch the parts it names, search again).
    last_vector: Rc<LastVector>,
    encoder: Option<Rc<Encoder>>,
    /// Set by `initGpu` (an async call, hence the cell); read by the async search calls.
    gpu: Rc<RefCell<Option<Rc<gpu::State>>>>,
    /// The bundle `loadModel(bytes, true)` read (a copy; the CPU encoder took the original's
    /// tensors), kept for the next `initGpu`: the bytes cross into wasm and are checked once.
    gpu_bundle: Option<crate::model::gguf::Bundle>,
    /// The GPU encoder for in-browser indexing (`initGpuBatches`), built without an index:
    /// documents are embedded on it by `embedDocumentsGpu`.
    batch_gpu: Rc<RefCell<Option<Rc<gpu::BatchEncoder>>>>,
    /// Bumped by every `loadModel` only: a batch encoder set up for the previous model is
    /// not installed (a new index changes nothing for it).
    model_generation: Rc<Cell<u64>>,
    /// Bumped by every `loadIndex`, `loadMeta` and `loadModel`: a GPU set-up that started
    /// before one of them (it awaits the GPU) must not install state built for the old files.
    generation: Rc<Cell<u64>>,
    /// What `loadModel` timed of the build's relaxed-SIMD kernels: name and milliseconds,
    /// fastest first (empty in the SIMD128 build).
    kernel_times: Vec<(String, f64)>,
}

impl Default for ModelState {
    fn default() -> Self {
        ModelState {
            last_vector: Rc::new(RefCell::new(None)),
            encoder: None,
            gpu: Rc::new(RefCell::new(None)),
            gpu_bundle: None,
            batch_gpu: Rc::new(RefCell::new(None)),
            model_generation: Rc::new(Cell::new(0)),
            generation: Rc::new(Cell::new(0)),
            kernel_times: Vec::new(),
        }
    }
}

impl ModelState {
    /// A new index was loaded: the model is dropped unless `fits` its fingerprint, and the
    /// GPU path and the last query vector (both made for the old index) are dropped.
    pub(super) fn index_changed(&mut self, fits: impl Fn(&str) -> bool) {
        if let Some(enc) = &self.encoder {
            if !fits(enc.fingerprint()) {
                self.encoder = None;
                self.gpu_bundle = None;
            }
        }
        self.last_vector.replace(None);
        self.gpu.replace(None);
        self.generation.set(self.generation.get() + 1);
    }

    pub(super) fn has_encoder(&self) -> bool {
        self.encoder.is_some()
    }
}

impl Engine {
    fn encoder(&self) -> Result<&Encoder, JsError> {
        self.model
            .encoder
            .as_deref()
            .ok_or_else(|| JsError::new("the model is not loaded yet"))
    }
}

/// [`Engine::search`] with the encoder: the query embedded when the mode needs it.
pub(super) fn search(
    engine: &Engine,
    query: String,
    options: Result<SearchOptions, JsError>,
) -> js_sys::Promise {
    let m = &engine.model;
    let (index, encoder) = (engine.index.clone(), m.encoder.clone());
    let state = m.gpu.borrow().clone();
    if let Some(sharded) = engine.sharded.clone() {
        let last = m.last_vector.clone();
        return wasm_bindgen_futures::future_to_promise(async move {
            let options = options?;
            search_sharded(&sharded, &last, encoder, state, query, options).await
        });
    }
    wasm_bindgen_futures::future_to_promise(async move {
        let options = options?;
        let index =
            index.ok_or_else(|| JsError::new("no index is loaded; call loadIndex first"))?;
        let (mode, k) = (options.mode()?, options.k());
        let backend = options.backend.as_deref();
        let mut timings = Timings::default();
        let t0 = crate::clock::now_ms();
        let (vector, on) = match &encoder {
            Some(_) if mode.embeds(&query) => {
                let on = gpu::embeds_on(state.as_deref(), backend)?;
                (
                    Some(gpu::embed(encoder, state.clone(), &query, backend).await?),
                    on,
                )
            }
            _ => (None, "cpu"),
        };
        let t1 = crate::clock::now_ms();
        timings.encode_ms = if vector.is_some() { t1 - t0 } else { 0.0 };
        let refine = options.refine();
        let (ran, found) = rank(&index, state, vector, &query, k, mode, backend, refine).await?;
        timings.search_ms = crate::clock::now_ms() - t1;
        Ok(results(ran, found, on, timings)?)
    })
}

/// The encoder's calls of the engine.
#[wasm_bindgen]
impl Engine {
    /// Loads the model bundle (`model.<hash>.gguf`). Refused, with both fingerprints named,
    /// if the loaded index was built with another model. With `keepForGpu` the engine keeps a
    /// copy of the bundle it read for the next `initGpu` (which releases it), so the bytes
    /// need not cross again nor be parsed and hashed a second time.
    #[wasm_bindgen(js_name = loadModel)]
    pub fn load_model(
        &mut self,
        bytes: Vec<u8>,
        keep_for_gpu: Option<bool>,
    ) -> Result<(), JsError> {
        self.model.gpu_bundle = None;
        // Read once: the CPU encoder takes the bundle's tensors, a copy is kept for the GPU.
        let bundle = crate::model::gguf::read_bundle(&bytes).map_err(js_err)?;
        drop(bytes);
        if let Some(index) = &self.index {
            index.check_model(&bundle.fingerprint).map_err(js_err)?;
        }
        if let Some(s) = &self.sharded {
            s.borrow()
                .check_model(&bundle.fingerprint)
                .map_err(js_err)?;
        }
        let kept = match keep_for_gpu.unwrap_or(false) {
            true => Some(bundle.duplicate().map_err(js_err)?),
            false => None,
        };
        let enc = Encoder::from_bundle(bundle).map_err(js_err)?;
        // The relaxed-SIMD build has two kernels whose order depends on how the engine
        // lowers the relaxed dot products (one VNNI instruction or three): time both on this
        // model. They give the same numbers; only speed differs.
        use crate::kernels::Kernel;
        let relaxed = [Kernel::RelaxedPairs, Kernel::RelaxedSimd];
        let times = enc.time_kernels(&relaxed, &crate::clock::now_ms);
        let pairs = times
            .iter()
            .find(|t| t.0 == Kernel::RelaxedPairs)
            .map(|t| t.1);
        let pick = match (times.first(), pairs) {
            // relaxed-pairs is never slower than SIMD128 (`Kernel::best`): the dot-add kernel
            // only where it is clearly faster, not on a tie read from a coarse clock.
            (Some(&(k, ms)), Some(p)) if k != Kernel::RelaxedPairs && ms < 0.9 * p => Some(k),
            (_, Some(_)) => Some(Kernel::RelaxedPairs),
            (first, None) => first.map(|t| t.0),
        };
        if let Some(k) = pick {
            Kernel::set_current(Some(k)).map_err(|e| js_err(e.into()))?;
        }
        self.model.kernel_times = times
            .into_iter()
            .map(|(k, ms)| (k.name().to_string(), ms))
            .collect();
        self.model.encoder = Some(Rc::new(enc));
        self.model.gpu_bundle = kept;
        self.model.gpu.replace(None);
        self.model.batch_gpu.replace(None);
        let g = &self.model.model_generation;
        g.set(g.get() + 1);
        self.model.generation.set(self.model.generation.get() + 1);
        Ok(())
    }

    /// What `loadModel` timed to choose the int8 kernel (the relaxed-SIMD build's two,
    /// on the model's first layer with 32 rows): `[{ kernel, ms }]`, fastest first; empty
    /// in the SIMD128 build. `relaxed-simd` runs only when it took under 0.9x the time of
    /// `relaxed-pairs`.
    #[wasm_bindgen(getter, js_name = kernelTimes)]
    pub fn kernel_times(&self) -> Result<JsValue, JsError> {
        #[derive(Serialize)]
        struct Timed<'a> {
            kernel: &'a str,
            ms: f64,
        }
        let v: Vec<Timed> = self
            .model
            .kernel_times
            .iter()
            .map(|(k, ms)| Timed { kernel: k, ms: *ms })
            .collect();
        serde_wasm_bindgen::to_value(&v).map_err(|e| JsError::new(&e.to_string()))
    }

    /// The loaded model's quantization (`q8_0`, `q4_0`, ...), or `undefined`.
    #[wasm_bindgen(getter)]
    pub fn quant(&self) -> Option<String> {
        self.model.encoder.as_ref().map(|e| e.quant().to_string())
    }

    /// Embeds a query with the loaded model on the CPU: a unit `Float32Array`.
    #[wasm_bindgen(js_name = embedQuery)]
    pub fn embed_query(&self, query: &str) -> Result<Vec<f32>, JsError> {
        self.encoder()?.embed_query(query).map_err(js_err)
    }

    /// The loaded model's facts an index records and ingest needs: `{ fingerprint, name,
    /// quant, dim, maxTokens }` (`maxTokens`: the token budget a text is cut at).
    #[wasm_bindgen(js_name = modelInfo)]
    pub fn model_info(&self) -> Result<JsValue, JsError> {
        let enc = self.encoder()?;
        let v = serde_json::json!({
            "fingerprint": enc.fingerprint(),
            "name": enc.config().name,
            "quant": enc.quant(),
            "dim": enc.dim(),
            "maxTokens": enc.config().max_seq_length,
        });
        let ser = serde_wasm_bindgen::Serializer::new().serialize_maps_as_objects(true);
        Ok(v.serialize(&ser)?)
    }

    /// Tokens `text` takes as a document, before the model's cut (so it can exceed
    /// `maxTokens`): what ingest splits long sections by.
    #[wasm_bindgen(js_name = tokenCount)]
    pub fn token_count(&self, text: &str) -> Result<usize, JsError> {
        self.encoder()?
            .token_count(text, Role::Document)
            .map_err(js_err)
    }

    /// Embeds `texts` as documents on the CPU: one unit vector of `dim` values per text, in
    /// order, in one `Float32Array`. In-browser indexing calls it a batch at a time.
    #[wasm_bindgen(js_name = embedDocuments)]
    pub fn embed_documents(&self, texts: Vec<String>) -> Result<Vec<f32>, JsError> {
        let enc = self.encoder()?;
        let vectors = enc.embed(&texts, Role::Document).map_err(js_err)?;
        Ok(vectors.concat())
    }

    /// Sets up WebGPU for embedding documents in batches (in-browser indexing), with no
    /// index needed: the GPU encoder is built from the bundle `loadModel(bytes, true)` kept
    /// (released here). Resolves to `{ available, adapter, reason }`; never rejects. Which
    /// path is faster is for the caller to time (`embedDocuments` against
    /// `embedDocumentsGpu` on its first batch), as is the vectors' agreement.
    #[wasm_bindgen(js_name = initGpuBatches)]
    pub fn init_gpu_batches(&mut self) -> js_sys::Promise {
        let bundle = self.model.gpu_bundle.take();
        let slot = self.model.batch_gpu.clone();
        let generation = self.model.model_generation.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let started = generation.get();
            let report = gpu::init_batches(bundle, slot.clone()).await;
            if generation.get() != started {
                slot.replace(None); // a new model came while this awaited the GPU
            }
            let ser = serde_wasm_bindgen::Serializer::new().serialize_maps_as_objects(true);
            Ok(report.serialize(&ser)?)
        })
    }

    /// [`Engine::embed_documents`] on the GPU encoder `initGpuBatches` built (tokenized
    /// here on the CPU, the same tokens). Resolves to one `Float32Array` of `dim` values per
    /// text.
    #[wasm_bindgen(js_name = embedDocumentsGpu)]
    pub fn embed_documents_gpu(&self, texts: Vec<String>) -> js_sys::Promise {
        let encoder = self.model.encoder.clone();
        let batch = self.model.batch_gpu.borrow().clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let encoder = encoder.ok_or_else(|| JsError::new("the model is not loaded yet"))?;
            let batch = batch
                .ok_or_else(|| JsError::new("WebGPU batches are not set up (initGpuBatches)"))?;
            let v = gpu::embed_documents(&encoder, &batch, &texts).await?;
            Ok(js_sys::Float32Array::from(v.as_slice()).into())
        })
    }

    /// Sets up the WebGPU path, when this browser has an adapter: builds the GPU encoder
    /// from the bundle `loadModel(bytes, true)` kept (released here) and the GPU scorer for the
    /// loaded index, then calibrates: the same sample queries, a batch of the index's
    /// passages and the dense scan run on both paths; the GPU is refused if its vectors
    /// (cosine < 0.999) or its ranking differ from the CPU's, and otherwise each workload
    /// takes the faster path (`preference = "auto"`) or the GPU (`"webgpu"`).
    ///
    /// Resolves to `{ available, adapter?, accepted, queryBackend, batchBackend,
    /// scanBackend, minCosine, query: { cpuMs, gpuMs }, batch, scan, reason }`; never
    /// rejects for a missing or failing GPU (the reason says why the CPU stays).
    #[wasm_bindgen(js_name = initGpu)]
    pub fn init_gpu(&mut self, preference: String) -> js_sys::Promise {
        let (index, encoder, slot) = (
            self.index.clone(),
            self.model.encoder.clone(),
            self.model.gpu.clone(),
        );
        let bundle = self.model.gpu_bundle.take();
        let generation = self.model.generation.clone();
        let sharded = self.sharded.is_some();
        wasm_bindgen_futures::future_to_promise(async move {
            if sharded {
                let reason = "WebGPU serves a one-file index only, for now: a sharded index \
                              searches on the CPU";
                return Ok(gpu::Report::unavailable(reason).to_js()?);
            }
            let report = gpu::init(index, encoder, bundle, &preference, slot, generation).await;
            Ok(report.to_js()?)
        })
    }

    /// The backend queries are embedded on: `cpu` or `webgpu`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        match self.model.gpu.borrow().as_ref() {
            Some(g) if g.query_on_gpu() => "webgpu".into(),
            _ => "cpu".into(),
        }
    }

    /// Embeds a query on the chosen backend (`initGpu`'s choice for single queries), or on
    /// the one named (`"cpu"`, `"webgpu"`). Resolves to a unit `Float32Array`.
    #[wasm_bindgen(js_name = embedQueryAsync)]
    pub fn embed_query_async(&self, query: String, backend: Option<String>) -> js_sys::Promise {
        let (encoder, state) = (self.model.encoder.clone(), self.model.gpu.borrow().clone());
        wasm_bindgen_futures::future_to_promise(async move {
            let v = gpu::embed(encoder, state, &query, backend.as_deref()).await?;
            Ok(js_sys::Float32Array::from(v.as_slice()).into())
        })
    }

    /// [`Engine::search_with`], with the dense scan on the chosen backend (or the one
    /// named). Resolves to the same `{ mode, hits }`.
    #[wasm_bindgen(js_name = searchWithAsync)]
    pub fn search_with_async(
        &self,
        vector: Option<Vec<f32>>,
        query: String,
        k: usize,
        mode: String,
        backend: Option<String>,
    ) -> js_sys::Promise {
        let (index, state) = (self.index.clone(), self.model.gpu.borrow().clone());
        wasm_bindgen_futures::future_to_promise(async move {
            let index =
                index.ok_or_else(|| JsError::new("no index is loaded; call loadIndex first"))?;
            let mode: Mode = mode.parse().map_err(js_err)?;
            let t0 = crate::clock::now_ms();
            let k = k.clamp(1, 100);
            let refine = Refine::default();
            let (ran, found) = rank(
                &index,
                state,
                vector,
                &query,
                k,
                mode,
                backend.as_deref(),
                &refine,
            )
            .await?;
            let timings = Timings {
                encode_ms: 0.0,
                search_ms: crate::clock::now_ms() - t0,
            };
            Ok(results(ran, found, "cpu", timings)?)
        })
    }
}

/// A query, its vector and the backend that embedded it.
type LastVector = RefCell<Option<(String, Vec<f32>, &'static str)>>;

/// [`Engine::search`] over a sharded index: the query embedded once for all the rounds of a
/// search (the worker searches again after fetching the parts a round names), ranked on the
/// CPU, with the parts it lacked in `need` and `missing`.
async fn search_sharded(
    sharded: &RefCell<ShardedIndex>,
    last: &LastVector,
    encoder: Option<Rc<Encoder>>,
    state: Option<Rc<gpu::State>>,
    query: String,
    options: SearchOptions,
) -> Result<JsValue, JsValue> {
    let (mode, k) = (options.mode()?, options.k());
    let backend = options.backend.as_deref();
    let mut timings = Timings::default();
    let t0 = crate::clock::now_ms();
    let (vector, on) = match &encoder {
        Some(_) if mode.embeds(&query) => {
            let cached = last
                .borrow()
                .as_ref()
                .filter(|(q, _, _)| *q == query)
                .map(|(_, v, on)| (v.clone(), *on));
            match cached {
                Some((v, on)) => (Some(v), on),
                None => {
                    let on = gpu::embeds_on(state.as_deref(), backend)?;
                    let v = gpu::embed(encoder, state, &query, backend).await?;
                    last.replace(Some((query.clone(), v.clone(), on)));
                    timings.encode_ms = crate::clock::now_ms() - t0;
                    (Some(v), on)
                }
            }
        }
        _ => (None, "cpu"),
    };
    let t1 = crate::clock::now_ms();
    let ran = mode.runs_as(vector.is_some(), &query);
    let index = sharded.borrow();
    let found = Searcher::new(&*index)
        .find_refined(vector.as_deref(), None, &query, k, mode, options.refine())
        .map_err(js_err)?;
    timings.search_ms = crate::clock::now_ms() - t1;
    Ok(results(ran, found, on, timings)?)
}

/// Ranks `query` (with its vector when it was embedded) in `index`, the dense scan on the
/// backend asked for or chosen (the CPU's under a filter: the GPU scan does not filter);
/// returns the mode that ran and what was found.
#[allow(clippy::too_many_arguments)]
async fn rank(
    index: &Index,
    state: Option<Rc<gpu::State>>,
    vector: Option<Vec<f32>>,
    query: &str,
    k: usize,
    mode: Mode,
    backend: Option<&str>,
    refine: &Refine,
) -> Result<(Mode, Found), JsError> {
    let ran = mode.runs_as(vector.is_some(), query);
    let searcher = Searcher::new(index);
    let dense = match (&vector, ran) {
        (Some(v), Mode::Dense | Mode::Hybrid) if refine.filters.is_empty() => {
            gpu::scan(index, state, v, searcher.dense_depth(k), backend).await?
        }
        _ => None,
    };
    let found = searcher
        .find_refined(vector.as_deref(), dense, query, k, mode, refine)
        .map_err(js_err)?;
    Ok((ran, found))
}

/// The WebGPU path of the engine (feature `gpu`), or its stand-in that says why not.
mod gpu {
    use super::*;

    /// What `initGpu` resolves to: whether there is an adapter, and, when it was
    /// calibrated, the calibration's fields (`adapter`, `accepted`, `minCosine`, `query`,
    /// `batch`, `scan`, `queryBackend`, `batchBackend`, `scanBackend`, `reason`).
    pub struct Report {
        pub available: bool,
        pub reason: String,
        #[cfg(feature = "gpu")]
        pub calibration: Option<crate::gpu::Calibration>,
    }

    impl Report {
        pub fn unavailable(reason: impl Into<String>) -> Self {
            Report {
                available: false,
                reason: reason.into(),
                #[cfg(feature = "gpu")]
                calibration: None,
            }
        }

        /// As one plain JavaScript object.
        pub fn to_js(&self) -> Result<JsValue, JsError> {
            let ser = serde_wasm_bindgen::Serializer::new().serialize_maps_as_objects(true);
            #[cfg(feature = "gpu")]
            if let Some(c) = &self.calibration {
                let mut v = serde_json::to_value(c).map_err(|e| JsError::new(&e.to_string()))?;
                if let Some(o) = v.as_object_mut() {
                    o.insert("available".into(), self.available.into());
                }
                return Ok(v.serialize(&ser)?);
            }
            let v = serde_json::json!({
                "available": self.available,
                "accepted": false,
                "queryBackend": "cpu",
                "batchBackend": "cpu",
                "scanBackend": "cpu",
                "reason": self.reason,
            });
            Ok(v.serialize(&ser)?)
        }
    }

    /// What `initGpuBatches` resolves to.
    #[derive(Serialize)]
    pub struct BatchReport {
        pub available: bool,
        pub adapter: Option<String>,
        pub reason: String,
    }

    /// The GPU encoder of in-browser indexing, or its stand-in.
    #[cfg(feature = "gpu")]
    pub type BatchEncoder = crate::gpu::GpuEncoder;

    #[cfg(not(feature = "gpu"))]
    pub struct BatchEncoder;

    #[cfg(not(feature = "gpu"))]
    pub async fn init_batches(
        _: Option<crate::model::gguf::Bundle>,
        _: Rc<RefCell<Option<Rc<BatchEncoder>>>>,
    ) -> BatchReport {
        BatchReport {
            available: false,
            adapter: None,
            reason: "this build of the engine has no WebGPU support".into(),
        }
    }

    #[cfg(not(feature = "gpu"))]
    pub async fn embed_documents(
        _: &Encoder,
        _: &BatchEncoder,
        _: &[String],
    ) -> Result<Vec<f32>, JsError> {
        Err(JsError::new(
            "this build of the engine has no WebGPU support",
        ))
    }

    /// Builds the GPU encoder from the kept bundle into `slot`.
    #[cfg(feature = "gpu")]
    pub async fn init_batches(
        bundle: Option<crate::model::gguf::Bundle>,
        slot: Rc<RefCell<Option<Rc<BatchEncoder>>>>,
    ) -> BatchReport {
        let no = |reason: String| BatchReport {
            available: false,
            adapter: None,
            reason,
        };
        let Some(bundle) = bundle else {
            return no(
                "initGpuBatches needs the model: call loadModel(bytes, true) before it \
                       (the bundle it reads is kept for one WebGPU set-up)"
                    .into(),
            );
        };
        let ctx = match crate::gpu::GpuContext::new().await {
            Ok(Some(ctx)) => ctx,
            Ok(None) => return no("WebGPU is not available in this browser (no adapter)".into()),
            Err(e) => return no(format!("WebGPU could not start: {e}")),
        };
        match crate::gpu::GpuEncoder::new(&ctx, bundle) {
            Ok(enc) => {
                slot.replace(Some(Rc::new(enc)));
                BatchReport {
                    available: true,
                    adapter: Some(ctx.describe()),
                    reason: String::new(),
                }
            }
            Err(e) => BatchReport {
                available: true,
                adapter: Some(ctx.describe()),
                reason: format!("WebGPU set-up failed: {e}"),
            },
        }
    }

    /// Embeds documents on the GPU encoder, in the CPU path's batches and tokens.
    #[cfg(feature = "gpu")]
    pub async fn embed_documents(
        cpu: &Encoder,
        gpu: &BatchEncoder,
        texts: &[String],
    ) -> Result<Vec<f32>, JsError> {
        let mut out = Vec::with_capacity(texts.len() * cpu.dim());
        for chunk in texts.chunks(crate::model::DEFAULT_BATCH_SIZE) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let tokens = cpu.tokenize(&refs, Role::Document).map_err(js_err)?;
            for v in gpu.embed(&tokens).await.map_err(js_err)? {
                out.extend_from_slice(&v);
            }
        }
        Ok(out)
    }

    /// The engine's GPU session ([`crate::gpu::GpuSession`]), or its stand-in.
    #[cfg(feature = "gpu")]
    pub type State = crate::gpu::GpuSession;

    #[cfg(not(feature = "gpu"))]
    pub struct State;

    #[cfg(not(feature = "gpu"))]
    impl State {
        pub fn query_on_gpu(&self) -> bool {
            false
        }
    }

    #[cfg(not(feature = "gpu"))]
    pub async fn init(
        _: Option<Rc<Index>>,
        _: Option<Rc<Encoder>>,
        _: Option<crate::model::gguf::Bundle>,
        _: &str,
        _: Rc<RefCell<Option<Rc<State>>>>,
        _: Rc<Cell<u64>>,
    ) -> Report {
        Report::unavailable("this build of the engine has no WebGPU support")
    }

    /// Builds a [`crate::gpu::GpuSession`] and installs it in `slot` when it was accepted
    /// and neither the index nor the model changed while it was built (`generation`).
    #[cfg(feature = "gpu")]
    pub async fn init(
        index: Option<Rc<Index>>,
        encoder: Option<Rc<Encoder>>,
        bundle: Option<crate::model::gguf::Bundle>,
        preference: &str,
        slot: Rc<RefCell<Option<Rc<State>>>>,
        generation: Rc<Cell<u64>>,
    ) -> Report {
        use crate::gpu::{now_ms, Backend, GpuContext, GpuSession, Preference};
        let started = generation.get();
        let preference = match preference {
            "webgpu" | "gpu" => Preference::Gpu,
            _ => Preference::Auto,
        };
        let (Some(index), Some(encoder)) = (index, encoder) else {
            return Report::unavailable("load the index and the model before WebGPU");
        };
        let Some(bundle) = bundle else {
            return Report::unavailable(
                "initGpu needs the model: call loadModel(bytes, true) before it (the bundle \
                 it reads is kept for one initGpu)",
            );
        };
        let ctx = match GpuContext::new().await {
            Ok(Some(ctx)) => ctx,
            Ok(None) => {
                return Report::unavailable("WebGPU is not available in this browser (no adapter)")
            }
            Err(e) => return Report::unavailable(format!("WebGPU could not start: {e}")),
        };
        let built = GpuSession::build(&ctx, index, &encoder, bundle, preference, &now_ms).await;
        let session = match built {
            Ok(s) => s,
            Err(e) => {
                let mut r = Report::unavailable(format!("WebGPU set-up failed: {e}"));
                r.available = true;
                return r;
            }
        };
        let mut calibration = session.calibration().clone();
        if generation.get() != started {
            // `loadIndex` or `loadModel` ran while this awaited the GPU: what was built here
            // is for the old files, and must not reach their successors.
            calibration.accepted = false;
            calibration.query_backend = Backend::Cpu;
            calibration.batch_backend = Backend::Cpu;
            calibration.scan_backend = Backend::Cpu;
            calibration.reason =
                "the index or the model changed during WebGPU set-up; call initGpu again".into();
        }
        let report = Report {
            available: true,
            reason: calibration.reason.clone(),
            calibration: Some(calibration.clone()),
        };
        if calibration.accepted {
            slot.replace(Some(Rc::new(session)));
        }
        report
    }

    /// Embeds one query on the backend asked for (or chosen).
    pub async fn embed(
        encoder: Option<Rc<Encoder>>,
        state: Option<Rc<State>>,
        query: &str,
        backend: Option<&str>,
    ) -> Result<Vec<f32>, JsError> {
        let encoder = encoder.ok_or_else(|| JsError::new("the model is not loaded yet"))?;
        let on_gpu = embeds_on(state.as_deref(), backend)? == "webgpu";
        #[cfg(feature = "gpu")]
        if on_gpu {
            let state =
                state.ok_or_else(|| JsError::new("the WebGPU path is not set up (initGpu)"))?;
            return state.embed_query(&encoder, query).await.map_err(js_err);
        }
        #[cfg(not(feature = "gpu"))]
        if on_gpu {
            return Err(JsError::new(
                "this build of the engine has no WebGPU support",
            ));
        }
        encoder.embed_query(query).map_err(js_err)
    }

    /// The backend [`embed`] runs a query on: `webgpu` or `cpu`.
    pub fn embeds_on(
        state: Option<&State>,
        backend: Option<&str>,
    ) -> Result<&'static str, JsError> {
        let chosen = state.is_some_and(|s| s.query_on_gpu());
        Ok(if wants_gpu(backend, chosen)? {
            "webgpu"
        } else {
            "cpu"
        })
    }

    /// The dense ranking on the GPU when that is the backend asked for (or chosen), else
    /// `None` (the searcher computes it on the CPU).
    pub async fn scan(
        index: &Index,
        state: Option<Rc<State>>,
        vector: &[f32],
        depth: usize,
        backend: Option<&str>,
    ) -> Result<Option<Vec<(u32, f32)>>, JsError> {
        #[cfg(feature = "gpu")]
        {
            let chosen = state.as_ref().is_some_and(|s| s.scan_on_gpu());
            if !wants_gpu(backend, chosen)? {
                return Ok(None);
            }
            let state =
                state.ok_or_else(|| JsError::new("the WebGPU path is not set up (initGpu)"))?;
            // `None` for a session built for another index (the search began before a
            // `loadIndex`): the CPU ranks it.
            state.scan(index, vector, depth).await.map_err(js_err)
        }
        #[cfg(not(feature = "gpu"))]
        {
            let _ = (index, state, vector, depth);
            if wants_gpu(backend, false)? {
                return Err(JsError::new(
                    "this build of the engine has no WebGPU support",
                ));
            }
            Ok(None)
        }
    }
}
