//! wasm SIMD128: `i32x4.dot_i16x8_s` on operands widened to 16 bits.
//!
//! A 16-byte load is four inputs of four columns; widened, each half meets a row's four
//! activations (widened once per call, broadcast by `v128.load64_splat`) in one dot product
//! that leaves two partial sums per column; the block's end folds the pairs together.

// Tiles index small arrays of registers by row: clearer than zipped iterators here.
#![allow(clippy::needless_range_loop)]
use core::arch::wasm32::*;

use super::{Tile, BLOCK, MR, NR};

pub(super) fn tile(t: &Tile, out: &mut [[f32; NR]; MR]) {
    // SAFETY: every pointer read below stays inside the tile's panel and rows (the panel
    // is `blocks * BLOCK * NR` bytes, a prepared row `blocks * BLOCK` i16 values).
    unsafe { for_rows!(rows, t, out, five) }
}

#[inline(always)]
#[allow(unused_unsafe)]
unsafe fn rows<const M: usize>(t: &Tile, out: &mut [[f32; NR]; MR]) {
    let panel = t.w.panel(t.p).as_ptr();
    let wscales = t.w.panel_scales(t.p).as_ptr();
    let a16: [*const u8; M] = std::array::from_fn(|i| t.prepared(i).as_ptr());
    let xs: [&[f32]; M] = std::array::from_fn(|i| t.scales(i));
    for h in 0..NR / 4 {
        let mut acc = [f32x4_splat(0.0); M];
        for b in 0..t.blocks() {
            let mut lo = [i32x4_splat(0); M];
            let mut hi = [i32x4_splat(0); M];
            for g in 0..BLOCK / 4 {
                let w = v128_load(panel.add(b * BLOCK * NR + g * 4 * NR + h * 16) as *const v128);
                let (wl, wh) = (i16x8_extend_low_i8x16(w), i16x8_extend_high_i8x16(w));
                for i in 0..M {
                    let a = v128_load64_splat(a16[i].add((b * BLOCK + g * 4) * 2) as *const u64);
                    lo[i] = i32x4_add(lo[i], i32x4_dot_i16x8(wl, a));
                    hi[i] = i32x4_add(hi[i], i32x4_dot_i16x8(wh, a));
                }
            }
            let ws = v128_load(wscales.add(b * NR + h * 4) as *const v128);
            for i in 0..M {
                let isum = i32x4_add(
                    i32x4_shuffle::<0, 2, 4, 6>(lo[i], hi[i]),
                    i32x4_shuffle::<1, 3, 5, 7>(lo[i], hi[i]),
                );
                let s = f32x4_mul(f32x4_splat(xs[i][b]), ws);
                acc[i] = f32x4_add(acc[i], f32x4_mul(f32x4_convert_i32x4(isum), s));
            }
        }
        for i in 0..M {
            v128_store(out[i].as_mut_ptr().add(h * 4) as *mut v128, acc[i]);
        }
    }
}

/// [`super::round_block`] in SIMD128: `max|x|` with `pmax` from zero (NaN lanes as 0, as
/// the reference ignores them), then per value: times `1 / d`, NaN to 0, clamped with
/// `pmax`/`pmin`, rounded to nearest even by the reference's magic-number addition, and
/// narrowed.
#[inline(always)]
pub(super) fn round_block(x: &[f32; BLOCK], q: &mut [i8; BLOCK]) -> f32 {
    // SAFETY: eight 16-byte loads of the 32 floats of `x`, two 16-byte stores into the
    // 32 bytes of `q`; v128 loads and stores have no alignment requirement.
    unsafe {
        let p = x.as_ptr() as *const v128;
        // NaN lanes count as 0 in the maximum, and scaled NaN (from a NaN input, or
        // `0 * inf` in a block with an infinity) becomes +0 before the clamp: min, max and
        // the conversion never see a NaN, whatever an engine (or LLVM's relaxed-SIMD
        // lowering) does with one, and NaN rounds to 0 as the reference rounds it.
        let v: [v128; 8] = std::array::from_fn(|i| v128_load(p.add(i)));
        let mut m = f32x4_splat(0.0);
        for &vi in &v {
            m = f32x4_pmax(m, v128_and(f32x4_abs(vi), f32x4_eq(vi, vi)));
        }
        let lanes = [
            f32x4_extract_lane::<0>(m),
            f32x4_extract_lane::<1>(m),
            f32x4_extract_lane::<2>(m),
            f32x4_extract_lane::<3>(m),
        ];
        let amax = lanes.iter().fold(0f32, |m, &v| if v > m { v } else { m });
        let d = amax / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        let (idv, lo, hi) = (f32x4_splat(id), f32x4_splat(-127.0), f32x4_splat(127.0));
        // Rounded as `super::round_to_i8` rounds: `t + 1.5 * 2^23` is that number plus the
        // nearest integer (ties to even) exactly, so its bits less the number's are the
        // integer. Two operations, where `f32x4.nearest` and `i32x4.trunc_sat_f32x4_s` take
        // about eight on x86 engines (the conversion's saturation fix-ups).
        const MAGIC: f32 = 12_582_912.0;
        let (magic, magic_bits) = (f32x4_splat(MAGIC), u32x4_splat(MAGIC.to_bits()));
        let ints: [v128; 8] = std::array::from_fn(|i| {
            let t = f32x4_mul(v[i], idv);
            let t = v128_and(t, f32x4_eq(t, t));
            let t = f32x4_pmin(f32x4_pmax(t, lo), hi);
            i32x4_sub(f32x4_add(t, magic), magic_bits)
        });
        let out = q.as_mut_ptr() as *mut v128;
        for h in 0..2 {
            let a = i16x8_narrow_i32x4(ints[4 * h], ints[4 * h + 1]);
            let b = i16x8_narrow_i32x4(ints[4 * h + 2], ints[4 * h + 3]);
            v128_store(out.add(h), i8x16_narrow_i16x8(a, b));
        }
        d
    }
}

/// The SIMD128 kernel's prepared form: each value widened to a little-endian i16.
pub(super) fn widen(q: &[i8], out: &mut [u8]) {
    debug_assert_eq!(out.len(), 2 * q.len());
    let n = q.len() - q.len() % 16;
    let (qc, dsts) = (q.chunks_exact(16), out.chunks_exact_mut(32));
    let tail_q = qc.remainder();
    for (src, dst) in qc.zip(dsts) {
        // SAFETY: a 16-byte load from a 16-byte chunk; two 16-byte stores into 32 bytes.
        unsafe {
            let v = v128_load(src.as_ptr() as *const v128);
            let d = dst.as_mut_ptr() as *mut v128;
            v128_store(d, i16x8_extend_low_i8x16(v));
            v128_store(d.add(1), i16x8_extend_high_i8x16(v));
        }
    }
    for (i, &v) in tail_q.iter().enumerate() {
        let at = 2 * (n + i);
        out[at..at + 2].copy_from_slice(&(v as i16).to_le_bytes());
    }
}

/// The relaxed-SIMD kernel's prepared form of one row: `u = q + 127` (0..=254) split into
/// `lo = u >> 1` and `hi = u - lo`, both 7-bit.
#[allow(dead_code)]
pub(super) fn halves(q: &[i8], lo: &mut [u8], hi: &mut [u8]) {
    let n = q.len() - q.len() % 16;
    for at in (0..n).step_by(16) {
        // SAFETY: 16-byte loads and stores inside slices of `q.len()` bytes (`at + 16 <= n`).
        unsafe {
            let u = u8x16_add(
                v128_load(q.as_ptr().add(at) as *const v128),
                u8x16_splat(127),
            );
            let l = u8x16_shr(u, 1);
            v128_store(lo.as_mut_ptr().add(at) as *mut v128, l);
            v128_store(hi.as_mut_ptr().add(at) as *mut v128, u8x16_sub(u, l));
        }
    }
    for i in n..q.len() {
        let u = (q[i] as i16 + 127) as u8;
        lo[i] = u >> 1;
        hi[i] = u - (u >> 1);
    }
}
