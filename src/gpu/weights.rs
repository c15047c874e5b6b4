//! The bundle's tensors in the layouts the kernels read.
//!
//! GGML blocks are 34 (`Q8_0`) or 18 (`Q4_0`) bytes: an f16 scale, then the quants. WGSL
//! reads storage buffers as 32-bit words, so each matrix is split into two buffers: the
//! quants of every block, 4-byte aligned (8 words per `Q8_0` block, 4 per `Q4_0` block),
//! and the f16 scales packed two to a word. The values stay quantized; only their layout
//! changes. `Q5_0` is widened to `Q8_0` (the same values). Any other storage type (f32, f16,
//! the other block formats, a flat k-quant word-embedding table) is uploaded as f32.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Device;

use super::{storage_init, words_of, GpuContext};
use crate::{Error, Result};

/// How a matrix's elements are stored on the GPU (the `FMT_*` numbers of `common.wgsl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    F32 = 0,
    Q8_0 = 1,
    Q4_0 = 2,
}

/// A matrix (`rows x cols`, row-major) in GPU layout, still on the CPU.
pub(crate) struct HostMatrix {
    pub format: Format,
    pub rows: usize,
    pub cols: usize,
    /// Quants (or f32 bits), as words.
    pub words: Vec<u32>,
    /// One f16 scale (bits) per block; empty for f32.
    pub scales: Vec<u16>,
}

impl HostMatrix {
    /// Converts a 2-D tensor from the bundle.
    pub fn from_qtensor(name: &str, t: &QTensor) -> Result<Self> {
        let (rows, cols) = t.shape().dims2()?;
        let (format, block_bytes, quant_words) = match t.dtype() {
            GgmlDType::Q8_0 | GgmlDType::Q5_0 => (Format::Q8_0, 34, 8),
            GgmlDType::Q4_0 => (Format::Q4_0, 18, 4),
            _ => return Self::dense(name, t),
        };
        if !cols.is_multiple_of(32) {
            return Err(Error::CorruptBundle(format!(
                "tensor `{name}`: rows of {cols} do not fit 32-element blocks"
            )));
        }
        let blocks = rows * cols / 32;
        // `Q5_0` is widened to `Q8_0` with the same values (see `widen_q5_0`).
        let data = match t.dtype() {
            GgmlDType::Q5_0 => crate::model::gguf::widen_q5_0(t)?
                .data()?
                .into_owned()
                .into(),
            _ => t.data()?,
        };
        if data.len() != blocks * block_bytes {
            return Err(Error::CorruptBundle(format!(
                "tensor `{name}` has {} bytes, expected {} for {rows} x {cols} {:?}",
                data.len(),
                blocks * block_bytes,
                t.dtype()
            )));
        }
        let mut words = Vec::with_capacity(blocks * quant_words);
        let mut scales = Vec::with_capacity(blocks);
        for block in data.chunks_exact(block_bytes) {
            scales.push(u16::from_le_bytes([block[0], block[1]]));
            words.extend(words_of(&block[2..]));
        }
        Ok(Self {
            format,
            rows,
            cols,
            words,
            scales,
        })
    }

    /// Any tensor, dequantized to f32 by candle.
    pub fn dense(name: &str, t: &QTensor) -> Result<Self> {
        let (rows, cols) = t.shape().dims2()?;
        Self::from_f32(rows, cols, dequantize(name, t)?)
    }

    /// A matrix of f32 values (row-major, at least `rows * cols` of them).
    pub fn from_f32(rows: usize, cols: usize, mut values: Vec<f32>) -> Result<Self> {
        if values.len() < rows * cols {
            return Err(Error::CorruptBundle(format!(
                "{} values for a {rows} x {cols} matrix",
                values.len()
            )));
        }
        values.truncate(rows * cols);
        Ok(Self {
            format: Format::F32,
            rows,
            cols,
            words: values.into_iter().map(f32::to_bits).collect(),
            scales: Vec::new(),
        })
    }

    /// Stacks matrices with the same column count vertically (q, k and v into one).
    /// All parts must share a format; callers fall back to [`HostMatrix::dense`] otherwise.
    pub fn stack(parts: Vec<HostMatrix>) -> Result<Self> {
        let mut iter = parts.into_iter();
        let mut out = iter
            .next()
            .ok_or_else(|| Error::InvalidArgument("nothing to stack".into()))?;
        for m in iter {
            if m.format != out.format || m.cols != out.cols {
                return Err(Error::InvalidArgument(
                    "stacked matrices differ in format or width".into(),
                ));
            }
            out.rows += m.rows;
            out.words.extend(m.words);
            out.scales.extend(m.scales);
        }
        Ok(out)
    }

    pub fn upload(&self, ctx: &GpuContext, name: &str) -> Result<GpuMatrix> {
        let bytes = (self.words.len() * 4) as u64;
        if bytes > ctx.max_binding() {
            return Err(Error::Gpu(format!(
                "tensor `{name}` needs a {bytes}-byte buffer; this device binds at most {}",
                ctx.max_binding()
            )));
        }
        let mut scale_words: Vec<u32> = self
            .scales
            .chunks(2)
            .map(|c| c[0] as u32 | (c.get(1).copied().unwrap_or(0) as u32) << 16)
            .collect();
        if scale_words.is_empty() {
            scale_words.push(0);
        }
        let usage = wgpu::BufferUsages::STORAGE;
        Ok(GpuMatrix {
            format: self.format,
            rows: self.rows,
            cols: self.cols,
            quants: storage_init(&ctx.device, name, bytemuck::cast_slice(&self.words), usage),
            scales: storage_init(&ctx.device, name, bytemuck::cast_slice(&scale_words), usage),
        })
    }
}

/// A matrix on the GPU: quants (or f32 bits) and packed scales.
pub(crate) struct GpuMatrix {
    pub format: Format,
    pub rows: usize,
    pub cols: usize,
    pub quants: wgpu::Buffer,
    pub scales: wgpu::Buffer,
}

/// A tensor's values as f32 (biases, norms, and matrices of other storage types).
pub(crate) fn dequantize(name: &str, t: &QTensor) -> Result<Vec<f32>> {
    let dense = t
        .dequantize(&Device::Cpu)
        .map_err(|e| Error::CorruptBundle(format!("tensor `{name}`: {e}")))?;
    Ok(dense.flatten_all()?.to_vec1::<f32>()?)
}

/// A vector (bias, norm weight) on the GPU as f32.
pub(crate) fn upload_vector(ctx: &GpuContext, name: &str, t: &QTensor) -> Result<wgpu::Buffer> {
    let values = dequantize(name, t)?;
    Ok(storage_init(
        &ctx.device,
        name,
        bytemuck::cast_slice(&values),
        wgpu::BufferUsages::STORAGE,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;

    /// The GPU layout's values, decoded on the CPU the way the kernels decode them.
    fn decode(m: &HostMatrix) -> Vec<f32> {
        let mut out = Vec::with_capacity(m.rows * m.cols);
        for block in 0..m.rows * m.cols / 32 {
            let d = half::f16::from_bits(m.scales[block]).to_f32();
            for e in 0..32 {
                let v = match m.format {
                    Format::Q8_0 => {
                        let w = m.words[block * 8 + e / 4];
                        ((w >> (8 * (e % 4))) & 0xff) as u8 as i8 as f32
                    }
                    Format::Q4_0 => {
                        let byte = e % 16;
                        let w = m.words[block * 4 + byte / 4];
                        let b = (w >> (8 * (byte % 4))) & 0xff;
                        let n = if e >= 16 { b >> 4 } else { b & 15 };
                        n as f32 - 8.0
                    }
                    Format::F32 => unreachable!(),
                };
                out.push(d * v);
            }
        }
        out
    }

    #[test]
    fn block_layouts_decode_to_candles_values() {
        let values: Vec<f32> = (0..4 * 64)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let t = Tensor::from_vec(values, (4, 64), &Device::Cpu).unwrap();
        for dtype in [GgmlDType::Q8_0, GgmlDType::Q4_0, GgmlDType::Q5_0] {
            let q = QTensor::quantize(&t, dtype).unwrap();
            let expected = dequantize("t", &q).unwrap();
            let m = HostMatrix::from_qtensor("t", &q).unwrap();
            assert_eq!(decode(&m), expected, "{dtype:?}");
        }
        let f = QTensor::quantize(&t, GgmlDType::F16).unwrap();
        let m = HostMatrix::from_qtensor("t", &f).unwrap();
        assert_eq!(m.format, Format::F32);
        assert_eq!(m.words.len(), 256);
    }
}
