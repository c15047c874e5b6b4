//! Weights repacked once at load into the panel layout every kernel streams in order.

use half::f16;

use super::{Error, Result};
use super::{BLOCK, NR};

/// Bytes of one GGUF `Q8_0` block: an f16 scale and 32 int8 values.
const Q8_0_BYTES: usize = 34;
/// Bytes of one GGUF `Q4_0` block: an f16 scale and 32 nibbles (value `j` in the low
/// nibble of byte `j`, value `j + 16` in its high nibble), each less 8.
const Q4_0_BYTES: usize = 18;

/// A weight matrix `W` (`n` output columns by `k` inputs) in panels of [`NR`] columns.
///
/// Panel `p` holds columns `p * NR .. p * NR + NR` (zero past `n`); within it, block `b`
/// of [`BLOCK`] inputs is 256 bytes: for each group `g` of four inputs (8 groups), for each
/// column `c` of the panel, the four values `W[c][b*32 + 4g .. b*32 + 4g + 4]`. So a
/// 32-byte load is four inputs of eight columns (AVX2 lanes), a 16-byte load four inputs of
/// four columns (SIMD128, NEON), and a broadcast group of four activations meets every
/// column of it in one dot-product instruction.
#[derive(Debug, Clone)]
pub struct PackedMatrix {
    n: usize,
    k: usize,
    blocks: usize,
    data: Vec<i8>,
    /// Per panel, block and column: the block's scale.
    scales: Vec<f32>,
    /// Per panel, block and column: the sum of the block's values (for kernels that offset
    /// the activations to unsigned bytes).
    sums: Vec<i32>,
    /// The least and the greatest value stored, 0 always included (the zero padding past
    /// `n` and `k` must offset into range too): 4- and 5-bit weights widen to a narrow
    /// range, which the relaxed-SIMD kernels can offset to 7 bits.
    range: (i8, i8),
}

impl PackedMatrix {
    /// Packs `n` rows of GGUF blocks (`Q8_0` or `Q4_0`, `k / 32` blocks a row, as candle
    /// stores a matrix of shape `(n, k)`). `Q4_0` widens exactly: the same scale, levels -8..7.
    pub fn from_gguf(dtype: GgufBlocks, bytes: &[u8], n: usize, k: usize) -> Result<Self> {
        if !k.is_multiple_of(BLOCK) {
            return Err(Error::Shape(format!(
                "a block-quantized matrix has rows of {k} values, not a multiple of {BLOCK}"
            )));
        }
        let blocks = k / BLOCK;
        let block_bytes = match dtype {
            GgufBlocks::Q8_0 => Q8_0_BYTES,
            GgufBlocks::Q4_0 => Q4_0_BYTES,
        };
        let expected = n
            .checked_mul(blocks)
            .and_then(|b| b.checked_mul(block_bytes));
        if expected != Some(bytes.len()) {
            return Err(Error::Weights(format!(
                "a {n} x {k} {dtype:?} matrix needs {} bytes, found {}",
                expected.map_or_else(|| "more than usize::MAX".into(), |e| e.to_string()),
                bytes.len()
            )));
        }
        Ok(Self::build(n, k, |row, b, values| {
            let at = (row * blocks + b) * block_bytes;
            let block = &bytes[at..at + block_bytes];
            let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
            match dtype {
                GgufBlocks::Q8_0 => {
                    for (v, &q) in values.iter_mut().zip(&block[2..]) {
                        *v = q as i8;
                    }
                }
                GgufBlocks::Q4_0 => {
                    for j in 0..16 {
                        values[j] = (block[2 + j] & 0xF) as i8 - 8;
                        values[j + 16] = (block[2 + j] >> 4) as i8 - 8;
                    }
                }
            }
            d
        }))
    }

    /// Rounds an f32 matrix (`n x k`, row-major) to int8 blocks, scale `max|w| / 127` per
    /// block (as `Q8_0` does, with the scale kept in f32). For tests and f32 experiments.
    pub fn from_f32(w: &[f32], n: usize, k: usize) -> Result<Self> {
        if w.len() != n.saturating_mul(k) {
            return Err(Error::Shape(format!(
                "{} weights are not {n} rows of {k}",
                w.len()
            )));
        }
        Ok(Self::build(n, k, |row, b, values| {
            let src = &w[row * k + b * BLOCK..row * k + ((b + 1) * BLOCK).min(k)];
            let amax = src.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let id = if d > 0.0 { 1.0 / d } else { 0.0 };
            for (q, &v) in values.iter_mut().zip(src) {
                *q = super::round_to_i8(v * id);
            }
            d
        }))
    }

    /// Packs `n` int8 rows of `k` values (row-major) with one scale per row, used for every
    /// block of the row: the dense vectors of an index, scanned as a GEMM of one query row.
    pub fn from_i8_rows(values: &[i8], row_scales: &[f32], n: usize, k: usize) -> Result<Self> {
        if values.len() != n.saturating_mul(k) || row_scales.len() != n {
            return Err(Error::Shape(format!(
                "{} values and {} scales are not {n} rows of {k}",
                values.len(),
                row_scales.len()
            )));
        }
        Ok(Self::build(n, k, |row, b, out| {
            let src = &values[row * k + b * BLOCK..row * k + ((b + 1) * BLOCK).min(k)];
            out[..src.len()].copy_from_slice(src);
            row_scales[row]
        }))
    }

    /// Lays out the matrix whose block `b` of row `row` `fill` writes (32 values, zero past
    /// `k`) and returns the scale of.
    fn build(
        n: usize,
        k: usize,
        mut fill: impl FnMut(usize, usize, &mut [i8; BLOCK]) -> f32,
    ) -> Self {
        let blocks = k.div_ceil(BLOCK);
        let panels = n.div_ceil(NR);
        let mut data = vec![0i8; panels * blocks * BLOCK * NR];
        let mut scales = vec![0f32; panels * blocks * NR];
        let mut sums = vec![0i32; panels * blocks * NR];
        let (mut lo, mut hi) = (0i8, 0i8);
        for row in 0..n {
            let (p, c) = (row / NR, row % NR);
            for b in 0..blocks {
                let mut values = [0i8; BLOCK];
                let d = fill(row, b, &mut values);
                let base = (p * blocks + b) * BLOCK * NR;
                let mut sum = 0i32;
                for (i, &v) in values.iter().enumerate() {
                    // -128 has no positive twin: read it as -127 (see the module docs).
                    let v = v.max(-127);
                    (lo, hi) = (lo.min(v), hi.max(v));
                    let (g, j) = (i / 4, i % 4);
                    data[base + g * 4 * NR + c * 4 + j] = v;
                    sum += v as i32;
                }
                scales[(p * blocks + b) * NR + c] = d;
                sums[(p * blocks + b) * NR + c] = sum;
            }
        }
        Self {
            n,
            k,
            blocks,
            data,
            scales,
            sums,
            range: (lo, hi),
        }
    }

    /// The least and the greatest value stored, widened to include 0 (the zero padding past
    /// `n` and `k` is stored too, and an offset must keep it in range): `Q4_0` weights lie
    /// in `-8..=7`, `Q5_0` in `-16..=15`, `Q8_0` usually reach ±127.
    pub fn value_range(&self) -> (i8, i8) {
        self.range
    }

    /// Output columns.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Inputs per column.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Blocks of [`BLOCK`] inputs per column.
    pub fn blocks(&self) -> usize {
        self.blocks
    }

    /// Panels of [`NR`] columns.
    pub fn panels(&self) -> usize {
        self.n.div_ceil(NR)
    }

    /// Bytes the packed weights take.
    pub fn size_bytes(&self) -> usize {
        self.data.len() + 4 * (self.scales.len() + self.sums.len())
    }

    /// Panel `p`'s values (`blocks * BLOCK * NR` bytes).
    #[inline(always)]
    pub(super) fn panel(&self, p: usize) -> &[i8] {
        let len = self.blocks * BLOCK * NR;
        &self.data[p * len..(p + 1) * len]
    }

    /// Panel `p`'s scales (`blocks * NR`).
    #[inline(always)]
    pub(super) fn panel_scales(&self, p: usize) -> &[f32] {
        let len = self.blocks * NR;
        &self.scales[p * len..(p + 1) * len]
    }

    /// Panel `p`'s block sums (`blocks * NR`).
    #[allow(dead_code)]
    #[inline(always)]
    pub(super) fn panel_sums(&self, p: usize) -> &[i32] {
        let len = self.blocks * NR;
        &self.sums[p * len..(p + 1) * len]
    }

    /// The scale of column `c`, block `b`.
    pub fn scale(&self, c: usize, b: usize) -> f32 {
        self.scales[((c / NR) * self.blocks + b) * NR + c % NR]
    }

    /// The value of column `c`, input `i` (tests and debugging).
    pub fn value(&self, c: usize, i: usize) -> i8 {
        let (p, cc, b, g, j) = (c / NR, c % NR, i / BLOCK, (i % BLOCK) / 4, i % 4);
        self.data[(p * self.blocks + b) * BLOCK * NR + g * 4 * NR + cc * 4 + j]
    }
}

/// The GGUF block types that pack without loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufBlocks {
    Q8_0,
    Q4_0,
}
