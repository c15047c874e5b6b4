//! The quantization recipe: the storage types a bundle can be converted to, which type each
//! matrix gets, and the widening of `Q5_0` to `Q8_0` the encoder does on load.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Device;

use crate::{Error, Result};

/// Weight storage types a bundle can be converted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quant {
    F32,
    F16,
    Q8_0,
    Q5_0,
    Q5_1,
    Q4_0,
    Q4_1,
    /// k-quants work on 256-wide super-blocks: tensors whose rows are not a multiple of 256
    /// (most of MiniLM, whose rows are 384 wide) fall back to the nearest 32-block type.
    Q6K,
    Q5K,
    Q4K,
    /// 3.4 bits a weight. Useful for the word-embedding table, stored flat
    /// ([`flat_table_rows`](super::layout::flat_table_rows)); matrices fall back to `q4_0`.
    Q3K,
    /// The small bundle's mix (about 4.5 bits a weight on average): the word-embedding table
    /// as `q3_k` (stored flat), every encoder weight matrix as `q5_0`, the position and
    /// token-type tables as `q8_0` (see `convert::default_quant`). As a single tensor's type
    /// it means `q5_0`.
    Q4Mix,
}

impl Quant {
    pub const ALL: [Quant; 12] = [
        Quant::F32,
        Quant::F16,
        Quant::Q8_0,
        Quant::Q5_0,
        Quant::Q5_1,
        Quant::Q4_0,
        Quant::Q4_1,
        Quant::Q6K,
        Quant::Q5K,
        Quant::Q4K,
        Quant::Q3K,
        Quant::Q4Mix,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Quant::F32 => "f32",
            Quant::F16 => "f16",
            Quant::Q8_0 => "q8_0",
            Quant::Q5_0 => "q5_0",
            Quant::Q5_1 => "q5_1",
            Quant::Q4_0 => "q4_0",
            Quant::Q4_1 => "q4_1",
            Quant::Q6K => "q6_k",
            Quant::Q5K => "q5_k",
            Quant::Q4K => "q4_k",
            Quant::Q3K => "q3_k",
            Quant::Q4Mix => "q4_mix",
        }
    }

    /// The storage type for a weight matrix whose rows are `row_len` wide.
    pub fn dtype_for_row(self, row_len: usize) -> GgmlDType {
        let (preferred, fallback) = match self {
            Quant::F32 => (GgmlDType::F32, GgmlDType::F32),
            Quant::F16 => (GgmlDType::F16, GgmlDType::F16),
            Quant::Q8_0 => (GgmlDType::Q8_0, GgmlDType::F16),
            Quant::Q5_0 => (GgmlDType::Q5_0, GgmlDType::F16),
            Quant::Q5_1 => (GgmlDType::Q5_1, GgmlDType::F16),
            Quant::Q4_0 => (GgmlDType::Q4_0, GgmlDType::F16),
            Quant::Q4_1 => (GgmlDType::Q4_1, GgmlDType::F16),
            Quant::Q6K => (GgmlDType::Q6K, GgmlDType::Q8_0),
            Quant::Q5K => (GgmlDType::Q5K, GgmlDType::Q5_0),
            Quant::Q4K => (GgmlDType::Q4K, GgmlDType::Q4_0),
            Quant::Q3K => (GgmlDType::Q3K, GgmlDType::Q4_0),
            Quant::Q4Mix => (GgmlDType::Q5_0, GgmlDType::F16),
        };
        if row_len.is_multiple_of(preferred.block_size()) {
            preferred
        } else if row_len.is_multiple_of(fallback.block_size()) {
            fallback
        } else {
            GgmlDType::F16
        }
    }

    /// llama.cpp's `general.file_type` number for the mostly-this-type file.
    pub fn llama_file_type(self) -> u32 {
        match self {
            Quant::F32 => 0,
            Quant::F16 => 1,
            Quant::Q4_0 => 2,
            Quant::Q4_1 => 3,
            Quant::Q8_0 => 7,
            // Most weight matrices are q5_0.
            Quant::Q5_0 | Quant::Q4Mix => 8,
            Quant::Q5_1 => 9,
            Quant::Q4K => 15,
            Quant::Q3K => 12,
            Quant::Q5K => 17,
            Quant::Q6K => 18,
        }
    }
}

/// A `Q5_0` matrix rewritten as `Q8_0` with exactly the same values: a `Q5_0` level
/// (-16..=15 times the block's f16 scale) is a `Q8_0` level with the same scale. The encoder
/// does this on load, so `Q5_0` weights (small on the wire) run in the `Q8_0` kernels that
/// have SIMD versions (candle's `Q5_0` dot product is scalar) and give the same products.
pub fn widen_q5_0(t: &QTensor) -> Result<QTensor> {
    const Q5_0_BYTES: usize = 22;
    let data = t.data()?;
    let blocks = t.shape().elem_count() / 32;
    if t.dtype() != GgmlDType::Q5_0 || data.len() != blocks * Q5_0_BYTES {
        return Err(Error::CorruptBundle(format!(
            "expected {} bytes of Q5_0 blocks, found {} bytes of {:?}",
            blocks * Q5_0_BYTES,
            data.len(),
            t.dtype()
        )));
    }
    let mut out = Vec::with_capacity(blocks * 34);
    for block in data.chunks_exact(Q5_0_BYTES) {
        // f16 scale, the 32 fifth bits, 16 bytes of low nibbles (value j low, j + 16 high).
        out.extend_from_slice(&block[..2]);
        let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
        let qs = &block[6..];
        for j in 0..32 {
            let nibble = if j < 16 { qs[j] & 0xF } else { qs[j - 16] >> 4 };
            let level = (nibble | (((qh >> j) & 1) as u8) << 4) as i8 - 16;
            out.push(level as u8);
        }
    }
    let storage = candle_core::quantized::QStorage::from_data(
        std::borrow::Cow::Owned(out),
        &Device::Cpu,
        GgmlDType::Q8_0,
    )?;
    Ok(QTensor::new(storage, t.shape().clone())?)
}

impl std::str::FromStr for Quant {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let norm = s.to_ascii_lowercase().replace('-', "_");
        let norm = match norm.as_str() {
            "q4k" | "q4_k_m" | "q4_k_s" => "q4_k".to_string(),
            "q5k" | "q5_k_m" | "q5_k_s" => "q5_k".to_string(),
            "q6k" => "q6_k".to_string(),
            "q3k" | "q3_k_m" | "q3_k_s" => "q3_k".to_string(),
            _ => norm,
        };
        Quant::ALL
            .into_iter()
            .find(|q| q.name() == norm)
            .ok_or_else(|| {
                let known: Vec<&str> = Quant::ALL.iter().map(|q| q.name()).collect();
                Error::InvalidArgument(format!(
                    "unknown quantization `{s}`; choose one of {}",
                    known.join(", ")
                ))
            })
    }
}

impl std::fmt::Display for Quant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
