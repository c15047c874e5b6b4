//! `cairn bench encode`: measured numbers for each bundle, printed and optionally written
//! into a marked section of BENCHMARKS.md. Never a timed assertion: these only report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use cairn::{Encoder, Role};

/// A 10-token query (with `[CLS]` and `[SEP]`) for all-MiniLM-L6-v2's tokenizer.
const QUERY: &str = "how can threads share data safely in rust";

/// Source text for 200-token passages: varied technical prose, cut to length per passage.
const PROSE: &str = "Search engines for static sites build their index ahead of time, when the \
site is generated, and ship it to the browser as plain files. The browser then answers queries \
without a server. Keyword search matches the words of a query against an inverted index, \
weighting rare words more than common ones, and it has served documentation sites well for \
decades. Its weakness is vocabulary: a visitor who asks how to share data between threads may \
not use the words of the chapter that answers the question, which speaks of mutexes, atomic \
reference counting and message passing. Sentence encoders map a query and a passage to vectors \
whose dot product reflects meaning rather than spelling, so the right chapter can be found even \
when no word is shared. Running such an encoder in the browser needs a small model, a compact \
index and a fast runtime. Quantization stores weights with eight or four bits per value in \
blocks that carry their own scale, which shrinks the download several times over while keeping \
the vectors almost unchanged. WebAssembly with SIMD instructions runs the matrix products at a \
useful fraction of native speed, and a worker thread keeps the page responsive while the model \
loads. Fusing the keyword ranking with the meaning-based ranking, for instance by reciprocal \
rank fusion, usually beats either alone, because each finds relevant passages the other misses. \
The index stores binary codes for a fast first pass and eight-bit rows for an exact second \
pass, so a visitor's query is answered in milliseconds even for collections of many thousands \
of passages.";

struct Row {
    file: String,
    quant: String,
    kernel: &'static str,
    bytes: u64,
    load_ms: f64,
    query_tokens: usize,
    p50_ms: f64,
    p95_ms: f64,
    passages_per_s: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx]
}

/// Passages of exactly `tokens` tokens (as far as word boundaries allow), each starting at a
/// different word so batches are not identical.
fn passages(enc: &Encoder, n: usize, tokens: usize) -> Result<Vec<String>> {
    let words: Vec<&str> = PROSE.split_whitespace().collect();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let start = (i * 7) % words.len();
        let mut text = String::new();
        let mut j = start;
        loop {
            let w = words[j % words.len()];
            let candidate = if text.is_empty() {
                w.to_string()
            } else {
                format!("{text} {w}")
            };
            if enc.token_count(&candidate, Role::Document)? > tokens {
                break;
            }
            text = candidate;
            j += 1;
        }
        out.push(text);
    }
    Ok(out)
}

fn measure(path: &Path, queries: usize, n_passages: usize) -> Result<Row> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let t = Instant::now();
    let enc = Encoder::from_bytes(&bytes)?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let query_tokens = enc.token_count(QUERY, Role::Query)?;
    for _ in 0..20 {
        enc.embed(&[QUERY], Role::Query)?;
    }
    let mut times = Vec::with_capacity(queries);
    for _ in 0..queries {
        let t = Instant::now();
        enc.embed(&[QUERY], Role::Query)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let docs = passages(&enc, n_passages, 200)?;
    enc.embed(&docs[..docs.len().min(8)], Role::Document)?; // warm-up
    let t = Instant::now();
    enc.embed(&docs, Role::Document)?;
    let passages_per_s = docs.len() as f64 / t.elapsed().as_secs_f64();
    Ok(Row {
        file: path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        quant: enc.quant().to_string(),
        kernel: "",
        bytes: bytes.len() as u64,
        load_ms,
        query_tokens,
        p50_ms: percentile(&times, 0.5),
        p95_ms: percentile(&times, 0.95),
        passages_per_s,
    })
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!("{cpu}, {cores} cores, {}", std::env::consts::OS)
}

fn today() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown date".into())
}

pub fn encode(
    models: &[PathBuf],
    queries: usize,
    passages: usize,
    write: Option<&Path>,
) -> Result<()> {
    use cairn::kernels::Kernel;
    let threads = rayon::current_num_threads();
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    let mut rows = Vec::new();
    // Each bundle on the fastest kernel; the first quantized one also on the portable x86
    // kernel and the scalar reference, so the table shows what each step of the ladder buys.
    let best = Kernel::best();
    let mut ladder_done = false;
    for m in models {
        let mut kernels = vec![best];
        let quantized = !m.to_string_lossy().contains("f32");
        if quantized && !ladder_done {
            ladder_done = true;
            kernels.extend(
                Kernel::available()
                    .into_iter()
                    .filter(|&k| k != best && matches!(k, Kernel::Avx2 | Kernel::Scalar)),
            );
        }
        for k in kernels {
            Kernel::set_current(Some(k))?;
            eprintln!("measuring {} ({}) ...", m.display(), k.name());
            let mut r = measure(m, queries.max(1), passages.max(1))?;
            r.kernel = if quantized { k.name() } else { "candle f32" };
            rows.push(r);
        }
        Kernel::set_current(None)?;
    }
    let mut md = String::new();
    md.push_str(&format!(
        "Measured {} on {} (load average {} at the start) with `cairn bench encode` (native, \
         release build, {threads} threads; {queries} single queries after 20 warm-up runs; \
         {passages} passages of 200 tokens in batches of {}). Quantized bundles run Cairn's \
         int8 kernels (`kernel` column; `CAIRN_KERNEL` picks one), the f32 bundle candle's \
         f32 matmul.\n\n",
        today(),
        machine(),
        load,
        cairn::model::DEFAULT_BATCH_SIZE
    ));
    md.push_str("| bundle | quant | kernel | size (MB) | load (ms) | query tokens | query p50 (ms) | query p95 (ms) | passages/s (200 tokens) |\n");
    md.push_str("|---|---|---|---:|---:|---:|---:|---:|---:|\n");
    for r in &rows {
        md.push_str(&format!(
            "| {} | {} | {} | {:.2} | {:.0} | {} | {:.2} | {:.2} | {:.1} |\n",
            r.file,
            r.quant,
            r.kernel,
            r.bytes as f64 / 1e6,
            r.load_ms,
            r.query_tokens,
            r.p50_ms,
            r.p95_ms,
            r.passages_per_s
        ));
    }
    println!("{md}");
    if let Some(path) = write {
        update_section(path, "encode", &md)?;
        eprintln!("updated the `encode` section of {}", path.display());
    }
    Ok(())
}

/// Replaces the text between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` in `path`
/// (appending the section if it is absent), leaving the rest of the file alone.
pub fn update_section(path: &Path, name: &str, body: &str) -> Result<()> {
    let start = format!("<!-- bench:{name} -->");
    let end = format!("<!-- /bench:{name} -->");
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".to_string());
    let block = format!("{start}\n{body}{end}");
    let new = match (old.find(&start), old.find(&end)) {
        (Some(s), Some(e)) if e > s => format!("{}{}{}", &old[..s], block, &old[e + end.len()..]),
        _ => format!("{}\n{}\n", old.trim_end(), block),
    };
    std::fs::write(path, new)?;
    Ok(())
}

/// `cairn bench gpu`: the CPU and the GPU (wgpu's first adapter) on the same work, through
/// the calibration the browser runs: single queries, a batch of the index's passages, and
/// the dense scan over the index. Prints a table and writes the `gpu-native` section.
#[cfg(feature = "gpu")]
pub fn gpu(
    model: &Path,
    index_dir: &Path,
    batch: usize,
    runs: usize,
    write: Option<&Path>,
) -> Result<()> {
    use cairn::clock::now_ms;
    use cairn::gpu::choose::{calibrate, Calibration, Preference, SAMPLE_QUERIES};
    use cairn::gpu::{GpuContext, GpuEncoder, GpuScorer};

    let bytes = std::fs::read(model).with_context(|| format!("reading {}", model.display()))?;
    let cpu = Encoder::from_bytes(&bytes)?;
    let manifest = cairn::index::manifest::Manifest::read(index_dir)?;
    let index = cairn::Index::from_bytes(std::fs::read(index_dir.join(&manifest.index))?)?;
    index.check_model(cpu.fingerprint())?;
    let Some(ctx) = pollster::block_on(GpuContext::new())? else {
        anyhow::bail!("wgpu found no adapter (install Mesa's Vulkan drivers for lavapipe)");
    };
    let adapter = ctx.describe();
    eprintln!("adapter: {adapter}");
    let gpu = GpuEncoder::from_bytes(&ctx, &bytes)?;
    let view = index.dense();
    let scorer = GpuScorer::new(&ctx, &view)?;
    let texts: Vec<String> = index
        .passages()
        .iter()
        .take(batch.max(1))
        .map(|p| p.indexed_text())
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let run = || -> Result<Calibration> {
        Ok(pollster::block_on(calibrate(
            &cpu,
            &gpu,
            Some((&scorer, &view)),
            &refs,
            Preference::Auto,
            adapter.clone(),
            &now_ms,
        ))?)
    };
    run()?; // warm-up: pipelines, caches
    let mut cals = Vec::new();
    for i in 0..runs.max(1) {
        eprintln!("run {}/{}", i + 1, runs.max(1));
        cals.push(run()?);
    }
    let median = |f: &dyn Fn(&Calibration) -> f64| {
        let mut v: Vec<f64> = cals.iter().map(f).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let last = cals.last().unwrap();
    let tokens: usize = refs
        .iter()
        .map(|t| {
            cpu.token_count(t, Role::Document)
                .unwrap_or(0)
                .min(cpu.config().max_seq_length)
        })
        .sum::<usize>()
        / refs.len().max(1);
    let mut md = format!(
        "Measured {} on {} with `cairn bench gpu` (native release build; CPU: {} threads; \
         GPU: {adapter}; median of {} calibrations after one warm-up; index {} with {} passages).\n\n",
        today(),
        machine(),
        candle_core::utils::get_num_threads(),
        cals.len(),
        index_dir.display(),
        index.len(),
    );
    md.push_str(
        "| workload | CPU (ms) | GPU (ms) | GPU / CPU | chosen |\n|---|---:|---:|---:|---|\n",
    );
    type Field<'a> = &'a dyn Fn(&Calibration) -> f64;
    let rows: [(&str, Field, Field, String); 3] = [
        (
            "one query (mean of the sample queries)",
            &|c| c.query.cpu_ms,
            &|c| c.query.gpu_ms,
            format!("{:?}", last.query_backend),
        ),
        (
            "one passage, in a batch",
            &|c| c.batch.cpu_ms,
            &|c| c.batch.gpu_ms,
            format!("{:?}", last.batch_backend),
        ),
        (
            "dense scan of the index",
            &|c| c.scan.cpu_ms,
            &|c| c.scan.gpu_ms,
            format!("{:?}", last.scan_backend),
        ),
    ];
    for (name, c, g, chosen) in rows {
        let (c, g) = (median(c), median(g));
        md.push_str(&format!(
            "| {name} | {c:.2} | {g:.2} | {:.1}x | {} |\n",
            g / c.max(1e-9),
            chosen.to_lowercase()
        ));
    }
    md.push_str(&format!(
        "\nBatch: {} passages, {tokens} tokens on average. Check: least cosine GPU vs CPU {:.5}, \
         dense top 10 identical: {}. Sample queries: {}.\n",
        refs.len(),
        cals.iter().map(|c| c.min_cosine).fold(1.0, f32::min),
        cals.iter().all(|c| c.scan_identical),
        SAMPLE_QUERIES.len()
    ));
    println!("{md}");
    if let Some(path) = write {
        update_section(path, "gpu-native", &md)?;
        eprintln!("updated the `gpu-native` section of {}", path.display());
    }
    Ok(())
}

/// `cairn bench filters`: search time with and without filters over an index folder's
/// passages and vectors, rebuilt in memory with synthetic filters (the folder's own index is
/// untouched): `group` with 50 values (passage number mod 50, about 2% of the passages each)
/// and `tag` with 5,000 distinct values (passage number mod 5,000). Queries are the first
/// `n` of a BEIR queries file, embedded once with the folder's model.
pub fn filters(dir: &Path, queries: &Path, n: usize, write: Option<&Path>) -> Result<()> {
    use cairn::index::facets::Filters;
    use cairn::index::{build_index, Index};
    use cairn::search::Refine;
    use cairn::{Mode, Searcher};

    let load = loadavg();
    let loaded = crate::search::load(dir, true)?;
    let crate::search::LoadedIndex::One(index) = &loaded.index else {
        anyhow::bail!("cairn bench filters takes a one-file index folder");
    };
    let enc = loaded.encoder.as_ref().context("no model")?;
    let d = index.dense();
    let vectors: Vec<Vec<f32>> = (0..index.len())
        .map(|r| {
            let s = d.scales[r];
            d.rows[r * d.dim..(r + 1) * d.dim]
                .iter()
                .map(|&v| v as f32 * s)
                .collect()
        })
        .collect();
    let mut passages = index.passages().to_vec();
    for (p, passage) in passages.iter_mut().enumerate() {
        passage
            .filters
            .insert("group".into(), vec![format!("g{}", p % 50)]);
        passage
            .filters
            .insert("tag".into(), vec![format!("t{}", p % 5000)]);
    }
    let m = index.meta();
    let plain_bytes = build_index(
        index.passages(),
        &vectors,
        &m.model_fingerprint,
        &m.model_name,
    )?;
    let bytes = build_index(&passages, &vectors, &m.model_fingerprint, &m.model_name)?;
    let t = Instant::now();
    let plain = Index::from_bytes(plain_bytes.clone())?;
    let plain_load = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let filtered = Index::from_bytes(bytes.clone())?;
    let filtered_load = t.elapsed().as_secs_f64() * 1e3;
    let texts: Vec<String> = std::fs::read_to_string(queries)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(n)
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["text"].as_str().map(str::to_string))
                .unwrap_or_default()
        })
        .collect();
    let qvecs: Vec<Vec<f32>> = texts
        .iter()
        .map(|q| enc.embed_query(q))
        .collect::<cairn::Result<_>>()?;
    let f = |json: &str| -> Result<Filters> { Ok(serde_json::from_str(json)?) };
    let cases: Vec<(&str, &Index, Filters)> = vec![
        (
            "no filter (index without filters)",
            &plain,
            Filters::default(),
        ),
        ("no filter", &filtered, Filters::default()),
        (
            "group = g7 (2% of passages)",
            &filtered,
            f(r#"{"group": "g7"}"#)?,
        ),
        (
            "group any of 10 values (20%)",
            &filtered,
            f(r#"{"group": ["g0","g1","g2","g3","g4","g5","g6","g7","g8","g9"]}"#)?,
        ),
        (
            "group none of g7 (98%)",
            &filtered,
            f(r#"{"group": {"none": "g7"}}"#)?,
        ),
        (
            "tag = t123 (2 passages; 5,000 values)",
            &filtered,
            f(r#"{"tag": "t123"}"#)?,
        ),
    ];
    let mut md = String::new();
    md.push_str(&format!(
        "Measured {} on {} (load average {load} at the start) by `cairn bench filters` \
         (native, release build, one search at a time): the {} passages and vectors of \
         `{}`, rebuilt in memory with two synthetic filter keys, `group` (50 values, passage \
         number mod 50) and `tag` (5,000 distinct values, passage number mod 5,000); the \
         first {} queries of `{}`, embedded once beforehand, so the times are ranking alone \
         (BM25, the exact int8 scan, fusion, excerpts, and the filter's bitmap and counts). \
         Index bytes without filters {:.2} MB, with them {:.2} MB; loading {:.1} ms and \
         {:.1} ms.\n\n",
        today(),
        machine(),
        index.len(),
        dir.display(),
        texts.len(),
        queries.display(),
        plain_bytes.len() as f64 / 1e6,
        bytes.len() as f64 / 1e6,
        plain_load,
        filtered_load,
    ));
    md.push_str("| filter | lexical p50 / p95 (ms) | dense p50 / p95 (ms) | hybrid p50 / p95 (ms) | hybrid hits per query (mean) |\n");
    md.push_str("|---|---:|---:|---:|---:|\n");
    for (name, idx, filters) in &cases {
        let refine = Refine {
            filters: filters.clone(),
            ..Default::default()
        };
        let searcher = Searcher::new(*idx);
        let mut cells = Vec::new();
        let mut hits = 0usize;
        for mode in [Mode::Lexical, Mode::Dense, Mode::Hybrid] {
            let mut times = Vec::with_capacity(texts.len());
            for (q, v) in texts.iter().zip(&qvecs) {
                let t = Instant::now();
                let found = searcher.find_refined(Some(v), None, q, 10, mode, &refine)?;
                times.push(t.elapsed().as_secs_f64() * 1e3);
                if mode == Mode::Hybrid {
                    hits += found.hits.len();
                }
            }
            times.sort_by(|a, b| a.total_cmp(b));
            cells.push(format!(
                "{:.2} / {:.2}",
                percentile(&times, 0.5),
                percentile(&times, 0.95)
            ));
        }
        md.push_str(&format!(
            "| {name} | {} | {:.1} |\n",
            cells.join(" | "),
            hits as f64 / texts.len().max(1) as f64
        ));
        eprintln!("{name}: {}", cells.join(", "));
    }
    md.push_str(
        "\nWhat an index with filters costs a search that uses none is the counts: each \
         answer lists how many matches carry each value, so a query matching thousands of \
         passages, each with its own `tag`, lists thousands of values (the lexical rows). A \
         filter itself costs a bitmap over the passages; it narrows the keyword matches and \
         the dense scan before ranking, so every case still fills its ten results where ten \
         passages pass (`tag = t123` has two).\n",
    );
    println!("{md}");
    if let Some(path) = write {
        update_section(path, "filters", &md)?;
        eprintln!("updated the `filters` section of {}", path.display());
    }
    Ok(())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" / "))
        .unwrap_or_else(|| "unknown".into())
}
