//! `cairn index`: a site, a JSONL corpus or Markdown into a deployable index folder.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use cairn::index::cache::{EmbeddingCache, Mismatch};
use cairn::index::manifest::{hashed_name, Manifest, MANIFEST_NAME, MANIFEST_VERSION};
use cairn::index::sharded::{build_sharded, ShardOptions, ShardedIndex};
use cairn::index::{build_index, Index, Passage};

use crate::search::LoadedIndex;
use cairn::ingest::{self, EmbedPlan, SiteOptions};
use cairn::{Encoder, Role};

/// Where passages come from.
pub enum Source {
    Site(PathBuf),
    Jsonl(PathBuf),
    Markdown(PathBuf),
}

/// Passages per embedding call: progress is reported after each.
const EMBED_CHUNK: usize = 128;

/// How `cairn index` reads its source.
pub struct IndexOptions {
    /// Tokens shared by consecutive parts of a split section.
    pub overlap: usize,
    /// Prefix of page URLs (sites and Markdown).
    pub base_url: String,
    /// URL for JSONL records without one, `{id}` standing for the record's id.
    pub url_template: Option<String>,
    /// The browser UI to write beside the index (`None`: the index alone).
    pub ui: Option<crate::ui::UiSource>,
    /// Embed on the GPU when there is one.
    pub gpu: bool,
    /// The embedding cache file (`None`: embed everything, write no cache).
    pub cache: Option<PathBuf>,
    /// Write the sharded index (format version 2), with these sizes, instead of one file.
    pub sharded: Option<ShardOptions>,
}

/// Cairn's cache folder: $CAIRN_CACHE_DIR, $XDG_CACHE_HOME/cairn or ~/.cache/cairn.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("CAIRN_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("cairn")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/cairn")))
        .unwrap_or_else(|| std::env::temp_dir().join("cairn"))
}

/// The bundle `cairn index` uses without `--model`.
pub const DEFAULT_BUNDLE: &str = "all-minilm-l6-v2-q4_mix.gguf";

/// Where the default bundle may be: beside the installed binary (`make install` puts it in
/// PREFIX/share/cairn/), then the cache folder's models/.
pub fn default_model_places() -> Vec<PathBuf> {
    let mut places = Vec::new();
    if let Some(prefix) = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.canonicalize().ok()?.parent()?.parent()?.to_path_buf()))
    {
        places.push(prefix.join("share/cairn").join(DEFAULT_BUNDLE));
    }
    places.push(cache_dir().join("models").join(DEFAULT_BUNDLE));
    places
}

/// The default embedding cache of an output folder: one file per folder (named by its
/// absolute path's hash) in the user's cache directory, never inside the deployed folder.
pub fn default_cache_path(out: &Path) -> PathBuf {
    use sha2::{Digest, Sha256};
    let dir = cache_dir();
    let abs = std::path::absolute(out).unwrap_or_else(|_| out.to_path_buf());
    let h = Sha256::digest(abs.to_string_lossy().as_bytes());
    let hex: String = h[..8].iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("embeddings-{hex}.cemb"))
}

/// Reads the embedding cache at `path` for this model and backend, or starts an empty one
/// (saying why when a file was there but could not be used).
fn open_cache(path: &Path, enc: &Encoder, backend: &str) -> EmbeddingCache {
    let empty = || EmbeddingCache::new(enc.fingerprint(), backend, enc.dim());
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return empty(),
        Err(e) => {
            eprintln!(
                "embedding cache {}: {e}; embedding every passage",
                path.display()
            );
            return empty();
        }
    };
    match EmbeddingCache::from_bytes(&bytes, enc.fingerprint(), backend) {
        Ok(Ok(c)) => c,
        Ok(Err(Mismatch::Model(m))) => {
            eprintln!(
                "embedding cache {} was made with model {}; embedding every passage",
                path.display(),
                &m[..m.len().min(16)]
            );
            empty()
        }
        Ok(Err(Mismatch::Backend(b))) => {
            eprintln!(
                "embedding cache {} was made on {b}, not {backend}; embedding every passage",
                path.display()
            );
            empty()
        }
        Err(e) => {
            eprintln!("{} ({e}); embedding every passage", path.display());
            empty()
        }
    }
}

/// Writes the cache next to its final name and renames it into place, so an interrupted
/// build never leaves half a file.
fn save_cache(path: &Path, cache: &EmbeddingCache) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("cemb.tmp");
    std::fs::write(&tmp, cache.to_bytes())?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

pub fn index(model: &Path, source: Source, out: &Path, opts: &IndexOptions) -> Result<()> {
    let started = Instant::now();
    let model_bytes =
        std::fs::read(model).with_context(|| format!("reading {}", model.display()))?;
    // Read once; with --gpu a copy goes to the GPU upload.
    let bundle = cairn::model::gguf::read_bundle(&model_bytes)?;
    let gpu_bundle = match opts.gpu {
        true => Some(bundle.duplicate()?),
        false => None,
    };
    let enc = Encoder::from_bundle(bundle)?;
    // Sections longer than the model's budget (the model truncates, so the rest would be
    // invisible to meaning search) are embedded in overlapping parts (`ingest::split`).
    let budget = enc.config().max_seq_length;
    let count = |t: &str| enc.token_count(t, Role::Document).unwrap_or(usize::MAX);
    let (passages, plan): (Vec<Passage>, EmbedPlan) = match &source {
        Source::Site(dir) => {
            let site_opts = SiteOptions {
                base_url: opts.base_url.clone(),
            };
            let (passages, report) = ingest::ingest_site(dir, &site_opts)
                .with_context(|| format!("reading the site in {}", dir.display()))?;
            eprintln!(
                "read {} pages ({} left out: {})",
                report.pages_indexed,
                report.skipped.len(),
                summarize_skipped(&report.skipped)
            );
            let plan = EmbedPlan::parts(&passages, budget, opts.overlap, &count);
            (passages, plan)
        }
        Source::Markdown(dir) => {
            let passages = ingest::ingest_markdown(dir, &opts.base_url)
                .with_context(|| format!("reading Markdown in {}", dir.display()))?;
            let plan = EmbedPlan::parts(&passages, budget, opts.overlap, &count);
            (passages, plan)
        }
        // Corpus records stay whole (the model truncates them), as BEIR evaluates them.
        Source::Jsonl(file) => {
            let mut passages = ingest::ingest_jsonl(file)
                .with_context(|| format!("reading {}", file.display()))?;
            if let Some(t) = &opts.url_template {
                for p in passages.iter_mut().filter(|p| p.url.is_empty()) {
                    p.url = t.replace("{id}", &url_escape(&p.id));
                }
            }
            let plan = EmbedPlan::whole(&passages);
            (passages, plan)
        }
    };
    if passages.is_empty() {
        bail!("no passages found: is the path right, and does it contain HTML/JSONL/Markdown?");
    }
    let texts = &plan.texts;
    let bar = ProgressBar::new(texts.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} passages ({per_sec}, eta {eta})",
        )?
        .progress_chars("=> "),
    );
    let embedder = Embedder::new(&enc, gpu_bundle)?;
    let backend = embedder.backend();
    let mut cache = opts.cache.as_deref().map(|p| open_cache(p, &enc, &backend));
    let mut vectors = vec![Vec::new(); texts.len()];
    let mut todo: Vec<usize> = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        match cache.as_ref().and_then(|c| c.get(Role::Document, t)) {
            Some(v) => vectors[i] = v.to_vec(),
            None => todo.push(i),
        }
    }
    let from_cache = texts.len() - todo.len();
    eprintln!(
        "embedding {} of {} texts ({} passages; a long section in parts) on {}; \
         {from_cache} unchanged, from the cache",
        todo.len(),
        texts.len(),
        passages.len(),
        embedder.name()
    );
    bar.set_length(todo.len() as u64);
    bar.set_message("embedding");
    let embed_start = Instant::now();
    // Longest first over the whole corpus, so each batch pads little.
    todo.sort_by_key(|&i| std::cmp::Reverse(texts[i].len()));
    for chunk in todo.chunks(EMBED_CHUNK) {
        let batch: Vec<&str> = chunk.iter().map(|&i| texts[i].as_str()).collect();
        for (&i, v) in chunk.iter().zip(embedder.embed(&batch)?) {
            vectors[i] = v;
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let embed_secs = embed_start.elapsed().as_secs_f64();
    if let (Some(cache), Some(path)) = (cache.as_mut(), opts.cache.as_deref()) {
        for &i in &todo {
            cache.insert(Role::Document, &texts[i], vectors[i].clone())?;
        }
        // The cache keeps this build's passages only, so it does not grow with every edit.
        cache.retain(Role::Document, texts.iter().map(String::as_str));
        if let Err(e) = save_cache(path, cache) {
            eprintln!(
                "could not write the embedding cache {} ({e})",
                path.display()
            );
        }
    }
    // A section embedded in parts gets their mean.
    let vectors = plan.join(vectors)?;
    let (fingerprint, model_id) = (enc.fingerprint(), &enc.config().name);
    let (bytes, parts) = if let Some(shard_opts) = &opts.sharded {
        let files = build_sharded(&passages, &vectors, fingerprint, model_id, shard_opts)?;
        (files.meta, files.parts)
    } else {
        (
            build_index(&passages, &vectors, fingerprint, model_id)?,
            Vec::new(),
        )
    };
    // Read back through the reader `cairn search` and the browser use.
    let index = if opts.sharded.is_some() {
        let mut s = ShardedIndex::from_meta(bytes.clone()).context("re-reading the new index")?;
        for (name, part) in &parts {
            s.add_part(name, part.clone())
                .context("re-reading the new index")?;
        }
        LoadedIndex::Sharded(s)
    } else {
        LoadedIndex::One(Index::from_bytes(bytes.clone()).context("re-reading the new index")?)
    };

    std::fs::create_dir_all(out)?;
    // Remove files of earlier builds so the folder holds exactly one index and one model.
    for entry in std::fs::read_dir(out)? {
        let p = entry?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let index_file = ["index.", "terms.", "text.", "vecs."]
            .iter()
            .any(|s| name.starts_with(s))
            && name.ends_with(".cidx");
        if index_file || (name.starts_with("model.") && name.ends_with(".gguf")) {
            std::fs::remove_file(&p)?;
        }
    }
    let index_name = hashed_name("index", "cidx", &bytes);
    for (name, part) in &parts {
        std::fs::write(out.join(name), part)?;
    }
    let model_name = hashed_name("model", "gguf", &model_bytes);
    std::fs::write(out.join(&index_name), &bytes)?;
    std::fs::write(out.join(&model_name), &model_bytes)?;
    // The UI before the manifest: the manifest, written last, names only files present.
    // Without a UI to write, an earlier build's UI in the folder stays, and stays named.
    let engine = match &opts.ui {
        Some(ui) => Some(crate::ui::write(out, ui)?),
        None => previous_engine(out),
    };
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        index: index_name.clone(),
        index_bytes: bytes.len() as u64,
        model: model_name.clone(),
        model_bytes: model_bytes.len() as u64,
        model_fingerprint: enc.fingerprint().to_string(),
        model_name: enc.config().name.clone(),
        model_quant: enc.quant().to_string(),
        passages: passages.len(),
        dim: enc.dim(),
        index_format: if opts.sharded.is_some() {
            cairn::index::format::SHARDED_VERSION
        } else {
            cairn::index::format::ONE_FILE_VERSION
        },
        bundle_format: enc.bundle_format(),
        writer: Manifest::writer_name(),
        engine,
    };
    std::fs::write(
        out.join(MANIFEST_NAME),
        serde_json::to_string_pretty(&manifest)? + "\n",
    )?;

    let n = passages.len() as f64;
    eprintln!(
        "indexed {} passages in {:.1} s ({:.2} texts/s embedding, {} embedded, {} from the cache)",
        passages.len(),
        started.elapsed().as_secs_f64(),
        todo.len() as f64 / embed_secs.max(1e-9),
        todo.len(),
        from_cache
    );
    match &index {
        LoadedIndex::One(index) => {
            eprintln!("{:<16} {:>12} {:>12}", "section", "bytes", "per passage");
            for (name, size) in index.section_sizes() {
                eprintln!("{name:<16} {size:>12} {:>12.1}", size as f64 / n);
            }
        }
        LoadedIndex::Sharded(s) => {
            let t = s.table();
            eprintln!(
                "{:<16} {:>8} {:>12} {:>12}",
                "files", "count", "bytes", "largest"
            );
            eprintln!(
                "{:<16} {:>8} {:>12} {:>12}",
                "meta",
                1,
                bytes.len(),
                bytes.len()
            );
            for (what, stem) in [
                ("term chunks", "terms."),
                ("text groups", "text."),
                ("vector shards", "vecs."),
                ("centroids", "cent."),
            ] {
                let sizes: Vec<usize> = parts
                    .iter()
                    .filter(|(name, _)| name.starts_with(stem))
                    .map(|(_, b)| b.len())
                    .collect();
                let total: usize = sizes.iter().sum();
                let largest = sizes.iter().max().unwrap_or(&0);
                eprintln!("{what:<16} {:>8} {total:>12} {largest:>12}", sizes.len());
            }
            let rows = &t.vector_rows;
            eprintln!(
                "vector shards: {} to {} rows; a query probes the nearest until they hold {} rows",
                rows.iter().min().unwrap_or(&0),
                rows.iter().max().unwrap_or(&0),
                t.probe_rows
            );
        }
    }
    let total = bytes.len() as u64 + parts.iter().map(|(_, p)| p.len() as u64).sum::<u64>();
    eprintln!(
        "{:<16} {:>12} {:>12.1}\n{:<16} {:>12}",
        "index total",
        total,
        total as f64 / n,
        "model",
        model_bytes.len()
    );
    eprintln!(
        "wrote {} ({index_name}, {model_name})",
        out.join(MANIFEST_NAME).display()
    );
    Ok(())
}

/// The engine an earlier manifest of `out` names, when its files are all still there.
fn previous_engine(out: &Path) -> Option<cairn::index::manifest::EngineFiles> {
    let e = Manifest::read(out).ok()?.engine?;
    let present = e.names().all(|n| out.join(n).is_file());
    present.then_some(e)
}

/// Percent-encodes what may not stand in a URL (ids become parts of links).
fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn summarize_skipped(skipped: &[(String, ingest::Skipped)]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for (_, why) in skipped {
        let name = format!("{why:?}");
        match counts.iter_mut().find(|(n, _)| *n == name) {
            Some((_, c)) => *c += 1,
            None => counts.push((name, 1)),
        }
    }
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(n, c)| format!("{c} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where `cairn index` embeds passages: the CPU, or the GPU when asked for and present.
enum Embedder<'a> {
    Cpu(&'a Encoder),
    #[cfg(feature = "gpu")]
    Gpu(&'a Encoder, Box<cairn::gpu::GpuEncoder>, String),
}

impl<'a> Embedder<'a> {
    /// On the GPU when `bundle` (for its upload) is given and a GPU takes it.
    fn new(enc: &'a Encoder, bundle: Option<cairn::model::gguf::Bundle>) -> Result<Self> {
        let Some(bundle) = bundle else {
            return Ok(Embedder::Cpu(enc));
        };
        #[cfg(feature = "gpu")]
        {
            use cairn::gpu::{GpuContext, GpuEncoder};
            match pollster::block_on(GpuContext::new()) {
                Ok(Some(ctx)) => {
                    let name = ctx.describe();
                    match GpuEncoder::new(&ctx, bundle) {
                        Ok(g) => return Ok(Embedder::Gpu(enc, Box::new(g), name)),
                        Err(e) => eprintln!(
                            "--gpu: {name} could not take the model ({e}); embedding on the CPU"
                        ),
                    }
                }
                Ok(None) => eprintln!("--gpu: no GPU adapter found; embedding on the CPU"),
                Err(e) => eprintln!("--gpu: the GPU could not start ({e}); embedding on the CPU"),
            }
        }
        #[cfg(not(feature = "gpu"))]
        {
            let _ = bundle;
            eprintln!("--gpu: this cairn was built without GPU support (feature `gpu`); embedding on the CPU");
        }
        Ok(Embedder::Cpu(enc))
    }

    /// What the embedding cache records: vectors from another backend are not reused.
    fn backend(&self) -> String {
        match self {
            // The arithmetic's revision too: a cache from a build whose kernels rounded
            // differently would mix its vectors with this build's.
            Embedder::Cpu(_) => format!("cpu, arithmetic {}", cairn::kernels::ARITHMETIC_REVISION),
            #[cfg(feature = "gpu")]
            Embedder::Gpu(_, _, name) => format!("gpu: {name}"),
        }
    }

    fn name(&self) -> String {
        match self {
            Embedder::Cpu(enc) if enc.quant() == "f32" => format!(
                "the CPU (candle's f32 matmul, {} threads)",
                rayon::current_num_threads()
            ),
            Embedder::Cpu(_) => format!(
                "the CPU (int8 kernel {}, {} threads)",
                cairn::kernels::Kernel::current().name(),
                rayon::current_num_threads()
            ),
            #[cfg(feature = "gpu")]
            Embedder::Gpu(_, _, name) => name.clone(),
        }
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        match self {
            Embedder::Cpu(enc) => Ok(enc.embed(texts, Role::Document)?),
            #[cfg(feature = "gpu")]
            Embedder::Gpu(enc, gpu, _) => {
                let mut out = Vec::with_capacity(texts.len());
                for batch in texts.chunks(cairn::model::DEFAULT_BATCH_SIZE) {
                    let tokens = enc.tokenize(batch, Role::Document)?;
                    out.extend(pollster::block_on(gpu.embed(&tokens))?);
                }
                Ok(out)
            }
        }
    }
}
