// Helpers shared by every kernel: the Rust side prepends this file to each kernel's source
// (see `KERNELS` in `mod.rs`), so a helper is defined once. Pure functions only, so the
// file is also a valid module on its own.

// Weight and table storage formats, numbered as `gpu::weights::Format` numbers them.
// F32: one f32 (as bits) per element, row-major.
// Q8_0: GGML blocks of 32 elements: 8 words of signed bytes per block, and one f16 scale
//       per block, two scales packed per word (block 2i in the low half, 2i + 1 in the high).
// Q4_0: GGML blocks of 32 elements: 4 words per block (16 bytes; the low nibble of byte j is
//       element j, the high nibble element j + 16; value = scale * (nibble - 8)), scales as
//       for Q8_0.
const FMT_F32: u32 = 0u;
const FMT_Q8_0: u32 = 1u;
const FMT_Q4_0: u32 = 2u;

// An f16 (bits in the low 16 of `h`) as f32, exactly. Decoded by hand rather than with
// `unpack2x16float`, which some devices only emulate (naga gates it behind a capability).
fn f16_to_f32(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let exp = (h >> 10u) & 31u;
    let man = h & 1023u;
    if (exp == 0u) {
        // Zero or subnormal: man * 2^-24.
        let v = f32(man) * 5.9604644775390625e-8;
        return select(v, -v, sign != 0u);
    }
    if (exp == 31u) {
        return bitcast<f32>(sign | 0x7f800000u | (man << 13u));
    }
    return bitcast<f32>(sign | ((exp + 112u) << 23u) | (man << 13u));
}

// The f16 nearest to `x` (>= 0 and finite), round half to even as `half::f16::from_f32`
// rounds, as an f32.
fn round_to_f16(x: f32) -> f32 {
    if (x == 0.0) {
        return 0.0;
    }
    if (x >= 65520.0) {
        // Infinity, as half::f16 gives. Built from `x` so that no compiler folds it into a
        // constant: Chromium's Tint refuses a constant infinity ("value inf cannot be
        // represented as 'f32'"), where naga accepts it.
        return bitcast<f32>(0x7f800000u | (bitcast<u32>(x) & 0u));
    }
    let e = i32((bitcast<u32>(x) >> 23u) & 255u) - 127;
    // The f16 spacing at x: 2^(e - 10) for normal f16s, 2^-24 below 2^-14.
    let q = max(e, -14) - 10;
    return ldexp(round(ldexp(x, -q)), q);
}

// The f16 scale of block `block`, given the word `pair` that holds it (scales are packed
// two to a word, even blocks in the low half).
fn f16_scale(pair: u32, block: u32) -> f32 {
    return f16_to_f32(select(pair & 0xffffu, pair >> 16u, (block & 1u) == 1u));
}

// Signed byte `b` (0..4) of `w`, as a float.
fn i8_of(w: u32, b: u32) -> f32 {
    return f32(extractBits(bitcast<i32>(w), b * 8u, 8u));
}

// Nibble of byte `b` (0..4) of `w`: the high one if `high`, minus 8, as a float.
fn q4_of(w: u32, b: u32, high: bool) -> f32 {
    let byte = extractBits(w, b * 8u, 8u);
    let n = select(byte & 15u, byte >> 4u, high);
    return f32(i32(n) - 8);
}

// erf(x), Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7).
fn erf_approx(x: f32) -> f32 {
    let a = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let y = 1.0 - poly * exp(-a * a);
    return select(y, -y, x < 0.0);
}

// Index of the invocation in a 1-D range dispatched as a grid of `groups` workgroups of
// `size` invocations (the grid may be 2-D when a range needs more than 65535 groups).
fn linear_index(wg: vec3<u32>, groups: vec3<u32>, local: u32, size: u32) -> u32 {
    return (wg.y * groups.x + wg.x) * size + local;
}
