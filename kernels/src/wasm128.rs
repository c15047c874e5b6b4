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
    unsafe { for_rows!(rows, t, out) }
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
