//! Error-minimising 4-bit quantization (native only, used by `convert`).
//!
//! candle's own `Q4_0` quantizer takes each 32-value block's largest magnitude as the scale
//! and rounds every weight to the nearest level on its own. On MiniLM that leaves the 4-bit
//! bundle at a mean cosine of about 0.95 to the f32 vectors. Two things do better here, and
//! the output is still ordinary `Q4_0` (same byte layout, same kernels), only better rounded:
//!
//! - Each block's scale is chosen by a small search that minimises the importance-weighted
//!   squared error, as llama.cpp's `make_qx_quants` does ([`quantize_q4_0`]).
//! - For weight matrices, GPTQ (Frantar et al., 2022, "Accurate Post-Training Quantization
//!   for Generative Pre-trained Transformers"): the columns of a row are rounded in order and
//!   each rounding error is spread over the columns not yet rounded, weighted by the inverse
//!   of the Gram matrix `H = X^T X` of the layer's calibration inputs, so the error the layer's
//!   *outputs* see is minimised rather than the error of each weight ([`gptq_q4_0`]).
//!   The same rounding writes `Q4_1`, `Q5_0` and `Q5_1` (a minimum per block and/or a fifth
//!   bit per weight) for tensors stored that way ([`gptq`]).
//!
//! `convert` feeds GPTQ layer by layer, each layer's statistics taken on the model whose
//! earlier layers are already quantized, with every calibration text weighted equally.

use std::borrow::Cow;

use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{Device, Tensor};
use half::f16;

use crate::Result;

const QK: usize = 32;
/// Bytes of one `Q4_0` block: an f16 scale and 16 bytes of packed nibbles.
const BLOCK_BYTES: usize = 2 + QK / 2;

/// Quantizes a block to levels in `-8..=7` with the scale that minimises
/// `sum w_i (x_i - d * l_i)^2`. Returns `(d, levels)`.
fn best_block(x: &[f32], w: &[f32]) -> (f32, [i8; QK]) {
    best_block_sym(x, w, 8)
}

/// [`best_block`] for levels in `-nmax..nmax` (`nmax` 8 for `Q4_0`, 16 for `Q5_0`).
fn best_block_sym(x: &[f32], w: &[f32], nmax: i32) -> (f32, [i8; QK]) {
    let (lo_level, hi_level) = (-(nmax as f32), (nmax - 1) as f32);
    let mut amax = 0f32;
    let mut max = 0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    let mut best = (0f32, [0i8; QK]);
    if amax == 0.0 {
        return best;
    }
    let mut best_err = f32::INFINITY;
    // Candidate inverse scales around candle's default (-8 / max), as in make_qx_quants.
    for step in -18..=18 {
        let iscale = -(nmax as f32 + 0.1 * step as f32) / max;
        let mut l = [0i8; QK];
        let (mut sumlx, mut suml2) = (0f32, 0f32);
        for i in 0..QK {
            let q = (iscale * x[i]).round().clamp(lo_level, hi_level);
            l[i] = q as i8;
            sumlx += w[i] * x[i] * q;
            suml2 += w[i] * q * q;
        }
        if suml2 <= 0.0 {
            continue;
        }
        // For fixed levels the optimal scale is a least-squares fit; refit once and requantize.
        let mut d = sumlx / suml2;
        for _ in 0..2 {
            if d == 0.0 {
                break;
            }
            let id = 1.0 / d;
            let (mut slx, mut sl2) = (0f32, 0f32);
            for i in 0..QK {
                let q = (id * x[i]).round().clamp(lo_level, hi_level);
                l[i] = q as i8;
                slx += w[i] * x[i] * q;
                sl2 += w[i] * q * q;
            }
            if sl2 <= 0.0 {
                break;
            }
            d = slx / sl2;
        }
        // Store the scale as f16, as the format does, and score with that.
        let d16 = f16::from_f32(d).to_f32();
        let err: f32 = (0..QK)
            .map(|i| {
                let e = x[i] - d16 * l[i] as f32;
                w[i] * e * e
            })
            .sum();
        if err < best_err {
            best_err = err;
            best = (d16, l);
        }
    }
    best
}

/// Quantizes a block to levels in `0..=top` (15 for `Q4_1`, 31 for `Q5_1`) as
/// `x ~ d * l + m` with the `(d, m)` that minimise `sum w_i (x_i - d l_i - m)^2` (a search
/// over shrunk ranges, each refitted by weighted least squares, as llama.cpp's
/// `make_qkx2_quants` does). Returns `(d, m)` as stored (f16).
fn best_block_asym(x: &[f32], w: &[f32], top: f32) -> (f32, f32) {
    let (min, max) = x
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if max - min <= 0.0 {
        let m = f16::from_f32(min).to_f32();
        return (0.0, m);
    }
    let err_of = |d: f32, m: f32| -> f32 {
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        (0..QK)
            .map(|i| {
                let q = ((x[i] - m) * id).round().clamp(0.0, top);
                let e = x[i] - (d * q + m);
                w[i] * e * e
            })
            .sum()
    };
    let round16 = |d: f32, m: f32| (f16::from_f32(d).to_f32(), f16::from_f32(m).to_f32());
    let mut best = round16((max - min) / top, min);
    let mut best_err = err_of(best.0, best.1);
    for step in 0..=20 {
        // Candidate ranges: the full range, then ranges that clip the extremes a little.
        let shrink = 1.0 - 0.01 * step as f32;
        let (lo, hi) = (min * shrink, max * shrink);
        let mut d = (hi - lo) / top;
        let mut m = lo;
        for _ in 0..3 {
            if d <= 0.0 {
                break;
            }
            let id = 1.0 / d;
            // Weighted least squares of x on (l, 1) for the current levels.
            let (mut sw, mut sl, mut sl2, mut sx, mut slx) = (0f32, 0f32, 0f32, 0f32, 0f32);
            for i in 0..QK {
                let l = ((x[i] - m) * id).round().clamp(0.0, top);
                sw += w[i];
                sl += w[i] * l;
                sl2 += w[i] * l * l;
                sx += w[i] * x[i];
                slx += w[i] * l * x[i];
            }
            let det = sw * sl2 - sl * sl;
            if det <= 0.0 {
                break;
            }
            d = (sw * slx - sl * sx) / det;
            m = (sl2 * sx - sl * slx) / det;
        }
        if d <= 0.0 || !d.is_finite() || !m.is_finite() {
            continue;
        }
        let (d16, m16) = round16(d, m);
        let err = err_of(d16, m16);
        if err < best_err {
            best_err = err;
            best = (d16, m16);
        }
    }
    best
}

/// Quantizes a row-major matrix (`rows x cols`, `cols` a multiple of 32) to `Q4_0`.
/// `importance`, if given, has one weight per column (for instance the mean square of the
/// activations that column multiplies).
pub fn quantize_q4_0(t: &Tensor, importance: Option<&[f32]>) -> Result<QTensor> {
    let (rows, cols) = t.dims2()?;
    if !cols.is_multiple_of(QK) {
        return Err(crate::Error::InvalidArgument(format!(
            "Q4_0 needs rows that are a multiple of {QK}, got {cols}"
        )));
    }
    let data: Vec<f32> = t.flatten_all()?.to_vec1()?;
    let ones = vec![1f32; cols];
    let w = importance.unwrap_or(&ones);
    let mut out = Vec::with_capacity(rows * cols / QK * BLOCK_BYTES);
    for r in 0..rows {
        for b in 0..cols / QK {
            let x = &data[r * cols + b * QK..r * cols + (b + 1) * QK];
            let (d, l) = best_block(x, &w[b * QK..(b + 1) * QK]);
            out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
            for j in 0..QK / 2 {
                let lo = (l[j] + 8) as u8;
                let hi = (l[j + QK / 2] + 8) as u8;
                out.push(lo | (hi << 4));
            }
        }
    }
    let storage = QStorage::from_data(Cow::Owned(out), &Device::Cpu, GgmlDType::Q4_0)?;
    Ok(QTensor::new(storage, (rows, cols))?)
}

/// Relative damping added to the Gram matrix's diagonal before inversion (GPTQ's 1%):
/// keeps it invertible when calibration text leaves some directions unexplored.
pub const GPTQ_DAMPING: f64 = 0.01;

/// In-place Cholesky factorisation of a symmetric positive-definite `n x n` matrix (row-major):
/// leaves the lower factor `L` (with `A = L L^T`) in the lower triangle. `None` if not
/// positive definite.
fn cholesky_lower(a: &mut [f64], n: usize) -> Option<()> {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return None;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
        for k in j + 1..n {
            a[j * n + k] = 0.0;
        }
    }
    Some(())
}

/// The upper Cholesky factor `U` of `H^-1` (`H^-1 = U^T U`), row-major, the matrix GPTQ
/// spreads rounding errors with. `H` must be symmetric positive definite.
fn inverse_cholesky_upper(h: &[f64], n: usize) -> Option<Vec<f64>> {
    // H = L L^T  =>  H^-1 = L^-T L^-1. Invert L (lower triangular) column by column.
    let mut l = h.to_vec();
    cholesky_lower(&mut l, n)?;
    let mut linv = vec![0f64; n * n];
    for c in 0..n {
        linv[c * n + c] = 1.0 / l[c * n + c];
        for i in c + 1..n {
            let mut s = 0.0;
            for k in c..i {
                s -= l[i * n + k] * linv[k * n + c];
            }
            linv[i * n + c] = s / l[i * n + i];
        }
    }
    // H^-1 = Linv^T Linv, symmetric.
    let mut hinv = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = 0.0;
            for k in i..n {
                s += linv[k * n + i] * linv[k * n + j];
            }
            hinv[i * n + j] = s;
            hinv[j * n + i] = s;
        }
    }
    // With H^-1 = M M^T (M lower triangular), U = M^T is upper with H^-1 = U^T U.
    cholesky_lower(&mut hinv, n)?;
    let mut u = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            u[j * n + i] = hinv[i * n + j];
        }
    }
    Some(u)
}

/// GPTQ rounding of a row-major weight matrix (`rows x cols`, `cols` a multiple of 32) to
/// `Q4_0`, given `gram`, the `cols x cols` sum of `x x^T` over `samples` calibration inputs
/// of the layer. Falls back to [`quantize_q4_0`] (importance-weighted only) if the Gram
/// matrix cannot be factorised.
pub fn gptq_q4_0(t: &Tensor, gram: &[f64], samples: usize) -> Result<QTensor> {
    gptq(t, gram, samples, GgmlDType::Q4_0)
}

/// GPTQ rounding to `Q4_1` (a scale and a minimum per 32-value block: 5 bits a weight),
/// as [`gptq_q4_0`] does for `Q4_0`.
pub fn gptq_q4_1(t: &Tensor, gram: &[f64], samples: usize) -> Result<QTensor> {
    gptq(t, gram, samples, GgmlDType::Q4_1)
}

/// GPTQ rounding to any of ggml's 32-value block types with 4 or 5 bits a level
/// (`Q4_0`, `Q4_1`, `Q5_0`, `Q5_1`).
pub fn gptq(t: &Tensor, gram: &[f64], samples: usize, dtype: GgmlDType) -> Result<QTensor> {
    let (rows, cols) = t.dims2()?;
    if !cols.is_multiple_of(QK) || gram.len() != cols * cols || samples == 0 {
        return Err(crate::Error::InvalidArgument(format!(
            "GPTQ needs a {cols}x{cols} Gram matrix and rows that are a multiple of {QK}"
        )));
    }
    let mut h: Vec<f64> = gram.iter().map(|g| g / samples as f64).collect();
    let mean_diag = (0..cols).map(|i| h[i * cols + i]).sum::<f64>() / cols as f64;
    // Columns no input ever reached carry no information: any rounding is as good; they
    // are taken out of the error spreading.
    let dead: Vec<bool> = (0..cols).map(|i| h[i * cols + i] <= 0.0).collect();
    for i in 0..cols {
        if dead[i] {
            for j in 0..cols {
                h[i * cols + j] = 0.0;
                h[j * cols + i] = 0.0;
            }
            h[i * cols + i] = 1.0;
        }
    }
    for i in 0..cols {
        h[i * cols + i] += GPTQ_DAMPING * mean_diag.max(1e-12);
    }
    let importance: Vec<f32> = (0..cols).map(|i| h[i * cols + i] as f32).collect();
    let mut order: Vec<usize> = (0..cols).collect();
    order.sort_by(|&a, &b| h[b * cols + b].total_cmp(&h[a * cols + a]).then(a.cmp(&b)));
    let permuted: Vec<f64> = order
        .iter()
        .flat_map(|&i| order.iter().map(move |&j| (i, j)))
        .map(|(i, j)| h[i * cols + j])
        .collect();
    let Some(u) = inverse_cholesky_upper(&permuted, cols) else {
        return match dtype {
            GgmlDType::Q4_0 => quantize_q4_0(t, Some(&importance)),
            _ => Ok(QTensor::quantize(t, dtype)?),
        };
    };
    // Levels and layout of the block types GPTQ writes.
    let (asymmetric, bits) = match dtype {
        GgmlDType::Q4_0 => (false, 4u32),
        GgmlDType::Q4_1 => (true, 4),
        GgmlDType::Q5_0 => (false, 5),
        GgmlDType::Q5_1 => (true, 5),
        other => {
            return Err(crate::Error::InvalidArgument(format!(
                "GPTQ writes Q4_0, Q4_1, Q5_0 or Q5_1, not {other:?}"
            )))
        }
    };
    let top = ((1u32 << bits) - 1) as f32;
    let half = (1i32 << (bits - 1)) as f32;
    let data: Vec<f32> = t.flatten_all()?.to_vec1()?;
    let blocks = cols / QK;
    let quantize_row = |r: usize| -> Vec<u8> {
        let mut w: Vec<f64> = data[r * cols..(r + 1) * cols]
            .iter()
            .map(|&x| x as f64)
            .collect();
        for (i, d) in dead.iter().enumerate() {
            if *d {
                w[i] = 0.0;
            }
        }
        // Static groups: every block's scale is fitted to the original weights first, so
        // columns can then be rounded in any order.
        let scales: Vec<(f32, f32)> = (0..blocks)
            .map(|b| {
                let block: Vec<f32> = w[b * QK..(b + 1) * QK].iter().map(|&x| x as f32).collect();
                let imp = &importance[b * QK..(b + 1) * QK];
                if asymmetric {
                    best_block_asym(&block, imp, top)
                } else {
                    (best_block_sym(&block, imp, half as i32).0, 0.0)
                }
            })
            .collect();
        let (lo, hi) = if asymmetric {
            (0.0, top as f64)
        } else {
            (-half as f64, half as f64 - 1.0)
        };
        let mut levels = vec![0i8; cols];
        // Columns in order of decreasing input energy ("act-order"): the columns that
        // multiply the largest activations are rounded first, and their errors are spread
        // over the many columns still free to absorb them.
        for (p, &j) in order.iter().enumerate() {
            let (d, m) = scales[j / QK];
            let (d, m) = (d as f64, m as f64);
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let q = ((w[j] - m) * id).round().clamp(lo, hi);
            levels[j] = q as i8;
            let err = (w[j] - (q * d + m)) / u[p * cols + p];
            let urow = &u[p * cols..(p + 1) * cols];
            for pk in p + 1..cols {
                w[order[pk]] -= err * urow[pk];
            }
        }
        // ggml's blocks: f16 d, [f16 m], [u32 of fifth bits], 16 bytes of low nibbles
        // (value j in the low half of byte j, value j + 16 in the high half). Symmetric
        // types store level + 8 (Q4_0) or level + 16 (Q5_0).
        let offset = if asymmetric { 0 } else { half as i32 };
        let mut out = Vec::with_capacity(blocks * (BLOCK_BYTES + 6));
        for (b, (d, m)) in scales.iter().enumerate() {
            out.extend_from_slice(&f16::from_f32(*d).to_le_bytes());
            if asymmetric {
                out.extend_from_slice(&f16::from_f32(*m).to_le_bytes());
            }
            let u: Vec<u32> = levels[b * QK..(b + 1) * QK]
                .iter()
                .map(|&l| (l as i32 + offset) as u32)
                .collect();
            if bits == 5 {
                let qh = (0..QK).fold(0u32, |acc, j| acc | ((u[j] >> 4) & 1) << j);
                out.extend_from_slice(&qh.to_le_bytes());
            }
            for j in 0..QK / 2 {
                out.push(((u[j] & 0xF) | (u[j + QK / 2] & 0xF) << 4) as u8);
            }
        }
        out
    };
    use rayon::prelude::*;
    let out: Vec<u8> = (0..rows)
        .into_par_iter()
        .map(quantize_row)
        .collect::<Vec<_>>()
        .concat();
    let storage = QStorage::from_data(Cow::Owned(out), &Device::Cpu, dtype)?;
    Ok(QTensor::new(storage, (rows, cols))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_cholesky_is_right() {
        // H = [[4, 2], [2, 3]]: H^-1 = [[3, -2], [-2, 4]] / 8.
        let u = inverse_cholesky_upper(&[4.0, 2.0, 2.0, 3.0], 2).unwrap();
        assert_eq!(u[2], 0.0, "upper triangular");
        // U^T U == H^-1
        let m = |i: usize, j: usize| (0..2).map(|k| u[k * 2 + i] * u[k * 2 + j]).sum::<f64>();
        for (i, j, want) in [(0, 0, 3.0 / 8.0), (0, 1, -2.0 / 8.0), (1, 1, 4.0 / 8.0)] {
            assert!(
                (m(i, j) - want).abs() < 1e-12,
                "({i},{j}) {} vs {want}",
                m(i, j)
            );
        }
        assert!(inverse_cholesky_upper(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
    }

    #[test]
    fn gptq_lowers_output_error_on_correlated_inputs() {
        // Inputs with strongly correlated columns: GPTQ can push one column's rounding error
        // onto its neighbours so that x . w barely changes.
        let (rows, cols, n) = (8, 64, 400);
        let xs: Vec<Vec<f32>> = (0..n)
            .map(|s| {
                let base = ((s * 7919) % 97) as f32 / 48.0 - 1.0;
                (0..cols)
                    .map(|c| base + 0.1 * (((s * 31 + c * 17) % 13) as f32 / 6.0 - 1.0))
                    .collect()
            })
            .collect();
        let mut gram = vec![0f64; cols * cols];
        for x in &xs {
            for i in 0..cols {
                for j in 0..cols {
                    gram[i * cols + j] += x[i] as f64 * x[j] as f64;
                }
            }
        }
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 2654435761usize) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let t = Tensor::from_vec(w.clone(), (rows, cols), &Device::Cpu).unwrap();
        let out_err = |q: &QTensor| -> f64 {
            let d: Vec<f32> = q
                .dequantize(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let mut e = 0.0;
            for x in &xs {
                for r in 0..rows {
                    let y: f64 = (0..cols)
                        .map(|c| (w[r * cols + c] - d[r * cols + c]) as f64 * x[c] as f64)
                        .sum();
                    e += y * y;
                }
            }
            e
        };
        let q4 = gptq_q4_0(&t, &gram, n).unwrap();
        let plain = quantize_q4_0(&t, None).unwrap();
        assert!(
            out_err(&q4) < 0.5 * out_err(&plain),
            "{} vs {}",
            out_err(&q4),
            out_err(&plain)
        );
        // The other block types: ordinary ggml blocks (read back by candle's dequantizer),
        // better placed than candle's rounding; five bits beat four.
        for dtype in [GgmlDType::Q4_1, GgmlDType::Q5_0, GgmlDType::Q5_1] {
            let ours = gptq(&t, &gram, n, dtype).unwrap();
            let plain = QTensor::quantize(&t, dtype).unwrap();
            assert_eq!(ours.dtype(), dtype);
            assert_eq!(ours.shape().dims(), &[rows, cols]);
            assert!(
                out_err(&ours) < 0.5 * out_err(&plain),
                "{dtype:?}: {} vs {}",
                out_err(&ours),
                out_err(&plain)
            );
        }
        let q5 = gptq(&t, &gram, n, GgmlDType::Q5_0).unwrap();
        assert!(out_err(&q5) < 0.5 * out_err(&q4), "Q5_0 vs Q4_0");
        assert!(gptq(&t, &gram, n, GgmlDType::Q8_0).is_err());
    }

    /// The 5-bit layouts: every level of a block survives the round trip through candle.
    #[test]
    fn five_bit_blocks_keep_every_level() {
        // One row of 32 values on the Q5_0 grid -16..=15 (scale 0.5) and one on 0..=31.
        let sym: Vec<f32> = (0..32).map(|i| (i as f32 - 16.0) * 0.5).collect();
        let asym: Vec<f32> = (0..32).map(|i| 1.0 + i as f32 * 0.25).collect();
        let eye: Vec<f64> = (0..32 * 32)
            .map(|i| if i % 33 == 0 { 1.0 } else { 0.0 })
            .collect();
        for (dtype, values) in [(GgmlDType::Q5_0, &sym), (GgmlDType::Q5_1, &asym)] {
            let t = Tensor::from_vec(values.clone(), (1, 32), &Device::Cpu).unwrap();
            let q = gptq(&t, &eye, 1, dtype).unwrap();
            let back: Vec<f32> = q
                .dequantize(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            for (a, b) in values.iter().zip(&back) {
                assert!((a - b).abs() < 1e-3, "{dtype:?}: {a} came back as {b}");
            }
        }
    }

    #[test]
    fn search_beats_max_scaling_and_round_trips() {
        let n = 64 * 96;
        let v: Vec<f32> = (0..n)
            .map(|i| ((i * 2654435761usize) % 1000) as f32 / 500.0 - 1.0)
            .map(|x| x * x * x)
            .collect();
        let t = Tensor::from_vec(v.clone(), (64, 96), &Device::Cpu).unwrap();
        let ours = quantize_q4_0(&t, None).unwrap();
        let theirs = QTensor::quantize(&t, GgmlDType::Q4_0).unwrap();
        let err = |q: &QTensor| -> f32 {
            let d: Vec<f32> = q
                .dequantize(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            d.iter().zip(&v).map(|(a, b)| (a - b) * (a - b)).sum()
        };
        assert_eq!(ours.shape().dims(), &[64, 96]);
        assert!(
            err(&ours) < err(&theirs),
            "{} vs {}",
            err(&ours),
            err(&theirs)
        );
    }
}
