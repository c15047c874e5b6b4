//! The `cairn` command line: convert models, embed text, benchmark.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use cairn::model::convert::{convert_folder, ConvertOptions};
use cairn::model::Pooling;
use cairn::{Encoder, Mode, Quant, Role};

mod bench;
mod eval;
mod index;
mod search;
mod ui;

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    long_version = LONG_VERSION.as_str(),
    about = "Semantic search that runs in the visitor's browser"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Model bundles: convert a sentence-transformers model, inspect a bundle.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Embed text: one text per stdin line, one JSON array of floats per stdout line.
    Embed {
        /// The model bundle (.gguf) made by `cairn model convert`.
        #[arg(long)]
        model: PathBuf,
        /// Which prompt to apply: `query` or `document`.
        #[arg(long, default_value = "query")]
        role: Role,
    },
    /// Build a deployable index folder from a static site, a JSONL corpus or Markdown.
    Index {
        /// The model bundle to embed passages with (copied into the folder). Default: the
        /// bundle `make install` puts beside this cairn (share/cairn/), or one in the
        /// cache folder's models/.
        #[arg(long)]
        model: Option<PathBuf>,
        /// A built static site (HTML files).
        #[arg(long, group = "source")]
        site: Option<PathBuf>,
        /// A BEIR-style JSONL corpus (`_id`, `title`, `text`, optional `url`).
        #[arg(long, group = "source")]
        jsonl: Option<PathBuf>,
        /// A folder of Markdown files.
        #[arg(long, group = "source")]
        markdown: Option<PathBuf>,
        /// Output folder (index, model and `cairn-entry.json`).
        #[arg(long)]
        out: PathBuf,
        /// Tokens shared by consecutive parts of a section longer than the model reads (it is
        /// embedded in parts, and its vector is their mean; the section stays one result).
        #[arg(long, default_value_t = 32)]
        overlap: usize,
        /// URL prefix of the site's pages (when the site is not served from the root).
        #[arg(long, default_value = "/")]
        base_url: String,
        /// For JSONL records without a `url`: a link made from the record's id, e.g.
        /// `/papers/{id}.html` or `#paper-{id}`.
        #[arg(long, value_name = "TEMPLATE")]
        url_template: Option<String>,
        /// Take the browser UI (element, worker and engine) from this folder (`pkg/` after
        /// `make wasm`) instead of the one this cairn carries. The output is then all a
        /// site needs.
        #[arg(long, value_name = "DIR", conflicts_with = "no_ui")]
        ui: Option<PathBuf>,
        /// Write the index alone, without the browser UI.
        #[arg(long)]
        no_ui: bool,
        /// The embedding cache: vectors of an earlier build of the same output, reused for
        /// passages whose text is unchanged (default: a file per output folder under
        /// $CAIRN_CACHE_DIR, $XDG_CACHE_HOME/cairn or ~/.cache/cairn).
        #[arg(long, value_name = "FILE", conflicts_with = "no_cache")]
        cache: Option<PathBuf>,
        /// Embed every passage afresh, and neither read nor write the embedding cache.
        #[arg(long)]
        no_cache: bool,
        /// Embed passages on the GPU (wgpu: Vulkan, Metal, DX12) when an adapter exists;
        /// falls back to the CPU with a message otherwise.
        #[arg(long)]
        gpu: bool,
        /// Write a sharded index (format version 2: a small meta file, term chunks, text
        /// groups and vector shards by centroid) for fetching on demand. Read by `cairn
        /// search` and `cairn eval`; the browser worker does not read it yet.
        #[arg(long)]
        sharded: bool,
        /// Sharded index: rows per vector shard, on average.
        #[arg(long, hide = true, default_value_t = cairn::index::sharded::ShardOptions::default().shard_rows)]
        shard_rows: usize,
        /// Sharded index: rows a query's probed shards hold together, on average.
        #[arg(long, hide = true, default_value_t = cairn::index::sharded::ShardOptions::default().probe_rows)]
        probe_rows: usize,
    },
    /// Search an index folder.
    Search {
        /// Folder made by `cairn index`.
        #[arg(long)]
        index: PathBuf,
        /// hybrid, dense or lexical.
        #[arg(long, default_value = "hybrid")]
        mode: Mode,
        /// Number of results.
        #[arg(short = 'k', default_value_t = 10)]
        k: usize,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Sharded index: print each part the search reads (`read NAME BYTES`) on stderr.
        #[arg(long, hide = true)]
        show_reads: bool,
        /// Only passages with this filter value: `key=value` (repeat it: any of a key's
        /// values, all of the keys), or `key!=value` (none of them).
        #[arg(long = "filter", value_name = "KEY=VALUE")]
        filters: Vec<String>,
        /// Order by a sort key instead of relevance: `key`, `key:asc` or `key:desc`.
        #[arg(long, value_name = "KEY[:desc]")]
        sort: Option<String>,
        #[command(flatten)]
        ranking: RankingArgs,
        /// The query (empty with --filter or --sort: list what they select).
        query: String,
    },
    /// Retrieval quality on a BEIR-style benchmark: nDCG@10 and Recall@100.
    Eval {
        #[arg(long)]
        index: PathBuf,
        /// Queries JSONL (`_id`, `text`).
        #[arg(long, requires = "qrels", required_unless_present = "questions")]
        queries: Option<PathBuf>,
        /// Relevance judgements (BEIR TSV: query-id, corpus-id, score).
        #[arg(long, requires = "queries")]
        qrels: Option<PathBuf>,
        /// Instead of --queries and --qrels: questions with the pages that answer them
        /// (bench/rust-book-questions.json's shape: `{"questions": [{"q", "expect": [page file
        /// names]}]}`), scored by the rank of the first result on an expected page (MRR over
        /// the first 20 pages, a page counted once).
        #[arg(long, conflicts_with_all = ["queries", "qrels"])]
        questions: Option<PathBuf>,
        #[arg(long, default_value = "hybrid")]
        mode: Mode,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        ranking: RankingArgs,
        /// Hybrid fusion, for tuning: RRF constant.
        #[arg(long, hide = true)]
        rrf_k: Option<f32>,
        /// Hybrid fusion, for tuning: weight of the keyword list (the meaning list has 1).
        #[arg(long, hide = true)]
        lexical_weight: Option<f32>,
        /// Hybrid fusion, for tuning: depth of each list.
        #[arg(long, hide = true)]
        depth: Option<usize>,
        /// A sharded index: probe only each query's nearest vector shards, as a first
        /// visit does (by default every shard is scanned, as after the prefetch).
        #[arg(long)]
        probe_only: bool,
    },
    /// Benchmarks that print numbers (and can update BENCHMARKS.md).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

/// The keyword ranking's settings, where a search should not use the index's.
#[derive(Args)]
struct RankingArgs {
    /// Keyword ranking: how many times over a word in a page's title counts (1: as in its
    /// text).
    #[arg(long, value_name = "W")]
    title_weight: Option<f32>,
    /// Keyword ranking: how many times over a word in a section's heading counts.
    #[arg(long, value_name = "W")]
    heading_weight: Option<f32>,
    /// Keyword ranking: how soon more occurrences of a word stop adding (BM25's k1, above
    /// 0; Pagefind's termSaturation).
    #[arg(long, value_name = "K1")]
    term_saturation: Option<f32>,
    /// Keyword ranking: how much shorter sections are favoured (BM25's b, 0 to 1;
    /// Pagefind's pageLength).
    #[arg(long, value_name = "B")]
    page_length: Option<f32>,
}

impl RankingArgs {
    fn options(&self) -> cairn::index::lexical::RankingOptions {
        cairn::index::lexical::RankingOptions {
            k1: self.term_saturation,
            b: self.page_length,
            title: self.title_weight,
            heading: self.heading_weight,
        }
    }
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Convert a sentence-transformers folder into one GGUF bundle.
    Convert {
        /// Folder with config.json, tokenizer.json and the weights: model.safetensors, or an
        /// ONNX export (model.onnx or onnx/model.onnx, f32 or int8-quantized); and the
        /// sentence-transformers files modules.json, 1_Pooling/, ... where it has them.
        #[arg(required_unless_present = "hub")]
        folder: Option<PathBuf>,
        /// Download this model from the Hugging Face hub instead (needs the `hub` feature
        /// and the network), e.g. `sentence-transformers/all-MiniLM-L6-v2`.
        #[arg(long, conflicts_with = "folder")]
        hub: Option<String>,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Weight storage: f32, f16, q8_0, q5_0, q5_1, q4_0, q4_1, q6_k, q5_k, q4_k, q3_k, or
        /// q4_mix (the small bundle: q3_k word-embedding table, q5_0 layers; 12.9 MB for
        /// MiniLM, closer to f32 than q4_0).
        #[arg(long, default_value = "q8_0")]
        quant: Quant,
        /// Model name recorded in the bundle (defaults to the config's).
        #[arg(long)]
        name: Option<String>,
        /// How token vectors become the sentence vector: mean, cls or max (overrides
        /// 1_Pooling/config.json; without one, mean). bge models use cls.
        #[arg(long)]
        pooling: Option<Pooling>,
        /// Text prepended to queries (overrides config_sentence_transformers.json).
        #[arg(long)]
        query_prompt: Option<String>,
        /// Text prepended to documents (overrides config_sentence_transformers.json).
        #[arg(long)]
        document_prompt: Option<String>,
        /// Maximum tokens per input (defaults to sentence_bert_config.json's).
        #[arg(long)]
        max_seq_length: Option<usize>,
        /// Store tensors whose name contains PATTERN as QUANT (repeatable; first match wins),
        /// e.g. `--tensor-quant token_embd=q8_0`.
        #[arg(long, value_name = "PATTERN=QUANT", value_parser = parse_tensor_quant)]
        tensor_quant: Vec<(String, Quant)>,
    },
    /// Print a bundle's configuration and size.
    Info {
        /// The bundle.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Per bundle: file size, p50 latency of a 10-token query, passages/s on 200-token passages.
    Encode {
        /// Bundles to measure (repeat the flag).
        #[arg(long = "model", required = true)]
        models: Vec<PathBuf>,
        /// Timed single-query runs after warm-up.
        #[arg(long, default_value_t = 200)]
        queries: usize,
        /// 200-token passages embedded for the throughput figure.
        #[arg(long, default_value_t = 64)]
        passages: usize,
        /// Replace the encode section of this Markdown file with the results.
        #[arg(long)]
        write: Option<PathBuf>,
    },
    /// Search time with and without filters (synthetic: 50 values, and 5,000 distinct ones)
    /// over an index folder's passages.
    Filters {
        /// A one-file index folder with its model (`cairn index --out`).
        #[arg(long)]
        index: PathBuf,
        /// BEIR queries JSONL (`_id`, `text`).
        #[arg(long)]
        queries: PathBuf,
        /// Queries timed per case.
        #[arg(short = 'n', default_value_t = 300)]
        n: usize,
        /// Replace the filters section of this Markdown file with the results.
        #[arg(long)]
        write: Option<PathBuf>,
    },
    /// The CPU against the GPU (wgpu's first adapter) on queries, a batch and the dense scan.
    #[cfg(feature = "gpu")]
    Gpu {
        /// The bundle the index was built with.
        #[arg(long)]
        model: PathBuf,
        /// An index folder (`cairn index --out`).
        #[arg(long)]
        index: PathBuf,
        /// Passages of the index embedded as one batch.
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Timed calibrations after the warm-up one.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Replace the gpu-native section of this Markdown file with the results.
        #[arg(long)]
        write: Option<PathBuf>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Model { command } => match command {
            ModelCommand::Convert {
                folder,
                hub,
                out,
                quant,
                name,
                pooling,
                query_prompt,
                document_prompt,
                max_seq_length,
                tensor_quant,
            } => {
                let folder = match (folder, hub) {
                    (Some(f), _) => f,
                    (None, Some(repo)) => fetch_from_hub(&repo)?,
                    (None, None) => bail!("give a model folder or --hub <REPO>"),
                };
                let opts = ConvertOptions {
                    name,
                    pooling,
                    query_prompt,
                    document_prompt,
                    max_seq_length,
                    tensor_quant,
                };
                if cairn::model::convert::needs_calibration(quant, &opts) {
                    eprintln!(
                        "GPTQ rounding: calibrating layer by layer over the built-in text \
                         (about five minutes for a MiniLM-sized model on two cores)"
                    );
                }
                let bytes = convert_folder(&folder, quant, &opts)
                    .with_context(|| format!("converting {}", folder.display()))?;
                // Load what was written, so a broken bundle never leaves this command.
                let enc = Encoder::from_bytes(&bytes).context("re-reading the new bundle")?;
                write_atomic(&out, &bytes)?;
                eprintln!(
                    "wrote {} ({:.1} MB, {}, {} dims, {:?} pooling, max {} tokens, fingerprint {})",
                    out.display(),
                    bytes.len() as f64 / 1e6,
                    quant,
                    enc.dim(),
                    enc.config().pooling,
                    enc.config().max_seq_length,
                    &enc.fingerprint()[..16]
                );
            }
            ModelCommand::Info { file } => {
                let bytes =
                    std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                let enc = Encoder::from_bytes(&bytes)?;
                println!("file: {} ({} bytes)", file.display(), bytes.len());
                println!("quant: {}", enc.quant());
                println!("fingerprint: {}", enc.fingerprint());
                println!("{}", serde_json::to_string_pretty(enc.config())?);
            }
        },
        Command::Embed { model, role } => {
            let bytes =
                std::fs::read(&model).with_context(|| format!("reading {}", model.display()))?;
            let enc = Encoder::from_bytes(&bytes)?;
            let stdin = std::io::stdin();
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let mut batch: Vec<String> = Vec::new();
            let flush = |batch: &mut Vec<String>, out: &mut dyn Write| -> Result<()> {
                for v in enc.embed(batch, role)? {
                    serde_json::to_writer(&mut *out, &v)?;
                    out.write_all(b"\n")?;
                }
                batch.clear();
                Ok(())
            };
            for line in stdin.lock().lines() {
                batch.push(line?);
                if batch.len() == 256 {
                    flush(&mut batch, &mut out)?;
                }
            }
            flush(&mut batch, &mut out)?;
            out.flush()?;
        }
        Command::Index {
            model,
            site,
            jsonl,
            markdown,
            out,
            overlap,
            base_url,
            url_template,
            ui,
            no_ui,
            cache,
            no_cache,
            gpu,
            sharded,
            shard_rows,
            probe_rows,
        } => {
            let model = match model {
                Some(m) => m,
                None => default_model()?,
            };
            let ui = match (ui, no_ui) {
                (Some(dir), _) => Some(ui::UiSource::Dir(dir)),
                (None, true) => None,
                (None, false) => {
                    let source = ui::default_source();
                    if source.is_none() {
                        eprintln!(
                            "note: this cairn carries no browser UI, so the folder holds the \
                             index alone (`make install` builds one that does; or pass --ui pkg/)"
                        );
                    }
                    source
                }
            };
            let source = match (site, jsonl, markdown) {
                (Some(d), None, None) => index::Source::Site(d),
                (None, Some(f), None) => index::Source::Jsonl(f),
                (None, None, Some(d)) => index::Source::Markdown(d),
                _ => bail!("give exactly one of --site, --jsonl or --markdown"),
            };
            let opts = index::IndexOptions {
                overlap,
                base_url,
                url_template,
                ui,
                gpu,
                sharded: sharded.then(|| cairn::index::sharded::ShardOptions {
                    shard_rows,
                    probe_rows,
                    ..Default::default()
                }),
                cache: if no_cache {
                    None
                } else {
                    Some(cache.unwrap_or_else(|| index::default_cache_path(&out)))
                },
            };
            index::index(&model, source, &out, &opts)?;
        }
        Command::Search {
            index,
            mode,
            k,
            json,
            show_reads,
            filters,
            sort,
            ranking,
            query,
        } => {
            let refine = cairn::search::Refine {
                filters: cairn::index::facets::Filters::from_args(&filters)?,
                sort: sort.as_deref().map(str::parse).transpose()?,
                ranking: ranking.options(),
            };
            search::search(&index, &query, k, mode, &refine, json, show_reads)?
        }
        Command::Eval {
            index,
            queries,
            qrels,
            questions,
            mode,
            json,
            ranking,
            rrf_k,
            lexical_weight,
            depth,
            probe_only,
        } => {
            let d = cairn::search::Fusion::default();
            let fusion = cairn::search::Fusion {
                rrf_k: rrf_k.unwrap_or(d.rrf_k),
                lexical_weight: lexical_weight.unwrap_or(d.lexical_weight),
                dense_weight: d.dense_weight,
                depth: depth.unwrap_or(d.depth),
            };
            let set = match (questions, queries, qrels) {
                (Some(q), _, _) => eval::Set::Questions(q),
                (None, Some(queries), Some(qrels)) => eval::Set::Beir { queries, qrels },
                _ => bail!("name --queries and --qrels, or --questions"),
            };
            let refine = cairn::search::Refine {
                ranking: ranking.options(),
                ..Default::default()
            };
            eval::eval(&index, &set, mode, json, fusion, &refine, probe_only)?
        }
        Command::Bench { command } => match command {
            BenchCommand::Encode {
                models,
                queries,
                passages,
                write,
            } => bench::encode(&models, queries, passages, write.as_deref())?,
            BenchCommand::Filters {
                index,
                queries,
                n,
                write,
            } => bench::filters(&index, &queries, n, write.as_deref())?,
            #[cfg(feature = "gpu")]
            BenchCommand::Gpu {
                model,
                index,
                batch,
                runs,
                write,
            } => bench::gpu(&model, &index, batch, runs, write.as_deref())?,
        },
    }
    Ok(())
}

/// `cairn --version`: the version and the browser engine this binary carries.
static LONG_VERSION: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("{}\n{}", env!("CARGO_PKG_VERSION"), ui::describe()));

/// The default bundle for `cairn index`, or one line on how to get one.
fn default_model() -> Result<PathBuf> {
    let places = index::default_model_places();
    if let Some(found) = places.iter().find(|p| p.is_file()) {
        eprintln!("model: {}", found.display());
        return Ok(found.clone());
    }
    let looked: Vec<String> = places.iter().map(|p| p.display().to_string()).collect();
    bail!(
        "no model bundle: pass --model FILE, or run `make install` (it installs {} as the \
         default); looked in {}",
        index::DEFAULT_BUNDLE,
        looked.join(", ")
    )
}

fn parse_tensor_quant(s: &str) -> Result<(String, Quant)> {
    let (pattern, quant) = s
        .split_once('=')
        .context("expected PATTERN=QUANT, e.g. token_embd=q8_0")?;
    Ok((pattern.to_string(), quant.parse()?))
}

/// Writes through a temporary file and a rename, so a failed run leaves no half file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(feature = "hub")]
fn fetch_from_hub(repo: &str) -> Result<PathBuf> {
    let api = hf_hub::api::sync::Api::new()?;
    let model = api.model(repo.to_string());
    let mut dir = None;
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "modules.json",
        "1_Pooling/config.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
    ] {
        match model.get(file) {
            Ok(p) => {
                if file == "config.json" {
                    dir = p.parent().map(Path::to_path_buf);
                }
            }
            // The sentence-transformers files are optional; the model files are not.
            Err(e)
                if file.contains("config.json") && file != "config.json"
                    || file.ends_with("modules.json") =>
            {
                eprintln!("note: {repo} has no {file} ({e}); using defaults");
            }
            Err(e) => return Err(e).with_context(|| format!("downloading {file} from {repo}")),
        }
    }
    dir.context("hub download gave no folder")
}

#[cfg(not(feature = "hub"))]
fn fetch_from_hub(repo: &str) -> Result<PathBuf> {
    bail!(
        "this cairn was built without hub support; rebuild with `--features hub` to download \
         {repo}, or download the folder yourself and pass its path"
    )
}
