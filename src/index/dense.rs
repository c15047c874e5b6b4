//! Meaning side of the index: vectors stored as binary codes (for a fast first pass) and int8
//! rows with one scale per row (for exact scoring).
//!
//! A row `x` (unit length) is stored as `q = round(x / s)` with `s = max|x| / 127`. The
//! query is rounded the way the encoder rounds its activations ([`DenseQuery`]: int8 in
//! blocks of 32, one scale per block), so a score is integer dot products, exact, scaled:
//! `score = Σ_b isum_b * (query_scale_b * s)`, the arithmetic of the int8 kernels
//! (`cairn::kernels`). Indexes up to [`EXACT_SCAN_LIMIT`] rows are packed for those kernels
//! once at load ([`pack`]) and scanned as a GEMM of one row (SIMD integer dot products on
//! every target); [`DenseView::score`] is the scalar reference that gives the same bits.
//! Binary codes are the signs of `x - mean` (the corpus mean), packed into 64-bit words;
//! Hamming distance between codes ranks candidates for rescoring in larger indexes.

use super::facets::Allowed;
use crate::kernels::{self, Kernel, PackedMatrix, QuantizedRows, BLOCK};
use crate::{Error, Result};

/// Indexes up to this many passages are scanned exactly in int8; larger ones take a binary
/// first pass.
pub const EXACT_SCAN_LIMIT: usize = 20_000;
/// Candidates the binary pass keeps for int8 rescoring (top-100 loses recall, 400 does not).
pub const BINARY_CANDIDATES: usize = 400;

/// Quantized vectors, ready to be written.
pub struct DenseData {
    pub dim: usize,
    pub mean: Vec<f32>,
    pub codes: Vec<u64>,
    pub rows: Vec<i8>,
    pub scales: Vec<f32>,
}

pub fn words_per_code(dim: usize) -> usize {
    dim.div_ceil(64)
}

/// The binary code of `v` relative to `mean`.
pub fn code(v: &[f32], mean: &[f32], out: &mut [u64]) {
    out.iter_mut().for_each(|w| *w = 0);
    for (i, (x, m)) in v.iter().zip(mean).enumerate() {
        if x - m > 0.0 {
            out[i / 64] |= 1u64 << (i % 64);
        }
    }
}

/// Quantizes unit vectors (all of length `dim`).
pub fn build(vectors: &[Vec<f32>], dim: usize) -> DenseData {
    let n = vectors.len();
    let mut mean = vec![0f64; dim];
    for v in vectors {
        for (m, x) in mean.iter_mut().zip(v) {
            *m += *x as f64;
        }
    }
    let mean: Vec<f32> = mean.iter().map(|m| (m / n.max(1) as f64) as f32).collect();
    let wpc = words_per_code(dim);
    let mut codes = vec![0u64; n * wpc];
    let mut rows = vec![0i8; n * dim];
    let mut scales = vec![0f32; n];
    for (r, v) in vectors.iter().enumerate() {
        code(v, &mean, &mut codes[r * wpc..(r + 1) * wpc]);
        let amax = v.iter().fold(0f32, |a, x| a.max(x.abs()));
        let s = if amax > 0.0 { amax / 127.0 } else { 1.0 };
        scales[r] = s;
        for (q, x) in rows[r * dim..(r + 1) * dim].iter_mut().zip(v) {
            *q = (x / s).round().clamp(-127.0, 127.0) as i8;
        }
    }
    DenseData {
        dim,
        mean,
        codes,
        rows,
        scales,
    }
}

/// Packs an index's int8 rows for the scan kernels (done once, at load, for indexes of up
/// to [`EXACT_SCAN_LIMIT`] rows; larger ones are rescored from a short list instead).
pub fn pack(rows: &[i8], scales: &[f32], dim: usize) -> Result<PackedMatrix> {
    Ok(PackedMatrix::from_i8_rows(rows, scales, scales.len(), dim)?)
}

/// A query rounded for the scan: int8 in blocks of [`BLOCK`] values with one scale per
/// block, prepared for the current kernel.
pub struct DenseQuery {
    rows: QuantizedRows,
    dim: usize,
}

impl DenseQuery {
    /// Rounds `query`; refuses non-finite values (they would rank nothing meaningfully).
    pub fn new(query: &[f32]) -> Result<Self> {
        if query.iter().any(|x| !x.is_finite()) {
            return Err(Error::InvalidArgument(
                "query vector has non-finite values".into(),
            ));
        }
        let kernel = Kernel::current();
        let mut rows = QuantizedRows::new(kernel);
        rows.quantize(kernel, query, 1, query.len())?;
        Ok(Self {
            rows,
            dim: query.len(),
        })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The rounded query in f32 (each value times its block's scale): what the GPU scorer's
    /// shader multiplies the rows by, so its short list ranks as the CPU does.
    pub fn dequantized(&self) -> Vec<f32> {
        (0..self.dim)
            .map(|i| self.rows.value(0, i) as f32 * self.rows.scale(0, i / BLOCK))
            .collect()
    }
}

/// Read-only view of the vectors, borrowed from the index file.
pub struct DenseView<'a> {
    pub dim: usize,
    pub mean: &'a [f32],
    pub codes: &'a [u64],
    pub rows: &'a [i8],
    pub scales: &'a [f32],
    /// The rows packed for the kernels ([`pack`]); without it every row is scored by the
    /// reference ([`DenseView::score`]), with the same results.
    pub packed: Option<&'a PackedMatrix>,
}

impl DenseView<'_> {
    pub fn len(&self) -> usize {
        self.scales.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scales.is_empty()
    }

    /// The score of row `r` against `query`: the scalar reference of the scan kernels (the
    /// same integers, then the same float operations in the same order, so the same bits).
    pub fn score(&self, query: &DenseQuery, r: usize) -> f32 {
        let row = &self.rows[r * self.dim..(r + 1) * self.dim];
        let s = self.scales[r];
        let mut acc = 0f32;
        for (b, block) in row.chunks(BLOCK).enumerate() {
            let isum: i32 = block
                .iter()
                .enumerate()
                // A stored -128 reads as -127, as the packed kernels read it.
                .map(|(i, &v)| query.rows.value(0, b * BLOCK + i) as i32 * v.max(-127) as i32)
                .sum();
            acc += isum as f32 * (query.rows.scale(0, b) * s);
        }
        acc
    }

    /// The `k` passages closest to `query` (a unit vector), best first, as
    /// `(passage, score)`. Exact int8 scan for small indexes; binary candidates, then int8
    /// rescoring, for large ones.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<(u32, f32)>> {
        self.search_in(query, k, None)
    }

    /// [`DenseView::search`] among the passages `allowed` lets through (all without it):
    /// the filter applies before ranking, so `k` allowed passages come back where there are.
    pub fn search_in(
        &self,
        query: &[f32],
        k: usize,
        allowed: Option<&Allowed>,
    ) -> Result<Vec<(u32, f32)>> {
        if query.len() != self.dim {
            return Err(Error::InvalidArgument(format!(
                "query vector has {} dimensions, the index {}",
                query.len(),
                self.dim
            )));
        }
        let q = DenseQuery::new(query)?;
        let n = self.len();
        let keep = |p: &u32| allowed.is_none_or(|a| a.contains(*p));
        let mut scored: Vec<(u32, f32)> = if n <= EXACT_SCAN_LIMIT {
            (0..n as u32)
                .zip(self.scores(&q)?)
                .filter(|(p, _)| keep(p))
                .collect()
        } else {
            self.hamming_candidates_in(query, BINARY_CANDIDATES.max(k), allowed)
                .into_iter()
                .map(|r| (r, self.score(&q, r as usize)))
                .collect()
        };
        top_k(&mut scored, k);
        Ok(scored)
    }

    /// Every row's score against `query`: the packed kernel's scan when the rows are packed,
    /// else the reference (the same bits either way).
    pub fn scores(&self, q: &DenseQuery) -> Result<Vec<f32>> {
        if q.dim != self.dim {
            return Err(Error::InvalidArgument(format!(
                "query vector has {} dimensions, the index {}",
                q.dim, self.dim
            )));
        }
        let n = self.len();
        Ok(
            match self.packed.filter(|p| p.n() == n && p.k() == self.dim) {
                Some(packed) => {
                    let mut scores = vec![0f32; n];
                    kernels::gemm(&q.rows, packed, None, &mut scores)?;
                    scores
                }
                None => (0..n).map(|r| self.score(q, r)).collect(),
            },
        )
    }

    /// The `m` rows whose binary codes are nearest to the query's.
    pub fn hamming_candidates(&self, query: &[f32], m: usize) -> Vec<u32> {
        self.hamming_candidates_in(query, m, None)
    }

    /// [`DenseView::hamming_candidates`] among the rows `allowed` lets through.
    pub fn hamming_candidates_in(
        &self,
        query: &[f32],
        m: usize,
        allowed: Option<&Allowed>,
    ) -> Vec<u32> {
        let wpc = words_per_code(self.dim);
        let mut q = vec![0u64; wpc];
        code(query, self.mean, &mut q);
        let mut dist: Vec<(u32, u32)> = self
            .codes
            .chunks_exact(wpc)
            .enumerate()
            .filter(|(r, _)| allowed.is_none_or(|a| a.contains(*r as u32)))
            .map(|(r, c)| {
                let d: u32 = c.iter().zip(&q).map(|(a, b)| (a ^ b).count_ones()).sum();
                (d, r as u32)
            })
            .collect();
        let m = m.min(dist.len());
        if m < dist.len() {
            dist.select_nth_unstable(m);
            dist.truncate(m);
        }
        dist.into_iter().map(|(_, r)| r).collect()
    }
}

/// Keeps the `k` highest scores, sorted best first (ties by passage number, for determinism).
pub fn top_k(scored: &mut Vec<(u32, f32)>, k: usize) {
    let cmp = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if k < scored.len() {
        scored.select_nth_unstable_by(k, cmp);
        scored.truncate(k);
    }
    scored.sort_by(cmp);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: Vec<f32>) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    #[test]
    fn int8_scores_track_float_dot_products() {
        let vs: Vec<Vec<f32>> = (0..50)
            .map(|i| {
                unit(
                    (0..96)
                        .map(|j| ((i * 31 + j * 7) % 17) as f32 - 8.0)
                        .collect(),
                )
            })
            .collect();
        let d = build(&vs, 96);
        let packed = pack(&d.rows, &d.scales, 96).unwrap();
        for packed in [None, Some(&packed)] {
            let view = DenseView {
                dim: 96,
                mean: &d.mean,
                codes: &d.codes,
                rows: &d.rows,
                scales: &d.scales,
                packed,
            };
            let q = &vs[3];
            let dq = DenseQuery::new(q).unwrap();
            for (r, v) in vs.iter().enumerate() {
                let exact: f32 = q.iter().zip(v).map(|(a, b)| a * b).sum();
                assert!((view.score(&dq, r) - exact).abs() < 0.01);
            }
            let all = view.search(q, vs.len()).unwrap();
            assert_eq!(all[0].0, 3);
            // The packed scan and the reference give the same bits.
            for (r, s) in &all {
                assert_eq!(s.to_bits(), view.score(&dq, *r as usize).to_bits());
            }
            assert!(view.hamming_candidates(q, 5).contains(&3));
            assert!(view.search(&q[1..], 1).is_err());
            assert!(view.search(&[f32::NAN; 96], 1).is_err());
        }
    }
}
