//! wasm relaxed SIMD: the relaxed dot products, sixteen multiply-adds an instruction. Their
//! second operand is read as signed by some engines and as unsigned by x86 ones
//! (`pmaddubsw`); it is exact everywhere only in `0..=127`, so each kernel keeps it there.
//!
//! **Narrow weights** (4- and 5-bit bundles: every stored value within 127 of the least,
//! `lo`) go in as `w - lo` (`0..=span`), the activation as the signed operand, and
//! `lo * sum(x)` (the row's block sums, prepared once per call) is added back to each
//! block's sum. **Wide weights** (`Q8_0`) cannot be offset into 7 bits.
//!
//! Two kernels, because engines lower the instructions differently and neither wins
//! everywhere (the engine times both at load, `kernels::fastest` through
//! `Encoder::time_kernels` in `Engine::loadModel`):
//!
//! - [`tile`] (`relaxed-simd`) accumulates with `i32x4.relaxed_dot_i8x16_i7x16_add_s`: one
//!   `vpdpbusd` where the engine uses AVX-VNNI, but `pmaddubsw` + `pmaddwd` + `paddd` (and
//!   a constant) where it does not. Wide weights meet the activation as two halves of
//!   `q + 127` (each in `0..=127`, prepared once per call), and `127 * sum(w)` (packed at
//!   load) comes off each block's sum.
//! - [`tile_pairs`] (`relaxed-pairs`) uses `i16x8.relaxed_dot_i8x16_i7x16_s` (one
//!   `pmaddubsw` on x86): its pair sums are at most `2 * 127 * span`, so `G` groups of them
//!   add up in 16-bit lanes before one widening (`G = 8` for `Q4_0`'s span of 15, 4 for
//!   `Q5_0`'s 31). Wide weights take SIMD128's kernel (`super::wasm128::tile`), on the same
//!   widened activations.
//!
//! Either way the same integers as the reference on every engine, and pair sums never
//! saturate 16 bits.

// Tiles index small arrays of registers by row: clearer than zipped iterators here.
#![allow(clippy::needless_range_loop)]
use core::arch::wasm32::*;

use super::{Tile, BLOCK, MR, NR};

/// The weights' span: greatest stored value less the least.
#[inline(always)]
fn span(t: &Tile) -> usize {
    let (lo, hi) = t.w.value_range();
    (hi as i32 - lo as i32) as usize
}

/// `relaxed-simd`: the 32-bit dot-add.
pub(super) fn tile(t: &Tile, out: &mut [[f32; NR]; MR]) {
    // SAFETY: every pointer read below stays inside the tile's panel and rows.
    unsafe {
        match span(t) {
            0..=127 => for_rows!(narrow_dot, t, out),
            _ => for_rows!(rows, t, out),
        }
    }
}

/// `relaxed-pairs`: 16-bit pair sums for narrow weights, SIMD128's kernel for wide ones.
pub(super) fn tile_pairs(t: &Tile, out: &mut [[f32; NR]; MR]) {
    // SAFETY: every pointer read below stays inside the tile's panel and rows.
    unsafe {
        // Groups per 16-bit flush: `G * 2 * 127 * span <= 32767`.
        match span(t) {
            0..=16 => for_rows!(narrow8, t, out),
            17..=32 => for_rows!(narrow4, t, out),
            33..=64 => for_rows!(narrow2, t, out),
            65..=127 => for_rows!(narrow1, t, out),
            _ => super::wasm128::tile(t, out),
        }
    }
}

/// Adds `convert(isum + back) * (x scale * w scales)` of row `i`, block `b` into `out`: the
/// reference's float operations in its order.
#[inline(always)]
unsafe fn add_block(
    out: &mut [f32; NR],
    isum: &[v128; 2],
    back: v128,
    xscale: f32,
    wscales: *const f32,
) {
    let s0 = f32x4_splat(xscale);
    for h in 0..2 {
        let ws = v128_load(wscales.add(h * 4) as *const v128);
        let exact = i32x4_add(isum[h], back);
        let o = out.as_mut_ptr().add(h * 4) as *mut v128;
        v128_store(
            o,
            f32x4_add(
                v128_load(o),
                f32x4_mul(f32x4_convert_i32x4(exact), f32x4_mul(s0, ws)),
            ),
        );
    }
}

/// What a narrow tile reads: the panel, the offset, each row's values and block sums.
struct Narrow<const M: usize> {
    panel: *const i8,
    wscales: *const f32,
    lo: i8,
    q: [*const i8; M],
    xsum: [*const u8; M],
}

impl<const M: usize> Narrow<M> {
    #[inline(always)]
    unsafe fn new(t: &Tile, out: &mut [[f32; NR]; MR]) -> Self {
        for row in out.iter_mut().take(M) {
            *row = [0.0; NR];
        }
        Self {
            panel: t.w.panel(t.p).as_ptr(),
            wscales: t.w.panel_scales(t.p).as_ptr(),
            lo: t.w.value_range().0,
            q: std::array::from_fn(|i| t.q(i).as_ptr()),
            // The row's block sums of `q`, after the first `2 * kp` prepared bytes.
            xsum: std::array::from_fn(|i| t.prepared(i).as_ptr().add(2 * t.kp)),
        }
    }

    /// Group `g` of block `b`: the eight columns' weights, offset to `0..=span`.
    #[inline(always)]
    unsafe fn weights(&self, b: usize, g: usize) -> [v128; 2] {
        let at = self.panel.add(b * BLOCK * NR + g * 4 * NR);
        let shift = i8x16_splat(self.lo);
        [
            i8x16_sub(v128_load(at as *const v128), shift),
            i8x16_sub(v128_load(at.add(16) as *const v128), shift),
        ]
    }

    /// Row `i`'s four activations of group `g` of block `b`, in every lane.
    #[inline(always)]
    unsafe fn x(&self, i: usize, b: usize, g: usize) -> v128 {
        v128_load32_splat(self.q[i].add(b * BLOCK + g * 4) as *const u32)
    }

    /// `lo * sum(x)` of row `i`, block `b`, in every lane: what the offset took off.
    #[inline(always)]
    unsafe fn back(&self, i: usize, b: usize) -> v128 {
        let sum = i32::from_le_bytes(std::ptr::read_unaligned(
            self.xsum[i].add(4 * b) as *const [u8; 4]
        ));
        i32x4_splat(self.lo as i32 * sum)
    }
}

/// The narrow-weight tile of `relaxed-simd`: one 32-bit dot-add per four inputs of four
/// columns.
#[inline(always)]
#[allow(unused_unsafe)]
unsafe fn narrow_dot<const M: usize>(t: &Tile, out: &mut [[f32; NR]; MR]) {
    let n = Narrow::<M>::new(t, out);
    let xs: [&[f32]; M] = std::array::from_fn(|i| t.scales(i));
    for b in 0..t.blocks() {
        let mut isum = [[i32x4_splat(0); 2]; M];
        for g in 0..BLOCK / 4 {
            let w = n.weights(b, g);
            for i in 0..M {
                let x = n.x(i, b, g);
                for h in 0..2 {
                    isum[i][h] = i32x4_relaxed_dot_i8x16_i7x16_add(x, w[h], isum[i][h]);
                }
            }
        }
        for i in 0..M {
            add_block(
                &mut out[i],
                &isum[i],
                n.back(i, b),
                xs[i][b],
                n.wscales.add(b * NR),
            );
        }
    }
}

macro_rules! narrow_with {
    ($name:ident, $g:literal) => {
        #[inline(always)]
        unsafe fn $name<const M: usize>(t: &Tile, out: &mut [[f32; NR]; MR]) {
            narrow::<M, $g>(t, out)
        }
    };
}
narrow_with!(narrow8, 8);
narrow_with!(narrow4, 4);
narrow_with!(narrow2, 2);
narrow_with!(narrow1, 1);

/// The narrow-weight tile of `relaxed-pairs`: `G` groups of four inputs summed in 16-bit
/// lanes, then widened into the block's 32-bit sums. (Four columns at a time, which needs
/// fewer registers, measured slower in Chromium: 10.6 against 8.8 ms a query.)
#[inline(always)]
#[allow(unused_unsafe)]
unsafe fn narrow<const M: usize, const G: usize>(t: &Tile, out: &mut [[f32; NR]; MR]) {
    let n = Narrow::<M>::new(t, out);
    let xs: [&[f32]; M] = std::array::from_fn(|i| t.scales(i));
    for b in 0..t.blocks() {
        let mut isum = [[i32x4_splat(0); 2]; M];
        for g0 in (0..BLOCK / 4).step_by(G) {
            let mut pairs = [[i16x8_splat(0); 2]; M];
            for g in g0..g0 + G {
                let w = n.weights(b, g);
                for i in 0..M {
                    let x = n.x(i, b, g);
                    for h in 0..2 {
                        pairs[i][h] =
                            i16x8_add(pairs[i][h], i16x8_relaxed_dot_i8x16_i7x16(x, w[h]));
                    }
                }
            }
            for i in 0..M {
                for h in 0..2 {
                    isum[i][h] = i32x4_add(isum[i][h], i32x4_extadd_pairwise_i16x8(pairs[i][h]));
                }
            }
        }
        for i in 0..M {
            add_block(
                &mut out[i],
                &isum[i],
                n.back(i, b),
                xs[i][b],
                n.wscales.add(b * NR),
            );
        }
    }
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
