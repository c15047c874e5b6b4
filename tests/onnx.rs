//! The ONNX reader of `cairn model convert`, on tiny ONNX files built here: an int8
//! dynamically quantized export laid out as onnxruntime's `quantize_dynamic` writes one
//! (anonymous weight names, per-column scales and zero points, uint8 embedding tables), an
//! f32 export, and the bad inputs (truncated, not BERT, an unknown op in a weight's path,
//! external or inconsistent tensor data). Native only, as conversion is.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::Device;
use prost::Message;

use cairn::model::convert::{convert_folder, ConvertOptions};
use cairn::model::gguf;
use cairn::model::onnx::proto::{
    tensor_proto::{DataLocation, DataType},
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, ValueInfoProto,
};
use cairn::model::onnx::{self, OnnxError};
use cairn::model::{ModelConfig, Pooling};
use cairn::{Encoder, Error, Quant, Role};

const HIDDEN: usize = 32;
const INTER: usize = 64;
const LAYERS: usize = 2;
const POSITIONS: usize = 32;

fn config(vocab: usize) -> ModelConfig {
    ModelConfig {
        name: "tiny-onnx-bert".into(),
        vocab_size: vocab,
        hidden_size: HIDDEN,
        num_layers: LAYERS,
        num_heads: 4,
        intermediate_size: INTER,
        max_position_embeddings: POSITIONS,
        max_seq_length: POSITIONS,
        ..common::tiny_config()
    }
}

fn config_json(cfg: &ModelConfig) -> String {
    serde_json::json!({
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_act": "gelu",
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_attention_heads": cfg.num_heads,
        "num_hidden_layers": cfg.num_layers,
        "max_position_embeddings": cfg.max_position_embeddings,
        "type_vocab_size": cfg.type_vocab_size,
        "vocab_size": cfg.vocab_size,
        "layer_norm_eps": 1e-12,
    })
    .to_string()
}

/// Deterministic values in [-0.1, 0.1).
fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 1000) as f32 / 1000.0 - 0.5) * 0.2)
        .collect()
}

fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn f32_tensor(name: &str, dims: &[usize], v: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Float as i32,
        raw_data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// A small int tensor in the typed field (as the real export stores its zero points).
fn i8_typed(name: &str, dims: &[usize], v: &[i32], ty: DataType) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: ty as i32,
        int32_data: v.to_vec(),
        ..Default::default()
    }
}

fn value_info(name: &str) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        ..Default::default()
    }
}

/// A tiny BERT's weights under Hugging Face names (matrices `out x in`), and the ONNX file
/// of them. With `quantized`, matrices are stored as int8 with a scale and a zero point per
/// output column and the embedding tables as uint8, and the expected weights are the
/// dequantized values.
struct Export {
    bytes: Vec<u8>,
    /// Hugging Face name to (shape, values) the reader must return.
    expected: HashMap<String, (Vec<usize>, Vec<f32>)>,
    /// The anonymous name of each weight matrix, by layer prefix.
    anonymous: HashMap<String, String>,
    /// Quantized exports: each matrix's per-column scales and zero points, by layer prefix.
    columns: HashMap<String, (Vec<f32>, Vec<i32>)>,
}

fn linear_layers() -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    for l in 0..LAYERS {
        let p = format!("encoder.layer.{l}");
        for (m, o, i) in [
            ("attention.self.query", HIDDEN, HIDDEN),
            ("attention.self.key", HIDDEN, HIDDEN),
            ("attention.self.value", HIDDEN, HIDDEN),
            ("attention.output.dense", HIDDEN, HIDDEN),
            ("intermediate.dense", INTER, HIDDEN),
            ("output.dense", HIDDEN, INTER),
        ] {
            out.push((format!("{p}.{m}"), o, i));
        }
    }
    out
}

fn export(vocab: usize, quantized: bool) -> Export {
    export_with(vocab, quantized, |_| {})
}

/// [`export`], with `edit` applied to the graph before it is encoded.
fn export_with(vocab: usize, quantized: bool, edit: impl FnOnce(&mut GraphProto)) -> Export {
    let mut expected = HashMap::new();
    let mut anonymous = HashMap::new();
    let mut columns = HashMap::new();
    let mut inits = Vec::new();
    let mut nodes = Vec::new();
    let mut seed = 0;
    let mut next = || {
        seed += 1;
        seed
    };

    // Embedding tables: Gather by input_ids, token_type_ids, and a slice of position ids.
    for (name, rows, index) in [
        (onnx::WORD_EMBEDDINGS, vocab, "input_ids"),
        (onnx::TOKEN_TYPE_EMBEDDINGS, 2, "token_type_ids"),
        (
            onnx::POSITION_EMBEDDINGS,
            POSITIONS,
            "/embeddings/Slice_output_0",
        ),
    ] {
        let v = values(rows * HIDDEN, next());
        let gathered = format!("{name}/Gather_output_0");
        if quantized {
            // uint8, one scale and zero point per table.
            let scale = 0.2f32 / 255.0;
            let zero = 128i32;
            let q: Vec<u8> = v
                .iter()
                .map(|x| ((x / scale).round() as i32 + zero).clamp(0, 255) as u8)
                .collect();
            let deq = q
                .iter()
                .map(|&q| (q as i32 - zero) as f32 * scale)
                .collect();
            expected.insert(name.to_string(), (vec![rows, HIDDEN], deq));
            inits.push(TensorProto {
                name: format!("{name}_quantized"),
                dims: vec![rows as i64, HIDDEN as i64],
                data_type: DataType::Uint8 as i32,
                raw_data: q,
                ..Default::default()
            });
            inits.push(f32_tensor(&format!("{name}_scale"), &[], &[scale]));
            inits.push(i8_typed(
                &format!("{name}_zero_point"),
                &[],
                &[zero],
                DataType::Uint8,
            ));
            let q_out = format!("{gathered}_quantized");
            nodes.push(node(
                "Gather",
                &format!("{name}/Gather"),
                &[&format!("{name}_quantized"), index],
                &[&q_out],
            ));
            nodes.push(node(
                "DequantizeLinear",
                &format!("{name}/Dequantize"),
                &[
                    &q_out,
                    &format!("{name}_scale"),
                    &format!("{name}_zero_point"),
                ],
                &[&gathered],
            ));
        } else {
            inits.push(f32_tensor(name, &[rows, HIDDEN], &v));
            nodes.push(node(
                "Gather",
                &format!("{name}/Gather"),
                &[name, index],
                &[&gathered],
            ));
            expected.insert(name.to_string(), (vec![rows, HIDDEN], v));
        }
    }
    for ln in ["embeddings.LayerNorm"] {
        for (part, seed) in [("weight", next()), ("bias", next())] {
            let name = format!("{ln}.{part}");
            let v = values(HIDDEN, seed);
            inits.push(f32_tensor(&name, &[HIDDEN], &v));
            expected.insert(name, (vec![HIDDEN], v));
        }
    }

    // Linear layers, their anonymous numbers handed out in reverse, so that the order of
    // names says nothing about the layer.
    let layers = linear_layers();
    for (i, (prefix, out_dim, in_dim)) in layers.iter().enumerate() {
        let (out_dim, in_dim) = (*out_dim, *in_dim);
        let number = 2000 - i * 3;
        let w = values(out_dim * in_dim, next()); // PyTorch layout, out x in
        let bias = values(out_dim, next());
        let bias_name = format!("{prefix}.bias");
        inits.push(f32_tensor(&bias_name, &[out_dim], &bias));
        expected.insert(bias_name.clone(), (vec![out_dim], bias));
        let x = format!("{prefix}/input");
        let y = format!("{prefix}/Add_output_0");
        if quantized {
            let base = format!("onnx::MatMul_{number}");
            anonymous.insert(prefix.clone(), format!("{base}_quantized"));
            // Per output column c: scale and a zero point (not 0, to test its use).
            let scales: Vec<f32> = (0..out_dim)
                .map(|c| {
                    let m = (0..in_dim)
                        .map(|k| w[c * in_dim + k].abs())
                        .fold(0f32, f32::max);
                    m.max(1e-6) / 120.0
                })
                .collect();
            let zeros: Vec<i32> = (0..out_dim).map(|c| (c % 5) as i32 - 2).collect();
            // ONNX layout: in x out.
            let mut q = vec![0i8; in_dim * out_dim];
            let mut deq = vec![0f32; out_dim * in_dim];
            for c in 0..out_dim {
                for k in 0..in_dim {
                    let v = (w[c * in_dim + k] / scales[c]).round() as i32 + zeros[c];
                    let v = v.clamp(-128, 127);
                    q[k * out_dim + c] = v as i8;
                    deq[c * in_dim + k] = (v - zeros[c]) as f32 * scales[c];
                }
            }
            expected.insert(format!("{prefix}.weight"), (vec![out_dim, in_dim], deq));
            columns.insert(prefix.clone(), (scales.clone(), zeros.clone()));
            inits.push(TensorProto {
                name: format!("{base}_quantized"),
                dims: vec![in_dim as i64, out_dim as i64],
                data_type: DataType::Int8 as i32,
                raw_data: q.iter().map(|&b| b as u8).collect(),
                ..Default::default()
            });
            inits.push(TensorProto {
                name: format!("{base}_scale"),
                dims: vec![out_dim as i64],
                data_type: DataType::Float as i32,
                float_data: scales,
                ..Default::default()
            });
            inits.push(i8_typed(
                &format!("{base}_zero_point"),
                &[out_dim],
                &zeros,
                DataType::Int8,
            ));
            let n = |s: &str| format!("{prefix}/{s}");
            nodes.push(node(
                "DynamicQuantizeLinear",
                &n("DynamicQuantizeLinear"),
                &[&x],
                &[&n("x_q"), &n("x_scale"), &n("x_zero")],
            ));
            nodes.push(node(
                "Mul",
                &n("scales_mul"),
                &[&n("x_scale"), &format!("{base}_scale")],
                &[&n("scales")],
            ));
            nodes.push(node(
                "MatMulInteger",
                &n("MatMulInteger"),
                &[
                    &n("x_q"),
                    &format!("{base}_quantized"),
                    &n("x_zero"),
                    &format!("{base}_zero_point"),
                ],
                &[&n("product_int")],
            ));
            nodes.push(node(
                "Cast",
                &n("Cast"),
                &[&n("product_int")],
                &[&n("product_cast")],
            ));
            nodes.push(node(
                "Mul",
                &n("Mul"),
                &[&n("product_cast"), &n("scales")],
                &[&n("product")],
            ));
            nodes.push(node("Add", &n("Add"), &[&bias_name, &n("product")], &[&y]));
        } else {
            let name = format!("onnx::MatMul_{number}");
            anonymous.insert(prefix.clone(), name.clone());
            let mut t = vec![0f32; in_dim * out_dim];
            for c in 0..out_dim {
                for k in 0..in_dim {
                    t[k * out_dim + c] = w[c * in_dim + k];
                }
            }
            inits.push(f32_tensor(&name, &[in_dim, out_dim], &t));
            expected.insert(format!("{prefix}.weight"), (vec![out_dim, in_dim], w));
            let mm = format!("{prefix}/MatMul_output_0");
            nodes.push(node(
                "MatMul",
                &format!("{prefix}/MatMul"),
                &[&x, &name],
                &[&mm],
            ));
            nodes.push(node(
                "Add",
                &format!("{prefix}/Add"),
                &[&mm, &bias_name],
                &[&y],
            ));
        }
    }
    for l in 0..LAYERS {
        for ln in ["attention.output.LayerNorm", "output.LayerNorm"] {
            for part in ["weight", "bias"] {
                let name = format!("encoder.layer.{l}.{ln}.{part}");
                let v = values(HIDDEN, next());
                inits.push(f32_tensor(&name, &[HIDDEN], &v));
                expected.insert(name, (vec![HIDDEN], v));
            }
        }
    }
    // Attention: activations times activations, no weight (the reader must pass it by).
    nodes.push(node("MatMul", "attention/scores", &["q", "k"], &["scores"]));
    // A stored table the encoder does not use (position ids, int64): ignored.
    inits.push(TensorProto {
        name: "onnx::Slice_214".into(),
        dims: vec![1, POSITIONS as i64],
        data_type: DataType::Int64 as i32,
        int64_data: (0..POSITIONS as i64).collect(),
        ..Default::default()
    });
    inits.reverse();
    let mut graph = GraphProto {
        name: "main_graph".into(),
        node: nodes,
        initializer: inits,
        input: ["input_ids", "attention_mask", "token_type_ids"]
            .iter()
            .map(|n| value_info(n))
            .collect(),
        output: vec![value_info("last_hidden_state")],
        ..Default::default()
    };
    edit(&mut graph);
    let model = ModelProto {
        ir_version: 6,
        producer_name: "cairn-test".into(),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 11,
        }],
        graph: Some(graph),
        ..Default::default()
    };
    Export {
        bytes: model.encode_to_vec(),
        expected,
        anonymous,
        columns,
    }
}

fn folder(dir: &Path, onnx_bytes: &[u8]) -> ModelConfig {
    let (tok, vocab) = common::micro_tokenizer_json();
    let cfg = config(vocab);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), config_json(&cfg)).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tok).unwrap();
    std::fs::write(dir.join("model.onnx"), onnx_bytes).unwrap();
    cfg
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cairn-onnx-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn vocab() -> usize {
    common::micro_tokenizer_json().1
}

fn opts() -> ConvertOptions {
    ConvertOptions {
        pooling: Some(Pooling::Cls),
        query_prompt: Some("Represent this sentence for searching relevant passages: ".into()),
        ..Default::default()
    }
}

/// Converts the export at f32 and checks every tensor of the bundle against the weights the
/// export was made from (dequantized), under llama.cpp's names.
fn converts_to_expected(quantized: bool) {
    let ex = export(vocab(), quantized);
    let dir = temp(if quantized { "int8" } else { "f32" });
    let cfg = folder(&dir, &ex.bytes);
    let bytes = convert_folder(&dir, Quant::F32, &opts()).unwrap();
    let bundle = gguf::read_bundle(&bytes).unwrap();
    assert_eq!(bundle.config.pooling, Pooling::Cls);
    assert_eq!(bundle.config.num_layers, LAYERS);
    assert_eq!(bundle.config.document_prompt, "");
    let mut checked = 0;
    for (hf, (shape, want)) in &ex.expected {
        let name = cairn::model::convert::gguf_name(hf).unwrap();
        let t = &bundle.tensors[&name];
        assert_eq!(t.shape().dims(), shape.as_slice(), "{hf}");
        let got: Vec<f32> = t
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(
            &got, want,
            "{hf} ({name}) differs from the export's weights"
        );
        checked += 1;
    }
    assert_eq!(checked, gguf::expected_tensors(&cfg).len());
    // The bundle runs, with the prompt on queries and CLS pooling.
    let enc = Encoder::from_bytes(&bytes).unwrap();
    let q = enc
        .embed(&["share data between threads"], Role::Query)
        .unwrap();
    let d = enc
        .embed(&["share data between threads"], Role::Document)
        .unwrap();
    assert_eq!(q[0].len(), HIDDEN);
    assert!(q[0] != d[0], "the query prompt changes the query's vector");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn int8_export_converts_to_its_dequantized_weights() {
    converts_to_expected(true);
}

#[test]
fn f32_export_converts_to_its_weights() {
    converts_to_expected(false);
}

#[test]
fn weight_matrices_are_named_by_their_bias_not_their_order() {
    let ex = export(vocab(), true);
    let weights = read_values(&ex.bytes);
    for (prefix, out_dim, in_dim) in linear_layers() {
        let (shape, got) = &weights[&format!("{prefix}.weight")];
        assert_eq!(shape, &[out_dim, in_dim], "{prefix}");
        assert_eq!(got, &ex.expected[&format!("{prefix}.weight")].1, "{prefix}");
    }
    // Anonymous names are not in the output; the quantized tables are under their HF names.
    assert!(ex.anonymous.values().all(|a| !weights.contains_key(a)));
    assert!(weights.contains_key(onnx::WORD_EMBEDDINGS));
    assert!(!weights
        .keys()
        .any(|k| k.contains("_quantized") || k.contains("_scale")));
}

#[test]
fn the_q8_0_bundle_of_an_int8_export_stays_close() {
    let ex = export(vocab(), true);
    let dir = temp("q8");
    folder(&dir, &ex.bytes);
    let f32 = Encoder::from_bytes(&convert_folder(&dir, Quant::F32, &opts()).unwrap()).unwrap();
    let q8 = Encoder::from_bytes(&convert_folder(&dir, Quant::Q8_0, &opts()).unwrap()).unwrap();
    let texts = ["rust threads share data", "the box", "a"];
    for (a, b) in f32
        .embed(&texts, Role::Query)
        .unwrap()
        .iter()
        .zip(q8.embed(&texts, Role::Query).unwrap())
    {
        let c = common::cosine(a, &b);
        assert!(c > 0.99, "q8_0 of the int8 export: cosine {c}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The weights `read_weights` finds in `bytes`, by name, as flat f32 values and shapes.
fn read_values(bytes: &[u8]) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    onnx::read_weights(bytes)
        .unwrap()
        .into_iter()
        .map(|(name, t)| {
            let shape = t.dims().to_vec();
            (name, (shape, t.flatten_all().unwrap().to_vec1().unwrap()))
        })
        .collect()
}

fn onnx_error(bytes: &[u8]) -> OnnxError {
    match onnx::read_weights(bytes) {
        Ok(_) => panic!("a bad ONNX file was read"),
        Err(e) => e,
    }
}

#[test]
fn truncated_files_are_refused() {
    let ex = export(vocab(), true);
    let n = ex.bytes.len();
    let mut decode_errors = 0;
    for cut in [1, 7, n / 3, n / 2, n - 100, n - 1] {
        let e = onnx_error(&ex.bytes[..cut]);
        assert!(!e.to_string().is_empty());
        decode_errors += matches!(e, OnnxError::Decode(_)) as usize;
    }
    assert!(
        decode_errors >= 4,
        "most cuts fall inside a field: {decode_errors}"
    );
    assert!(matches!(onnx_error(&[]), OnnxError::Decode(_)));
    assert!(matches!(
        onnx_error(b"PK\x03\x04 a zip file, not ONNX"),
        OnnxError::Decode(_)
    ));
    // Through the converter: the typed error, naming the problem.
    let dir = temp("cut");
    folder(&dir, &ex.bytes[..n / 2]);
    let err = convert_folder(&dir, Quant::Q8_0, &opts()).err().unwrap();
    assert!(matches!(err, Error::Onnx(OnnxError::Decode(_))), "{err}");
    assert!(
        err.to_string().contains("not a readable ONNX model"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_graph_that_is_not_bert_is_refused_by_name() {
    let image_model = ModelProto {
        ir_version: 7,
        graph: Some(GraphProto {
            node: vec![
                node("Conv", "conv1", &["pixel_values", "w1"], &["c1"]),
                node("Relu", "relu1", &["c1"], &["r1"]),
                node("Conv", "conv2", &["r1", "w2"], &["c2"]),
            ],
            initializer: vec![f32_tensor("w1", &[2, 2], &[0.1; 4])],
            input: vec![value_info("pixel_values")],
            ..Default::default()
        }),
        ..Default::default()
    };
    let e = onnx_error(&image_model.encode_to_vec());
    let msg = e.to_string();
    assert!(matches!(e, OnnxError::NotBert(_)), "{msg}");
    assert!(
        msg.contains("pixel_values") && msg.contains("Conv x2"),
        "{msg}"
    );

    // BERT's inputs but no word-embedding table gathered by input_ids.
    let ex = export_with(vocab(), true, |g| {
        for n in g.node.iter_mut() {
            for i in n.input.iter_mut() {
                if i == "input_ids" {
                    *i = "something_else".into();
                }
            }
        }
        // ... which then reads as a second position table.
    });
    let e = onnx_error(&ex.bytes);
    let msg = e.to_string();
    assert!(matches!(e, OnnxError::NotBert(_)), "{msg}");
    assert!(msg.contains("something_else"), "{msg}");
}

#[test]
fn indices_are_followed_through_casts() {
    // input_ids cast to int32 before the Gather, as some exporters write it.
    let ex = export_with(vocab(), true, |g| {
        for n in g.node.iter_mut() {
            for i in n.input.iter_mut() {
                if i == "input_ids" {
                    *i = "input_ids_int32".into();
                }
            }
        }
        g.node.push(node(
            "Cast",
            "cast_ids",
            &["input_ids"],
            &["input_ids_int32"],
        ));
    });
    let got = &read_values(&ex.bytes)[onnx::WORD_EMBEDDINGS].1;
    assert_eq!(got, &ex.expected[onnx::WORD_EMBEDDINGS].1);
}

#[test]
fn a_missing_zero_point_and_one_scale_for_all_columns_dequantize() {
    let prefix = "encoder.layer.0.attention.self.value";
    let ex = export(vocab(), true);
    let (scales, zeros) = ex.columns[prefix].clone();
    // No zero point: the stored values are read as (q - 0) * scale.
    let no_zero = export_with(vocab(), true, |g| {
        for n in g.node.iter_mut() {
            if n.name == format!("{prefix}/MatMulInteger") {
                n.input.truncate(3);
            }
        }
    });
    let got = read_values(&no_zero.bytes)[&format!("{prefix}.weight")]
        .1
        .clone();
    let want = &ex.expected[&format!("{prefix}.weight")].1;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let c = i / HIDDEN; // out x in: row = output column
        let shifted = w + zeros[c] as f32 * scales[c];
        assert!((g - shifted).abs() < 1e-6, "value {i}: {g} vs {shifted}");
    }
    // One scale for every column.
    let one_scale = export_with(vocab(), true, |g| {
        let base = no_zero.anonymous[prefix].replace("_quantized", "_scale");
        for t in g.initializer.iter_mut() {
            if t.name == base {
                t.dims = vec![];
                t.float_data = vec![0.001];
            }
        }
    });
    let got = read_values(&one_scale.bytes)[&format!("{prefix}.weight")]
        .1
        .clone();
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let c = i / HIDDEN;
        let q = (w / scales[c]).round(); // q - zero point, recovered
        assert!((g - q * 0.001).abs() < 1e-6, "value {i}");
    }
}

#[test]
fn half_precision_tensors_are_read() {
    let name = "encoder.layer.1.output.LayerNorm.weight";
    let ex = export_with(vocab(), true, |g| {
        for t in g.initializer.iter_mut() {
            if t.name == name {
                let v: Vec<f32> = t
                    .raw_data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                t.data_type = DataType::Float16 as i32;
                t.raw_data = v
                    .iter()
                    .flat_map(|x| half::f16::from_f32(*x).to_bits().to_le_bytes())
                    .collect();
            }
        }
    });
    let got = read_values(&ex.bytes)[name].1.clone();
    let want: Vec<f32> = ex.expected[name]
        .1
        .iter()
        .map(|x| half::f16::from_f32(*x).to_f32())
        .collect();
    assert_eq!(got, want);
}

#[test]
fn an_unknown_op_in_a_weight_path_is_named() {
    // A Relu between the MatMulInteger's cast and its scaling.
    let ex = export_with(vocab(), true, |g| {
        let prefix = "encoder.layer.1.intermediate.dense";
        for n in g.node.iter_mut() {
            if n.name == format!("{prefix}/Mul") {
                n.input[0] = format!("{prefix}/relu_out");
            }
        }
        g.node.push(node(
            "Relu",
            "sneaky_relu",
            &[&format!("{prefix}/product_cast")],
            &[&format!("{prefix}/relu_out")],
        ));
    });
    match onnx_error(&ex.bytes) {
        OnnxError::UnknownOp { op, node, weight } => {
            assert_eq!(op, "Relu");
            assert_eq!(node, "sneaky_relu");
            assert_eq!(weight, ex.anonymous["encoder.layer.1.intermediate.dense"]);
        }
        other => panic!("expected UnknownOp, got {other}"),
    }
    // A fused op the reader does not know, reading a quantized weight directly.
    let ex = export_with(vocab(), true, |g| {
        for n in g.node.iter_mut() {
            if n.name == "encoder.layer.0.attention.self.key/MatMulInteger" {
                n.op_type = "MatMulIntegerToFloat".into();
            }
        }
    });
    match onnx_error(&ex.bytes) {
        OnnxError::UnknownOp { op, weight, .. } => {
            assert_eq!(op, "MatMulIntegerToFloat");
            assert_eq!(weight, ex.anonymous["encoder.layer.0.attention.self.key"]);
        }
        other => panic!("expected UnknownOp, got {other}"),
    }
    // Between an embedding table's Gather and its DequantizeLinear.
    let ex = export_with(vocab(), true, |g| {
        let table = onnx::TOKEN_TYPE_EMBEDDINGS;
        for n in g.node.iter_mut() {
            if n.name == format!("{table}/Dequantize") {
                n.input[0] = "relu_out".into();
            }
        }
        g.node.push(node(
            "Relu",
            "table_relu",
            &[&format!("{table}/Gather_output_0_quantized")],
            &["relu_out"],
        ));
    });
    assert!(
        matches!(onnx_error(&ex.bytes), OnnxError::UnknownOp { op, .. } if op == "Relu"),
        "a Relu after a table's Gather"
    );
    // A statically quantized input (QuantizeLinear): its scale would be folded into the
    // weight's, so the reader refuses it by name.
    let ex = export_with(vocab(), true, |g| {
        for n in g.node.iter_mut() {
            if n.name == "encoder.layer.0.output.dense/DynamicQuantizeLinear" {
                n.op_type = "QuantizeLinear".into();
            }
        }
    });
    match onnx_error(&ex.bytes) {
        OnnxError::UnknownOp { op, weight, .. } => {
            assert_eq!(op, "QuantizeLinear");
            assert_eq!(weight, ex.anonymous["encoder.layer.0.output.dense"]);
        }
        other => panic!("expected UnknownOp, got {other}"),
    }
    // A weight whose product is added to something computed, not a stored bias.
    let ex = export_with(vocab(), false, |g| {
        for n in g.node.iter_mut() {
            if n.name == "encoder.layer.0.output.dense/Add" {
                n.input[1] = "some_activation".into();
            }
        }
    });
    let e = onnx_error(&ex.bytes);
    assert!(
        matches!(&e, OnnxError::Unmapped { problem, .. } if problem.contains("some_activation")),
        "{e}"
    );
}

#[test]
fn unusable_tensor_data_is_refused() {
    let external = export_with(vocab(), true, |g| {
        for t in g.initializer.iter_mut() {
            if t.name == "encoder.layer.0.output.LayerNorm.weight" {
                t.data_location = DataLocation::External as i32;
                t.raw_data.clear();
            }
        }
    });
    let e = onnx_error(&external.bytes);
    assert!(
        matches!(&e, OnnxError::BadTensor { problem, .. } if problem.contains("external")),
        "{e}"
    );
    let short = export_with(vocab(), true, |g| {
        for t in g.initializer.iter_mut() {
            if t.data_type == DataType::Int8 as i32 && !t.raw_data.is_empty() {
                t.raw_data.pop();
                break;
            }
        }
    });
    let e = onnx_error(&short.bytes);
    assert!(
        matches!(&e, OnnxError::BadTensor { problem, .. } if problem.contains("bytes of data")),
        "{e}"
    );
    let huge = export_with(vocab(), true, |g| {
        for t in g.initializer.iter_mut() {
            if t.name == "embeddings.LayerNorm.weight" {
                t.dims = vec![1 << 20, 1 << 20];
            }
        }
    });
    let e = onnx_error(&huge.bytes);
    assert!(
        matches!(&e, OnnxError::BadTensor { problem, .. } if problem.contains("too large")),
        "{e}"
    );
    // Typed int8 data outside int8's range (would overflow the dequantization).
    let out_of_range = export_with(vocab(), true, |g| {
        for t in g.initializer.iter_mut() {
            if t.name.ends_with("_zero_point") && t.data_type == DataType::Int8 as i32 {
                t.int32_data[0] = i32::MIN;
                break;
            }
        }
    });
    let e = onnx_error(&out_of_range.bytes);
    assert!(
        matches!(&e, OnnxError::BadTensor { problem, .. } if problem.contains("outside")),
        "{e}"
    );
    // An int32 matrix under a MatMulInteger.
    let int32 = export_with(vocab(), true, |g| {
        for t in g.initializer.iter_mut() {
            if t.data_type == DataType::Int8 as i32 && t.dims.len() == 2 {
                let v: Vec<i32> = t.raw_data.iter().map(|&b| b as i8 as i32).collect();
                t.data_type = DataType::Int32 as i32;
                t.raw_data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                break;
            }
        }
    });
    let e = onnx_error(&int32.bytes);
    assert!(
        matches!(&e, OnnxError::BadTensor { problem, .. } if problem.contains("int32")),
        "{e}"
    );
    let wrong_scales = export_with(vocab(), true, |g| {
        for t in g.initializer.iter_mut() {
            if t.name.ends_with("_scale") && t.dims == [HIDDEN as i64] {
                t.dims = vec![3];
                t.float_data.truncate(3);
                break;
            }
        }
    });
    let e = onnx_error(&wrong_scales.bytes);
    assert!(
        matches!(&e, OnnxError::BadTensor { problem, .. } if problem.contains("3 scales")),
        "{e}"
    );
}

#[test]
fn a_folder_without_weights_says_what_it_looked_for() {
    let dir = temp("none");
    folder(&dir, b"");
    std::fs::remove_file(dir.join("model.onnx")).unwrap();
    let err = convert_folder(&dir, Quant::Q8_0, &ConvertOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("model.onnx"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn damaged_bytes_are_an_error_or_weights_never_a_panic() {
    let ex = export(vocab(), true);
    let n = ex.bytes.len();
    // Every 97th byte flipped in turn, and a few bytes at once: protobuf tags, lengths, dims,
    // raw data. The reader must answer each without panicking.
    let mut refused = 0;
    for i in (0..n).step_by(97) {
        let mut b = ex.bytes.clone();
        b[i] ^= 0xA5;
        refused += onnx::read_weights(&b).is_err() as usize;
    }
    for i in (0..n).step_by(1009) {
        let mut b = ex.bytes.clone();
        b[i..(i + 8).min(n)].fill(0xFF);
        refused += onnx::read_weights(&b).is_err() as usize;
    }
    assert!(refused > 0);
}

/// The fuzz target `onnx_reader` starts from this export (`fuzz/seeds/onnx_reader/`): it must
/// be the current one and read. `CAIRN_UPDATE_SEEDS=1` rewrites it.
#[test]
fn the_fuzz_seed_is_a_current_export() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/onnx_reader/tiny-int8.onnx");
    let ex = export(vocab(), true);
    if std::env::var_os("CAIRN_UPDATE_SEEDS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &ex.bytes).unwrap();
    }
    let seed = std::fs::read(&path).expect("the onnx_reader seed is committed");
    assert!(
        seed == ex.bytes,
        "the seed is stale: rerun with CAIRN_UPDATE_SEEDS=1"
    );
    assert!(onnx::read_weights(&seed).is_ok());
}

#[test]
fn a_weight_read_by_two_matmuls_is_refused() {
    // Each reading would be dequantized anew: a small file could ask for any memory.
    let ex = export_with(vocab(), true, |g| {
        let p = "encoder.layer.0.attention.self.query";
        let w = g
            .node
            .iter()
            .find(|n| n.name == format!("{p}/MatMulInteger"))
            .unwrap()
            .clone();
        let mut again = w.clone();
        again.name = "again".into();
        again.output = vec!["again_out".into()];
        g.node.push(again);
        g.node.push(node(
            "Cast",
            "again_cast",
            &["again_out"],
            &["again_cast_out"],
        ));
    });
    let e = onnx_error(&ex.bytes);
    assert!(
        matches!(&e, OnnxError::Unmapped { problem, .. } if problem.contains("more than one")),
        "{e}"
    );
}
