//! wasm relaxed SIMD: `i32x4.relaxed_dot_i8x16_i7x16_add_s`, sixteen multiply-adds an
//! instruction. Its second operand is read as signed by some engines and as unsigned by
//! x86 ones (`pmaddubsw`); it is exact everywhere only in `0..=127`. So the activation goes
//! in as two halves of `q + 127` (each in `0..=127`, prepared once per call), and
//! `127 * sum(w)` (packed at load) comes off each block's sum: the same integers on every
//! engine. The weight operand stays in `-127..=127`, so pair sums never saturate 16 bits.

// Tiles index small arrays of registers by row: clearer than zipped iterators here.
#![allow(clippy::needless_range_loop)]
use core::arch::wasm32::*;

use super::{Tile, BLOCK, MR, NR};

pub(super) fn tile(t: &Tile, out: &mut [[f32; NR]; MR]) {
    // SAFETY: every pointer read below stays inside the tile's panel and rows.
    unsafe { for_rows!(rows, t, out) }
}

#[inline(always)]
#[allow(unused_unsafe)]
unsafe fn rows<const M: usize>(t: &Tile, out: &mut [[f32; NR]; MR]) {
    let panel = t.w.panel(t.p).as_ptr();
    let wscales = t.w.panel_scales(t.p).as_ptr();
    let wsums = t.w.panel_sums(t.p).as_ptr();
    let kp = t.kp;
    let u: [*const u8; M] = std::array::from_fn(|i| t.prepared(i).as_ptr());
    let xs: [&[f32]; M] = std::array::from_fn(|i| t.scales(i));
    let k127 = i32x4_splat(127);
    // Both halves of the panel (columns 0-3 and 4-7) in one pass, so each row's activation
    // halves are splatted once per group for eight columns; the float accumulators live in
    // `out` (touched once per block), leaving the registers to the integer sums.
    for i in 0..M {
        out[i] = [0.0; NR];
    }
    for b in 0..t.blocks() {
        let mut isum = [[i32x4_splat(0); 2]; M];
        for g in 0..BLOCK / 4 {
            let at = panel.add(b * BLOCK * NR + g * 4 * NR);
            let w = [
                v128_load(at as *const v128),
                v128_load(at.add(16) as *const v128),
            ];
            let off = b * BLOCK + g * 4;
            for i in 0..M {
                let u1 = v128_load32_splat(u[i].add(off) as *const u32);
                let u2 = v128_load32_splat(u[i].add(kp + off) as *const u32);
                for h in 0..2 {
                    isum[i][h] = i32x4_relaxed_dot_i8x16_i7x16_add(w[h], u1, isum[i][h]);
                    isum[i][h] = i32x4_relaxed_dot_i8x16_i7x16_add(w[h], u2, isum[i][h]);
                }
            }
        }
        for h in 0..2 {
            let offset = i32x4_mul(v128_load(wsums.add(b * NR + h * 4) as *const v128), k127);
            let ws = v128_load(wscales.add(b * NR + h * 4) as *const v128);
            for i in 0..M {
                let s = f32x4_mul(f32x4_splat(xs[i][b]), ws);
                let exact = i32x4_sub(isum[i][h], offset);
                let o = out[i].as_mut_ptr().add(h * 4) as *mut v128;
                v128_store(
                    o,
                    f32x4_add(v128_load(o), f32x4_mul(f32x4_convert_i32x4(exact), s)),
                );
            }
        }
    }
}
