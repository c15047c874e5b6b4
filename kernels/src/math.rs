//! The element-wise functions of the encoder's forward pass, written so the compiler
//! vectorises them (no branches, no library calls) and every target computes the same bits
//! (basic IEEE operations only, no fused multiply-add): `exp` for the softmax, exact-erf
//! GELU for the feed-forward layers. Both are far more precise than the int8 rounding
//! around them (tested against f64 in `kernels/tests/math.rs`).

/// 1.5 * 2^23: adding and subtracting it rounds an f32 of magnitude below 2^22 to the
/// nearest integer, ties to even, on every target (baseline x86-64 has no `roundps`).
const ROUND: f32 = 12_582_912.0;
/// ln 2 split so that `n * LN2_HI` is exact for the `n` that occur.
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;

/// `e^x`, relative error below 2e-7 for `x` in `[-87, 88]`; 0 below -87.3 (where f32's
/// normal range ends), and `x` above 88 is treated as 88.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    let under = x < -87.3;
    let x = x.clamp(-87.3, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    // The same integer as `n as i32` (|n| <= 127), from the bits: a saturating float-to-int
    // cast does not vectorise.
    let ni = t.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // e^r on |r| <= ln2 / 2: Taylor to degree 7 (truncation below 1e-8 relative), by
    // Estrin's scheme: pairs of terms, then powers r^2 and r^4, a chain of 6 operations
    // where Horner's takes 14 (the softmax waits on this chain).
    let r2 = r * r;
    let r4 = r2 * r2;
    let lo = (1.0 + r) + r2 * (0.5 + r * (1.0 / 6.0));
    let hi = (1.0 / 24.0 + r * (1.0 / 120.0)) + r2 * (1.0 / 720.0 + r * (1.0 / 5040.0));
    let p = lo + r4 * hi;
    let scale = f32::from_bits(((ni + 127) as u32) << 23);
    if under {
        0.0
    } else {
        p * scale
    }
}

/// Constants of Abramowitz and Stegun 7.1.26: `erf(z) = 1 - t P(t) e^{-z^2}` for `z >= 0`,
/// `t = 1 / (1 + P z)` (absolute error below 1.5e-7).
const P: f32 = 0.327_591_1;
const A: [f32; 5] = [
    0.254_829_6,
    -0.284_496_72,
    1.421_413_8,
    -1.453_152_1,
    1.061_405_4,
];
/// `|x|` at and above which GELU is `max(x, 0)` in f32 (`e^{-x^2/2}` is 0 from 13.2 on):
/// clamping there keeps `inf * 0` out.
const FLAT: f32 = 30.0;

/// `e^-s` for `s >= 0` (as [`exp`], with the sign folded in): 0 above 87.3.
#[inline(always)]
fn exp_neg(s: f32) -> f32 {
    let under = s > 87.3;
    let s = if 87.3 < s { 87.3 } else { s };
    let t = s * -std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let ni = t.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    // e^-s = 2^n e^-u, |u| <= ln2 / 2; Taylor to degree 7 in -u, by Estrin's scheme.
    let u = (s + n * LN2_HI) + n * LN2_LO;
    let u2 = u * u;
    let u4 = u2 * u2;
    let lo = (1.0 - u) + u2 * (0.5 - u * (1.0 / 6.0));
    let hi = (1.0 / 24.0 - u * (1.0 / 120.0)) + u2 * (1.0 / 720.0 - u * (1.0 / 5040.0));
    let scale = f32::from_bits(((ni + 127) as u32) << 23);
    if under {
        0.0
    } else {
        (lo + u4 * hi) * scale
    }
}

/// GELU, the exact (erf) form `x (1 + erf(x / sqrt 2)) / 2`, with erf from Abramowitz and
/// Stegun 7.1.26. Written as `max(x, 0) - |x| q / 2` with `q = t P(t) e^{-x^2/2}` (which is
/// `1 - erf(|x| / sqrt 2)`): one form for both signs, no cancellation for negative `x`.
/// NaN gives 0 (what the rounding after it makes of a NaN anyway): no NaN reaches a
/// minimum or maximum, whose NaN results differ where LLVM lowers them to relaxed SIMD.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    let x = if x.is_nan() { 0.0 } else { x };
    let ax = f32::from_bits(x.to_bits() & 0x7fff_ffff);
    let ax = if FLAT < ax { FLAT } else { ax };
    let a = ax * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + P * a);
    let t2 = t * t;
    let poly = t * ((A[0] + t * A[1]) + t2 * ((A[2] + t * A[3]) + t2 * A[4]));
    let q = poly * exp_neg(a * a);
    let relu = if 0.0 < x { x } else { 0.0 };
    relu - (0.5 * ax) * q
}

/// Runs `$body` (a loop over `$v`) compiled for the widest x86 vectors the CPU has (AVX-512,
/// else AVX2; baseline x86-64 is SSE2): the same operations per element, so the same bits.
/// Natively, long slices are split over the cores first (each part gets the same per-element
/// arithmetic, so the split does not change a bit either).
macro_rules! widest_where_present {
    ($v:ident, $body:block) => {{
        fn part($v: &mut [f32]) {
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    #[target_feature(enable = "avx512f")]
                    unsafe fn wide512($v: &mut [f32]) $body
                    // SAFETY: the CPU has AVX-512F (checked just above).
                    unsafe { wide512($v) };
                    return;
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    #[target_feature(enable = "avx2")]
                    unsafe fn wide($v: &mut [f32]) $body
                    // SAFETY: the CPU has AVX2 (checked just above).
                    unsafe { wide($v) };
                    return;
                }
            }
            fn narrow($v: &mut [f32]) $body
            narrow($v)
        }
        crate::split_over_cores($v, part)
    }};
}

/// GELU with the exact (erf) form, `x * (1 + erf(x / sqrt 2)) / 2`, in place.
pub fn gelu_erf(v: &mut [f32]) {
    // wasm: written out in SIMD128 (the same operations per value, so the same bits;
    // `kernels/tests/math.rs` checks). In V8 it takes 2.2 ns a value where LLVM's
    // vectorisation of the loop below took 2.3-2.6 (measured on an AMD EPYC, Node 20).
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        let mut chunks = v.chunks_exact_mut(16);
        for c in &mut chunks {
            wasm::gelu16(c.try_into().expect("16 values"));
        }
        for x in chunks.into_remainder() {
            *x = gelu(*x);
        }
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    widest_where_present!(v, {
        for x in v {
            *x = gelu(*x);
        }
    })
}

/// `e^x` of every value, in place.
pub fn exp_in_place(v: &mut [f32]) {
    widest_where_present!(v, {
        for x in v {
            *x = exp(*x);
        }
    })
}

/// [`gelu_erf`] in SIMD128, four vectors at a time: the operations of [`gelu`] in the same
/// order on each lane (`pmin`/`pmax` are its comparisons; no NaN reaches them).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm {
    use core::arch::wasm32::*;

    use super::{A, FLAT, LN2_HI, LN2_LO, P, ROUND};

    #[inline(always)]
    fn c(v: f32) -> v128 {
        f32x4_splat(v)
    }

    /// `a + x * b`
    #[inline(always)]
    fn lin(a: f32, x: v128, b: f32) -> v128 {
        f32x4_add(c(a), f32x4_mul(x, c(b)))
    }

    /// `a - x * b`
    #[inline(always)]
    fn lin_neg(a: f32, x: v128, b: f32) -> v128 {
        f32x4_sub(c(a), f32x4_mul(x, c(b)))
    }

    #[inline(always)]
    fn exp_neg4(s: v128) -> v128 {
        let under = f32x4_gt(s, c(87.3));
        let s = f32x4_pmin(s, c(87.3));
        let t = f32x4_add(f32x4_mul(s, c(-std::f32::consts::LOG2_E)), c(ROUND));
        let n = f32x4_sub(t, c(ROUND));
        let ni = i32x4_sub(t, u32x4_splat(ROUND.to_bits()));
        let u = f32x4_add(
            f32x4_add(s, f32x4_mul(n, c(LN2_HI))),
            f32x4_mul(n, c(LN2_LO)),
        );
        let u2 = f32x4_mul(u, u);
        let u4 = f32x4_mul(u2, u2);
        let lo = f32x4_add(
            f32x4_sub(c(1.0), u),
            f32x4_mul(u2, lin_neg(0.5, u, 1.0 / 6.0)),
        );
        let hi = f32x4_add(
            lin_neg(1.0 / 24.0, u, 1.0 / 120.0),
            f32x4_mul(u2, lin_neg(1.0 / 720.0, u, 1.0 / 5040.0)),
        );
        let scale = i32x4_shl(i32x4_add(ni, i32x4_splat(127)), 23);
        v128_andnot(f32x4_mul(f32x4_add(lo, f32x4_mul(u4, hi)), scale), under)
    }

    #[inline(always)]
    fn gelu4(x: v128) -> v128 {
        let x = v128_and(x, f32x4_eq(x, x));
        let ax = v128_and(x, u32x4_splat(0x7fff_ffff));
        let ax = f32x4_pmin(ax, c(FLAT));
        let a = f32x4_mul(ax, c(std::f32::consts::FRAC_1_SQRT_2));
        let t = f32x4_div(c(1.0), lin(1.0, a, P));
        let t2 = f32x4_mul(t, t);
        let inner = f32x4_add(lin(A[2], t, A[3]), f32x4_mul(t2, c(A[4])));
        let poly = f32x4_mul(t, f32x4_add(lin(A[0], t, A[1]), f32x4_mul(t2, inner)));
        let q = f32x4_mul(poly, exp_neg4(f32x4_mul(a, a)));
        let relu = f32x4_pmax(c(0.0), x);
        f32x4_sub(relu, f32x4_mul(f32x4_mul(c(0.5), ax), q))
    }

    /// Sixteen values of [`super::gelu_erf`] in place.
    #[inline(always)]
    pub(super) fn gelu16(v: &mut [f32; 16]) {
        let p = v.as_mut_ptr() as *mut v128;
        // SAFETY: four 16-byte loads and stores within the 64 bytes of `v`; v128 loads and
        // stores need no alignment.
        unsafe {
            let x: [v128; 4] = std::array::from_fn(|i| v128_load(p.add(i)));
            let y = x.map(gelu4);
            for (i, y) in y.into_iter().enumerate() {
                v128_store(p.add(i), y);
            }
        }
    }
}
