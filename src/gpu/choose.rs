//! Choosing a backend: a short calibration that runs the same work on the CPU and the GPU,
//! refuses the GPU when its vectors or its ranking differ from the CPU's, and otherwise
//! picks the faster path per workload (single queries, batches, the dense scan).
//!
//! Software adapters and some real GPUs are slower than wasm for one short query, and some
//! drivers return quietly wrong quantized results; the check catches the second, the timings
//! the first. Nothing here is cached: a calibration is a few hundred milliseconds at start-up.

use serde::Serialize;

use super::{GpuEncoder, GpuScorer};
use crate::index::dense::DenseView;
use crate::{Encoder, Error, Result, Role};

/// The least cosine between a GPU vector and the CPU's for the GPU to be trusted.
pub const MIN_COSINE: f32 = 0.999;

/// Queries of typical length timed and checked by [`calibrate`].
pub const SAMPLE_QUERIES: &[&str] = &[
    "how do I share data between threads",
    "Box smart pointer",
    "what is the difference between a vector and a slice in memory",
    "error handling with the question mark operator",
];

/// Which path a workload runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Cpu,
    #[serde(rename = "webgpu")]
    Gpu,
}

/// What the page asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preference {
    /// Measure and take the faster path per workload.
    Auto,
    /// The GPU for everything, if it passes the check.
    Gpu,
}

/// Milliseconds per unit of work on each path.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timing {
    pub cpu_ms: f64,
    pub gpu_ms: f64,
}

/// The outcome of a calibration, for the engine's API and the status line.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Calibration {
    /// The adapter, in one line.
    pub adapter: String,
    /// Whether the GPU's results matched the CPU's.
    pub accepted: bool,
    /// The least cosine between GPU and CPU vectors over the sample.
    pub min_cosine: f32,
    /// Whether the GPU scan returned the CPU's top 10 for every sample query.
    pub scan_identical: bool,
    /// Per single query (the mean over the sample queries).
    pub query: Timing,
    /// Per passage, for a batch of passages.
    pub batch: Timing,
    /// Per dense scan of the index.
    pub scan: Timing,
    pub query_backend: Backend,
    pub batch_backend: Backend,
    pub scan_backend: Backend,
    /// Why, in a sentence.
    pub reason: String,
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(1e-12)
}

/// Runs the sample queries and `passages` (a batch, e.g. the index's first passages) on
/// both paths, and the dense scan when a scorer and its view are given. `now` is a clock in
/// milliseconds (`performance.now()` in a browser).
pub async fn calibrate(
    cpu: &Encoder,
    gpu: &GpuEncoder,
    scan: Option<(&GpuScorer, &DenseView<'_>)>,
    passages: &[&str],
    preference: Preference,
    adapter: String,
    now: &dyn Fn() -> f64,
) -> Result<Calibration> {
    if passages.is_empty() {
        return Err(Error::InvalidArgument("calibration needs passages".into()));
    }
    let mut min_cosine = 1.0f32;
    // Warm-up: the first GPU call compiles pipelines and allocates.
    let warm = cpu.tokenize(&SAMPLE_QUERIES[..1], Role::Query)?;
    gpu.embed(&warm).await?;
    cpu.embed(&SAMPLE_QUERIES[..1], Role::Query)?;

    let mut query = Timing::default();
    let mut query_vectors = Vec::new();
    for q in SAMPLE_QUERIES {
        let t0 = now();
        let c = cpu.embed(&[*q], Role::Query)?.remove(0);
        let t1 = now();
        let tokens = cpu.tokenize(&[*q], Role::Query)?;
        let g = gpu.embed(&tokens).await?.remove(0);
        let t2 = now();
        query.cpu_ms += t1 - t0;
        query.gpu_ms += t2 - t1;
        min_cosine = min_cosine.min(cosine(&c, &g));
        query_vectors.push(c);
    }
    let n = SAMPLE_QUERIES.len() as f64;
    query.cpu_ms /= n;
    query.gpu_ms /= n;

    let t0 = now();
    let c = cpu.embed(passages, Role::Document)?;
    let t1 = now();
    let tokens = cpu.tokenize(passages, Role::Document)?;
    let g = gpu.embed(&tokens).await?;
    let t2 = now();
    let per = passages.len() as f64;
    let batch = Timing {
        cpu_ms: (t1 - t0) / per,
        gpu_ms: (t2 - t1) / per,
    };
    for (a, b) in c.iter().zip(&g) {
        min_cosine = min_cosine.min(cosine(a, b));
    }

    let mut scan_identical = true;
    let mut scan_timing = Timing::default();
    if let Some((scorer, view)) = scan {
        for v in &query_vectors {
            let t0 = now();
            let c = view.search(v, 10)?;
            let t1 = now();
            let g = scorer.search(view, v, 10).await?;
            let t2 = now();
            scan_timing.cpu_ms += t1 - t0;
            scan_timing.gpu_ms += t2 - t1;
            let ids = |r: &[(u32, f32)]| r.iter().map(|x| x.0).collect::<Vec<_>>();
            scan_identical &= ids(&c) == ids(&g);
        }
        scan_timing.cpu_ms /= n;
        scan_timing.gpu_ms /= n;
    }

    let accepted = min_cosine >= MIN_COSINE && scan_identical;
    let pick = |t: &Timing| match (accepted, preference) {
        (false, _) => Backend::Cpu,
        (true, Preference::Gpu) => Backend::Gpu,
        (true, Preference::Auto) if t.gpu_ms < t.cpu_ms => Backend::Gpu,
        _ => Backend::Cpu,
    };
    let (query_backend, batch_backend) = (pick(&query), pick(&batch));
    let scan_backend = if scan.is_some() {
        pick(&scan_timing)
    } else {
        Backend::Cpu
    };
    let reason = if !accepted {
        let what = if min_cosine < MIN_COSINE {
            format!("its vectors differ from the CPU's (cosine {min_cosine:.4} < {MIN_COSINE})")
        } else {
            "its dense scan ranked differently from the CPU's".to_string()
        };
        match preference {
            Preference::Gpu => format!("WebGPU was asked for but refused: {what}"),
            Preference::Auto => format!("WebGPU refused for this session: {what}"),
        }
    } else if preference == Preference::Gpu {
        format!(
            "WebGPU forced; it matched the CPU (cosine {min_cosine:.5}); query {:.1} ms on WebGPU vs {:.1} ms on the CPU",
            query.gpu_ms, query.cpu_ms
        )
    } else {
        format!(
            "matched the CPU (cosine {min_cosine:.5}); queries on {} ({:.1} ms WebGPU vs {:.1} ms CPU), batches on {} ({:.1} vs {:.1} ms a passage)",
            if query_backend == Backend::Gpu { "WebGPU" } else { "the CPU" },
            query.gpu_ms,
            query.cpu_ms,
            if batch_backend == Backend::Gpu { "WebGPU" } else { "the CPU" },
            batch.gpu_ms,
            batch.cpu_ms
        )
    };
    Ok(Calibration {
        adapter,
        accepted,
        min_cosine,
        scan_identical,
        query,
        batch,
        scan: scan_timing,
        query_backend,
        batch_backend,
        scan_backend,
        reason,
    })
}
