//! aarch64 NEON: `smull` widening products and `sadalp` pairwise accumulation (every
//! aarch64 CPU has them; the `sdot` instruction would need runtime detection).
//!
//! A 16-byte load is four inputs of four columns; multiplied by a row's broadcast four
//! activations it leaves two partial sums per column, folded by `addp` at the block's end.

// Tiles index small arrays of registers by row: clearer than zipped iterators here.
#![allow(clippy::needless_range_loop)]
use core::arch::aarch64::*;

use super::{Tile, BLOCK, MR, NR};

pub(super) fn tile(t: &Tile, out: &mut [[f32; NR]; MR]) {
    // SAFETY: NEON is part of aarch64; every pointer stays inside the panel and rows.
    unsafe { for_rows!(rows, t, out) }
}

#[inline(always)]
#[allow(unused_unsafe)]
unsafe fn rows<const M: usize>(t: &Tile, out: &mut [[f32; NR]; MR]) {
    let panel = t.w.panel(t.p).as_ptr();
    let wscales = t.w.panel_scales(t.p).as_ptr();
    let q: [*const i8; M] = std::array::from_fn(|i| t.q(i).as_ptr());
    let xs: [&[f32]; M] = std::array::from_fn(|i| t.scales(i));
    for h in 0..NR / 4 {
        let mut acc = [vdupq_n_f32(0.0); M];
        for b in 0..t.blocks() {
            let mut lo = [vdupq_n_s32(0); M];
            let mut hi = [vdupq_n_s32(0); M];
            for g in 0..BLOCK / 4 {
                let w = vld1q_s8(panel.add(b * BLOCK * NR + g * 4 * NR + h * 16));
                for i in 0..M {
                    let a = vreinterpretq_s8_s32(vld1q_dup_s32(
                        q[i].add(b * BLOCK + g * 4) as *const i32
                    ));
                    lo[i] = vpadalq_s16(lo[i], vmull_s8(vget_low_s8(w), vget_low_s8(a)));
                    hi[i] = vpadalq_s16(hi[i], vmull_high_s8(w, a));
                }
            }
            let ws = vld1q_f32(wscales.add(b * NR + h * 4));
            for i in 0..M {
                let isum = vpaddq_s32(lo[i], hi[i]);
                let s = vmulq_f32(vdupq_n_f32(xs[i][b]), ws);
                acc[i] = vaddq_f32(acc[i], vmulq_f32(vcvtq_f32_s32(isum), s));
            }
        }
        for i in 0..M {
            vst1q_f32(out[i].as_mut_ptr().add(h * 4), acc[i]);
        }
    }
}
