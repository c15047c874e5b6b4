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

/// AVX2: [`avx2_offset`] where the weights' range lets 16-bit lanes hold its sums (4- and
/// 5-bit bundles, and any matrix of values within ±64), else [`avx2`].
#[target_feature(enable = "avx2")]
pub(super) unsafe fn tile_avx2(t: &Tile, out: &mut [[f32; NR]; MR]) {
    macro_rules! offset_rows {
        ($g:literal) => {
            match t.mr {
                4 => avx2_offset::<4, $g>(t, out),
                3 => avx2_offset::<3, $g>(t, out),
                2 => avx2_offset::<2, $g>(t, out),
                1 => avx2_offset::<1, $g>(t, out),
                mr => unreachable!("a tile of {mr} rows for a kernel of at most 4"),
            }
        };
    }
    match offset_groups(t.w.value_range()) {
        8 => offset_rows!(8),
        4 => offset_rows!(4),
        2 => offset_rows!(2),
        1 => offset_rows!(1),
        _ => for_rows!(avx2, t, out),
    }
}

/// How many groups of four inputs [`avx2_offset`] may sum in 16-bit lanes for weights in
/// `lo..=hi`: each lane adds a pair of products of an offset activation (at most 255) and a
/// weight (at most `max(-lo, hi)` in magnitude) per group, and must stay within `i16`. A
/// divisor of the block's 8 groups; 0 where one pair could already saturate.
pub(super) fn offset_groups((lo, hi): (i8, i8)) -> usize {
    let widest = (-(lo as i32)).max(hi as i32).max(1);
    let fit = (i16::MAX as i32 / (2 * 255 * widest)) as usize;
    [8, 4, 2, 1].into_iter().find(|&g| g <= fit).unwrap_or(0)
}

/// AVX2 for weights of a narrow range: the activations offset to unsigned `q + 128`
/// (prepared once per call, as VNNI takes them) go straight into `maddubs`, whose 16-bit
/// pair sums then add up over `G` groups of four inputs (all 8 of a block for 4-bit
/// weights) before one `madd` widens them to 32 bits; `128 * sum(w)` (packed once at load)
/// comes off each block's sum. Two instructions per group and row where [`avx2`] takes
/// four, and exact integer sums, so the same results.
#[target_feature(enable = "avx2")]
unsafe fn avx2_offset<const M: usize, const G: usize>(t: &Tile, out: &mut [[f32; NR]; MR]) {
    let panel = t.w.panel(t.p).as_ptr() as *const u8;
    let wscales = t.w.panel_scales(t.p).as_ptr();
    let wsums = t.w.panel_sums(t.p).as_ptr();
    // Plain loops: see `avx2`.
    let (mut u, mut xs) = ([core::ptr::null(); M], [&[][..]; M]);
    for i in 0..M {
        // The second half of the prepared row: the offset values.
        u[i] = t.prepared(i)[t.kp..].as_ptr();
        xs[i] = t.scales(i);
    }
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); M];
    for b in 0..t.blocks() {
        let mut isum = [_mm256_setzero_si256(); M];
        let wb = panel.add(b * BLOCK * NR);
        for g0 in (0..BLOCK / 4).step_by(G) {
            let mut pairs = [_mm256_setzero_si256(); M];
            for g in g0..g0 + G {
                let w = _mm256_loadu_si256(wb.add(g * 4 * NR) as *const __m256i);
                let off = b * BLOCK + g * 4;
                for i in 0..M {
                    let a = _mm256_set1_epi32(quad(u[i].add(off)));
                    pairs[i] = _mm256_add_epi16(pairs[i], _mm256_maddubs_epi16(a, w));
                }
            }
            for i in 0..M {
                isum[i] = _mm256_add_epi32(isum[i], _mm256_madd_epi16(pairs[i], ones));
            }
        }
        let offset = _mm256_slli_epi32(_mm256_loadu_si256(wsums.add(b * NR) as *const __m256i), 7);
        let ws = _mm256_loadu_ps(wscales.add(b * NR));
        for i in 0..M {
            acc[i] = fold(acc[i], _mm256_sub_epi32(isum[i], offset), xs[i][b], ws);
        }
    }
    for i in 0..M {
        _mm256_storeu_ps(out[i].as_mut_ptr(), acc[i]);
    }
}

/// AVX2 has no signed-by-signed byte product: `maddubs` multiplies unsigned by signed. So
/// the activation's magnitude (prepared once per call) meets the weight with the
/// activation's sign applied (`sign`); pairs sum to at most 2 * 127 * 127, so the 16-bit
/// sums never saturate.
#[target_feature(enable = "avx2")]
unsafe fn avx2<const M: usize>(t: &Tile, out: &mut [[f32; NR]; MR]) {
    let panel = t.w.panel(t.p).as_ptr() as *const u8;
    let wscales = t.w.panel_scales(t.p).as_ptr();
    // Plain loops, not `array::from_fn`: its closure cannot be inlined into a
    // `target_feature` function, and the call's stores stall the loads after it.
    let (mut q, mut u, mut xs) = ([core::ptr::null(); M], [core::ptr::null(); M], [&[][..]; M]);
    for i in 0..M {
        q[i] = t.q(i).as_ptr() as *const u8;
        u[i] = t.prepared(i).as_ptr();
        xs[i] = t.scales(i);
    }
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
///
/// A tile takes `P` panels side by side (two where there are two left): a dot product
/// has a latency of several cycles, and `M` rows by one panel leave too few independent
/// sums to cover it; two panels double them and share each broadcast activation.
macro_rules! vnni_kernel {
    ($name:ident, $name2:ident, $inner:ident, $feat:literal, $dot:ident) => {
        #[target_feature(enable = $feat)]
        pub(super) unsafe fn $name(t: &Tile, out: &mut [[f32; NR]; MR]) {
            let mut two = [[[0f32; NR]; MR]; 1];
            match t.mr {
                4 => $inner::<4, 1>(t, &mut two),
                3 => $inner::<3, 1>(t, &mut two),
                2 => $inner::<2, 1>(t, &mut two),
                _ => $inner::<1, 1>(t, &mut two),
            }
            *out = two[0];
        }

        /// Panels `t.p` and `t.p + 1` at once.
        #[target_feature(enable = $feat)]
        pub(super) unsafe fn $name2(t: &Tile, out: &mut [[[f32; NR]; MR]; 2]) {
            match t.mr {
                4 => $inner::<4, 2>(t, out),
                3 => $inner::<3, 2>(t, out),
                2 => $inner::<2, 2>(t, out),
                _ => $inner::<1, 2>(t, out),
            }
        }

        #[target_feature(enable = $feat)]
        unsafe fn $inner<const M: usize, const P: usize>(t: &Tile, out: &mut [[[f32; NR]; MR]; P]) {
            let mut panel = [core::ptr::null::<u8>(); P];
            let mut wscales = [core::ptr::null::<f32>(); P];
            let mut wsums = [core::ptr::null::<i32>(); P];
            for j in 0..P {
                panel[j] = t.w.panel(t.p + j).as_ptr() as *const u8;
                wscales[j] = t.w.panel_scales(t.p + j).as_ptr();
                wsums[j] = t.w.panel_sums(t.p + j).as_ptr();
            }
            // Plain loops: see `avx2`.
            let (mut u, mut xs) = ([core::ptr::null(); M], [&[][..]; M]);
            for i in 0..M {
                u[i] = t.prepared(i).as_ptr();
                xs[i] = t.scales(i);
            }
            let mut acc = [[_mm256_setzero_ps(); M]; P];
            for b in 0..t.blocks() {
                let mut isum = [[_mm256_setzero_si256(); M]; P];
                for g in 0..BLOCK / 4 {
                    let mut w = [_mm256_setzero_si256(); P];
                    for j in 0..P {
                        w[j] = _mm256_loadu_si256(
                            panel[j].add(b * BLOCK * NR + g * 4 * NR) as *const __m256i
                        );
                    }
                    let off = b * BLOCK + g * 4;
                    for i in 0..M {
                        let a = _mm256_set1_epi32(quad(u[i].add(off)));
                        for j in 0..P {
                            isum[j][i] = $dot(isum[j][i], a, w[j]);
                        }
                    }
                }
                for j in 0..P {
                    let offset = _mm256_slli_epi32(
                        _mm256_loadu_si256(wsums[j].add(b * NR) as *const __m256i),
                        7,
                    );
                    let ws = _mm256_loadu_ps(wscales[j].add(b * NR));
                    for i in 0..M {
                        acc[j][i] = fold(
                            acc[j][i],
                            _mm256_sub_epi32(isum[j][i], offset),
                            xs[i][b],
                            ws,
                        );
                    }
                }
            }
            for j in 0..P {
                for i in 0..M {
                    _mm256_storeu_ps(out[j][i].as_mut_ptr(), acc[j][i]);
                }
            }
        }
    };
}

vnni_kernel!(
    tile_avx_vnni,
    tile2_avx_vnni,
    avx_vnni,
    "avx2,avxvnni",
    _mm256_dpbusd_avx_epi32
);
vnni_kernel!(
    tile_avx512_vnni,
    tile2_avx512_vnni,
    avx512_vnni,
    "avx2,avx512vnni,avx512vl",
    _mm256_dpbusd_epi32
);

/// AVX-512 VNNI on 512-bit registers: a tile of four panels (32 columns), two panels to a
/// register. The packed layout is the 8-column one every kernel reads, so each register is
/// two 32-byte loads, one from each panel, joined; the same sums as [`tile_avx512_vnni`].
#[target_feature(enable = "avx2,avx512f,avx512vnni,avx512vl")]
pub(super) unsafe fn tile4_avx512_vnni(t: &Tile, out: &mut [[[f32; NR]; MR]; 4]) {
    match t.mr {
        4 => zmm_vnni::<4>(t, out),
        3 => zmm_vnni::<3>(t, out),
        2 => zmm_vnni::<2>(t, out),
        _ => zmm_vnni::<1>(t, out),
    }
}

/// Two panels' 8-lane vectors at `lo` and `hi` as one 16-lane register.
#[inline(always)]
unsafe fn join(lo: *const u8, hi: *const u8) -> __m512i {
    _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256(lo as *const __m256i)),
        _mm256_loadu_si256(hi as *const __m256i),
        1,
    )
}

#[target_feature(enable = "avx2,avx512f,avx512vnni,avx512vl")]
unsafe fn zmm_vnni<const M: usize>(t: &Tile, out: &mut [[[f32; NR]; MR]; 4]) {
    let mut panel = [core::ptr::null::<u8>(); 4];
    let mut wscales = [core::ptr::null::<f32>(); 4];
    let mut wsums = [core::ptr::null::<i32>(); 4];
    for j in 0..4 {
        panel[j] = t.w.panel(t.p + j).as_ptr() as *const u8;
        wscales[j] = t.w.panel_scales(t.p + j).as_ptr();
        wsums[j] = t.w.panel_sums(t.p + j).as_ptr();
    }
    // Plain loops: see `avx2`.
    let (mut u, mut xs) = ([core::ptr::null(); M], [&[][..]; M]);
    for i in 0..M {
        u[i] = t.prepared(i).as_ptr();
        xs[i] = t.scales(i);
    }
    let mut acc = [[_mm512_setzero_ps(); M]; 2];
    for b in 0..t.blocks() {
        let mut isum = [[_mm512_setzero_si512(); M]; 2];
        for g in 0..BLOCK / 4 {
            let at = b * BLOCK * NR + g * 4 * NR;
            let w = [
                join(panel[0].add(at), panel[1].add(at)),
                join(panel[2].add(at), panel[3].add(at)),
            ];
            let off = b * BLOCK + g * 4;
            for i in 0..M {
                let a = _mm512_set1_epi32(quad(u[i].add(off)));
                for j in 0..2 {
                    isum[j][i] = _mm512_dpbusd_epi32(isum[j][i], a, w[j]);
                }
            }
        }
        for j in 0..2 {
            let sums = join(
                wsums[2 * j].add(b * NR) as *const u8,
                wsums[2 * j + 1].add(b * NR) as *const u8,
            );
            let offset = _mm512_slli_epi32(sums, 7);
            let ws = _mm512_castsi512_ps(join(
                wscales[2 * j].add(b * NR) as *const u8,
                wscales[2 * j + 1].add(b * NR) as *const u8,
            ));
            for i in 0..M {
                // As `fold`: `acc + isum * (scale_x * scale_w)`, rounded separately.
                let s = _mm512_mul_ps(_mm512_set1_ps(xs[i][b]), ws);
                let v = _mm512_cvtepi32_ps(_mm512_sub_epi32(isum[j][i], offset));
                acc[j][i] = _mm512_add_ps(acc[j][i], _mm512_mul_ps(v, s));
            }
        }
    }
    for j in 0..2 {
        for i in 0..M {
            let mut lanes = [0f32; 2 * NR];
            _mm512_storeu_ps(lanes.as_mut_ptr(), acc[j][i]);
            out[2 * j][i].copy_from_slice(&lanes[..NR]);
            out[2 * j + 1][i].copy_from_slice(&lanes[NR..]);
        }
    }
}

/// Activation rounding for whole rows of `blocks * 32` values with AVX-512: the bits of
/// `round_block_reference` (maximum of `|x|` ignoring NaN, scale `max / 127`, values scaled,
/// NaN to 0, clamped to ±127, rounded half to even). Sixteen blocks at a time share one
/// vector division for their scales, which is what the compiler's version of the portable
/// loop spends most of its time waiting for.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn round_rows_avx512(x: &[f32], q: &mut [i8], scales: &mut [f32]) {
    let total = x.len() / BLOCK;
    assert!(x.len().is_multiple_of(BLOCK) && q.len() >= x.len() && scales.len() >= total);
    let abs = _mm512_set1_epi32(0x7fff_ffff);
    let (lo, hi, zero) = (
        _mm512_set1_ps(-127.0),
        _mm512_set1_ps(127.0),
        _mm512_setzero_ps(),
    );
    let mut b0 = 0;
    while b0 < total {
        let n = (total - b0).min(16);
        let mut amax = [0f32; 16];
        for (i, a) in amax.iter_mut().enumerate().take(n) {
            let p = x.as_ptr().add((b0 + i) * BLOCK);
            let v0 = _mm512_castsi512_ps(_mm512_and_si512(_mm512_loadu_si512(p as _), abs));
            let v1 = _mm512_castsi512_ps(_mm512_and_si512(_mm512_loadu_si512(p.add(16) as _), abs));
            // `max(a, b)` is `b` where `a` is NaN: NaN never enters the maximum.
            *a = _mm512_reduce_max_ps(_mm512_max_ps(v1, _mm512_max_ps(v0, zero)));
        }
        let d = _mm512_div_ps(_mm512_loadu_ps(amax.as_ptr()), _mm512_set1_ps(127.0));
        let positive = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(d, zero);
        let id = _mm512_maskz_div_ps(positive, _mm512_set1_ps(1.0), d);
        let (mut ds, mut ids) = ([0f32; 16], [0f32; 16]);
        _mm512_storeu_ps(ds.as_mut_ptr(), d);
        _mm512_storeu_ps(ids.as_mut_ptr(), id);
        scales[b0..b0 + n].copy_from_slice(&ds[..n]);
        for (i, &idi) in ids.iter().enumerate().take(n) {
            let p = x.as_ptr().add((b0 + i) * BLOCK);
            let idv = _mm512_set1_ps(idi);
            for h in 0..2 {
                let t = _mm512_mul_ps(_mm512_loadu_ps(p.add(16 * h)), idv);
                let t = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_ORD_Q>(t, t), t);
                let t = _mm512_min_ps(_mm512_max_ps(t, lo), hi);
                let r = _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                    t,
                );
                let out = q.as_mut_ptr().add((b0 + i) * BLOCK + 16 * h);
                _mm_storeu_si128(out as *mut __m128i, _mm512_cvtepi32_epi8(r));
            }
        }
        b0 += n;
    }
}
