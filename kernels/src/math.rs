//! The element-wise functions of the encoder's forward pass, written so the compiler
//! vectorises them (no branches, no library calls) and every target computes the same bits
//! (basic IEEE operations only, no fused multiply-add): `exp` for the softmax, exact-erf
//! GELU for the feed-forward layers. Both are far more precise than the int8 rounding
//! around them (tested against f64 in `kernels/tests/math.rs`).

/// 1.5 * 2^23: adding and subtracting it rounds an f32 of magnitude below 2^22 to the
/// nearest integer, ties to even, on every target (baseline x86-64 has no `roundps`).
const ROUND: f32 = 12_582_912.0;

/// `e^x`, relative error below 2e-7 for `x` in `[-87, 88]`; 0 below -87.3 (where f32's
/// normal range ends), and `x` above 88 is treated as 88.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that n * LN2_HI is exact for the n that occur.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let under = x < -87.3;
    let x = x.clamp(-87.3, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    // The same integer as `n as i32` (|n| <= 127), from the bits: a saturating float-to-int
    // cast does not vectorise.
    let ni = t.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // e^r on |r| <= ln2 / 2: Taylor to degree 7 (truncation below 1e-8 relative).
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let scale = f32::from_bits(((ni + 127) as u32) << 23);
    if under {
        0.0
    } else {
        p * scale
    }
}

/// `erf(x)` (Abramowitz and Stegun 7.1.26: absolute error below 1.5e-7).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A1: f32 = 0.254_829_6;
    const A2: f32 = -0.284_496_72;
    const A3: f32 = 1.421_413_8;
    const A4: f32 = -1.453_152_1;
    const A5: f32 = 1.061_405_4;
    let a = x.abs();
    let t = 1.0 / (1.0 + P * a);
    let poly = t * (A1 + t * (A2 + t * (A3 + t * (A4 + t * A5))));
    let y = 1.0 - poly * exp(-(a * a));
    if x < 0.0 {
        -y
    } else {
        y
    }
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
    widest_where_present!(v, {
        for x in v {
            *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2));
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
