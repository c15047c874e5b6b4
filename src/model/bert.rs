//! A BERT encoder over (possibly quantized) GGUF weights, in candle.
//!
//! Each part is a small struct with `load(&mut Weights, ...)` and `forward`, and loads its
//! tensors by llama.cpp's names. Block-quantized weight matrices run through Cairn's own
//! int8 kernels ([`crate::kernels`], see [`Matrix`]); f32 bundles through candle's matmul.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{DType, Device, Module, Tensor};

use super::config::{Activation, ModelConfig};
use super::gguf::{self, names};
use crate::{Error, Result};
use cairn_kernels as kernels;

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
    /// f32 and f16 matrices: candle's dense matmul (the f32 reference bundle).
    Dense(QMatMul),
    /// `Q8_0` and `Q4_0` matrices (and `Q5_0`, widened to `Q8_0` on load), repacked once
    /// into panels for Cairn's own int8 kernels ([`crate::kernels`]): the same kernels and
    /// the same rounding natively and in the browser, batch or single query.
    Packed(kernels::PackedMatrix),
    /// Other block types (`q4_1`, k-quants), and every block type while calibrating a
    /// conversion: candle's portable quantized kernel (`k_quants::matmul`, activations
    /// rounded to `Q8_0` blocks). Conversion keeps it so a bundle converts to the same bytes
    /// as before the int8 kernels existed.
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

/// Rows (tokens) from which a native batch on candle's block kernel takes the dense path of
/// [`Matrix::forward`] (calibration runs: the same function as before the int8 kernels, so
/// conversions stay byte-identical).
#[cfg(not(target_arch = "wasm32"))]
const DENSE_PATH_MIN_ROWS: usize = 256;

impl Matrix {
    /// `packed`: use Cairn's int8 kernels where the block type allows.
    fn new(t: QTensor, packed: bool) -> Result<Self> {
        let t = match t.dtype() {
            GgmlDType::Q5_0 => gguf::widen_q5_0(&t)?,
            _ => t,
        };
        match t.dtype() {
            GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => {
                Ok(Matrix::Dense(QMatMul::from_qtensor(t)?))
            }
            dtype => {
                let (n, k) = t.shape().dims2()?;
                let blocks = match dtype {
                    GgmlDType::Q8_0 => Some(kernels::GgufBlocks::Q8_0),
                    GgmlDType::Q4_0 => Some(kernels::GgufBlocks::Q4_0),
                    _ => None,
                };
                if let (true, Some(blocks)) = (packed, blocks) {
                    return Ok(Matrix::Packed(kernels::PackedMatrix::from_gguf(
                        blocks,
                        &t.data()?,
                        n,
                        k,
                    )?));
                }
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

    /// `x W^T + bias` for `x` of shape `(..., k)`, then `activation` where given (fused
    /// into the kernel's output on the packed path).
    fn forward(
        &self,
        x: &Tensor,
        bias: &Tensor,
        bias_values: &[f32],
        activation: Option<Activation>,
    ) -> Result<Tensor> {
        let y = match self {
            Matrix::Dense(m) => m.forward(x)?.broadcast_add(bias)?,
            Matrix::Packed(w) => {
                let mut dims = x.dims().to_vec();
                let k = dims.pop().unwrap_or(0);
                let lhs = x.flatten_all()?;
                let lhs = lhs.to_vec1::<f32>()?;
                let m = lhs.len() / k.max(1);
                let mut dst = vec![0f32; m * w.n()];
                ROWS.with(|rows| -> Result<()> {
                    let mut rows = rows.borrow_mut();
                    rows.quantize(kernels::Kernel::current(), &lhs, m, k)?;
                    Ok(kernels::gemm(&rows, w, Some(bias_values), &mut dst)?)
                })?;
                if let Some(act) = activation {
                    apply_activation(act, &mut dst);
                }
                dims.push(w.n());
                return Ok(Tensor::from_vec(dst, dims, x.device())?);
            }
            // Natively, large batches compute the very same function on the dense path:
            // activations rounded to `Q8_0` blocks and back (candle's own rounding), times the
            // dequantized weights, in candle's f32 matmul.
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
                y.reshape(out)?.broadcast_add(bias)?
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
                Tensor::from_vec(dst, dims, x.device())?.broadcast_add(bias)?
            }
        };
        match activation {
            Some(Activation::Gelu) => Ok(y.gelu_erf()?),
            Some(Activation::GeluTanh) => Ok(y.gelu()?),
            Some(Activation::Relu) => Ok(y.relu()?),
            None => Ok(y),
        }
    }
}

thread_local! {
    /// The rounded activations of the last packed matmul on this thread, reused.
    static ROWS: std::cell::RefCell<kernels::QuantizedRows> =
        std::cell::RefCell::new(kernels::QuantizedRows::default());
}

/// The activation functions in place. GELU uses the kernels' vectorisable erf (absolute
/// error below 1.5e-7, the same bits on every target); the f32 reference path keeps candle's.
fn apply_activation(act: Activation, v: &mut [f32]) {
    activation_fn(act)(v)
}

/// The in-place function of `act` (what [`kernels::QuantizedRows::quantize_mapped`] takes).
fn activation_fn(act: Activation) -> fn(&mut [f32]) {
    fn gelu_tanh(v: &mut [f32]) {
        const SQRT_TWO_OVER_PI: f32 = 0.797_884_6;
        for x in v {
            let y = *x;
            *x = 0.5 * y * (1.0 + (SQRT_TWO_OVER_PI * y * (1.0 + 0.044715 * y * y)).tanh());
        }
    }
    fn relu(v: &mut [f32]) {
        for x in v {
            *x = x.max(0.0);
        }
    }
    match act {
        Activation::Gelu => kernels::math::gelu_erf,
        Activation::GeluTanh => gelu_tanh,
        Activation::Relu => relu,
    }
}

/// `y = x W^T + b` with a (possibly quantized) `W`.
struct Linear {
    weight: Matrix,
    bias: Tensor,
    bias_values: Vec<f32>,
    /// Set only in calibration runs: where to record input statistics, under what name.
    stats: Option<(ActivationStats, String)>,
}

impl Linear {
    fn load(w: &mut Weights, prefix: &str) -> Result<Self> {
        let name = format!("{prefix}.weight");
        let weight = Matrix::new(w.take(&name)?, w.stats.is_none())?;
        let bias = w.dense(&format!("{prefix}.bias"))?;
        let bias_values = bias.flatten_all()?.to_vec1()?;
        let stats = w.stats.clone().map(|s| (s, name));
        Ok(Self {
            weight,
            bias,
            bias_values,
            stats,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, None)
    }

    /// `activation(x W^T + b)`.
    fn forward_with(&self, x: &Tensor, activation: Option<Activation>) -> Result<Tensor> {
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
        self.weight
            .forward(x, &self.bias, &self.bias_values, activation)
    }
}

struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    weight_values: Vec<f32>,
    bias_values: Vec<f32>,
    eps: f32,
}

impl LayerNorm {
    fn load(w: &mut Weights, prefix: &str, eps: f64) -> Result<Self> {
        let weight = w.dense(&format!("{prefix}.weight"))?;
        let bias = w.dense(&format!("{prefix}.bias"))?;
        Ok(Self {
            weight_values: weight.flatten_all()?.to_vec1()?,
            bias_values: bias.flatten_all()?.to_vec1()?,
            weight,
            bias,
            eps: eps as f32,
        })
    }

    /// `y = norm(y + residual)` over rows of `y.len() / residual rows` values, in place: the
    /// residual add and the normalisation in one pass (the formula candle's `layer_norm`
    /// uses: mean and mean square in f32).
    fn add_norm(&self, y: &mut [f32], residual: &[f32]) {
        // Natively a batch's rows are spread over the cores (each row's arithmetic is the
        // same wherever it runs).
        #[cfg(not(target_arch = "wasm32"))]
        if y.len() >= 1 << 17 && rayon::current_num_threads() > 1 {
            use rayon::prelude::*;
            const ROWS: usize = 64;
            let h = self.weight_values.len();
            y.par_chunks_mut(ROWS * h)
                .zip(residual.par_chunks(ROWS * h))
                .for_each(|(y, r)| self.add_norm_rows(y, r));
            return;
        }
        self.add_norm_rows(y, residual)
    }

    fn add_norm_rows(&self, y: &mut [f32], residual: &[f32]) {
        let h = self.weight_values.len();
        for (row, res) in y.chunks_exact_mut(h).zip(residual.chunks_exact(h)) {
            let (mut sum, mut sum2) = (0f32, 0f32);
            for (v, r) in row.iter_mut().zip(res) {
                *v += r;
                sum += *v;
                sum2 += *v * *v;
            }
            let mean = sum / h as f32;
            let var = sum2 / h as f32 - mean * mean;
            let inv_std = (var + self.eps).sqrt().recip();
            for ((v, w), b) in row
                .iter_mut()
                .zip(&self.weight_values)
                .zip(&self.bias_values)
            {
                *v = (*v - mean) * inv_std * w + b;
            }
        }
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
        let act = self.up.forward_with(&x, Some(self.activation))?;
        self.ffn_norm.forward(&(self.down.forward(&act)? + x)?)
    }
}

impl Layer {
    /// The packed weights of every linear layer, when all are packed (the fast path).
    fn packed(&self) -> Option<[&kernels::PackedMatrix; 6]> {
        fn p(l: &Linear) -> Option<&kernels::PackedMatrix> {
            match &l.weight {
                Matrix::Packed(w) if l.stats.is_none() => Some(w),
                _ => None,
            }
        }
        Some([
            p(&self.q)?,
            p(&self.k)?,
            p(&self.v)?,
            p(&self.out)?,
            p(&self.up)?,
            p(&self.down)?,
        ])
    }

    /// The layer on plain buffers: `ws.x` (`batch * seq` rows of `hidden`) in, the layer's
    /// output left in `ws.x`. No allocation once the workspace has grown to the batch.
    fn forward_packed(&self, ws: &mut Workspace, shape: Shape, mask: &[u32]) -> Result<()> {
        let [wq, wk, wv, wo, wu, wd] = self.packed().ok_or_else(|| {
            Error::InvalidArgument("the packed forward pass needs packed weights".into())
        })?;
        let kernel = kernels::Kernel::current();
        let (m, h) = (shape.batch * shape.seq, wq.n());
        let inter = wu.n();
        ws.grow(m, h, inter);
        let Workspace {
            rows,
            x,
            q,
            k,
            v,
            ctx,
            up,
            scores,
        } = ws;
        let (x, q, k, v, ctx) = (
            &mut x[..m * h],
            &mut q[..m * h],
            &mut k[..m * h],
            &mut v[..m * h],
            &mut ctx[..m * h],
        );
        // q, k and v share one rounding of their input.
        rows.quantize(kernel, x, m, h)?;
        kernels::gemm(rows, wq, Some(&self.q.bias_values), q)?;
        kernels::gemm(rows, wk, Some(&self.k.bias_values), k)?;
        kernels::gemm(rows, wv, Some(&self.v.bias_values), v)?;
        attention(q, k, v, ctx, shape, self.heads, self.head_dim, mask, scores);
        // Attention output (into q, free now), residual and norm.
        rows.quantize(kernel, ctx, m, h)?;
        kernels::gemm(rows, wo, Some(&self.out.bias_values), q)?;
        self.out_norm.add_norm(q, x);
        // Feed-forward, FFN_ROWS rows at a time so the wide intermediate rows stay in cache:
        // up, its activation applied just before it is rounded, down into k. Every row's
        // arithmetic is the same however the rows are grouped.
        for r0 in (0..m).step_by(FFN_ROWS) {
            let n = (m - r0).min(FFN_ROWS);
            let up = &mut up[..n * inter];
            rows.quantize(kernel, &q[r0 * h..(r0 + n) * h], n, h)?;
            kernels::gemm(rows, wu, Some(&self.up.bias_values), up)?;
            rows.quantize_mapped(kernel, up, n, inter, activation_fn(self.activation))?;
            kernels::gemm(
                rows,
                wd,
                Some(&self.down.bias_values),
                &mut k[r0 * h..(r0 + n) * h],
            )?;
        }
        self.ffn_norm.add_norm(k, q);
        x.copy_from_slice(k);
        Ok(())
    }
}

/// A batch's shape: texts, and tokens per text (padded).
#[derive(Debug, Clone, Copy)]
struct Shape {
    batch: usize,
    seq: usize,
}

/// Buffers of the packed forward pass, grown to the largest batch seen on this thread and
/// reused by every call after it.
#[derive(Default)]
struct Workspace {
    rows: kernels::QuantizedRows,
    x: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    ctx: Vec<f32>,
    up: Vec<f32>,
    /// One query row's attention weights (the single-threaded path).
    scores: Vec<f32>,
}

impl Workspace {
    fn grow(&mut self, m: usize, h: usize, inter: usize) {
        for b in [
            &mut self.x,
            &mut self.q,
            &mut self.k,
            &mut self.v,
            &mut self.ctx,
        ] {
            if b.len() < m * h {
                b.resize(m * h, 0.0);
            }
        }
        if self.up.len() < m.min(FFN_ROWS) * inter {
            self.up.resize(m.min(FFN_ROWS) * inter, 0.0);
        }
    }
}

/// Rows of the feed-forward's intermediate activations at a time (1,536 values each for
/// MiniLM: 64 rows are 393 KB of f32).
const FFN_ROWS: usize = 64;

/// Rows per group of texts that go through all the layers together: a group's buffers stay
/// in the core's cache from one layer to the next (a whole batch of 32 long texts is 8,192
/// rows, 50 MB of intermediate activations, which would stream from memory several times
/// per layer). A text longer than this is a group of its own.
const GROUP_ROWS: usize = 128;

/// Workspaces not in use, reused by every call after the first (one per group running at
/// once). A pool rather than one per thread: natively a thread waiting inside one group's
/// parallel kernels may run another group's work meanwhile.
static WORKSPACES: std::sync::Mutex<Vec<Workspace>> = std::sync::Mutex::new(Vec::new());

/// Runs `f` with a workspace from the pool, returning it after.
fn with_workspace<T>(f: impl FnOnce(&mut Workspace) -> T) -> T {
    let taken = WORKSPACES.lock().ok().and_then(|mut pool| pool.pop());
    let mut ws = taken.unwrap_or_default();
    let out = f(&mut ws);
    if let Ok(mut pool) = WORKSPACES.lock() {
        pool.push(ws);
    }
    out
}

/// Scaled dot-product attention for every text and head, softmax in place, padded keys
/// skipped (what a large negative mask gives, exactly: their weights underflow to zero).
/// `q`, `k`, `v`, `ctx`: `batch * seq` rows of `heads * head_dim`, heads side by side.
#[allow(clippy::too_many_arguments)]
fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    ctx: &mut [f32],
    shape: Shape,
    heads: usize,
    head_dim: usize,
    mask: &[u32],
    scores: &mut Vec<f32>,
) {
    let h = heads * head_dim;
    let per_text = shape.seq * h;
    let one = |b: usize, ctx: &mut [f32], scores: &mut Vec<f32>| {
        let (qb, kb, vb) = (
            &q[b * per_text..(b + 1) * per_text],
            &k[b * per_text..(b + 1) * per_text],
            &v[b * per_text..(b + 1) * per_text],
        );
        let keep = &mask[b * shape.seq..(b + 1) * shape.seq];
        attention_dispatch(qb, kb, vb, ctx, shape.seq, heads, head_dim, keep, scores);
    };
    #[cfg(not(target_arch = "wasm32"))]
    if shape.batch > 1 {
        use rayon::prelude::*;
        ctx.par_chunks_mut(per_text)
            .enumerate()
            .for_each_init(Vec::new, |scores, (b, c)| one(b, c, scores));
        return;
    }
    for (b, c) in ctx.chunks_mut(per_text).enumerate() {
        one(b, c, scores);
    }
}

/// One head's keys (columns `c0..c0 + head_dim` of `seq` rows of `h` values) transposed into
/// `kt`, `head_dim` rows of `seq_p`: a query's scores for a block of keys are then running
/// sums over the head's dimensions, kept in registers, with no horizontal sums.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn transpose_keys(
    k: &[f32],
    kt: &mut [f32],
    seq: usize,
    seq_p: usize,
    h: usize,
    c0: usize,
    head_dim: usize,
) {
    for j in 0..seq {
        for (d, &kv) in k[j * h + c0..j * h + c0 + head_dim].iter().enumerate() {
            kt[d * seq_p + j] = kv;
        }
    }
}

/// Where each of a group of `N` queries starts (rows `i0..i0 + rows` of `q`, the head's
/// columns from `c0`), for the hand-written x86 paths: rows past the group's `rows` (the
/// last group) repeat its last query, whose results are computed and not written.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn group_queries<const N: usize>(
    q: &[f32],
    i0: usize,
    rows: usize,
    h: usize,
    c0: usize,
) -> [*const f32; N] {
    std::array::from_fn(|r| q[(i0 + r.min(rows - 1)) * h + c0..].as_ptr())
}

/// Keys per block of the score loop: one block's running sums stay in registers.
const KEY_BLOCK: usize = 32;

/// [`attention_one`] on the widest vectors the CPU has: for heads of 32 dimensions the
/// hand-written [`avx512`] or [`avx2`] loops, otherwise the portable loops compiled for AVX2
/// natively. No fused multiply-add anywhere, and every output summed in the same order, so
/// each gives the portable code's bits (and the browser's).
#[allow(clippy::too_many_arguments)]
fn attention_dispatch(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    ctx: &mut [f32],
    seq: usize,
    heads: usize,
    head_dim: usize,
    keep: &[u32],
    scratch: &mut Vec<f32>,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if head_dim == avx512::HEAD_DIM && std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            unsafe { avx512::attention(q, k, v, ctx, seq, heads, keep, scratch) };
            return;
        }
        if head_dim == avx2::HEAD_DIM && std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            unsafe { avx2::attention(q, k, v, ctx, seq, heads, keep, scratch) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            #[target_feature(enable = "avx2")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn avx2(
                q: &[f32],
                k: &[f32],
                v: &[f32],
                ctx: &mut [f32],
                seq: usize,
                heads: usize,
                head_dim: usize,
                keep: &[u32],
                scratch: &mut Vec<f32>,
            ) {
                attention_one(q, k, v, ctx, seq, heads, head_dim, keep, scratch)
            }
            // SAFETY: the CPU has AVX2 (checked just above).
            unsafe { avx2(q, k, v, ctx, seq, heads, head_dim, keep, scratch) };
            return;
        }
    }
    attention_one(q, k, v, ctx, seq, heads, head_dim, keep, scratch)
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn attention_one(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    ctx: &mut [f32],
    seq: usize,
    heads: usize,
    head_dim: usize,
    keep: &[u32],
    scratch: &mut Vec<f32>,
) {
    let h = heads * head_dim;
    let scale = 1.0 / (head_dim as f32).sqrt();
    // Keys padded to whole blocks (zeros, then masked out).
    let seq_p = seq.div_ceil(KEY_BLOCK) * KEY_BLOCK;
    scratch.clear();
    scratch.resize(head_dim * seq_p + seq_p, 0.0);
    let (kt, scores) = scratch.split_at_mut(head_dim * seq_p);
    for c0 in (0..heads).map(|hd| hd * head_dim) {
        transpose_keys(k, kt, seq, seq_p, h, c0, head_dim);
        for i in 0..seq {
            let qi = &q[i * h + c0..i * h + c0 + head_dim];
            for (jb, block) in scores.chunks_exact_mut(KEY_BLOCK).enumerate() {
                let mut acc = [0f32; KEY_BLOCK];
                for (d, &qd) in qi.iter().enumerate() {
                    let kr = &kt[d * seq_p + jb * KEY_BLOCK..][..KEY_BLOCK];
                    for t in 0..KEY_BLOCK {
                        acc[t] += qd * kr[t];
                    }
                }
                block.copy_from_slice(&acc);
            }
            softmax_row(&mut scores[..seq], keep, scale);
            let out = &mut ctx[i * h + c0..i * h + c0 + head_dim];
            weighted_sum(&scores[..seq], v, h, c0, out);
        }
    }
}

/// Attention with AVX-512 for heads of 32 dimensions (MiniLM's, bge-small's): four queries
/// at a time share each load of the keys (or values), and their eight independent running
/// sums keep the vector units busy, which the compiler's vectorisation of the portable loops
/// does not manage (it was 3.5x slower). Each output is summed in the portable order, with
/// a multiply then an add, so the bits are [`attention_one`]'s.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use core::arch::x86_64::*;

    use super::{softmax_row, KEY_BLOCK};

    pub(super) const HEAD_DIM: usize = 32;
    const ROWS: usize = 4;

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx2")]
    pub(super) unsafe fn attention(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        ctx: &mut [f32],
        seq: usize,
        heads: usize,
        keep: &[u32],
        scratch: &mut Vec<f32>,
    ) {
        let h = heads * HEAD_DIM;
        assert!(q.len() >= seq * h && k.len() >= seq * h && v.len() >= seq * h);
        assert!(ctx.len() >= seq * h && keep.len() >= seq);
        let scale = 1.0 / (HEAD_DIM as f32).sqrt();
        let seq_p = seq.div_ceil(KEY_BLOCK) * KEY_BLOCK;
        scratch.clear();
        scratch.resize(HEAD_DIM * seq_p + ROWS * seq_p, 0.0);
        let (kt, scores) = scratch.split_at_mut(HEAD_DIM * seq_p);
        for c0 in (0..heads).map(|hd| hd * HEAD_DIM) {
            super::transpose_keys(k, kt, seq, seq_p, h, c0, HEAD_DIM);
            let mut i0 = 0;
            while i0 < seq {
                let rows = (seq - i0).min(ROWS);
                let qp: [*const f32; ROWS] = super::group_queries(q, i0, rows, h, c0);
                for jb in 0..seq_p / KEY_BLOCK {
                    let kb = kt.as_ptr().add(jb * KEY_BLOCK);
                    let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
                    for d in 0..HEAD_DIM {
                        let k0 = _mm512_loadu_ps(kb.add(d * seq_p));
                        let k1 = _mm512_loadu_ps(kb.add(d * seq_p + 16));
                        for r in 0..ROWS {
                            let qd = _mm512_set1_ps(*qp[r].add(d));
                            acc[r][0] = _mm512_add_ps(acc[r][0], _mm512_mul_ps(qd, k0));
                            acc[r][1] = _mm512_add_ps(acc[r][1], _mm512_mul_ps(qd, k1));
                        }
                    }
                    for (r, a) in acc.iter().enumerate() {
                        let o = scores.as_mut_ptr().add(r * seq_p + jb * KEY_BLOCK);
                        _mm512_storeu_ps(o, a[0]);
                        _mm512_storeu_ps(o.add(16), a[1]);
                    }
                }
                for row in scores.chunks_exact_mut(seq_p).take(rows) {
                    softmax_row(&mut row[..seq], keep, scale);
                }
                // Weighted sums of the values for the group's rows.
                let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
                for j in 0..seq {
                    let vr = v.as_ptr().add(j * h + c0);
                    let v0 = _mm512_loadu_ps(vr);
                    let v1 = _mm512_loadu_ps(vr.add(16));
                    for (r, a) in acc.iter_mut().enumerate() {
                        let p = _mm512_set1_ps(*scores.get_unchecked(r * seq_p + j));
                        a[0] = _mm512_add_ps(a[0], _mm512_mul_ps(p, v0));
                        a[1] = _mm512_add_ps(a[1], _mm512_mul_ps(p, v1));
                    }
                }
                for (r, a) in acc.iter().enumerate().take(rows) {
                    let o = ctx.as_mut_ptr().add((i0 + r) * h + c0);
                    _mm512_storeu_ps(o, a[0]);
                    _mm512_storeu_ps(o.add(16), a[1]);
                }
                i0 += rows;
            }
        }
    }
}

/// [`avx512`]'s loops on AVX2's 256-bit registers, for the CPUs without AVX-512 (AMD before
/// Zen 4, most Intel desktops): four queries share each load of the keys (or values), in
/// halves of 16 keys (or 16 dimensions) so the eight running sums, two loads and a broadcast
/// fit the 16 registers. Where the compiler's vectorisation of the portable loops ran, the
/// attention took 28% of `cairn index`'s time on the Rust Book. Each output is summed in the
/// portable order, a multiply then an add: [`attention_one`]'s bits.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use core::arch::x86_64::*;

    use super::{softmax_row, KEY_BLOCK};

    pub(super) const HEAD_DIM: usize = 32;
    const ROWS: usize = 4;
    /// Keys (or dimensions) per pass: two 8-lane vectors.
    const HALF: usize = 16;

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn attention(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        ctx: &mut [f32],
        seq: usize,
        heads: usize,
        keep: &[u32],
        scratch: &mut Vec<f32>,
    ) {
        let h = heads * HEAD_DIM;
        assert!(q.len() >= seq * h && k.len() >= seq * h && v.len() >= seq * h);
        assert!(ctx.len() >= seq * h && keep.len() >= seq);
        let scale = 1.0 / (HEAD_DIM as f32).sqrt();
        let seq_p = seq.div_ceil(KEY_BLOCK) * KEY_BLOCK;
        scratch.clear();
        scratch.resize(HEAD_DIM * seq_p + ROWS * seq_p, 0.0);
        let (kt, scores) = scratch.split_at_mut(HEAD_DIM * seq_p);
        for c0 in (0..heads).map(|hd| hd * HEAD_DIM) {
            super::transpose_keys(k, kt, seq, seq_p, h, c0, HEAD_DIM);
            let mut i0 = 0;
            while i0 < seq {
                let rows = (seq - i0).min(ROWS);
                let qp: [*const f32; ROWS] = super::group_queries(q, i0, rows, h, c0);
                for jb in 0..seq_p / HALF {
                    let kb = kt.as_ptr().add(jb * HALF);
                    let mut acc = [[_mm256_setzero_ps(); 2]; ROWS];
                    for d in 0..HEAD_DIM {
                        let k0 = _mm256_loadu_ps(kb.add(d * seq_p));
                        let k1 = _mm256_loadu_ps(kb.add(d * seq_p + 8));
                        for r in 0..ROWS {
                            let qd = _mm256_broadcast_ss(&*qp[r].add(d));
                            acc[r][0] = _mm256_add_ps(acc[r][0], _mm256_mul_ps(qd, k0));
                            acc[r][1] = _mm256_add_ps(acc[r][1], _mm256_mul_ps(qd, k1));
                        }
                    }
                    for (r, a) in acc.iter().enumerate() {
                        let o = scores.as_mut_ptr().add(r * seq_p + jb * HALF);
                        _mm256_storeu_ps(o, a[0]);
                        _mm256_storeu_ps(o.add(8), a[1]);
                    }
                }
                for row in scores.chunks_exact_mut(seq_p).take(rows) {
                    softmax_row(&mut row[..seq], keep, scale);
                }
                // Weighted sums of the values for the group's rows, 16 dimensions a pass.
                for part in (0..HEAD_DIM).step_by(HALF) {
                    let mut acc = [[_mm256_setzero_ps(); 2]; ROWS];
                    for j in 0..seq {
                        let vr = v.as_ptr().add(j * h + c0 + part);
                        let v0 = _mm256_loadu_ps(vr);
                        let v1 = _mm256_loadu_ps(vr.add(8));
                        for (r, a) in acc.iter_mut().enumerate() {
                            let p = _mm256_broadcast_ss(scores.get_unchecked(r * seq_p + j));
                            a[0] = _mm256_add_ps(a[0], _mm256_mul_ps(p, v0));
                            a[1] = _mm256_add_ps(a[1], _mm256_mul_ps(p, v1));
                        }
                    }
                    for (r, a) in acc.iter().enumerate().take(rows) {
                        let o = ctx.as_mut_ptr().add((i0 + r) * h + c0 + part);
                        _mm256_storeu_ps(o, a[0]);
                        _mm256_storeu_ps(o.add(8), a[1]);
                    }
                }
                i0 += rows;
            }
        }
    }
}

/// One query's attention weights from its raw scores, in place: scaled, padded keys masked
/// (their `e^-inf` is exactly 0), softmax.
#[inline(always)]
fn softmax_row(scores: &mut [f32], keep: &[u32], scale: f32) {
    for (s, &m) in scores.iter_mut().zip(keep) {
        *s = if m == 0 {
            f32::NEG_INFINITY
        } else {
            *s * scale
        };
    }
    // The maximum in eight lanes (exact in any order; one running maximum would not
    // vectorise).
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = scores.chunks_exact(8);
    for c in &mut chunks {
        for t in 0..8 {
            lanes[t] = if c[t] > lanes[t] { c[t] } else { lanes[t] };
        }
    }
    for (l, &x) in lanes.iter_mut().zip(chunks.remainder()) {
        *l = if x > *l { x } else { *l };
    }
    let max = lanes
        .iter()
        .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    for x in scores.iter_mut() {
        *x = kernels::math::exp(*x - max);
    }
    // The sum in eight lanes too, so that it vectorises: key `j` always goes to lane
    // `j % 8`, in order, so every target adds the same way and the padding a batch adds
    // (exact zeros at the end) changes no bit of a text's sum.
    let mut lanes = [0f32; 8];
    let mut chunks = scores.chunks_exact(8);
    for c in &mut chunks {
        for t in 0..8 {
            lanes[t] += c[t];
        }
    }
    for (l, &x) in lanes.iter_mut().zip(chunks.remainder()) {
        *l += x;
    }
    let sum = lanes.iter().fold(0f32, |a, &l| a + l);
    for x in scores.iter_mut() {
        *x /= sum;
    }
}

/// `out = sum_j p_j v_j` for one head (`c0..c0 + out.len()` of each row of `v`); the running
/// sums stay in registers for the usual head sizes. Padded keys have `p_j = 0` exactly.
#[inline(always)]
fn weighted_sum(p: &[f32], v: &[f32], h: usize, c0: usize, out: &mut [f32]) {
    const W: usize = 32;
    let d = out.len();
    for part in (0..d).step_by(W) {
        let n = (d - part).min(W);
        let mut acc = [0f32; W];
        if n == W {
            for (j, &w) in p.iter().enumerate() {
                let row = &v[j * h + c0 + part..][..W];
                for t in 0..W {
                    acc[t] += w * row[t];
                }
            }
        } else {
            for (j, &w) in p.iter().enumerate() {
                let row = &v[j * h + c0 + part..j * h + c0 + part + n];
                for (a, &x) in acc.iter_mut().zip(row) {
                    *a += w * x;
                }
            }
        }
        out[part..part + n].copy_from_slice(&acc[..n]);
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

    /// The first layer's packed matrices (query, key, value, output, up, down), when the
    /// int8 kernels run this model: what [`kernels::fastest`] times.
    pub fn first_packed(&self) -> Option<[&kernels::PackedMatrix; 6]> {
        self.layers.first()?.packed()
    }

    /// `ids`, `type_ids`, `mask`: batch x seq (u32). Returns batch x seq x hidden (f32).
    ///
    /// When every linear layer is packed for Cairn's int8 kernels (the quantized bundles),
    /// the layers run on plain reused buffers ([`Layer::forward_packed`]); otherwise (the
    /// f32 reference bundle, calibration runs, block types the kernels do not take) through
    /// candle's ops.
    pub fn forward(&self, ids: &Tensor, type_ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        if self.layers.iter().all(|l| l.packed().is_some()) {
            return self.forward_packed(ids, type_ids, mask);
        }
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

    fn forward_packed(&self, ids: &Tensor, type_ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (batch, seq) = ids.dims2()?;
        let x0 = self.embeddings.forward(ids, type_ids)?;
        let h = x0.dim(2)?;
        let mut out = x0.flatten_all()?.to_vec1::<f32>()?;
        let keep = mask.flatten_all()?.to_vec1::<u32>()?;
        if out.is_empty() {
            return Ok(Tensor::from_vec(out, (batch, seq, h), ids.device())?);
        }
        // The batch in groups of texts, each through every layer in its own workspace.
        let texts = (GROUP_ROWS / seq).clamp(1, batch);
        let group = |xs: &mut [f32], keep: &[u32]| -> Result<()> {
            let shape = Shape {
                batch: keep.len() / seq,
                seq,
            };
            with_workspace(|ws| {
                let n = xs.len();
                if ws.x.len() < n {
                    ws.x.resize(n, 0.0);
                }
                ws.x[..n].copy_from_slice(xs);
                for layer in &self.layers {
                    layer.forward_packed(ws, shape, keep)?;
                }
                xs.copy_from_slice(&ws.x[..n]);
                Ok(())
            })
        };
        #[cfg(not(target_arch = "wasm32"))]
        if batch > texts && rayon::current_num_threads() > 1 {
            use rayon::prelude::*;
            out.par_chunks_mut(texts * seq * h)
                .zip(keep.par_chunks(texts * seq))
                .try_for_each(|(xs, ks)| group(xs, ks))?;
            return Ok(Tensor::from_vec(out, (batch, seq, h), ids.device())?);
        }
        for (xs, ks) in out
            .chunks_mut(texts * seq * h)
            .zip(keep.chunks(texts * seq))
        {
            group(xs, ks)?;
        }
        Ok(Tensor::from_vec(out, (batch, seq, h), ids.device())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The attention every build runs natively (AVX-512 or AVX2 for 32-dimension heads, AVX2's
    /// vectorisation of the portable loops, or the portable loops) gives the portable code's
    /// bits, which are what wasm computes: shapes that are not a multiple of the four-query
    /// groups or the 32-key blocks, padded keys. Each x86 path this CPU has is checked on its
    /// own, whichever the dispatch would pick.
    #[test]
    fn dispatched_attention_has_the_portable_bits() {
        type Attention =
            fn(&[f32], &[f32], &[f32], &mut [f32], usize, usize, usize, &[u32], &mut Vec<f32>);
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut paths: Vec<(&str, Attention)> = vec![("dispatched", attention_dispatch)];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                paths.push(("avx512", |q, k, v, ctx, seq, heads, _, keep, scratch| {
                    // SAFETY: the CPU has AVX-512F (checked above).
                    unsafe { avx512::attention(q, k, v, ctx, seq, heads, keep, scratch) }
                }));
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                paths.push(("avx2", |q, k, v, ctx, seq, heads, _, keep, scratch| {
                    // SAFETY: the CPU has AVX2 (checked above).
                    unsafe { avx2::attention(q, k, v, ctx, seq, heads, keep, scratch) }
                }));
            }
        }
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
        };
        for &(seq, heads, head_dim, padded) in &[
            (37, 12, 32, 5),
            (4, 2, 32, 0),
            (70, 3, 32, 33),
            (1, 2, 32, 0),
            (35, 1, 32, 3),
            (64, 2, 32, 7),
            (9, 2, 16, 2),
        ] {
            let h = heads * head_dim;
            let q: Vec<f32> = (0..seq * h).map(|_| next()).collect();
            let k: Vec<f32> = (0..seq * h).map(|_| next()).collect();
            let v: Vec<f32> = (0..seq * h).map(|_| next()).collect();
            let keep: Vec<u32> = (0..seq).map(|j| (j < seq - padded) as u32).collect();
            let mut portable = vec![0f32; seq * h];
            let mut scratch = Vec::new();
            attention_one(
                &q,
                &k,
                &v,
                &mut portable,
                seq,
                heads,
                head_dim,
                &keep,
                &mut scratch,
            );
            for &(name, path) in &paths {
                if name != "dispatched" && head_dim != 32 {
                    continue; // the hand-written paths take 32-dimension heads only
                }
                let mut fast = vec![0f32; seq * h];
                path(
                    &q,
                    &k,
                    &v,
                    &mut fast,
                    seq,
                    heads,
                    head_dim,
                    &keep,
                    &mut scratch,
                );
                let differ = fast
                    .iter()
                    .zip(&portable)
                    .filter(|(a, b)| a.to_bits() != b.to_bits())
                    .count();
                assert_eq!(
                    differ, 0,
                    "{name}: seq {seq}, {heads} heads of {head_dim}: {differ} values differ"
                );
            }
        }
    }
}
