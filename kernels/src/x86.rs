//! x86-64 kernels: AVX2, and VNNI (AVX-VNNI or AVX-512 VNNI on 256-bit registers).
//!
//! One panel is eight columns, one `__m256i` holds four inputs of each, and a tile's row
//! broadcasts its four activations of the same inputs into every lane, so each dot-product
//! instruction gives one partial sum per column with no horizontal reduction.

// Tiles index small arrays of registers by row: clearer than zipped iterators here.
#![allow(clippy::needless_range_loop)]
use core::arch::x86_64::*;

use super::{Tile, BLOCK, MR, NR};

/// Reads four bytes at `p` as one lane value.
#[inline(always)]
unsafe fn quad(p: *const u8) -> i32 {
    (p as *const i32).read_unaligned()
}

/// Folds a block's exact integer sums into the float accumulators, as `scalar.rs` does:
/// `acc + isum * (scale_x * scale_w)`, multiply and add rounded separately.
#[inline(always)]
unsafe fn fold(acc: __m256, isum: __m256i, xscale: f32, wscales: __m256) -> __m256 {
    let s = _mm256_mul_ps(_mm256_set1_ps(xscale), wscales);
    _mm256_add_ps(acc, _mm256_mul_ps(_mm256_cvtepi32_ps(isum), s))
}

macro_rules! dispatch_rows {
    ($name:ident, $inner:ident, $feat:literal) => {
        #[target_feature(enable = $feat)]
        pub(super) unsafe fn $name(t: &Tile, out: &mut [[f32; NR]; MR]) {
            for_rows!($inner, t, out)
        }
    };
}

dispatch_rows!(tile_avx2, avx2, "avx2");

/// AVX2 has no signed-by-signed byte product: `maddubs` multiplies unsigned by signed. So
/// the activation's magnitude (prepared once per call) meets the weight with the
/// activation's sign applied (`sign`); pairs sum to at most 2 * 127 * 127, so the 16-bit
/// sums never saturate.
#[target_feature(enable = "avx2")]
unsafe fn avx2<const M: usize>(t: &Tile, out: &mut [[f32; NR]; MR]) {
    let panel = t.w.panel(t.p).as_ptr() as *const u8;
    let wscales = t.w.panel_scales(t.p).as_ptr();
    let q: [*const u8; M] = std::array::from_fn(|i| t.q(i).as_ptr() as *const u8);
    let u: [*const u8; M] = std::array::from_fn(|i| t.prepared(i).as_ptr());
    let xs: [&[f32]; M] = std::array::from_fn(|i| t.scales(i));
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); M];
    for b in 0..t.blocks() {
        let mut isum = [_mm256_setzero_si256(); M];
        let wb = panel.add(b * BLOCK * NR);
        for g in 0..BLOCK / 4 {
            let w = _mm256_loadu_si256(wb.add(g * 4 * NR) as *const __m256i);
            let off = b * BLOCK + g * 4;
            for i in 0..M {
                let s = _mm256_set1_epi32(quad(q[i].add(off)));
                let a = _mm256_set1_epi32(quad(u[i].add(off)));
                let pairs = _mm256_maddubs_epi16(a, _mm256_sign_epi8(w, s));
                isum[i] = _mm256_add_epi32(isum[i], _mm256_madd_epi16(pairs, ones));
            }
        }
        let ws = _mm256_loadu_ps(wscales.add(b * NR));
        for i in 0..M {
            acc[i] = fold(acc[i], isum[i], xs[i][b], ws);
        }
    }
    for i in 0..M {
        _mm256_storeu_ps(out[i].as_mut_ptr(), acc[i]);
    }
}

/// VNNI's `vpdpbusd` multiplies unsigned bytes by signed bytes and adds groups of four
/// into 32 bits without saturation: the activations go in offset to `q + 128` (prepared
/// once per call) and `128 * sum(w)` (packed once at load) comes off each block's sum.
macro_rules! vnni_kernel {
    ($name:ident, $inner:ident, $feat:literal, $dot:ident) => {
        dispatch_rows!($name, $inner, $feat);

        #[target_feature(enable = $feat)]
        unsafe fn $inner<const M: usize>(t: &Tile, out: &mut [[f32; NR]; MR]) {
            let panel = t.w.panel(t.p).as_ptr() as *const u8;
            let wscales = t.w.panel_scales(t.p).as_ptr();
            let wsums = t.w.panel_sums(t.p).as_ptr();
            let u: [*const u8; M] = std::array::from_fn(|i| t.prepared(i).as_ptr());
            let xs: [&[f32]; M] = std::array::from_fn(|i| t.scales(i));
            let mut acc = [_mm256_setzero_ps(); M];
            for b in 0..t.blocks() {
                let mut isum = [_mm256_setzero_si256(); M];
                let wb = panel.add(b * BLOCK * NR);
                for g in 0..BLOCK / 4 {
                    let w = _mm256_loadu_si256(wb.add(g * 4 * NR) as *const __m256i);
                    let off = b * BLOCK + g * 4;
                    for i in 0..M {
                        let a = _mm256_set1_epi32(quad(u[i].add(off)));
                        isum[i] = $dot(isum[i], a, w);
                    }
                }
                let offset =
                    _mm256_slli_epi32(_mm256_loadu_si256(wsums.add(b * NR) as *const __m256i), 7);
                let ws = _mm256_loadu_ps(wscales.add(b * NR));
                for i in 0..M {
                    acc[i] = fold(acc[i], _mm256_sub_epi32(isum[i], offset), xs[i][b], ws);
                }
            }
            for i in 0..M {
                _mm256_storeu_ps(out[i].as_mut_ptr(), acc[i]);
            }
        }
    };
}

vnni_kernel!(
    tile_avx_vnni,
    avx_vnni,
    "avx2,avxvnni",
    _mm256_dpbusd_avx_epi32
);
vnni_kernel!(
    tile_avx512_vnni,
    avx512_vnni,
    "avx2,avx512vnni,avx512vl",
    _mm256_dpbusd_epi32
);
