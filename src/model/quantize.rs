//! Error-minimising 4-bit quantization (native only, used by `convert`).
//!
//! candle's own `Q4_0` quantizer takes each 32-value block's largest magnitude as the scale.
//! That wastes levels: on MiniLM it leaves the 4-bit bundle at a cosine of about 0.95 to the
//! f32 vectors. Here each block's scale is chosen by a small search that minimises the
//! (optionally importance-weighted) squared error, as llama.cpp's `make_qx_quants` does. The
//! output is ordinary `Q4_0` (same bytes layout, same kernels), only better rounded.

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
        let iscale = -(8.0 + 0.1 * step as f32) / max;
        let mut l = [0i8; QK];
        let (mut sumlx, mut suml2) = (0f32, 0f32);
        for i in 0..QK {
            let q = (iscale * x[i]).round().clamp(-8.0, 7.0);
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
                let q = (id * x[i]).round().clamp(-8.0, 7.0);
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

#[cfg(test)]
mod tests {
    use super::*;

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
