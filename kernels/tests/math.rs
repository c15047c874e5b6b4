//! The vectorisable `exp` and GELU against f64 arithmetic and the libm functions.

use cairn_kernels::math;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

#[test]
fn exp_is_within_two_ten_millionths() {
    let mut worst = 0f64;
    let mut x = -87.0f32;
    while x <= 88.0 {
        let got = math::exp(x) as f64;
        let want = (x as f64).exp();
        worst = worst.max(((got - want) / want).abs());
        x += 0.0137;
    }
    assert!(worst < 2e-7, "worst relative error {worst}");
    assert_eq!(math::exp(0.0), 1.0);
    assert_eq!(math::exp(-100.0), 0.0);
    assert_eq!(math::exp(f32::NEG_INFINITY), 0.0);
    assert!(math::exp(1000.0).is_finite());
}

#[test]
fn gelu_matches_the_erf_form() {
    let mut worst = 0f64;
    let mut x = -12.0f32;
    while x <= 12.0 {
        let mut v = [x];
        math::gelu_erf(&mut v);
        let xd = x as f64;
        let want = 0.5 * xd * (1.0 + libm::erf(xd / std::f64::consts::SQRT_2));
        worst = worst.max((v[0] as f64 - want).abs() / xd.abs().max(1.0));
        x += 0.001;
    }
    assert!(worst < 3e-7, "worst error {worst}");
    let mut v = [0.0f32, -0.0];
    math::gelu_erf(&mut v);
    assert_eq!(v[0], 0.0);
}

/// The slice function (SIMD128 in wasm, AVX-512 or AVX2 natively, 16 values at a time in
/// wasm with a scalar tail) gives the scalar `gelu`'s bits for every value, the edges
/// included: signed zeros, the clamp at 30, where `e^{-x^2/2}` reaches 0, infinities, NaN
/// (0 on every build: the relaxed-SIMD build's minimum and maximum treat NaN their own way).
#[test]
fn gelu_slices_give_the_scalar_bits() {
    let mut xs = vec![
        0.0f32,
        -0.0,
        f32::MIN_POSITIVE,
        -1e-30,
        13.2,
        -13.2,
        13.3,
        -13.3,
        29.99,
        30.0,
        -30.0,
        1e30,
        -1e30,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MAX,
        f32::MIN,
    ];
    let mut x = -40.0f32;
    while x <= 40.0 {
        xs.push(x);
        x += 0.0137;
    }
    for len in [xs.len(), 1, 15, 16, 17, 33] {
        let mut v = xs[..len].to_vec();
        math::gelu_erf(&mut v);
        for (&x, &y) in xs.iter().zip(&v) {
            let want = math::gelu(x);
            assert_eq!(
                y.to_bits(),
                want.to_bits(),
                "gelu({x}) = {y} in a slice of {len}, {want} alone"
            );
        }
    }
    assert_eq!(math::gelu(f32::INFINITY), f32::INFINITY);
    assert_eq!(math::gelu(f32::NEG_INFINITY), 0.0);
    assert_eq!(math::gelu(-13.3), 0.0);
    assert_eq!(math::gelu(13.3), 13.3);
    assert_eq!(math::gelu(f32::NAN).to_bits(), 0);
}

#[test]
fn rounding_to_i8_is_round_half_even_clamped() {
    let mut x = -200.0f32;
    while x <= 200.0 {
        let want = x.round_ties_even().clamp(-127.0, 127.0) as i8;
        assert_eq!(cairn_kernels::round_to_i8(x), want, "{x}");
        x += 0.03125; // every half and quarter, exactly
    }
    for x in [
        0.5f32,
        1.5,
        2.5,
        -0.5,
        -1.5,
        126.5,
        -126.5,
        0.49999997,
        f32::NAN,
    ] {
        let want = if x.is_nan() {
            0
        } else {
            x.round_ties_even() as i8
        };
        assert_eq!(cairn_kernels::round_to_i8(x), want, "{x}");
    }
}
