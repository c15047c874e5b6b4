//! Every kernel against the scalar reference, bit for bit, on awkward shapes: one row, 257
//! rows (split over threads natively), one output column, `k` not a multiple of the block,
//! all-zero and saturating inputs. The same sweep runs natively (plus property tests) and
//! in Chromium for each wasm build (`make test-wasm`).

use cairn_kernels::{fastest, gemm, GgufBlocks, Kernel, PackedMatrix, QuantizedRows, BLOCK};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// Which kernels this build runs, in the test log (the wasm builds differ).
#[test]
fn kernels_available() {
    let names: Vec<&str> = Kernel::available().iter().map(|k| k.name()).collect();
    println!(
        "kernels: {}; best {}",
        names.join(", "),
        Kernel::best().name()
    );
    assert_eq!(Kernel::available()[0], Kernel::Scalar);
}

/// A small deterministic generator (xorshift), so native and wasm runs see the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

#[derive(Clone, Copy, Debug)]
enum Fill {
    Random,
    Zero,
    /// Every value at the top of its range, signs alternating: the largest integer sums.
    Saturating,
    /// Mostly small values with a few large ones, as real activations are.
    Outliers,
}

fn data(len: usize, fill: Fill, rng: &mut Rng) -> Vec<f32> {
    (0..len)
        .map(|i| match fill {
            Fill::Random => rng.unit() * 3.0,
            Fill::Zero => 0.0,
            Fill::Saturating => {
                if i % 3 == 0 {
                    -5.0
                } else {
                    5.0
                }
            }
            Fill::Outliers => {
                let v = rng.unit();
                if rng.next().is_multiple_of(17) {
                    v * 40.0
                } else {
                    v * 0.1
                }
            }
        })
        .collect()
}

fn run(kernel: Kernel, x: &[f32], m: usize, k: usize, w: &PackedMatrix, bias: &[f32]) -> Vec<f32> {
    let mut rows = QuantizedRows::new(kernel);
    rows.quantize(kernel, x, m, k).unwrap();
    let mut out = vec![f32::NAN; m * w.n()];
    gemm(&rows, w, Some(bias), &mut out).unwrap();
    out
}

/// Every available kernel gives the scalar reference's bits on this shape; the reference
/// itself matches a float computation of the same rounded values.
fn check(m: usize, n: usize, k: usize, fill: Fill, seed: u64) {
    let mut rng = Rng(seed.max(1));
    let x = data(m * k, fill, &mut rng);
    let wf = data(n * k, fill, &mut rng);
    let bias = data(n, Fill::Random, &mut rng);
    let w = PackedMatrix::from_f32(&wf, n, k).unwrap();
    let reference = run(Kernel::Scalar, &x, m, k, &w, &bias);

    // The reference against f64 arithmetic on the rounded values it was given.
    let mut rows = QuantizedRows::new(Kernel::Scalar);
    rows.quantize(Kernel::Scalar, &x, m, k).unwrap();
    for r in 0..m {
        for c in 0..n {
            let mut want = bias[c] as f64;
            let mut mag = bias[c].abs() as f64;
            for b in 0..k.div_ceil(BLOCK) {
                let xs = rows.scale(r, b) as f64;
                let ws = w.scale(c, b) as f64;
                for i in b * BLOCK..((b + 1) * BLOCK).min(k) {
                    let p = rows.value(r, i) as f64 * xs * w.value(c, i) as f64 * ws;
                    want += p;
                    mag += p.abs();
                }
            }
            let got = reference[r * n + c] as f64;
            assert!(
                (got - want).abs() <= 1e-5 * mag + 1e-30,
                "reference ({m}x{n}x{k} {fill:?}) at ({r},{c}): {got} vs {want}"
            );
        }
    }

    same_as_reference(&x, m, k, &w, &bias, &format!("{fill:?}"));
}

/// Every available kernel gives the scalar reference's bits for `x` (`m x k`) times `w`.
fn same_as_reference(x: &[f32], m: usize, k: usize, w: &PackedMatrix, bias: &[f32], what: &str) {
    let n = w.n();
    let reference = run(Kernel::Scalar, x, m, k, w, bias);
    for kernel in Kernel::available() {
        let got = run(kernel, x, m, k, w, bias);
        for (i, (a, b)) in got.iter().zip(&reference).enumerate() {
            assert_eq!(
                a.to_bits(),
                b.to_bits(),
                "{} differs from scalar ({m}x{n}x{k} {what}) at row {} col {}: {a} vs {b}",
                kernel.name(),
                i / n,
                i % n
            );
        }
    }
}

/// `fastest` times each candidate this build has (and only those), fastest first; one
/// candidate is returned untimed. A counting clock: every run takes one tick.
#[test]
fn fastest_times_the_candidates_this_build_has() {
    let mut rng = Rng(5);
    let w = PackedMatrix::from_f32(&data(24 * 64, Fill::Random, &mut rng), 24, 64).unwrap();
    let ticks = std::cell::Cell::new(0.0);
    let clock = || {
        ticks.set(ticks.get() + 1.0);
        ticks.get()
    };
    let all = [
        Kernel::Scalar,
        Kernel::Avx2,
        Kernel::AvxVnni,
        Kernel::Avx512Vnni,
        Kernel::Neon,
        Kernel::Simd128,
        Kernel::RelaxedSimd,
        Kernel::RelaxedPairs,
    ];
    let times = fastest(&all, &[&w, &w], 5, 2, 3.0, &clock);
    let have: Vec<Kernel> = all
        .into_iter()
        .filter(|k| Kernel::available().contains(k))
        .collect();
    assert_eq!(times.len(), have.len());
    for (k, ms) in &times {
        assert!(have.contains(k), "{} is not in this build", k.name());
        assert_eq!(*ms, 1.0, "{}", k.name());
    }
    let one = fastest(&[Kernel::Scalar], &[&w], 5, 2, 3.0, &clock);
    assert_eq!(one.len(), 1);
    assert!(one[0].1.is_nan());
    assert!(fastest(&[], &[&w], 5, 2, 3.0, &clock).is_empty());
}

/// A `Q8_0` matrix (`n x k`) whose values `value(row, i)` gives, scale 0.01 per block.
fn q8_matrix(n: usize, k: usize, value: impl Fn(usize, usize) -> i8) -> PackedMatrix {
    let scale = half::f16::from_f32(0.01).to_le_bytes();
    let mut bytes = Vec::new();
    for row in 0..n {
        for b in 0..k / BLOCK {
            bytes.extend_from_slice(&scale);
            bytes.extend((0..BLOCK).map(|j| value(row, b * BLOCK + j) as u8));
        }
    }
    PackedMatrix::from_gguf(GgufBlocks::Q8_0, &bytes, n, k).unwrap()
}

/// Weights in a narrow range (4- and 5-bit bundles, which the relaxed-SIMD kernels offset to
/// 7 bits and sum in 16-bit lanes as far as the range allows) and just past it: random
/// values, and every value at the top or the bottom of the range against activations all at
/// +127 or all at -127 (the largest 16-bit sums each kernel lets build up). Symmetric and
/// lopsided ranges, spans on both sides of each limit (16, 32, 64, 127).
#[test]
fn narrow_weights_at_the_edges_of_their_range() {
    let ranges: &[(i8, i8)] = &[
        (-8, 7),
        (-8, 8),
        (-16, 15),
        (-16, 16),
        (-17, 16),
        (-32, 31),
        (-32, 32),
        (-64, 63),
        (-64, 64),
        (0, 127),
        (-127, 0),
        (-30, 97),
        (-30, 98),
        (3, 9),
        (-127, 127),
    ];
    for (case, &(lo, hi)) in ranges.iter().enumerate() {
        for &(m, n, k) in &[(1, 8, 32), (4, 16, 64), (7, 9, 384), (5, 24, 1536)] {
            let mut rng = Rng(101 + case as u64);
            let span = (hi as i32 - lo as i32 + 1) as u64;
            let wr: Vec<i8> = (0..n * k)
                .map(|_| (lo as i32 + (rng.next() % span) as i32) as i8)
                .collect();
            let random = q8_matrix(n, k, |r, i| wr[r * k + i]);
            let top = q8_matrix(n, k, |_, _| hi);
            let bottom = q8_matrix(n, k, |_, _| lo);
            let x = data(m * k, Fill::Random, &mut rng);
            let bias = data(n, Fill::Random, &mut rng);
            let what = format!("weights {lo}..={hi}");
            same_as_reference(&x, m, k, &random, &bias, &what);
            for sign in [1.0f32, -1.0] {
                let x = vec![sign * 5.0; m * k];
                same_as_reference(
                    &x,
                    m,
                    k,
                    &top,
                    &bias,
                    &format!("{what}, all {hi}, x {sign}"),
                );
                same_as_reference(
                    &x,
                    m,
                    k,
                    &bottom,
                    &bias,
                    &format!("{what}, all {lo}, x {sign}"),
                );
                let mixed = data(m * k, Fill::Saturating, &mut rng);
                same_as_reference(
                    &mixed,
                    m,
                    k,
                    &random,
                    &bias,
                    &format!("{what}, saturating x"),
                );
            }
        }
    }
}

const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 8, 32),
    (1, 1, 384),
    (2, 3, 31),
    (3, 17, 33),
    (4, 8, 64),
    (5, 9, 100),
    (7, 16, 1536),
    (10, 384, 384),
    (257, 9, 33),
    (129, 24, 96),
    // Tiles of several panels (x86 VNNI) and what is left after them: 5, 6 and 7 panels.
    (3, 40, 64),
    (2, 48, 32),
    (5, 56, 96),
];

#[test]
fn every_kernel_matches_the_reference_on_awkward_shapes() {
    for (i, &(m, n, k)) in SHAPES.iter().enumerate() {
        check(m, n, k, Fill::Random, 17 + i as u64);
    }
}

#[test]
fn zero_saturating_and_outlier_inputs() {
    for &(m, n, k) in &[(1, 1, 32), (5, 9, 100), (257, 9, 33), (6, 16, 1536)] {
        check(m, n, k, Fill::Zero, 3);
        check(m, n, k, Fill::Saturating, 5);
        check(m, n, k, Fill::Outliers, 7);
    }
}

/// Saturating values reach the ends of the int8 ranges: the integer sums the SIMD tricks
/// must keep exact (AVX2 `maddubs` pairs, relaxed SIMD's 7-bit operand) are largest there.
#[test]
fn saturating_values_round_to_the_ends_of_the_range() {
    let x = vec![5.0f32; 64];
    let mut rows = QuantizedRows::new(Kernel::Scalar);
    rows.quantize(Kernel::Scalar, &x, 1, 64).unwrap();
    assert_eq!(rows.value(0, 0), 127);
    let w = PackedMatrix::from_f32(&[-5.0; 64], 1, 64).unwrap();
    assert_eq!(w.value(0, 63), -127);
}

/// Rounding with an element-wise function applied range by range (`quantize_mapped`, the
/// encoder's GELU) gives the same rows, scales and products as applying it to the whole
/// batch first, for every kernel, split over threads (257 rows) or not, `k` whole or not.
#[test]
fn mapped_rounding_equals_map_then_round() {
    fn halve_and_square(v: &mut [f32]) {
        for x in v {
            *x = 0.5 * *x * *x - 0.25;
        }
    }
    for &(m, n, k) in &[(257, 16, 96), (3, 8, 40), (129, 24, 1536)] {
        let mut rng = Rng(7 + m as u64);
        let x = data(m * k, Fill::Random, &mut rng);
        let w = PackedMatrix::from_f32(&data(n * k, Fill::Random, &mut rng), n, k).unwrap();
        let mut mapped_first = x.clone();
        halve_and_square(&mut mapped_first);
        for kernel in Kernel::available() {
            let mut a = QuantizedRows::new(kernel);
            a.quantize(kernel, &mapped_first, m, k).unwrap();
            let mut b = QuantizedRows::new(kernel);
            let mut x2 = x.clone();
            b.quantize_mapped(kernel, &mut x2, m, k, halve_and_square)
                .unwrap();
            assert_eq!(
                x2,
                mapped_first,
                "{}: the map is applied in place",
                kernel.name()
            );
            for r in [0, m / 2, m - 1] {
                for b_ in 0..k.div_ceil(BLOCK) {
                    assert_eq!(a.scale(r, b_).to_bits(), b.scale(r, b_).to_bits());
                }
                for i in 0..k {
                    assert_eq!(a.value(r, i), b.value(r, i), "{}: row {r}", kernel.name());
                }
            }
            let (mut oa, mut ob) = (vec![0f32; m * n], vec![0f32; m * n]);
            gemm(&a, &w, None, &mut oa).unwrap();
            gemm(&b, &w, None, &mut ob).unwrap();
            assert_eq!(oa, ob, "{}", kernel.name());
        }
    }
}

/// A row's output does not depend on the rows beside it: one call for 257 rows (split
/// over threads natively) equals 257 calls of one row, so a batch and a single query
/// embed the same text identically.
#[test]
fn rows_are_independent_of_their_batch() {
    let (m, n, k) = (257, 40, 96);
    let mut rng = Rng(99);
    let x = data(m * k, Fill::Random, &mut rng);
    let w = PackedMatrix::from_f32(&data(n * k, Fill::Random, &mut rng), n, k).unwrap();
    let bias = data(n, Fill::Random, &mut rng);
    let kernel = Kernel::best();
    let all = run(kernel, &x, m, k, &w, &bias);
    for r in [0, 1, 63, 64, 128, 200, 256] {
        let one = run(kernel, &x[r * k..(r + 1) * k], 1, k, &w, &bias);
        assert_eq!(one, all[r * n..(r + 1) * n], "row {r}");
    }
}

#[test]
fn gguf_blocks_pack_exactly() {
    // Two rows of one Q8_0 block each, then the same values as Q4_0.
    let scale = half::f16::from_f32(0.5).to_le_bytes();
    let mut q8 = Vec::new();
    for row in 0..2i8 {
        q8.extend_from_slice(&scale);
        q8.extend((0..32).map(|j| (j as i8 - 16 + row) as u8));
    }
    let w = PackedMatrix::from_gguf(GgufBlocks::Q8_0, &q8, 2, 32).unwrap();
    for j in 0..32 {
        assert_eq!(w.value(0, j), j as i8 - 16);
        assert_eq!(w.value(1, j), j as i8 - 15);
    }
    assert_eq!(w.scale(1, 0), 0.5);

    let mut q4 = scale.to_vec();
    q4.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
    let w = PackedMatrix::from_gguf(GgufBlocks::Q4_0, &q4, 1, 32).unwrap();
    for j in 0..16 {
        assert_eq!(w.value(0, j), j as i8 - 8);
        assert_eq!(w.value(0, j + 16), 7 - j as i8);
    }
    assert_eq!(w.value_range(), (-8, 7));
    // -128 is read as -127 so that every kernel's tricks stay exact.
    let mut bad = scale.to_vec();
    bad.extend([0x80u8; 32]);
    let w = PackedMatrix::from_gguf(GgufBlocks::Q8_0, &bad, 1, 32).unwrap();
    assert_eq!(w.value(0, 5), -127);
}

/// Activation rounding (SIMD code in the wasm builds and for AVX-512) against a plain
/// computation of its definition: scale `max|x| / 127` per block (NaN ignored), values rounded
/// half to even and clamped to [-127, 127], NaN to 0; ties, zeros, infinities, a short last
/// block, and rows of whole blocks (the AVX-512 path: 17 blocks a row, so a group of sixteen
/// blocks spans rows).
#[test]
fn rounding_matches_its_definition() {
    for k in [32 * 5 + 7, 32 * 17, 32] {
        rounding_matches_its_definition_for(k);
    }
}

fn rounding_matches_its_definition_for(k: usize) {
    let mut rng = Rng(3);
    let mut x = data(3 * k, Fill::Outliers, &mut rng);
    // Row 0, block 0: exact ties (scale 1), then the rest of the block.
    for (i, v) in [127.0, 0.5, 1.5, 2.5, -0.5, -2.5, -126.5, 126.5, -0.0]
        .iter()
        .enumerate()
    {
        x[i] = *v;
    }
    // Block 1 all zero; block 2 holds a NaN; block 3 an infinity (wherever those are).
    let n = x.len();
    x[32..64.min(n)].iter_mut().for_each(|v| *v = 0.0);
    x[70] = f32::NAN;
    if n > 100 {
        x[100] = f32::INFINITY;
    }
    x[n - 1] = f32::NEG_INFINITY;
    let mut rows = QuantizedRows::new(Kernel::best());
    rows.quantize(Kernel::best(), &x, 3, k).unwrap();
    for (r, row) in x.chunks(k).enumerate() {
        for (b, block) in row.chunks(BLOCK).enumerate() {
            let amax = block
                .iter()
                .fold(0f32, |m, v| if v.abs() > m { v.abs() } else { m });
            let d = amax / 127.0;
            assert_eq!(
                rows.scale(r, b).to_bits(),
                d.to_bits(),
                "k {k} row {r} block {b}"
            );
            let id = if d > 0.0 { 1.0 / d } else { 0.0 };
            for (i, v) in block.iter().enumerate() {
                let t = (v * id).clamp(-127.0, 127.0).round_ties_even();
                let want = if t.is_nan() { 0 } else { t as i8 };
                assert_eq!(
                    rows.value(r, b * BLOCK + i),
                    want,
                    "k {k} row {r} block {b} value {i} ({v})"
                );
            }
        }
    }
    assert_eq!(rows.value(0, 1), 0, "0.5 rounds to even");
    assert_eq!(rows.value(0, 3), 2, "2.5 rounds to even");
}

/// Int8 rows with one scale each (an index's vectors) pack with that scale on every block,
/// and a one-row GEMM against them is the same on every kernel (the dense scan).
#[test]
fn int8_rows_pack_with_their_row_scale() {
    let (n, k) = (37, 70);
    let mut rng = Rng(7);
    let values: Vec<i8> = (0..n * k).map(|_| (rng.next() % 255) as i8).collect();
    let scales: Vec<f32> = (0..n).map(|r| 0.001 * (r + 1) as f32).collect();
    let w = PackedMatrix::from_i8_rows(&values, &scales, n, k).unwrap();
    for c in 0..n {
        for i in 0..k {
            assert_eq!(w.value(c, i), values[c * k + i].max(-127));
        }
        for b in 0..k.div_ceil(BLOCK) {
            assert_eq!(w.scale(c, b), scales[c]);
        }
    }
    let q = data(k, Fill::Outliers, &mut rng);
    let reference = run(Kernel::Scalar, &q, 1, k, &w, &vec![0.0; n]);
    for kernel in Kernel::available() {
        assert_eq!(
            run(kernel, &q, 1, k, &w, &vec![0.0; n]),
            reference,
            "{kernel:?}"
        );
    }
    assert!(PackedMatrix::from_i8_rows(&values, &scales[1..], n, k).is_err());
    assert!(PackedMatrix::from_i8_rows(&values[1..], &scales, n, k).is_err());
}

#[test]
fn wrong_shapes_are_errors_not_panics() {
    assert!(PackedMatrix::from_gguf(GgufBlocks::Q8_0, &[0; 33], 1, 32).is_err());
    assert!(PackedMatrix::from_gguf(GgufBlocks::Q8_0, &[0; 34], 1, 31).is_err());
    assert!(PackedMatrix::from_gguf(GgufBlocks::Q8_0, &[], usize::MAX, 64).is_err());
    assert!(PackedMatrix::from_f32(&[0.0; 5], 2, 3).is_err());
    let w = PackedMatrix::from_f32(&[0.0; 64], 1, 64).unwrap();
    let mut rows = QuantizedRows::new(Kernel::Scalar);
    assert!(rows.quantize(Kernel::Scalar, &[0.0; 10], 3, 4).is_err());
    rows.quantize(Kernel::Scalar, &[0.0; 32], 1, 32).unwrap();
    assert!(gemm(&rows, &w, None, &mut [0.0; 1]).is_err());
    rows.quantize(Kernel::Scalar, &[0.0; 64], 1, 64).unwrap();
    assert!(gemm(&rows, &w, None, &mut [0.0; 2]).is_err());
    assert!(gemm(&rows, &w, Some(&[0.0; 2]), &mut [0.0; 1]).is_err());
    gemm(&rows, &w, Some(&[1.5]), &mut [0.0; 1]).unwrap();
}

#[cfg(not(target_arch = "wasm32"))]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

        #[test]
        fn any_shape_matches_the_reference(
            m in 1usize..40, n in 1usize..40, k in 1usize..200, seed in 1u64..u64::MAX,
        ) {
            check(m, n, k, Fill::Random, seed);
            check(m, n, k, Fill::Outliers, seed);
        }

        /// Narrow weights of any range (the relaxed kernels' offset paths where they run).
        #[test]
        fn any_weight_range_matches_the_reference(
            m in 1usize..12, n in 1usize..30, blocks in 1usize..6, lo in -127i8..=0,
            span in 0u8..=140, seed in 1u64..u64::MAX,
        ) {
            let k = blocks * BLOCK;
            let hi = (lo as i32 + span as i32).min(127) as i8;
            let mut rng = Rng(seed);
            let width = (hi as i32 - lo as i32 + 1) as u64;
            let values: Vec<i8> =
                (0..n * k).map(|_| (lo as i32 + (rng.next() % width) as i32) as i8).collect();
            let w = q8_matrix(n, k, |r, i| values[r * k + i]);
            let x = data(m * k, Fill::Outliers, &mut rng);
            let bias = data(n, Fill::Random, &mut rng);
            same_as_reference(&x, m, k, &w, &bias, &format!("weights {lo}..={hi}"));
        }
    }
}
