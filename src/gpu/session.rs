//! One GPU session for one index and one model: the GPU encoder built from the model's
//! bundle, the scorer built from the index's dense data, and the calibration that chose, per
//! workload, the GPU or the CPU. The wasm engine (`src/web/model.rs`) owns at most one and replaces
//! it whole with the index; it is built and used natively too (`tests/gpu_native.rs`).

use std::rc::Rc;

use super::{calibrate, Backend, Calibration, GpuContext, GpuEncoder, GpuScorer, Preference};
use crate::index::Index;
use crate::{Encoder, Error, Result, Role};

pub struct GpuSession {
    /// The index the scorer was built from: [`GpuSession::scan`] of any other index is `None`.
    index: Rc<Index>,
    encoder: GpuEncoder,
    scorer: Option<GpuScorer>,
    calibration: Calibration,
}

/// Passages of the index to time a batch with: its first eight, cut to 48 words (software
/// adapters take seconds for long batches, and the choice only needs a rate).
fn sample_passages(index: &Index) -> Vec<String> {
    index
        .passages()
        .iter()
        .take(8)
        .map(|p| {
            let text = p.indexed_text();
            text.split_whitespace()
                .take(48)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

impl GpuSession {
    /// Uploads the model (`bundle`: what `cpu` was built from, read once and duplicated; a
    /// different model fails the calibration's cosine check) and the index's dense
    /// data to the GPU, and calibrates against the CPU. The session is returned whether or
    /// not the GPU was accepted: [`GpuSession::calibration`] says, and why. Errors name the
    /// stage that failed.
    pub async fn build(
        ctx: &GpuContext,
        index: Rc<Index>,
        cpu: &Encoder,
        bundle: crate::model::gguf::Bundle,
        preference: Preference,
        now_ms: &dyn Fn() -> f64,
    ) -> Result<GpuSession> {
        let stage = |what: &str| {
            let what = what.to_string();
            move |e: Error| Error::Gpu(format!("{what} failed: {e}"))
        };
        let encoder = GpuEncoder::new(ctx, bundle).map_err(stage("encoder setup"))?;
        let view = index.dense();
        let scorer = if view.is_empty() {
            None
        } else {
            Some(GpuScorer::new(ctx, &view).map_err(stage("scorer setup"))?)
        };
        let passages = sample_passages(&index);
        let mut sample: Vec<&str> = passages.iter().map(String::as_str).collect();
        if sample.is_empty() {
            sample = super::choose::SAMPLE_QUERIES.to_vec();
        }
        let scan = scorer.as_ref().map(|s| (s, &view));
        let calibration = calibrate(
            cpu,
            &encoder,
            scan,
            &sample,
            preference,
            ctx.describe(),
            now_ms,
        )
        .await
        .map_err(stage("calibration"))?;
        Ok(GpuSession {
            index: index.clone(),
            encoder,
            scorer,
            calibration,
        })
    }

    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    /// Whether single queries are embedded on the GPU.
    pub fn query_on_gpu(&self) -> bool {
        self.calibration.query_backend == Backend::Gpu
    }

    /// Whether the dense scan runs on the GPU.
    pub fn scan_on_gpu(&self) -> bool {
        self.calibration.scan_backend == Backend::Gpu
    }

    /// Whether this session was built for `index` (the same loaded index, not an equal one).
    pub fn serves(&self, index: &Index) -> bool {
        std::ptr::eq(self.index.as_ref(), index)
    }

    /// Embeds one query on the GPU (tokenized on the CPU, cut as the CPU path cuts it).
    pub async fn embed_query(&self, cpu: &Encoder, query: &str) -> Result<Vec<f32>> {
        let query = crate::search::truncate_query(query);
        let tokens = cpu.tokenize(&[query], Role::Query)?;
        self.encoder
            .embed(&tokens)
            .await?
            .pop()
            .ok_or_else(|| Error::Gpu("the GPU returned no vector".into()))
    }

    /// The dense ranking of `index` on the GPU, or `None` when this session was built for
    /// another index (a search that began before a `loadIndex`) or the index has no vectors.
    pub async fn scan(
        &self,
        index: &Index,
        vector: &[f32],
        depth: usize,
    ) -> Result<Option<Vec<(u32, f32)>>> {
        match &self.scorer {
            Some(s) if self.serves(index) => {
                Ok(Some(s.search(&index.dense(), vector, depth).await?))
            }
            _ => Ok(None),
        }
    }
}
