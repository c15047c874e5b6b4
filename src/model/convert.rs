//! Conversion of a sentence-transformers folder into a bundle (native only).
//!
//! Reads `config.json`, the weights (`model.safetensors`, or an ONNX export:
//! `model.onnx` or `onnx/model.onnx`, see [`super::onnx`]), `tokenizer.json`, `modules.json`,
//! `1_Pooling/config.json`, `sentence_bert_config.json` and
//! `config_sentence_transformers.json` (options on the command line fill in or override what
//! a folder lacks: an ONNX folder has no pooling config), renames the weights to llama.cpp's
//! BERT names, quantizes every weight matrix (the word-embedding table too) and writes one
//! GGUF file.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{DType, Device, Tensor};
use serde_json::Value as Json;

use super::config::{Activation, ModelConfig, Pooling};
use super::gguf::{self, names, Quant};
use crate::{Error, Result};

/// Options a user may set on the command line, overriding what the folder says.
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    pub name: Option<String>,
    /// The pooling, where the folder has no `1_Pooling/config.json` or it is to be overridden.
    pub pooling: Option<Pooling>,
    pub query_prompt: Option<String>,
    pub document_prompt: Option<String>,
    pub max_seq_length: Option<usize>,
    /// Per-tensor overrides: the first `(pattern, quant)` whose pattern occurs in a tensor's
    /// name decides that tensor's storage (like llama.cpp's `--tensor-type`).
    pub tensor_quant: Vec<(String, Quant)>,
}

fn read_json(dir: &Path, rel: &str) -> Result<Option<Json>> {
    let path = dir.join(rel);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path)?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| Error::Json {
            what: path.display().to_string(),
            source,
        })
}

fn get_usize(cfg: &Json, key: &str) -> Result<usize> {
    cfg.get(key)
        .and_then(Json::as_u64)
        .map(|v| v as usize)
        .ok_or_else(|| Error::Convert(format!("config.json has no integer `{key}`")))
}

/// Reads the model configuration from a sentence-transformers folder.
pub fn read_config(dir: &Path, opts: &ConvertOptions) -> Result<ModelConfig> {
    let cfg = read_json(dir, "config.json")?
        .ok_or_else(|| Error::Convert(format!("{} has no config.json", dir.display())))?;
    let model_type = cfg
        .get("model_type")
        .and_then(Json::as_str)
        .unwrap_or("bert");
    if model_type != "bert" {
        return Err(Error::Convert(format!(
            "model_type `{model_type}` is not supported; Cairn converts BERT-family encoders"
        )));
    }
    let act = cfg
        .get("hidden_act")
        .and_then(Json::as_str)
        .unwrap_or("gelu");
    let activation = Activation::from_hf(act)
        .ok_or_else(|| Error::Convert(format!("unsupported activation `{act}`")))?;

    // modules.json says where the pooling config is and whether a Normalize module follows.
    let modules = read_json(dir, "modules.json")?;
    let mut pooling_dir = "1_Pooling".to_string();
    let mut normalize = modules.is_none();
    if let Some(Json::Array(mods)) = &modules {
        for m in mods {
            let ty = m.get("type").and_then(Json::as_str).unwrap_or("");
            let path = m.get("path").and_then(Json::as_str).unwrap_or("");
            if ty.ends_with("Pooling") {
                pooling_dir = path.to_string();
            }
            if ty.ends_with("Normalize") {
                normalize = true;
            }
        }
    }
    let pooling = match (
        opts.pooling,
        read_json(dir, &format!("{pooling_dir}/config.json"))?,
    ) {
        (Some(chosen), _) => chosen,
        (None, None) => Pooling::Mean,
        (None, Some(p)) => {
            let on = |k: &str| p.get(k).and_then(Json::as_bool).unwrap_or(false);
            if on("pooling_mode_cls_token") {
                Pooling::Cls
            } else if on("pooling_mode_mean_tokens") {
                Pooling::Mean
            } else if on("pooling_mode_max_tokens") {
                Pooling::Max
            } else {
                return Err(Error::Convert(format!(
                    "{pooling_dir}/config.json selects no pooling mode Cairn supports (mean, cls, max)"
                )));
            }
        }
    };

    let max_pos = get_usize(&cfg, "max_position_embeddings")?;
    let st_max = read_json(dir, "sentence_bert_config.json")?
        .and_then(|c| c.get("max_seq_length").and_then(Json::as_u64))
        .map(|v| v as usize);
    let max_seq_length = opts
        .max_seq_length
        .or(st_max)
        .unwrap_or(max_pos)
        .min(max_pos);

    let prompts = read_json(dir, "config_sentence_transformers.json")?
        .and_then(|c| c.get("prompts").cloned())
        .unwrap_or(Json::Null);
    let prompt = |names: &[&str]| -> String {
        names
            .iter()
            .find_map(|n| prompts.get(*n).and_then(Json::as_str))
            .unwrap_or("")
            .to_string()
    };
    let name = opts.name.clone().unwrap_or_else(|| {
        cfg.get("_name_or_path")
            .and_then(Json::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| {
                dir.file_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "model".into())
            })
    });
    let config = ModelConfig {
        name,
        vocab_size: get_usize(&cfg, "vocab_size")?,
        hidden_size: get_usize(&cfg, "hidden_size")?,
        num_layers: get_usize(&cfg, "num_hidden_layers")?,
        num_heads: get_usize(&cfg, "num_attention_heads")?,
        intermediate_size: get_usize(&cfg, "intermediate_size")?,
        max_position_embeddings: max_pos,
        type_vocab_size: cfg
            .get("type_vocab_size")
            .and_then(Json::as_u64)
            .unwrap_or(2) as usize,
        layer_norm_eps: cfg
            .get("layer_norm_eps")
            .and_then(Json::as_f64)
            .unwrap_or(1e-12),
        activation,
        pooling,
        normalize,
        max_seq_length,
        query_prompt: opts
            .query_prompt
            .clone()
            .unwrap_or_else(|| prompt(&["query", "search_query"])),
        document_prompt: opts
            .document_prompt
            .clone()
            .unwrap_or_else(|| prompt(&["document", "passage", "search_document"])),
    };
    config
        .validate()
        .map_err(|e| Error::Convert(e.to_string()))?;
    Ok(config)
}

/// The tokenizer as stored in a bundle: the folder's `tokenizer.json` with its fixed padding
/// and truncation removed (the encoder sets its own) and whitespace dropped.
pub fn read_tokenizer_json(dir: &Path) -> Result<String> {
    let mut tok = read_json(dir, "tokenizer.json")?.ok_or_else(|| {
        Error::Convert(format!(
            "{} has no tokenizer.json (a fast tokenizer is required)",
            dir.display()
        ))
    })?;
    if let Some(obj) = tok.as_object_mut() {
        obj.insert("padding".into(), Json::Null);
        obj.insert("truncation".into(), Json::Null);
    }
    let text = serde_json::to_string(&tok).map_err(|source| Error::Json {
        what: "tokenizer.json".into(),
        source,
    })?;
    // Check that the tokenizers crate can load it before writing a bundle around it.
    super::parse_tokenizer(&text)
        .map_err(|e| Error::Convert(format!("tokenizer.json does not load: {e}")))?;
    Ok(text)
}

/// Maps a Hugging Face BERT tensor name to llama.cpp's, or `None` for tensors the encoder
/// does not use (the pooler, MLM heads, `position_ids` buffers).
pub fn gguf_name(hf: &str) -> Option<String> {
    let n = hf
        .strip_prefix("bert.")
        .or_else(|| hf.strip_prefix("model."))
        .unwrap_or(hf);
    let n = n.replace(".gamma", ".weight").replace(".beta", ".bias");
    let fixed = match n.as_str() {
        "embeddings.word_embeddings.weight" => Some(names::TOKEN_EMBD.to_string()),
        "embeddings.position_embeddings.weight" => Some(names::POSITION_EMBD.to_string()),
        "embeddings.token_type_embeddings.weight" => Some(names::TOKEN_TYPES.to_string()),
        "embeddings.LayerNorm.weight" => Some(format!("{}.weight", names::TOKEN_EMBD_NORM)),
        "embeddings.LayerNorm.bias" => Some(format!("{}.bias", names::TOKEN_EMBD_NORM)),
        _ => None,
    };
    if fixed.is_some() {
        return fixed;
    }
    let rest = n.strip_prefix("encoder.layer.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, kind) = rest.rsplit_once('.')?;
    let part = match module {
        "attention.self.query" => names::ATTN_Q,
        "attention.self.key" => names::ATTN_K,
        "attention.self.value" => names::ATTN_V,
        "attention.output.dense" => names::ATTN_OUT,
        "attention.output.LayerNorm" => names::ATTN_OUT_NORM,
        "intermediate.dense" => names::FFN_UP,
        "output.dense" => names::FFN_DOWN,
        "output.LayerNorm" => names::LAYER_OUT_NORM,
        _ => return None,
    };
    Some(names::blk(layer, part, kind))
}

/// The folder's weights under Hugging Face names, and the file they came from:
/// `model.safetensors`, else an ONNX export (`model.onnx`, `onnx/model.onnx`).
pub fn read_weights(dir: &Path) -> Result<(String, Vec<(String, Tensor)>)> {
    let st_path = dir.join("model.safetensors");
    if st_path.exists() {
        let bytes = std::fs::read(&st_path)?;
        let raw = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| Error::Convert(format!("model.safetensors: {e}")))?;
        return Ok(("model.safetensors".into(), raw.into_iter().collect()));
    }
    for rel in ["model.onnx", "onnx/model.onnx"] {
        let path = dir.join(rel);
        if path.exists() {
            let bytes = std::fs::read(&path)?;
            return Ok((rel.to_string(), super::onnx::read_weights(&bytes)?));
        }
    }
    Err(Error::Convert(format!(
        "{} has neither model.safetensors nor model.onnx (PyTorch .bin checkpoints are not \
         supported)",
        dir.display()
    )))
}

/// Converts a sentence-transformers folder into bundle bytes.
pub fn convert_folder(dir: &Path, quant: Quant, opts: &ConvertOptions) -> Result<Vec<u8>> {
    let config = read_config(dir, opts)?;
    let tokenizer_json = read_tokenizer_json(dir)?;
    let (file, raw) = read_weights(dir)?;
    let mut renamed: HashMap<String, Tensor> = HashMap::new();
    for (name, t) in raw {
        if let Some(g) = gguf_name(&name) {
            renamed.insert(g, t);
        }
    }
    let mut sources = Vec::new();
    for (name, shape) in gguf::expected_tensors(&config) {
        let t = renamed
            .remove(&name)
            .ok_or_else(|| Error::Convert(format!("{file} lacks the tensor for `{name}`")))?;
        if t.dims() != shape.as_slice() {
            return Err(Error::Convert(format!(
                "`{name}` in {file} has shape {:?}, config.json implies {shape:?}",
                t.dims()
            )));
        }
        sources.push((name, shape, t.to_dtype(DType::F32)?));
    }
    let choose = |name: &str| {
        opts.tensor_quant
            .iter()
            .find(|(pattern, _)| name.contains(pattern.as_str()))
            .map(|(_, q)| *q)
            .unwrap_or_else(|| default_quant(name, quant))
    };
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    // Bias corrections of 4-bit layers, applied when their bias (written next) comes up.
    let mut bias_delta: HashMap<String, Vec<f32>> = HashMap::new();
    let mut quantize_one = |name: String,
                            shape: &[usize],
                            t: Tensor,
                            stats: Option<&super::bert::InputStats>,
                            tensors: &mut Vec<(String, QTensor)>|
     -> Result<()> {
        let flat_dtype = choose(&name).dtype_for_row(256);
        let flat_rows = (name == names::TOKEN_EMBD && shape.len() == 2)
            .then(|| gguf::flat_table_rows(shape[0], shape[1], flat_dtype))
            .flatten();
        if let Some(rows) = flat_rows {
            // A k-quant word-embedding table: its values run on in 256-wide rows.
            let block = flat_dtype.block_size();
            let mut values: Vec<f32> = t.flatten_all()?.to_vec1()?;
            values.resize(rows * block, 0.0);
            let flat = Tensor::from_vec(values, (rows, block), &Device::Cpu)?;
            tensors.push((name, QTensor::quantize(&flat, flat_dtype)?));
        } else if shape.len() == 2 {
            match (choose(&name).dtype_for_row(shape[1]), stats) {
                (dtype, Some(st)) if gptq_rounds(dtype) => {
                    let (weight, delta) = quantize_gptq_layer(&t, st, dtype)?;
                    let prefix = name.strip_suffix(".weight").unwrap_or(&name);
                    bias_delta.insert(format!("{prefix}.bias"), delta);
                    tensors.push((name, weight));
                }
                (GgmlDType::Q4_0, None) => {
                    tensors.push((name, super::quantize::quantize_q4_0(&t, None)?))
                }
                (dtype, _) => tensors.push((name, QTensor::quantize(&t, dtype)?)),
            }
        } else {
            let t = match bias_delta.remove(&name) {
                Some(delta) => (t + Tensor::from_vec(delta, shape[0], &Device::Cpu)?)?,
                None => t,
            };
            // Biases and norm parameters are tiny: kept in f32, as llama.cpp does.
            tensors.push((name, QTensor::quantize(&t, GgmlDType::F32)?));
        }
        Ok(())
    };
    if !needs_calibration(quant, opts) {
        for (name, shape, t) in sources {
            quantize_one(name, &shape, t, None, &mut tensors)?;
        }
        return gguf::write_bundle(&config, &tokenizer_json, quant, &tensors);
    }
    // 4-bit weights are rounded by GPTQ, which needs the Gram matrix of each layer's inputs
    // over calibration text. Layer by layer ("sequential" GPTQ): the embeddings are
    // quantized first, then each encoder layer is calibrated on the model whose earlier
    // layers are already quantized, so it also corrects the error they pass on.
    let layer_of = |name: &str| -> Option<usize> {
        name.strip_prefix("blk.")?.split('.').next()?.parse().ok()
    };
    let groups: Vec<Option<usize>> = std::iter::once(None)
        .chain((0..config.num_layers).map(Some))
        .collect();
    let mut pending = sources;
    for group in groups {
        let (now, later): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|(name, _, _)| layer_of(name) == group);
        pending = later;
        let needs_stats = now.iter().any(|(name, _, _)| name.starts_with("blk."));
        let stats = if needs_stats {
            // The model as it stands: what is done, quantized; the rest in f32.
            let mut model: Vec<(String, QTensor)> = tensors
                .iter()
                .map(|(n, t)| Ok((n.clone(), requantize_for_calibration(t)?)))
                .collect::<Result<_>>()?;
            for (n, _, t) in now.iter().chain(pending.iter()) {
                model.push((n.clone(), QTensor::quantize(t, GgmlDType::F32)?));
            }
            calibrate(&config, &tokenizer_json, model)?
        } else {
            HashMap::new()
        };
        for (name, shape, t) in now {
            let st = stats.get(&name);
            quantize_one(name, &shape, t, st, &mut tensors)?;
        }
    }
    gguf::write_bundle(&config, &tokenizer_json, quant, &tensors)
}

/// Quantizes a weight matrix to 4 or 5 bits with its calibration statistics: GPTQ rounding, then
/// bias correction (the mean output shift that rounding leaves, `(W - Q) E[x]`, is folded
/// into the bias). Returns the tensor and what to add to the bias.
fn quantize_gptq_layer(
    t: &Tensor,
    st: &super::bert::InputStats,
    dtype: GgmlDType,
) -> Result<(QTensor, Vec<f32>)> {
    let (rows, cols) = t.dims2()?;
    let weight = super::quantize::gptq(t, &st.gram, st.texts, dtype)?;
    let n = st.texts.max(1) as f64;
    let mean: Vec<f64> = st.sum.iter().map(|s| s / n).collect();
    let orig: Vec<f32> = t.flatten_all()?.to_vec1()?;
    let deq: Vec<f32> = weight.dequantize(&Device::Cpu)?.flatten_all()?.to_vec1()?;
    let bias_delta = (0..rows)
        .map(|r| {
            (0..cols)
                .map(|c| (orig[r * cols + c] - deq[r * cols + c]) as f64 * mean[c])
                .sum::<f64>() as f32
        })
        .collect();
    Ok((weight, bias_delta))
}

/// The storage for a tensor when the user named none. The position and token-type tables
/// are small (0.2 M values for MiniLM) but every token passes through them: below 8 bits
/// they cost more accuracy than the rest of the embeddings together, so they stay at `q8_0`.
///
/// `q4_mix` spends bits where the parity tests found them needed: the word-embedding table
/// (half of MiniLM's weights, each row only looked up) loses little at `q3_k` (stored flat);
/// the encoder layers' rounding error reaches every output, so their matrices get `q5_0`
/// (`q4_0` attention query and key matrices would save 0.22 MB; the worst parity sentence
/// measured 0.981 with them against 0.987 without, in one pair of conversions).
pub fn default_quant(name: &str, quant: Quant) -> Quant {
    let small_table = name == names::POSITION_EMBD || name == names::TOKEN_TYPES;
    let below_8_bits = !matches!(quant, Quant::F32 | Quant::F16 | Quant::Q8_0);
    if small_table && below_8_bits {
        return Quant::Q8_0;
    }
    match quant {
        Quant::Q4Mix if name == names::TOKEN_EMBD => Quant::Q3K,
        Quant::Q4Mix => Quant::Q5_0,
        other => other,
    }
}

/// A copy of a finished tensor for a calibration model (QTensor is not `Clone`).
fn requantize_for_calibration(t: &QTensor) -> Result<QTensor> {
    let storage = QStorage::from_data(t.data()?, &Device::Cpu, t.dtype())?;
    Ok(QTensor::new(storage, t.shape().clone())?)
}

/// Whether converting at `quant` with `opts` runs the calibration passes (4-bit weights).
pub fn needs_calibration(quant: Quant, opts: &ConvertOptions) -> bool {
    let rounded = |q: Quant| gptq_rounds(q.dtype_for_row(32));
    rounded(quant) || opts.tensor_quant.iter().any(|(_, q)| rounded(*q))
}

/// The storage types whose weight matrices are rounded by GPTQ (4 and 5 bits a level).
fn gptq_rounds(dtype: GgmlDType) -> bool {
    matches!(
        dtype,
        GgmlDType::Q4_0 | GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1
    )
}

/// Text for the calibration run: varied prose, queries and code, kept apart from the tests.
const CALIBRATION: &str = include_str!("calibration.txt");

/// Runs the model made of `tensors` over [`CALIBRATION`] and returns, per weight matrix,
/// statistics of its inputs.
fn calibrate(
    config: &ModelConfig,
    tokenizer_json: &str,
    tensors: Vec<(String, QTensor)>,
) -> Result<HashMap<String, super::bert::InputStats>> {
    let f32_bundle = gguf::write_bundle(config, tokenizer_json, Quant::F32, &tensors)?;
    let stats: super::bert::ActivationStats = Default::default();
    let enc = super::Encoder::with_activation_stats(&f32_bundle, stats.clone())?;
    let texts: Vec<&str> = CALIBRATION
        .split("\n\n")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    // The empty text too: a query vector is largely its [CLS] and [SEP] rows, and this
    // input is nothing else.
    let mut texts = texts;
    texts.push("");
    // One text per batch: padding rows would pollute the statistics.
    enc.embed_batched(&texts, super::Role::Document, 1)?;
    if config.query_prompt != config.document_prompt {
        enc.embed_batched(&texts, super::Role::Query, 1)?;
    }
    let stats = stats
        .lock()
        .map_err(|_| Error::Convert("calibration statistics poisoned".into()))?;
    Ok(stats.clone())
}

#[cfg(test)]
mod tests {
    use super::gguf_name;

    #[test]
    fn maps_hf_names_to_llama_cpp() {
        assert_eq!(
            gguf_name("encoder.layer.3.attention.self.query.weight").as_deref(),
            Some("blk.3.attn_q.weight")
        );
        assert_eq!(
            gguf_name("bert.encoder.layer.0.output.LayerNorm.gamma").as_deref(),
            Some("blk.0.layer_output_norm.weight")
        );
        assert_eq!(
            gguf_name("embeddings.word_embeddings.weight").as_deref(),
            Some("token_embd.weight")
        );
        assert_eq!(gguf_name("pooler.dense.weight"), None);
        assert_eq!(gguf_name("embeddings.position_ids"), None);
    }
}
