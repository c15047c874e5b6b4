//! The BERT forward pass and pooling on the GPU: `model::bert` + `model::pool`, kernel by
//! kernel.
//!
//! Per call: the token batch is uploaded (ids, token types, mask: 12 bytes a token), every
//! kernel is recorded into one command buffer, and only the pooled vectors (`batch x
//! hidden` f32) are read back. Per layer (post-LN BERT, as `bert::Layer::forward`):
//!
//! ```text
//! qkv = x [Wq; Wk; Wv]^T + b          matmul (q, k and v stacked into one matrix)
//! ctx = softmax(q k^T / sqrt(d) + mask) v   attention
//! x1  = LN(ctx Wo^T + bo + x)         matmul, layernorm
//! x   = LN(act(x1 Wu^T + bu) Wd^T + bd + x1)   matmul (activation fused), matmul, layernorm
//! ```

use std::collections::HashMap;

use candle_core::quantized::QTensor;

use super::weights::{dequantize, upload_vector, Format, GpuMatrix, HostMatrix};
use super::{
    poll_now, read_back, record, shader, storage, storage_init, words_of, GpuContext, Kernel,
    Scopes, Slot, Step,
};
use crate::model::config::{Activation, ModelConfig, Pooling};
use crate::model::gguf::{self, names};
use crate::model::TokenBatch;
use crate::{Error, Result};

/// The longest sequence the attention kernel handles (its scores live in workgroup memory).
pub const MAX_SEQ_LEN: usize = 1024;
/// The largest head the attention kernel handles.
const MAX_HEAD_DIM: usize = 256;
/// Tokens (`batch x seq`) per submission; larger batches are split by rows. Bounds the
/// activation buffers (for MiniLM about 25 KiB a token in all: the widest, `tokens x
/// intermediate` f32, is 48 MiB at 8192 tokens).
pub const MAX_TOKENS: usize = 8192;

struct Kernels {
    embed: Kernel,
    layernorm: Kernel,
    matmul: Kernel,
    attention: Kernel,
    pool: Kernel,
}

struct Norm {
    gamma: wgpu::Buffer,
    beta: wgpu::Buffer,
}

struct Linear {
    weight: GpuMatrix,
    bias: wgpu::Buffer,
}

struct Layer {
    qkv: Linear,
    out: Linear,
    out_norm: Norm,
    up: Linear,
    down: Linear,
    ffn_norm: Norm,
}

/// A sentence encoder on the GPU, built once from a bundle's bytes: the weights are uploaded
/// and the pipelines compiled in [`GpuEncoder::new`]; [`GpuEncoder::embed`] then only
/// uploads tokens and reads back vectors.
pub struct GpuEncoder {
    ctx: GpuContext,
    config: ModelConfig,
    kernels: Kernels,
    word: GpuMatrix,
    position: GpuMatrix,
    token_type: GpuMatrix,
    embed_norm: Norm,
    layers: Vec<Layer>,
    max_tokens: usize,
}

impl GpuEncoder {
    /// Parses and validates the bundle (as [`crate::Encoder::from_bytes`] does), then
    /// [`GpuEncoder::new`].
    pub fn from_bytes(ctx: &GpuContext, bundle_bytes: &[u8]) -> Result<Self> {
        Self::new(ctx, gguf::read_bundle(bundle_bytes)?)
    }

    /// Uploads a bundle's weights (read and checked by [`gguf::read_bundle`]) and builds the
    /// pipelines.
    ///
    /// Weight matrices and embedding tables in `Q8_0` or `Q4_0` stay in that form on the GPU
    /// (about the bundle's size); other storage types are uploaded as f32.
    pub fn new(ctx: &GpuContext, bundle: gguf::Bundle) -> Result<Self> {
        let config = bundle.config;
        if config.head_dim() > MAX_HEAD_DIM {
            return Err(Error::Gpu(format!(
                "attention heads of {} values; the GPU kernels handle up to {MAX_HEAD_DIM}",
                config.head_dim()
            )));
        }
        let scopes = Scopes::push(&ctx.device);
        let built = Self::upload(ctx, config, bundle.tensors);
        let errors = scopes.pop("uploading the model");
        let encoder = built?;
        // Natively, device errors are known at once; on the web they arrive later, and the
        // first `embed` reports them.
        match poll_now(errors) {
            Some(Err(e)) => Err(e),
            _ => Ok(encoder),
        }
    }

    fn upload(
        ctx: &GpuContext,
        config: ModelConfig,
        mut tensors: HashMap<String, QTensor>,
    ) -> Result<Self> {
        let t = &mut tensors;
        let word = match t.get(names::TOKEN_EMBD) {
            // A flat k-quant table (see `flat_table_rows`): its values, as a vocab x hidden
            // f32 matrix the lookup kernel reads like any other.
            Some(w) if crate::model::gguf::is_flat_table(&config, w) => {
                let values = dequantize(names::TOKEN_EMBD, w)?;
                HostMatrix::from_f32(config.vocab_size, config.hidden_size, values)?
                    .upload(ctx, names::TOKEN_EMBD)?
            }
            _ => upload_matrix(ctx, t, names::TOKEN_EMBD)?,
        };
        let position = upload_matrix(ctx, t, names::POSITION_EMBD)?;
        let token_type = upload_matrix(ctx, t, names::TOKEN_TYPES)?;
        let embed_norm = upload_norm(
            ctx,
            t,
            &format!("{}.weight", names::TOKEN_EMBD_NORM),
            &format!("{}.bias", names::TOKEN_EMBD_NORM),
        )?;
        let mut layers = Vec::with_capacity(config.num_layers);
        for l in 0..config.num_layers {
            let linear = |t: &mut HashMap<String, QTensor>, part: &str| -> Result<Linear> {
                let b = names::blk(l, part, "bias");
                Ok(Linear {
                    weight: upload_matrix(ctx, t, &names::blk(l, part, "weight"))?,
                    bias: upload_vector(ctx, &b, &take(t, &b)?)?,
                })
            };
            let norm = |t: &mut HashMap<String, QTensor>, part: &str| {
                let w = names::blk(l, part, "weight");
                upload_norm(ctx, t, &w, &names::blk(l, part, "bias"))
            };
            layers.push(Layer {
                qkv: upload_qkv(ctx, t, l)?,
                out: linear(t, names::ATTN_OUT)?,
                out_norm: norm(t, names::ATTN_OUT_NORM)?,
                up: linear(t, names::FFN_UP)?,
                down: linear(t, names::FFN_DOWN)?,
                ffn_norm: norm(t, names::LAYER_OUT_NORM)?,
            });
        }
        let kernels = build_kernels(&ctx.device)?;
        let widest = (3 * config.hidden_size).max(config.intermediate_size) as u64 * 4;
        let max_tokens = (ctx.max_binding() / widest.max(1)).min(MAX_TOKENS as u64) as usize;
        if max_tokens == 0 {
            return Err(Error::Gpu(
                "the device's buffers are too small for one token".into(),
            ));
        }
        Ok(Self {
            ctx: ctx.clone(),
            config,
            kernels,
            word,
            position,
            token_type,
            embed_norm,
            layers,
            max_tokens,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Length of the vectors [`GpuEncoder::embed`] returns.
    pub fn dim(&self) -> usize {
        self.config.hidden_size
    }

    /// Embeds a tokenized batch (from [`crate::Encoder::tokenize`]) and returns one
    /// L2-normalised vector per row, pooled as the bundle says (mean, CLS or max).
    ///
    /// Batches longer than the device allows in one submission (8192 tokens at most) are
    /// run in several, split by rows. Sequences may be up to 1024 tokens (and the model's
    /// position table).
    pub async fn embed(&self, batch: &TokenBatch) -> Result<Vec<Vec<f32>>> {
        self.check(batch)?;
        let (rows, seq) = (batch.batch, batch.seq);
        let mut out = Vec::with_capacity(rows);
        let rows_per_run = (self.max_tokens / seq.max(1)).max(1);
        let mut start = 0;
        while start < rows {
            let end = (start + rows_per_run).min(rows);
            let span = start * seq..end * seq;
            let part = TokenBatch {
                batch: end - start,
                seq,
                ids: batch.ids[span.clone()].to_vec(),
                type_ids: batch.type_ids[span.clone()].to_vec(),
                mask: batch.mask[span].to_vec(),
            };
            out.extend(self.run(&part).await?);
            start = end;
        }
        Ok(out)
    }

    fn check(&self, b: &TokenBatch) -> Result<()> {
        let n = b.batch.checked_mul(b.seq).ok_or_else(|| {
            Error::InvalidArgument(format!("token batch of {} x {}", b.batch, b.seq))
        })?;
        if b.ids.len() != n || b.type_ids.len() != n || b.mask.len() != n {
            return Err(Error::InvalidArgument(format!(
                "token batch of {} x {} has {} ids, {} type ids and {} mask values",
                b.batch,
                b.seq,
                b.ids.len(),
                b.type_ids.len(),
                b.mask.len()
            )));
        }
        if b.batch > 0 && b.seq == 0 {
            return Err(Error::InvalidArgument(
                "token batch of empty sequences".into(),
            ));
        }
        let max_seq = MAX_SEQ_LEN.min(self.config.max_position_embeddings);
        if b.seq > max_seq {
            return Err(Error::InvalidArgument(format!(
                "sequences of {} tokens; the GPU encoder takes at most {max_seq}",
                b.seq
            )));
        }
        if let Some(id) = b
            .ids
            .iter()
            .find(|&&i| i as usize >= self.config.vocab_size)
        {
            return Err(Error::InvalidArgument(format!(
                "token id {id} is outside the vocabulary of {}",
                self.config.vocab_size
            )));
        }
        if let Some(t) = b
            .type_ids
            .iter()
            .find(|&&t| t as usize >= self.config.type_vocab_size)
        {
            return Err(Error::InvalidArgument(format!(
                "token type {t} is outside the {} types",
                self.config.type_vocab_size
            )));
        }
        if b.mask.iter().any(|&m| m > 1) {
            return Err(Error::InvalidArgument(
                "attention mask values must be 0 or 1".into(),
            ));
        }
        Ok(())
    }

    /// One submission: a batch that fits the buffers.
    async fn run(&self, b: &TokenBatch) -> Result<Vec<Vec<f32>>> {
        if b.batch == 0 {
            return Ok(Vec::new());
        }
        let device = &self.ctx.device;
        let cfg = &self.config;
        let (rows, seq) = (b.batch, b.seq);
        let tokens = rows * seq;
        let (h, inter) = (cfg.hidden_size, cfg.intermediate_size);
        let f32s = |n: usize| (n * 4) as u64;
        let t = tokens as u32;

        let scopes = Scopes::push(device);
        let mut words = Vec::with_capacity(3 * tokens);
        words.extend_from_slice(&b.ids);
        words.extend_from_slice(&b.type_ids);
        words.extend_from_slice(&b.mask);
        let token_buf = storage_init(
            device,
            "tokens",
            bytemuck::cast_slice(&words),
            wgpu::BufferUsages::STORAGE,
        );
        let none = wgpu::BufferUsages::empty();
        let x = storage(device, "x", f32s(tokens * h), none);
        let x1 = storage(device, "x1", f32s(tokens * h), none);
        let tmp = storage(device, "tmp", f32s(tokens * h), none);
        let attn = storage(device, "attention", f32s(tokens * h), none);
        let qkv = storage(device, "qkv", f32s(tokens * 3 * h), none);
        let up = storage(device, "ffn", f32s(tokens * inter), none);
        let pooled = storage(
            device,
            "pooled",
            f32s(rows * h),
            wgpu::BufferUsages::COPY_SRC,
        );
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("pooled readback"),
            size: f32s(rows * h),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });

        let k = &self.kernels;
        let mut steps: Vec<Step<'_>> = Vec::with_capacity(4 + 7 * self.layers.len() + 1);
        // Embeddings: word, then + position, then + token type, into `tmp`; normalised into x.
        for (source, table) in [&self.word, &self.position, &self.token_type]
            .into_iter()
            .enumerate()
        {
            steps.push(Step {
                kernel: &k.embed,
                params: [
                    t,
                    seq as u32,
                    h as u32,
                    table.format as u32,
                    source as u32,
                    (source > 0) as u32,
                    table.rows as u32,
                    0,
                ],
                buffers: vec![&table.quants, &table.scales, &token_buf, &tmp],
                grid: ((h as u32).div_ceil(64), t, 1),
            });
        }
        let eps = (cfg.layer_norm_eps as f32).to_bits();
        let ln = [t, h as u32, eps];
        let activation = match cfg.activation {
            Activation::Gelu => 1,
            Activation::GeluTanh => 2,
            Activation::Relu => 3,
        };
        steps.push(norm_step(
            &k.layernorm,
            ln,
            &tmp,
            None,
            &self.embed_norm,
            &x,
        ));
        let head_dim = cfg.head_dim();
        let scale = (1.0 / (head_dim as f64).sqrt()) as f32;
        for layer in &self.layers {
            steps.push(matmul_step(&k.matmul, t, &x, &layer.qkv, 0, &qkv));
            steps.push(Step {
                kernel: &k.attention,
                params: [
                    seq as u32,
                    cfg.num_heads as u32,
                    head_dim as u32,
                    h as u32,
                    scale.to_bits(),
                    0,
                    0,
                    0,
                ],
                buffers: vec![&qkv, &token_buf, &attn],
                grid: (seq as u32, cfg.num_heads as u32, rows as u32),
            });
            steps.push(matmul_step(&k.matmul, t, &attn, &layer.out, 0, &tmp));
            steps.push(norm_step(
                &k.layernorm,
                ln,
                &tmp,
                Some(&x),
                &layer.out_norm,
                &x1,
            ));
            steps.push(matmul_step(&k.matmul, t, &x1, &layer.up, activation, &up));
            steps.push(matmul_step(&k.matmul, t, &up, &layer.down, 0, &tmp));
            steps.push(norm_step(
                &k.layernorm,
                ln,
                &tmp,
                Some(&x1),
                &layer.ffn_norm,
                &x,
            ));
        }
        let pooling = match cfg.pooling {
            Pooling::Mean => 0,
            Pooling::Cls => 1,
            Pooling::Max => 2,
        };
        steps.push(Step {
            kernel: &k.pool,
            params: [rows as u32, seq as u32, h as u32, pooling, 0, 0, 0, 0],
            buffers: vec![&x, &token_buf, &pooled],
            grid: (rows as u32, 1, 1),
        });

        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("embed"),
        });
        record(device, &mut encoder, &steps);
        encoder.copy_buffer_to_buffer(&pooled, 0, &staging, 0, f32s(rows * h));
        self.ctx.queue.submit([encoder.finish()]);
        let errors = scopes.pop("running the encoder");
        errors.await?;
        let bytes = read_back(device, &staging, f32s(rows * h)).await?;
        let values: Vec<f32> = words_of(&bytes).into_iter().map(f32::from_bits).collect();
        Ok(values.chunks_exact(h).map(<[f32]>::to_vec).collect())
    }
}

fn take(tensors: &mut HashMap<String, QTensor>, name: &str) -> Result<QTensor> {
    tensors
        .remove(name)
        .ok_or_else(|| Error::MissingTensor(name.to_string()))
}

fn upload_matrix(
    ctx: &GpuContext,
    tensors: &mut HashMap<String, QTensor>,
    name: &str,
) -> Result<GpuMatrix> {
    HostMatrix::from_qtensor(name, &take(tensors, name)?)?.upload(ctx, name)
}

fn upload_norm(
    ctx: &GpuContext,
    tensors: &mut HashMap<String, QTensor>,
    weight: &str,
    bias: &str,
) -> Result<Norm> {
    Ok(Norm {
        gamma: upload_vector(ctx, weight, &take(tensors, weight)?)?,
        beta: upload_vector(ctx, bias, &take(tensors, bias)?)?,
    })
}

/// Layer `l`'s q, k and v as one matrix (and one bias), so one matmul computes all three.
/// Parts of different storage types are stacked as f32.
fn upload_qkv(
    ctx: &GpuContext,
    tensors: &mut HashMap<String, QTensor>,
    l: usize,
) -> Result<Linear> {
    let mut mats = Vec::with_capacity(3);
    let mut biases = Vec::new();
    for part in [names::ATTN_Q, names::ATTN_K, names::ATTN_V] {
        let w = names::blk(l, part, "weight");
        let b = names::blk(l, part, "bias");
        mats.push((take(tensors, &w)?, w));
        biases.extend(dequantize(&b, &take(tensors, &b)?)?);
    }
    let same_dtype = mats.iter().all(|(t, _)| t.dtype() == mats[0].0.dtype());
    let host = mats
        .iter()
        .map(|(t, name)| {
            if same_dtype {
                HostMatrix::from_qtensor(name, t)
            } else {
                HostMatrix::dense(name, t)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let name = format!("blk.{l}.attn_qkv");
    Ok(Linear {
        weight: HostMatrix::stack(host)?.upload(ctx, &name)?,
        bias: storage_init(
            &ctx.device,
            &name,
            bytemuck::cast_slice(&biases),
            wgpu::BufferUsages::STORAGE,
        ),
    })
}

fn norm_step<'a>(
    kernel: &'a Kernel,
    [tokens, dim, eps]: [u32; 3],
    a: &'a wgpu::Buffer,
    residual: Option<&'a wgpu::Buffer>,
    norm: &'a Norm,
    out: &'a wgpu::Buffer,
) -> Step<'a> {
    Step {
        kernel,
        params: [tokens, dim, residual.is_some() as u32, eps, 0, 0, 0, 0],
        buffers: vec![a, residual.unwrap_or(a), &norm.gamma, &norm.beta, out],
        grid: (tokens, 1, 1),
    }
}

fn matmul_step<'a>(
    kernel: &'a Kernel,
    tokens: u32,
    input: &'a wgpu::Buffer,
    linear: &'a Linear,
    activation: u32,
    out: &'a wgpu::Buffer,
) -> Step<'a> {
    let w = &linear.weight;
    Step {
        kernel,
        params: [
            tokens,
            w.rows as u32,
            w.cols as u32,
            w.format as u32,
            activation,
            // Candle rounds activations to Q8_0 blocks for block-quantized weights only.
            (w.format != Format::F32) as u32,
            0,
            0,
        ],
        buffers: vec![input, &w.quants, &w.scales, &linear.bias, out],
        grid: ((w.rows as u32).div_ceil(64), tokens.div_ceil(32), 1),
    }
}

fn build_kernels(device: &wgpu::Device) -> Result<Kernels> {
    use Slot::{Read, ReadWrite, Uniform};
    Ok(Kernels {
        embed: Kernel::new(
            device,
            &shader(device, "embed.wgsl")?,
            "main",
            &[Uniform, Read, Read, Read, ReadWrite],
        ),
        layernorm: Kernel::new(
            device,
            &shader(device, "layernorm.wgsl")?,
            "main",
            &[Uniform, Read, Read, Read, Read, ReadWrite],
        ),
        matmul: Kernel::new(
            device,
            &shader(device, "matmul.wgsl")?,
            "main",
            &[Uniform, Read, Read, Read, Read, ReadWrite],
        ),
        attention: Kernel::new(
            device,
            &shader(device, "attention.wgsl")?,
            "main",
            &[Uniform, Read, Read, ReadWrite],
        ),
        pool: Kernel::new(
            device,
            &shader(device, "pool.wgsl")?,
            "main",
            &[Uniform, Read, Read, ReadWrite],
        ),
    })
}
