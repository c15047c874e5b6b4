//! Cairn's own int8 matrix kernels: the encoder's linear layers, `y = x W^T + b`.
//!
//! Laid out as MLAS and XNNPACK lay theirs out: weights are repacked once at load
//! ([`PackedMatrix`], panels of [`NR`] output columns that a kernel streams in order), each
//! call rounds its activations to int8 once ([`QuantizedRows`]), and one micro-kernel per
//! instruction set multiplies a tile of up to [`MR`] rows by one panel, accumulating in i32.
//! [`Kernel`] is the dispatch table: chosen once per process (compile-time `cfg` plus
//! runtime detection where the platform has it), overridable for tests and benchmarks.
//!
//! The arithmetic is that of GGUF's `Q8_0` blocks, so a bundle's weights are used exactly as
//! stored: every 32 consecutive inputs share one scale on each side. For output `(r, c)`:
//!
//! ```text
//! acc = 0
//! for each block b:  acc = acc + (isum(r, c, b) as f32) * (scale_x[r][b] * scale_w[c][b])
//! y[r][c] = acc + bias[c]
//! ```
//!
//! where `isum` is the exact integer dot product of the block's 32 int8 pairs. Every kernel
//! computes the same integers and then the same float operations in the same order (no fused
//! multiply-add anywhere), so all kernels give bit-identical outputs; `scalar.rs` is the
//! reference each SIMD version is tested against (`kernels/tests/kernels.rs`, natively
//! and in Chromium for both wasm builds).
//!
//! Values: weights are read in `[-127, 127]` (a stored -128, which no quantizer of ours
//! writes, is read as -127), activations are rounded to `[-127, 127]` with the scale
//! `max|x| / 127` per block. Those ranges are what keeps the SIMD tricks exact: AVX2's
//! `maddubs` never saturates, and relaxed SIMD's 7-bit operand stays in range.

/// Calls `$f::<M>(t, out)` with `M = t.mr` (1 to 4, or to [`MR`] with `five`): each
/// micro-kernel is generic over its row count, so a tile's accumulators stay in registers.
/// Shared by every SIMD file; [`tile_rows`] gives a kernel only the counts it takes.
macro_rules! for_rows {
    ($f:ident, $t:expr, $out:expr) => {
        match $t.mr {
            4 => $f::<4>($t, $out),
            3 => $f::<3>($t, $out),
            2 => $f::<2>($t, $out),
            1 => $f::<1>($t, $out),
            mr => unreachable!("a tile of {mr} rows for a kernel of at most 4"),
        }
    };
    ($f:ident, $t:expr, $out:expr, five) => {
        match $t.mr {
            5 => $f::<5>($t, $out),
            _ => for_rows!($f, $t, $out),
        }
    };
}

pub mod math;
mod pack;
mod scalar;

#[cfg(target_arch = "aarch64")]
mod arm_neon;
#[cfg(target_arch = "wasm32")]
mod wasm128;
#[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
mod wasm_relaxed;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use pack::{GgufBlocks, PackedMatrix};

/// Values below which an element-wise pass stays on the calling thread: splitting costs
/// more than it saves on a query's few rows.
#[cfg(not(target_arch = "wasm32"))]
const SPLIT_MIN: usize = 1 << 16;

/// Runs `f` over `v`, natively in parts of at least [`SPLIT_MIN`] values spread over the
/// cores (a long batch's activations); in one call on wasm or for short slices.
pub fn split_over_cores<T: Send>(v: &mut [T], f: fn(&mut [T])) {
    #[cfg(not(target_arch = "wasm32"))]
    if v.len() >= 2 * SPLIT_MIN && rayon::current_num_threads() > 1 {
        use rayon::prelude::*;
        let parts = (rayon::current_num_threads() * 4).min(v.len() / SPLIT_MIN);
        let size = v.len().div_ceil(parts);
        v.par_chunks_mut(size).for_each(f);
        return;
    }
    f(v)
}

/// What a kernel call can refuse: shapes that do not fit together, or weight bytes that do
/// not hold the matrix they claim to.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Operands whose shapes do not fit together.
    #[error("int8 kernel: {0}")]
    Shape(String),
    /// Packed weights cut short or of the wrong length.
    #[error("quantized weights: {0}")]
    Weights(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// The revision of the CPU arithmetic: bumped when the bits a text's vector gets change
/// (the activations' rounding, [`math`]'s functions), so that vectors stored by an earlier
/// build (`cairn index`'s embedding cache) are not mixed with new ones. 2: GELU written as
/// `max(x, 0) - |x| q / 2`, polynomials by Estrin's scheme.
pub const ARITHMETIC_REVISION: u32 = 2;

/// Values per scale block (GGUF `Q8_0`'s block).
pub const BLOCK: usize = 32;
/// Output columns per weight panel.
pub const NR: usize = 8;
/// Rows per micro-kernel tile, at most: 4, or 5 for SIMD128 ([`tile_rows`]).
pub const MR: usize = 5;
/// Rows each thread takes at a time when a call is split over cores (native only).
#[cfg(not(target_arch = "wasm32"))]
const ROW_CHUNK: usize = 64;

/// One implementation of the int8 GEMM. All give bit-identical results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Portable Rust: the reference.
    Scalar,
    /// x86-64 AVX2: `vpmaddubsw` + `vpmaddwd` with the sign trick.
    Avx2,
    /// x86-64 AVX-VNNI (`vpdpbusd`, 256-bit, VEX encoded).
    AvxVnni,
    /// x86-64 AVX-512 VNNI on 256-bit registers (`vpdpbusd`, EVEX encoded).
    Avx512Vnni,
    /// aarch64 NEON: `smull` + `sadalp`.
    Neon,
    /// wasm SIMD128: `i32x4.dot_i16x8_s` on widened operands.
    Simd128,
    /// wasm relaxed SIMD (a build of its own): `i32x4.relaxed_dot_i8x16_i7x16_add_s`,
    /// fastest where the engine lowers it to one VNNI instruction.
    RelaxedSimd,
    /// wasm relaxed SIMD: `i16x8.relaxed_dot_i8x16_i7x16_s` summed in 16-bit lanes for 4-
    /// and 5-bit weights, SIMD128's kernel for 8-bit ones; fastest where the engine has no
    /// VNNI lowering (one `pmaddubsw` a dot product).
    RelaxedPairs,
}

/// Every kernel, in declaration order (for [`Kernel::set_current`]).
const ALL: [Kernel; 8] = [
    Kernel::Scalar,
    Kernel::Avx2,
    Kernel::AvxVnni,
    Kernel::Avx512Vnni,
    Kernel::Neon,
    Kernel::Simd128,
    Kernel::RelaxedSimd,
    Kernel::RelaxedPairs,
];

/// 0, or one more than the index in [`ALL`] of the kernel set by [`Kernel::set_current`].
static OVERRIDE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

impl Kernel {
    /// The short name used in benchmarks, the `CAIRN_KERNEL` variable and the browser.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Avx2 => "avx2",
            Kernel::AvxVnni => "avx-vnni",
            Kernel::Avx512Vnni => "avx512-vnni",
            Kernel::Neon => "neon",
            Kernel::Simd128 => "simd128",
            Kernel::RelaxedSimd => "relaxed-simd",
            Kernel::RelaxedPairs => "relaxed-pairs",
        }
    }

    /// Every kernel this build can run on this machine, the reference first.
    pub fn available() -> Vec<Kernel> {
        let mut out = vec![Kernel::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                out.push(Kernel::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avxvnni")
                && std::arch::is_x86_feature_detected!("avx2")
            {
                out.push(Kernel::AvxVnni);
            }
            if std::arch::is_x86_feature_detected!("avx512vnni")
                && std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx2")
            {
                out.push(Kernel::Avx512Vnni);
            }
        }
        #[cfg(target_arch = "aarch64")]
        out.push(Kernel::Neon);
        #[cfg(target_arch = "wasm32")]
        out.push(Kernel::Simd128);
        #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
        out.extend([Kernel::RelaxedSimd, Kernel::RelaxedPairs]);
        out
    }

    /// The fastest available kernel: the last of [`Kernel::available`] by preference
    /// order (AVX-512 VNNI, whose tiles use 512-bit registers, over AVX-VNNI over AVX2 over
    /// scalar; relaxed over plain SIMD128, and of the two relaxed kernels the one never
    /// slower than SIMD128, until [`fastest`] has timed them).
    pub fn best() -> Kernel {
        let avail = Kernel::available();
        let order = [
            Kernel::RelaxedPairs,
            Kernel::RelaxedSimd,
            Kernel::Simd128,
            Kernel::Avx512Vnni,
            Kernel::AvxVnni,
            Kernel::Avx2,
            Kernel::Neon,
        ];
        order
            .into_iter()
            .find(|k| avail.contains(k))
            .unwrap_or(Kernel::Scalar)
    }

    /// The kernel named `name` (see [`Kernel::name`]), if this machine can run it.
    pub fn by_name(name: &str) -> Result<Kernel> {
        let avail = Kernel::available();
        avail
            .iter()
            .copied()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = avail.iter().map(|k| k.name()).collect();
                Error::Shape(format!(
                    "kernel `{name}` is not available here (available: {})",
                    names.join(", ")
                ))
            })
    }

    /// The kernel the encoder uses: the one set by [`Kernel::set_current`], else
    /// [`Kernel::best`], or natively the one named by the `CAIRN_KERNEL` environment variable
    /// (for benchmarks), chosen once per process.
    pub fn current() -> Kernel {
        static CHOSEN: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
        let set = OVERRIDE.load(std::sync::atomic::Ordering::Relaxed);
        if let Some(k) = ALL.get(set.wrapping_sub(1) as usize) {
            return *k;
        }
        *CHOSEN.get_or_init(|| {
            #[cfg(not(target_arch = "wasm32"))]
            if let Ok(name) = std::env::var("CAIRN_KERNEL") {
                if let Ok(k) = Kernel::by_name(&name) {
                    return k;
                }
            }
            Kernel::best()
        })
    }

    /// Makes every later call use `kernel` (benchmarks comparing kernels in one process),
    /// or goes back to the default with `None`. Refuses a kernel this machine cannot run.
    pub fn set_current(kernel: Option<Kernel>) -> Result<()> {
        let code = match kernel {
            None => 0,
            Some(k) => {
                Kernel::by_name(k.name())?;
                ALL.iter().position(|&a| a == k).map_or(0, |i| i as u8 + 1)
            }
        };
        OVERRIDE.store(code, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Bytes of this kernel's prepared copy of one row of `kp` values (see
    /// [`QuantizedRows`]).
    fn prepared_row_bytes(self, kp: usize) -> usize {
        match self {
            Kernel::Scalar | Kernel::Neon => 0,
            // AVX2: each value's magnitude, then each value offset to `q + 128` (for
            // weights of a narrow range, `x86::tile_avx2`); VNNI: the offset values.
            Kernel::Avx2 => 2 * kp,
            Kernel::AvxVnni | Kernel::Avx512Vnni => kp,
            Kernel::Simd128 => 2 * kp,
            // Two 7-bit halves of each value (relaxed-simd) or each value as an i16
            // (relaxed-pairs), then an i32 sum per block.
            Kernel::RelaxedSimd | Kernel::RelaxedPairs => 2 * kp + 4 * (kp / BLOCK),
        }
    }
}

/// Rounds to the nearest integer, ties to even, clamped to `[-127, 127]`: what
/// `round_ties_even` gives, but by adding and taking off 1.5 * 2^23, which every target does
/// in SIMD registers (baseline x86-64 has no rounding instruction, so `round_ties_even` is a
/// library call there, one value at a time).
#[inline(always)]
pub fn round_to_i8(v: f32) -> i8 {
    const MAGIC: f32 = 12_582_912.0;
    let c = v.clamp(-127.0, 127.0);
    // `c + MAGIC` is `MAGIC + round(c)` exactly, so its bits are MAGIC's plus the integer:
    // integer operations from here, which vectorise (a saturating float-to-int8 cast does
    // not). NaN rounds to 0, as `NaN as i8` does.
    let r = (c + MAGIC).to_bits().wrapping_sub(MAGIC.to_bits()) as i8;
    if v.is_nan() {
        0
    } else {
        r
    }
}

/// Rounds one block, returning its scale (`max|x| / 127`).
#[inline(always)]
fn round_block(x: &[f32; BLOCK], q: &mut [i8; BLOCK]) -> f32 {
    // wasm has no runtime dispatch and LLVM leaves this loop scalar there: written out in
    // SIMD128 (the same bits, `kernels/tests/kernels.rs` checks).
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        wasm128::round_block(x, q)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        round_block_reference(x, q)
    }
}

/// [`round_block`] in plain Rust: the reference.
#[inline(always)]
#[cfg_attr(
    all(target_arch = "wasm32", target_feature = "simd128"),
    allow(dead_code)
)]
fn round_block_reference(x: &[f32; BLOCK], q: &mut [i8; BLOCK]) -> f32 {
    let mut lanes = [0f32; 8];
    for c in x.chunks_exact(8) {
        for (l, v) in lanes.iter_mut().zip(c) {
            let a = v.abs();
            *l = if a > *l { a } else { *l };
        }
    }
    let amax = lanes.iter().fold(0f32, |m, &v| if v > m { v } else { m });
    let d = amax / 127.0;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    for (q, &v) in q.iter_mut().zip(x) {
        *q = round_to_i8(v * id);
    }
    d
}

/// Rounds `x` (rows of `k`) into `q` (rows of `blocks * BLOCK`, zero past `k`) with one
/// scale per row and block; compiled for AVX2 where the CPU has it (the same bits).
fn round_rows(x: &[f32], k: usize, blocks: usize, q: &mut [i8], scales: &mut [f32]) {
    #[inline(always)]
    fn body(x: &[f32], k: usize, blocks: usize, q: &mut [i8], scales: &mut [f32]) {
        let kp = blocks * BLOCK;
        for (r, xr) in x.chunks_exact(k.max(1)).enumerate() {
            for b in 0..blocks {
                let xb = &xr[b * BLOCK..((b + 1) * BLOCK).min(k)];
                let qb = &mut q[r * kp + b * BLOCK..r * kp + b * BLOCK + xb.len()];
                scales[r * blocks + b] = match (
                    <&[f32; BLOCK]>::try_from(xb),
                    <&mut [i8; BLOCK]>::try_from(qb),
                ) {
                    // Whole blocks (all of them when `k` is a multiple of 32): fixed sizes
                    // the compiler turns into straight SIMD code.
                    (Ok(xb), Ok(qb)) => round_block(xb, qb),
                    _ => {
                        let mut xf = [0f32; BLOCK];
                        xf[..xb.len()].copy_from_slice(xb);
                        let mut qf = [0i8; BLOCK];
                        let d = round_block(&xf, &mut qf);
                        // The whole block, zeros past `k` included: the buffer is reused
                        // without being cleared.
                        q[r * kp + b * BLOCK..r * kp + (b + 1) * BLOCK].copy_from_slice(&qf);
                        d
                    }
                };
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            if k == blocks * BLOCK {
                // SAFETY: the CPU has AVX-512F (checked just above); whole blocks only.
                unsafe { x86::round_rows_avx512(x, q, scales) };
                return;
            }
            #[target_feature(enable = "avx512f")]
            unsafe fn wide512(
                x: &[f32],
                k: usize,
                blocks: usize,
                q: &mut [i8],
                scales: &mut [f32],
            ) {
                body(x, k, blocks, q, scales)
            }
            // SAFETY: the CPU has AVX-512F (checked just above).
            unsafe { wide512(x, k, blocks, q, scales) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            #[target_feature(enable = "avx2")]
            unsafe fn wide(x: &[f32], k: usize, blocks: usize, q: &mut [i8], scales: &mut [f32]) {
                body(x, k, blocks, q, scales)
            }
            // SAFETY: the CPU has AVX2 (checked just above).
            unsafe { wide(x, k, blocks, q, scales) };
            return;
        }
    }
    body(x, k, blocks, q, scales)
}

/// Writes `kernel`'s own form of the rounded rows `q` (whole rows of `kp` values) into
/// `prepared` (the layouts listed on `QuantizedRows`' field of that name).
fn prepare(kernel: Kernel, q: &[i8], kp: usize, prepared: &mut [u8]) {
    if kp == 0 {
        return; // rows of no values: nothing to prepare
    }
    match kernel {
        Kernel::Scalar | Kernel::Neon => {}
        Kernel::Avx2 => {
            let row_bytes = kernel.prepared_row_bytes(kp);
            for (row, p) in q.chunks_exact(kp).zip(prepared.chunks_exact_mut(row_bytes)) {
                let (magnitude, offset) = p.split_at_mut(kp);
                for (m, &q) in magnitude.iter_mut().zip(row) {
                    *m = q.unsigned_abs();
                }
                // The offset half is VNNI's form.
                prepare(Kernel::AvxVnni, row, kp, offset);
            }
        }
        Kernel::AvxVnni | Kernel::Avx512Vnni => {
            for (p, &q) in prepared.iter_mut().zip(q) {
                *p = (q as u8) ^ 0x80; // q + 128 for q in -128..=127
            }
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Kernel::Simd128 => wasm128::widen(q, prepared),
        #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
        Kernel::Simd128 => {
            for (p, &q) in prepared.chunks_exact_mut(2).zip(q) {
                p.copy_from_slice(&(q as i16).to_le_bytes());
            }
        }
        Kernel::RelaxedSimd => {
            let row_bytes = kernel.prepared_row_bytes(kp);
            for (row, p) in q.chunks_exact(kp).zip(prepared.chunks_exact_mut(row_bytes)) {
                let (lo, rest) = p.split_at_mut(kp);
                let (hi, sums) = rest.split_at_mut(kp);
                #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                wasm128::halves(row, lo, hi);
                #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
                for (i, &q) in row.iter().enumerate() {
                    let u = (q as i16 + 127) as u8; // 0..=254
                    lo[i] = u >> 1;
                    hi[i] = u - (u >> 1);
                }
                block_sums(row, sums);
            }
        }
        Kernel::RelaxedPairs => {
            let row_bytes = kernel.prepared_row_bytes(kp);
            for (row, p) in q.chunks_exact(kp).zip(prepared.chunks_exact_mut(row_bytes)) {
                let (wide, sums) = p.split_at_mut(2 * kp);
                prepare(Kernel::Simd128, row, kp, wide);
                block_sums(row, sums);
            }
        }
    }
}

/// Each block's sum of the values of `row`, as little-endian i32 into `sums`.
fn block_sums(row: &[i8], sums: &mut [u8]) {
    for (block, sum) in row.chunks_exact(BLOCK).zip(sums.chunks_exact_mut(4)) {
        let s: i32 = block.iter().map(|&v| v as i32).sum();
        sum.copy_from_slice(&s.to_le_bytes());
    }
}

/// Activations rounded to int8 in blocks of [`BLOCK`], one scale per row and block, with
/// the form the kernel reads prepared once per call. Reused across calls: it grows to the
/// largest shape seen and never shrinks.
#[derive(Debug, Clone)]
pub struct QuantizedRows {
    kernel: Kernel,
    rows: usize,
    blocks: usize,
    /// `rows x blocks * BLOCK` values in `[-127, 127]`, zero past `k`.
    q: Vec<i8>,
    /// `rows x blocks` scales.
    scales: Vec<f32>,
    /// The kernel's own form of `q`, `rows x prepared_row_bytes(blocks * BLOCK)` bytes:
    /// AVX2 `|q|`; VNNI `q + 128`; SIMD128 `q` as little-endian i16; relaxed SIMD the two
    /// 7-bit halves of `q + 127` (a row's first halves, then its second halves) and relaxed
    /// pairs SIMD128's form, each then the row's block sums of `q` as little-endian i32 (for
    /// weights offset to 7 bits).
    prepared: Vec<u8>,
}

impl Default for QuantizedRows {
    fn default() -> Self {
        Self::new(Kernel::Scalar)
    }
}

impl QuantizedRows {
    pub fn new(kernel: Kernel) -> Self {
        Self {
            kernel,
            rows: 0,
            blocks: 0,
            q: Vec::new(),
            scales: Vec::new(),
            prepared: Vec::new(),
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The rounded value of row `r`, input `i` (tests and debugging).
    pub fn value(&self, r: usize, i: usize) -> i8 {
        self.q[r * self.blocks * BLOCK + i]
    }

    /// The scale of row `r`, block `b`.
    pub fn scale(&self, r: usize, b: usize) -> f32 {
        self.scales[r * self.blocks + b]
    }

    /// Rounds `x` (`rows x k`, row-major) for `kernel`.
    pub fn quantize(&mut self, kernel: Kernel, x: &[f32], rows: usize, k: usize) -> Result<()> {
        let (blocks, kp, row_bytes) = self.reshape(kernel, x.len(), rows, k)?;
        // `row_bytes` sizes the split over cores, which is native only.
        #[cfg(target_arch = "wasm32")]
        let _ = row_bytes;
        // One row range: rounded, then put in the kernel's form while still in cache.
        let part = |x: &[f32], q: &mut [i8], scales: &mut [f32], prepared: &mut [u8]| {
            round_rows(x, k, blocks, q, scales);
            prepare(kernel, q, kp, prepared);
        };
        #[cfg(not(target_arch = "wasm32"))]
        if rows >= 2 * ROW_CHUNK && k > 0 && rayon::current_num_threads() > 1 {
            use rayon::prelude::*;
            let parts = x
                .par_chunks(ROW_CHUNK * k)
                .zip(self.q.par_chunks_mut(ROW_CHUNK * kp))
                .zip(self.scales.par_chunks_mut(ROW_CHUNK * blocks));
            if row_bytes == 0 {
                parts.for_each(|((x, q), s)| part(x, q, s, &mut []));
            } else {
                parts
                    .zip(self.prepared.par_chunks_mut(ROW_CHUNK * row_bytes))
                    .for_each(|(((x, q), s), p)| part(x, q, s, p));
            }
            return Ok(());
        }
        part(x, &mut self.q, &mut self.scales, &mut self.prepared);
        Ok(())
    }

    /// [`QuantizedRows::quantize`] of `map(x)`, with `map` (an element-wise function such as
    /// [`math::gelu_erf`]) applied in place to each range of rows just before it is rounded,
    /// while the range is in cache: one pass over a batch's activations instead of two.
    pub fn quantize_mapped(
        &mut self,
        kernel: Kernel,
        x: &mut [f32],
        rows: usize,
        k: usize,
        map: fn(&mut [f32]),
    ) -> Result<()> {
        let (blocks, kp, row_bytes) = self.reshape(kernel, x.len(), rows, k)?;
        // `row_bytes` sizes the split over cores, which is native only.
        #[cfg(target_arch = "wasm32")]
        let _ = row_bytes;
        let part = |x: &mut [f32], q: &mut [i8], scales: &mut [f32], prepared: &mut [u8]| {
            map(x);
            round_rows(x, k, blocks, q, scales);
            prepare(kernel, q, kp, prepared);
        };
        #[cfg(not(target_arch = "wasm32"))]
        if rows >= 2 * ROW_CHUNK && k > 0 && rayon::current_num_threads() > 1 {
            use rayon::prelude::*;
            let parts = x
                .par_chunks_mut(ROW_CHUNK * k)
                .zip(self.q.par_chunks_mut(ROW_CHUNK * kp))
                .zip(self.scales.par_chunks_mut(ROW_CHUNK * blocks));
            if row_bytes == 0 {
                parts.for_each(|((x, q), s)| part(x, q, s, &mut []));
            } else {
                parts
                    .zip(self.prepared.par_chunks_mut(ROW_CHUNK * row_bytes))
                    .for_each(|(((x, q), s), p)| part(x, q, s, p));
            }
            return Ok(());
        }
        part(x, &mut self.q, &mut self.scales, &mut self.prepared);
        Ok(())
    }

    /// Checks `len` values as `rows x k` and sizes the buffers for them (and `kernel`);
    /// returns the blocks per row, the padded row length and the prepared form's bytes a row.
    fn reshape(
        &mut self,
        kernel: Kernel,
        len: usize,
        rows: usize,
        k: usize,
    ) -> Result<(usize, usize, usize)> {
        if len != rows.saturating_mul(k) {
            return Err(Error::Shape(format!(
                "activations of {len} values are not {rows} rows of {k}"
            )));
        }
        let blocks = k.div_ceil(BLOCK);
        let kp = blocks * BLOCK;
        self.kernel = kernel;
        self.rows = rows;
        self.blocks = blocks;
        // Not cleared: every value is written by the caller (a batch's 12 MB of rounded
        // activations would otherwise be zeroed first, three times per layer).
        self.q.resize(rows * kp, 0);
        self.scales.resize(rows * blocks, 0.0);
        let row_bytes = kernel.prepared_row_bytes(kp);
        self.prepared.resize(rows * row_bytes, 0);
        Ok((blocks, kp, row_bytes))
    }
}

/// Of `candidates` (those this build can run), each kernel's time to round `rows` rows of
/// activations and multiply them by each of `ws` on this machine, fastest first: the least
/// time (milliseconds, from `clock`) of `rounds` runs each, taken in turn after untimed
/// runs of each in turn for at least `warm_ms` (a wasm engine runs new code in its baseline
/// compiler until it finds the function hot, and compiles the optimised code beside). For kernels whose order the instruction set alone does not settle
/// (the two relaxed-SIMD kernels, which depend on how the engine lowers the relaxed dot
/// products). All kernels give the same numbers, so the choice changes only speed. Empty
/// with no candidate available, the one available untimed (`NaN`).
pub fn fastest(
    candidates: &[Kernel],
    ws: &[&PackedMatrix],
    rows: usize,
    rounds: usize,
    warm_ms: f64,
    clock: &dyn Fn() -> f64,
) -> Vec<(Kernel, f64)> {
    let avail = Kernel::available();
    let cands: Vec<Kernel> = candidates
        .iter()
        .copied()
        .filter(|k| avail.contains(k))
        .collect();
    if cands.len() < 2 || ws.is_empty() || rows == 0 {
        return cands.into_iter().take(1).map(|k| (k, f64::NAN)).collect();
    }
    // The same activations for every kernel: a fixed pseudo-random pattern in [-2, 2).
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let inputs: Vec<Vec<f32>> = ws
        .iter()
        .map(|w| {
            (0..rows * w.k())
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 40) as f32 / (1u64 << 22) as f32 - 2.0
                })
                .collect()
        })
        .collect();
    let mut x = QuantizedRows::default();
    let mut out = Vec::new();
    let mut times: Vec<(Kernel, f64)> = cands.iter().map(|&k| (k, f64::INFINITY)).collect();
    let warm_start = clock();
    let mut timed = 0;
    let mut warm = true;
    while timed < rounds.max(1) {
        for (kernel, least) in times.iter_mut() {
            let start = clock();
            for (w, a) in ws.iter().zip(&inputs) {
                // Shapes from the matrices themselves: these calls cannot fail.
                let done = x.quantize(*kernel, a, rows, w.k()).and_then(|()| {
                    out.resize(rows * w.n(), 0.0);
                    gemm(&x, w, None, &mut out)
                });
                if done.is_err() {
                    *least = f64::NAN;
                }
            }
            if !warm && !least.is_nan() {
                *least = least.min(clock() - start);
            }
        }
        if warm {
            warm = clock() - warm_start < warm_ms;
        } else {
            timed += 1;
        }
    }
    times.retain(|(_, t)| !t.is_nan());
    times.sort_by(|a, b| a.1.total_cmp(&b.1));
    times
}

/// `out = x W^T + bias` for `x` of `rows x k` already rounded into `x`; `out` is
/// `rows x w.n()`, row-major. Natively, calls with many rows are split over the cores.
pub fn gemm(
    x: &QuantizedRows,
    w: &PackedMatrix,
    bias: Option<&[f32]>,
    out: &mut [f32],
) -> Result<()> {
    let (m, n) = (x.rows, w.n());
    if x.blocks != w.blocks() {
        return Err(Error::Shape(format!(
            "activations of {} blocks against weights of {} blocks",
            x.blocks,
            w.blocks()
        )));
    }
    if out.len() != m * n {
        return Err(Error::Shape(format!(
            "output of {} values for {m} x {n}",
            out.len()
        )));
    }
    if bias.is_some_and(|b| b.len() != n) {
        return Err(Error::Shape(format!(
            "bias of {} values for {n} columns",
            bias.map_or(0, |b| b.len())
        )));
    }
    #[cfg(not(target_arch = "wasm32"))]
    if m >= 2 * ROW_CHUNK && rayon::current_num_threads() > 1 {
        use rayon::prelude::*;
        out.par_chunks_mut(ROW_CHUNK * n)
            .enumerate()
            .for_each(|(i, chunk)| {
                let r0 = i * ROW_CHUNK;
                run(x, r0, chunk.len() / n.max(1), w, bias, chunk);
            });
        return Ok(());
    }
    run(x, 0, m, w, bias, out);
    Ok(())
}

/// Rows `r0..r0 + rows` of `x` times `w` into `out` (those rows only): panels outer, tiles
/// of up to [`MR`] rows inner ([`tile_rows`]), so each weight panel is read from memory once
/// per call and from cache for every tile after the first.
fn run(
    x: &QuantizedRows,
    r0: usize,
    rows: usize,
    w: &PackedMatrix,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let n = w.n();
    // Writes a tile of panel `p` (rows `r..r + mr` of this call) with the bias added.
    #[inline(always)]
    fn put(
        out: &mut [f32],
        n: usize,
        bias: Option<&[f32]>,
        p: usize,
        r: usize,
        mr: usize,
        tile: &[[f32; NR]; MR],
    ) {
        let c0 = p * NR;
        let nc = (n - c0).min(NR);
        for (i, t) in tile.iter().enumerate().take(mr) {
            let at = (r + i) * n + c0;
            match (bias, <&mut [f32; NR]>::try_from(&mut out[at..at + nc])) {
                // A whole panel: fixed sizes, one vector add and store.
                (Some(b), Ok(o)) => {
                    let b: &[f32; NR] = b[c0..c0 + NR].try_into().expect("a panel of bias");
                    for c in 0..NR {
                        o[c] = t[c] + b[c];
                    }
                }
                (None, Ok(o)) => *o = *t,
                (Some(b), Err(_)) => {
                    for ((o, &v), &b) in out[at..at + nc].iter_mut().zip(t).zip(&b[c0..c0 + nc]) {
                        *o = v + b;
                    }
                }
                (None, Err(_)) => out[at..at + nc].copy_from_slice(&t[..nc]),
            }
        }
    }
    // The tiles' buffers, once per call (not zeroed per tile).
    let mut four = [[[0f32; NR]; MR]; 4];
    let mut two = [[[0f32; NR]; MR]; 2];
    let mut one = [[0f32; NR]; MR];
    let mut p = 0;
    while p < w.panels() {
        let step = tile_panels(x.kernel, w.panels() - p);
        let mut r = 0;
        while r < rows {
            let mr = tile_rows(x.kernel, rows - r);
            match step {
                4 => {
                    micro4(x, r0 + r, mr, w, p, &mut four);
                    for (j, tile) in four.iter().enumerate() {
                        put(out, n, bias, p + j, r, mr, tile);
                    }
                }
                2 => {
                    micro2(x, r0 + r, mr, w, p, &mut two);
                    for (j, tile) in two.iter().enumerate() {
                        put(out, n, bias, p + j, r, mr, tile);
                    }
                }
                _ => {
                    micro(x, r0 + r, mr, w, p, &mut one);
                    put(out, n, bias, p, r, mr, &one);
                }
            }
            r += mr;
        }
        p += step;
    }
}

/// Rows of the next tile of `kernel` with `left` rows to go. Tiles of 4 rows, but V8 runs
/// SIMD128's tile of 3 rows (and of 1) at about 60% of the speed per row of 4 or 5 rows (2
/// rows: 85%), so SIMD128 ends on 5 rows where 5 are left, and 7 rows go as 5 + 2, 3 as 2 +
/// 1. Any split gives the same numbers: a row's output never depends on its neighbours.
fn tile_rows(kernel: Kernel, left: usize) -> usize {
    match (kernel, left) {
        (Kernel::Simd128, 5 | 7) => 5,
        (Kernel::Simd128, 3) => 2,
        _ => left.min(4),
    }
}

/// Panels a tile of `kernel` takes at once with `left` panels to go: x86's VNNI kernels
/// have tiles of several panels ([`micro4`], [`micro2`]), the others one.
fn tile_panels(kernel: Kernel, left: usize) -> usize {
    let widest = match kernel {
        Kernel::Avx512Vnni => 4,
        Kernel::AvxVnni => 2,
        _ => 1,
    };
    [4, 2, 1]
        .into_iter()
        .find(|&n| n <= widest && n <= left)
        .unwrap_or(1)
}

/// Four tiles side by side: rows `r..r + mr` of `x` times panels `p..p + 4` (AVX-512 VNNI's
/// 512-bit tile; any other kernel does four [`micro`] calls, which give the same sums).
fn micro4(
    x: &QuantizedRows,
    r: usize,
    mr: usize,
    w: &PackedMatrix,
    p: usize,
    tiles: &mut [[[f32; NR]; MR]; 4],
) {
    #[cfg(target_arch = "x86_64")]
    if x.kernel == Kernel::Avx512Vnni {
        let t = tile_at(x, r, mr, w, p);
        // SAFETY: the kernel was chosen from `Kernel::available`, which checked the CPU.
        unsafe { x86::tile4_avx512_vnni(&t, tiles) };
        return;
    }
    for (j, tile) in tiles.iter_mut().enumerate() {
        micro(x, r, mr, w, p + j, tile);
    }
}

/// Two tiles side by side: panels `p` and `p + 1` (the VNNI kernels' two-panel tile; any
/// other kernel does two [`micro`] calls, which give the same sums).
fn micro2(
    x: &QuantizedRows,
    r: usize,
    mr: usize,
    w: &PackedMatrix,
    p: usize,
    tiles: &mut [[[f32; NR]; MR]; 2],
) {
    #[cfg(target_arch = "x86_64")]
    match x.kernel {
        // SAFETY: the kernel was chosen from `Kernel::available`, which checked the CPU.
        Kernel::AvxVnni => return unsafe { x86::tile2_avx_vnni(&tile_at(x, r, mr, w, p), tiles) },
        // SAFETY: as above.
        Kernel::Avx512Vnni => {
            return unsafe { x86::tile2_avx512_vnni(&tile_at(x, r, mr, w, p), tiles) }
        }
        _ => {}
    }
    for (j, tile) in tiles.iter_mut().enumerate() {
        micro(x, r, mr, w, p + j, tile);
    }
}

/// The tile of rows `r..r + mr` of `x` and panel `p` of `w` (and the panels after it).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn tile_at<'a>(
    x: &'a QuantizedRows,
    r: usize,
    mr: usize,
    w: &'a PackedMatrix,
    p: usize,
) -> Tile<'a> {
    Tile {
        x,
        r,
        mr,
        w,
        p,
        kp: x.blocks * BLOCK,
    }
}

/// One tile: rows `r..r + mr` (`mr <= MR`) of `x` times panel `p` into `tile`.
fn micro(
    x: &QuantizedRows,
    r: usize,
    mr: usize,
    w: &PackedMatrix,
    p: usize,
    tile: &mut [[f32; NR]; MR],
) {
    let t = Tile {
        x,
        r,
        mr,
        w,
        p,
        kp: x.blocks * BLOCK,
    };
    match x.kernel {
        Kernel::Scalar => scalar::tile(&t, tile),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the kernel was chosen from `Kernel::available`, which checked the CPU.
        Kernel::Avx2 => unsafe { x86::tile_avx2(&t, tile) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Kernel::AvxVnni => unsafe { x86::tile_avx_vnni(&t, tile) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Kernel::Avx512Vnni => unsafe { x86::tile_avx512_vnni(&t, tile) },
        #[cfg(target_arch = "aarch64")]
        Kernel::Neon => arm_neon::tile(&t, tile),
        #[cfg(target_arch = "wasm32")]
        Kernel::Simd128 => wasm128::tile(&t, tile),
        #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
        Kernel::RelaxedSimd => wasm_relaxed::tile(&t, tile),
        #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
        Kernel::RelaxedPairs => wasm_relaxed::tile_pairs(&t, tile),
        // A kernel this build lacks cannot be chosen (`Kernel::by_name` checks); the
        // reference gives the same numbers.
        #[allow(unreachable_patterns)]
        _ => scalar::tile(&t, tile),
    }
}

/// What a micro-kernel reads: `mr` rows of `x` from row `r`, and panel `p` of `w`.
struct Tile<'a> {
    x: &'a QuantizedRows,
    r: usize,
    mr: usize,
    w: &'a PackedMatrix,
    p: usize,
    /// Padded row length of `x` (`blocks * BLOCK`).
    kp: usize,
}

impl Tile<'_> {
    #[inline(always)]
    fn blocks(&self) -> usize {
        self.x.blocks
    }

    /// Row `i` of the tile: its int8 values.
    #[inline(always)]
    fn q(&self, i: usize) -> &[i8] {
        let r = self.r + i;
        &self.x.q[r * self.kp..(r + 1) * self.kp]
    }

    /// Row `i` of the tile: its prepared bytes (see [`QuantizedRows`]).
    #[allow(dead_code)]
    #[inline(always)]
    fn prepared(&self, i: usize) -> &[u8] {
        let bytes = self.x.kernel.prepared_row_bytes(self.kp);
        let r = self.r + i;
        &self.x.prepared[r * bytes..(r + 1) * bytes]
    }

    /// Row `i` of the tile: its block scales.
    #[inline(always)]
    fn scales(&self, i: usize) -> &[f32] {
        let r = self.r + i;
        &self.x.scales[r * self.x.blocks..(r + 1) * self.x.blocks]
    }
}
