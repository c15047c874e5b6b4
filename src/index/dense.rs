//! Meaning side of the index: vectors stored as binary codes (for a fast first pass) and int8
//! rows with one scale per row (for exact rescoring).
//!
//! A row `x` (unit length) is stored as `q = round(x / s)` with `s = max|x| / 127`, so
//! `dot(query, x) ≈ s * Σ query_i q_i`: a float query against int8 rows, scored with the
//! row's own scale. Binary codes are the signs of `x - mean` (the corpus mean), packed into
//! 64-bit words; Hamming distance between codes ranks candidates for rescoring.

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

/// Read-only view of the vectors, borrowed from the index file.
pub struct DenseView<'a> {
    pub dim: usize,
    pub mean: &'a [f32],
    pub codes: &'a [u64],
    pub rows: &'a [i8],
    pub scales: &'a [f32],
}

impl DenseView<'_> {
    pub fn len(&self) -> usize {
        self.scales.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scales.is_empty()
    }

    /// Approximate dot product of `query` with row `r`.
    pub fn score(&self, query: &[f32], r: usize) -> f32 {
        let row = &self.rows[r * self.dim..(r + 1) * self.dim];
        let dot: f32 = row.iter().zip(query).map(|(q, x)| *q as f32 * x).sum();
        dot * self.scales[r]
    }

    /// The `k` passages closest to `query` (a unit vector), best first, as
    /// `(passage, score)`. Exact int8 scan for small indexes; binary candidates, then int8
    /// rescoring, for large ones.
    pub fn search(&self, query: &[f32], k: usize) -> Vec<(u32, f32)> {
        let n = self.len();
        let candidates: Vec<u32> = if n <= EXACT_SCAN_LIMIT {
            (0..n as u32).collect()
        } else {
            self.hamming_candidates(query, BINARY_CANDIDATES.max(k))
        };
        let mut scored: Vec<(u32, f32)> = candidates
            .into_iter()
            .map(|r| (r, self.score(query, r as usize)))
            .collect();
        top_k(&mut scored, k);
        scored
    }

    /// The `m` rows whose binary codes are nearest to the query's.
    pub fn hamming_candidates(&self, query: &[f32], m: usize) -> Vec<u32> {
        let wpc = words_per_code(self.dim);
        let mut q = vec![0u64; wpc];
        code(query, self.mean, &mut q);
        let mut dist: Vec<(u32, u32)> = self
            .codes
            .chunks_exact(wpc)
            .enumerate()
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
        let view = DenseView {
            dim: 96,
            mean: &d.mean,
            codes: &d.codes,
            rows: &d.rows,
            scales: &d.scales,
        };
        let q = &vs[3];
        for (r, v) in vs.iter().enumerate() {
            let exact: f32 = q.iter().zip(v).map(|(a, b)| a * b).sum();
            assert!((view.score(q, r) - exact).abs() < 0.01);
        }
        assert_eq!(view.search(q, 1)[0].0, 3);
        assert!(view.hamming_candidates(q, 5).contains(&3));
    }
}
