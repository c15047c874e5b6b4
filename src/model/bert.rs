//! A BERT encoder over (possibly quantized) GGUF weights, in candle.
//!
//! Each part is a small struct with `load(&mut Weights, ...)` and `forward`, and loads its
//! tensors by llama.cpp's names. Weight matrices run through candle's quantized matmul
//! (see [`Matrix`]), which uses its SIMD kernels (AVX/NEON natively, SIMD128 on wasm32).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{DType, Device, Module, Tensor};

use super::config::{Activation, ModelConfig};
use super::gguf::{self, names};
use crate::{Error, Result};

/// Statistics of one weight matrix's inputs over a calibration run.
#[derive(Debug, Clone, Default)]
pub struct InputStats {
    /// The Gram matrix (`cols x cols`, row-major): the sum of `x x^T` over the input rows,
    /// each text's rows weighted by one over its length.
    pub gram: Vec<f64>,
    /// The sum of the input rows (`cols`), weighted the same way.
    pub sum: Vec<f64>,
    /// The number of calibration texts (the total weight).
    pub texts: usize,
}

/// Per weight matrix (by tensor name), statistics of its inputs. Filled during a
/// calibration run; 4-bit quantization (GPTQ, bias correction) uses them to place rounding
/// errors where they matter least.
pub type ActivationStats = Arc<Mutex<HashMap<String, InputStats>>>;

/// The bundle's tensors, taken by name as the model is built.
pub struct Weights {
    tensors: HashMap<String, QTensor>,
    stats: Option<ActivationStats>,
}

impl Weights {
    pub fn new(tensors: HashMap<String, QTensor>) -> Self {
        Self {
            tensors,
            stats: None,
        }
    }

    /// Makes every linear layer record the Gram matrix of its inputs into `stats`.
    pub fn with_stats(mut self, stats: ActivationStats) -> Self {
        self.stats = Some(stats);
        self
    }

    fn take(&mut self, name: &str) -> Result<QTensor> {
        self.tensors
            .remove(name)
            .ok_or_else(|| Error::MissingTensor(name.to_string()))
    }

    /// A small tensor (bias, norm) as plain f32.
    fn dense(&mut self, name: &str) -> Result<Tensor> {
        Ok(self.take(name)?.dequantize(&Device::Cpu)?)
    }
}

/// A weight matrix and the kernel that multiplies by it.
enum Matrix {
    /// f32 and f16 matrices: candle's dense matmul.
    Dense(QMatMul),
    /// Block-quantized matrices (`q8_0`, `q4_0`, ...): candle's portable quantized kernel
    /// (`k_quants::matmul`: AVX/NEON/SIMD128 dot products, activations rounded to 8 bits in
    /// 32-value blocks). It is the kernel the wasm build runs, so vectors made natively match
    /// the browser's. `QMatMul` would take candle's x86 repacked kernels on AVX-512 VNNI
    /// machines for rows that are multiples of 256 (MiniLM's `ffn_down`), which round
    /// activations in 256-value blocks: further from both the browser and the f32 model.
    Blocks {
        storage: QStorage,
        n: usize,
        /// Native only: the weights as a tensor, and dequantized to f32 on first use by a
        /// large batch (see [`Matrix::forward`]).
        #[cfg(not(target_arch = "wasm32"))]
        weights: QTensor,
        #[cfg(not(target_arch = "wasm32"))]
        dense: std::sync::OnceLock<Tensor>,
    },
}

/// Rows (tokens) from which a native batch takes the dense path of [`Matrix::forward`].
#[cfg(not(target_arch = "wasm32"))]
const DENSE_PATH_MIN_ROWS: usize = 256;

impl Matrix {
    fn new(t: QTensor) -> Result<Self> {
        let t = match t.dtype() {
            GgmlDType::Q5_0 => gguf::widen_q5_0(&t)?,
            _ => t,
        };
        match t.dtype() {
            GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => {
                Ok(Matrix::Dense(QMatMul::from_qtensor(t)?))
            }
            dtype => {
                let (n, _) = t.shape().dims2()?;
                let storage = QStorage::from_data(t.data()?, &Device::Cpu, dtype)?;
                Ok(Matrix::Blocks {
                    storage,
                    n,
                    #[cfg(not(target_arch = "wasm32"))]
                    weights: t,
                    #[cfg(not(target_arch = "wasm32"))]
                    dense: std::sync::OnceLock::new(),
                })
            }
        }
    }

    /// `x W^T` for `x` of shape `(..., k)`.
    ///
    /// Natively, large batches (indexing) compute the very same function on the dense path:
    /// activations rounded to `Q8_0` blocks and back (candle's own rounding), times the
    /// dequantized weights, in candle's f32 matmul. Every product of the integer kernel is
    /// exact in f32, so the two differ only in summation order, and the dense matmul is
    /// several times faster for many rows.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Matrix::Dense(m) => Ok(m.forward(x)?),
            #[cfg(not(target_arch = "wasm32"))]
            Matrix::Blocks { weights, dense, .. }
                if x.elem_count() / x.dim(candle_core::D::Minus1)?.max(1)
                    >= DENSE_PATH_MIN_ROWS =>
            {
                let w = match dense.get() {
                    Some(w) => w,
                    None => {
                        let _ = dense.set(weights.dequantize(&Device::Cpu)?);
                        dense.get().ok_or_else(|| {
                            Error::InvalidArgument("dense weights unavailable".into())
                        })?
                    }
                };
                let dims = x.dims().to_vec();
                let k = dims[dims.len() - 1];
                let flat = x.reshape(((), k))?;
                let rounded =
                    QTensor::quantize(&flat, GgmlDType::Q8_0)?.dequantize(&Device::Cpu)?;
                let y = rounded.matmul(&w.t()?)?;
                let mut out = dims;
                let last = out.len() - 1;
                out[last] = w.dim(0)?;
                Ok(y.reshape(out)?)
            }
            Matrix::Blocks { storage, n, .. } => {
                let QStorage::Cpu(storage) = storage else {
                    return Err(Error::InvalidArgument(
                        "quantized weights must be on the CPU".into(),
                    ));
                };
                let mut dims = x.dims().to_vec();
                let k = dims.pop().unwrap_or(0);
                let lhs: Vec<f32> = x.flatten_all()?.to_vec1()?;
                let m = lhs.len() / k.max(1);
                let mut dst = vec![0f32; m * n];
                storage.matmul_t((m, k, *n), &lhs, &mut dst)?;
                dims.push(*n);
                Ok(Tensor::from_vec(dst, dims, x.device())?)
            }
        }
    }
}

/// `y = x W^T + b` with a (possibly quantized) `W`.
struct Linear {
    weight: Matrix,
    bias: Tensor,
    /// Set only in calibration runs: where to record input statistics, under what name.
    stats: Option<(ActivationStats, String)>,
}

impl Linear {
    fn load(w: &mut Weights, prefix: &str) -> Result<Self> {
        let name = format!("{prefix}.weight");
        let weight = Matrix::new(w.take(&name)?)?;
        let bias = w.dense(&format!("{prefix}.bias"))?;
        let stats = w.stats.clone().map(|s| (s, name));
        Ok(Self {
            weight,
            bias,
            stats,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let Some((stats, name)) = &self.stats {
            let cols = x.dim(candle_core::D::Minus1)?;
            let flat = x.reshape(((), cols))?;
            let rows = flat.dim(0)?;
            let gram: Vec<f32> = flat
                .t()?
                .contiguous()?
                .matmul(&flat)?
                .flatten_all()?
                .to_vec1()?;
            let mut guard = stats
                .lock()
                .map_err(|_| Error::InvalidArgument("calibration statistics poisoned".into()))?;
            let sum: Vec<f32> = flat.sum(0)?.to_vec1()?;
            let entry = guard.entry(name.clone()).or_insert_with(|| InputStats {
                gram: vec![0.0; cols * cols],
                sum: vec![0.0; cols],
                texts: 0,
            });
            // Calibration runs one text per batch: weighting its rows by 1 / length makes
            // every text count the same. Otherwise a few long passages outweigh the short
            // queries, whose [CLS]/[SEP] rows are a large share of what a query vector is.
            let weight = 1.0 / rows.max(1) as f64;
            for (acc, v) in entry.gram.iter_mut().zip(gram) {
                *acc += weight * v as f64;
            }
            for (acc, v) in entry.sum.iter_mut().zip(sum) {
                *acc += weight * v as f64;
            }
            entry.texts += 1;
        }
        Ok(self.weight.forward(x)?.broadcast_add(&self.bias)?)
    }
}

struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    fn load(w: &mut Weights, prefix: &str, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: w.dense(&format!("{prefix}.weight"))?,
            bias: w.dense(&format!("{prefix}.bias"))?,
            eps: eps as f32,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::layer_norm(
            &x.contiguous()?,
            &self.weight,
            &self.bias,
            self.eps,
        )?)
    }
}

/// The word-embedding table: a matrix, or stored flat (see [`gguf::flat_table_rows`]).
enum WordTable {
    Rows(QTensor),
    Flat {
        table: QTensor,
        vocab: usize,
        hidden: usize,
    },
}

impl WordTable {
    fn new(t: QTensor, cfg: &ModelConfig) -> Self {
        if gguf::is_flat_table(cfg, &t) {
            WordTable::Flat {
                table: t,
                vocab: cfg.vocab_size,
                hidden: cfg.hidden_size,
            }
        } else {
            WordTable::Rows(t)
        }
    }

    /// The rows of `ids` (shape `(batch, seq)`) as a `(batch, seq, hidden)` tensor.
    fn lookup(&self, ids: &Tensor) -> Result<Tensor> {
        let (table, vocab, hidden) = match self {
            WordTable::Rows(t) => return Ok(t.embedding(ids)?),
            WordTable::Flat {
                table,
                vocab,
                hidden,
            } => (table, *vocab, *hidden),
        };
        let dtype = table.dtype();
        let bytes = table.data()?;
        let (block, block_bytes) = (dtype.block_size(), dtype.type_size());
        let (b, s) = ids.dims2()?;
        let mut out = Vec::with_capacity(b * s * hidden);
        for id in ids.flatten_all()?.to_vec1::<u32>()? {
            let id = id as usize;
            if id >= vocab {
                return Err(Error::InvalidArgument(format!(
                    "token id {id} is outside the vocabulary of {vocab}"
                )));
            }
            // The blocks row `id` spans, dequantized, and the row cut out of them.
            let (start, end) = (id * hidden, (id + 1) * hidden);
            let (b0, b1) = (start / block, end.div_ceil(block));
            let span = bytes
                .get(b0 * block_bytes..b1 * block_bytes)
                .ok_or_else(|| {
                    Error::CorruptBundle("the word-embedding table is cut short".into())
                })?;
            let part = QStorage::from_data(Cow::Borrowed(span), &Device::Cpu, dtype)?;
            let values: Vec<f32> = QTensor::new(part, (b1 - b0, block))?
                .dequantize(&Device::Cpu)?
                .flatten_all()?
                .to_vec1()?;
            out.extend_from_slice(&values[start - b0 * block..end - b0 * block]);
        }
        Ok(Tensor::from_vec(out, (b, s, hidden), ids.device())?)
    }
}

/// Word, position and token-type embeddings, summed and normalised.
struct Embeddings {
    word: WordTable,
    position: QTensor,
    token_type: QTensor,
    norm: LayerNorm,
}

impl Embeddings {
    fn load(w: &mut Weights, cfg: &ModelConfig) -> Result<Self> {
        Ok(Self {
            word: WordTable::new(w.take(names::TOKEN_EMBD)?, cfg),
            position: w.take(names::POSITION_EMBD)?,
            token_type: w.take(names::TOKEN_TYPES)?,
            norm: LayerNorm::load(w, names::TOKEN_EMBD_NORM, cfg.layer_norm_eps)?,
        })
    }

    fn forward(&self, ids: &Tensor, type_ids: &Tensor) -> Result<Tensor> {
        let (_, seq) = ids.dims2()?;
        let positions = Tensor::arange(0u32, seq as u32, ids.device())?.unsqueeze(0)?;
        let x = self.word.lookup(ids)?;
        let x = x.broadcast_add(&self.position.embedding(&positions)?)?;
        let x = (x + self.token_type.embedding(type_ids)?)?;
        self.norm.forward(&x)
    }
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    out_norm: LayerNorm,
    up: Linear,
    down: Linear,
    ffn_norm: LayerNorm,
    heads: usize,
    head_dim: usize,
    activation: Activation,
}

impl Layer {
    fn load(w: &mut Weights, cfg: &ModelConfig, l: usize) -> Result<Self> {
        use names::*;
        let p = |part: &str| format!("blk.{l}.{part}");
        Ok(Self {
            q: Linear::load(w, &p(ATTN_Q))?,
            k: Linear::load(w, &p(ATTN_K))?,
            v: Linear::load(w, &p(ATTN_V))?,
            out: Linear::load(w, &p(ATTN_OUT))?,
            out_norm: LayerNorm::load(w, &p(ATTN_OUT_NORM), cfg.layer_norm_eps)?,
            up: Linear::load(w, &p(FFN_UP))?,
            down: Linear::load(w, &p(FFN_DOWN))?,
            ffn_norm: LayerNorm::load(w, &p(LAYER_OUT_NORM), cfg.layer_norm_eps)?,
            heads: cfg.num_heads,
            head_dim: cfg.head_dim(),
            activation: cfg.activation,
        })
    }

    /// `x`: batch x seq x hidden; `mask_bias`: batch x 1 x 1 x seq (0 or a large negative).
    fn forward(&self, x: &Tensor, mask_bias: &Tensor) -> Result<Tensor> {
        let (b, s, h) = x.dims3()?;
        let split = |t: Tensor| -> Result<Tensor> {
            Ok(t.reshape((b, s, self.heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let q = split(self.q.forward(x)?)?;
        let k = split(self.k.forward(x)?)?;
        let v = split(self.v.forward(x)?)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(mask_bias)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let ctx = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, s, h))?;
        let x = self.out_norm.forward(&(self.out.forward(&ctx)? + x)?)?;
        let up = self.up.forward(&x)?;
        let act = match self.activation {
            Activation::Gelu => up.gelu_erf()?,
            Activation::GeluTanh => up.gelu()?,
            Activation::Relu => up.relu()?,
        };
        self.ffn_norm.forward(&(self.down.forward(&act)? + x)?)
    }
}

/// The BERT encoder: token ids in, contextual token vectors out.
pub struct Bert {
    embeddings: Embeddings,
    layers: Vec<Layer>,
}

impl Bert {
    pub fn load(w: &mut Weights, cfg: &ModelConfig) -> Result<Self> {
        let embeddings = Embeddings::load(w, cfg)?;
        let layers = (0..cfg.num_layers)
            .map(|l| Layer::load(w, cfg, l))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { embeddings, layers })
    }

    /// `ids`, `type_ids`, `mask`: batch x seq (u32). Returns batch x seq x hidden (f32).
    pub fn forward(&self, ids: &Tensor, type_ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let mut x = self.embeddings.forward(ids, type_ids)?;
        // 0 where attended, a large negative where padded: softmax gives padding no weight.
        let mask_bias = ((mask.to_dtype(DType::F32)? - 1.0)? * 1e9f64)?
            .unsqueeze(1)?
            .unsqueeze(1)?;
        for layer in &self.layers {
            x = layer.forward(&x, &mask_bias)?;
        }
        Ok(x)
    }
}
