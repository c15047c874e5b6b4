//! The weights of a BERT encoder exported to ONNX, read for conversion (native only).
//!
//! An ONNX file is a protobuf `ModelProto` ([`proto`], generated from the ONNX schema by
//! prost). Exports differ in how they store a linear layer: an f32 `MatMul` whose second
//! input is the weight, or (dynamic quantization, onnxruntime's `quantize_dynamic`) a
//! `MatMulInteger` over an int8 or uint8 weight with a zero point per output column, whose
//! result is cast, multiplied by the activation's scale times the weight's scale, and added
//! to the bias. Quantized weights carry anonymous names (`onnx::MatMul_1535_quantized`), so a
//! matrix is named by following the graph from it to the `Add` of its bias, whose name
//! (`encoder.layer.0.attention.self.query.bias`) is the layer's. Embedding tables are named
//! by what indexes them (`input_ids`, `token_type_ids`, anything else: positions); a uint8 or
//! int8 table is dequantized by the `DequantizeLinear` after its `Gather`. Layer norms and
//! biases are f32 initializers under their own names.
//!
//! [`read_weights`] returns every weight in f32 under its Hugging Face name and in PyTorch's
//! layout (`out x in`: ONNX stores `in x out`), dequantized as `(q - zero_point) * scale`, for
//! the converter's quantizers.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto;

use std::collections::{BTreeMap, HashMap, HashSet};

use candle_core::{Device, Tensor};
use prost::Message;

use proto::tensor_proto::{DataLocation, DataType};
use proto::{ModelProto, NodeProto, TensorProto};

use super::config::MAX_TENSOR_ELEMENTS;

/// Why an ONNX file could not be read as a BERT encoder. Each names what was found.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The bytes do not decode as an ONNX protobuf (truncated, or another kind of file).
    #[error("not a readable ONNX model (truncated, or not ONNX at all): {0}")]
    Decode(String),
    /// The graph is not a BERT-family encoder.
    #[error("the ONNX graph is not a BERT encoder: {0}")]
    NotBert(String),
    /// A weight's path through the graph passes an op this reader does not interpret.
    #[error(
        "the ONNX graph applies `{op}` (node `{node}`) to weight `{weight}`; Cairn reads \
         weights through Gather, DequantizeLinear, MatMul, MatMulInteger, Cast, Mul and Add"
    )]
    UnknownOp {
        op: String,
        node: String,
        weight: String,
    },
    /// A weight's path through the graph does not lead to a layer.
    #[error("ONNX weight `{weight}`: {problem}")]
    Unmapped { weight: String, problem: String },
    /// An initializer's data is unusable (type, size, external storage).
    #[error("ONNX tensor `{name}`: {problem}")]
    BadTensor { name: String, problem: String },
}

type Result<T> = std::result::Result<T, OnnxError>;

/// Hugging Face names of the three embedding tables.
pub const WORD_EMBEDDINGS: &str = "embeddings.word_embeddings.weight";
pub const POSITION_EMBEDDINGS: &str = "embeddings.position_embeddings.weight";
pub const TOKEN_TYPE_EMBEDDINGS: &str = "embeddings.token_type_embeddings.weight";

/// Reads the weights of the BERT encoder in `bytes` (an ONNX file): f32, under Hugging Face
/// names, weight matrices as `out x in`. Tensors the encoder does not use come along under
/// their own names (the converter keeps what it knows).
pub fn read_weights(bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let model = ModelProto::decode(bytes).map_err(|e| OnnxError::Decode(e.to_string()))?;
    let graph = model
        .graph
        .as_ref()
        .filter(|g| !g.node.is_empty())
        .ok_or_else(|| OnnxError::Decode("the file holds no graph".into()))?;
    let g = Graph::new(&graph.node, &graph.initializer);
    let inputs: Vec<&str> = graph.input.iter().map(|i| i.name.as_str()).collect();
    if !inputs.contains(&"input_ids") {
        return Err(OnnxError::NotBert(format!(
            "its inputs are {inputs:?}, without BERT's `input_ids` (its most used ops: {})",
            g.common_ops()
        )));
    }
    let mut out: Weights = BTreeMap::new();
    let mut used: HashSet<String> = HashSet::new();

    // Embedding tables: a Gather from an initializer, named by the graph input its indices
    // come from (through casts and reshapes).
    let mut tables: BTreeMap<&str, (&str, &str)> = BTreeMap::new(); // name -> (table, source)
    for node in g.nodes.iter().filter(|n| n.op_type == "Gather") {
        let Some(table) = node.input.first().and_then(|i| g.inits.get(i.as_str())) else {
            continue;
        };
        if table.dims.len() != 2 || !(is_float(table) || is_small_int(table)) {
            continue; // not a table of vectors (shape arithmetic, int64 buffers)
        }
        let source = g.source_of(node.input.get(1).map(String::as_str).unwrap_or(""));
        let name = match source {
            "input_ids" => WORD_EMBEDDINGS,
            "token_type_ids" => TOKEN_TYPE_EMBEDDINGS,
            _ => POSITION_EMBEDDINGS,
        };
        if let Some((other, other_source)) = tables.insert(name, (&table.name, source)) {
            return Err(OnnxError::NotBert(format!(
                "two tables are gathered as `{name}`: `{other}` (indexed by `{other_source}`) and \
                 `{}` (indexed by `{source}`); BERT gathers by `input_ids`, `token_type_ids` \
                 and positions",
                table.name
            )));
        }
        let shape = dims(table)?;
        let values = if is_float(table) {
            floats(table)?
        } else {
            let out = node.output.first().map(String::as_str).unwrap_or("");
            let dq = g.only_consumer(out, &table.name)?;
            if dq.op_type != "DequantizeLinear" {
                return Err(g.unknown(dq, &table.name));
            }
            used.extend(dq.input.iter().skip(1).cloned());
            let scale = g.init_floats(dq.input.get(1), &table.name, "scale")?;
            let zero = match dq.input.get(2).filter(|s| !s.is_empty()) {
                Some(z) => small_ints(g.init(z, &table.name)?)?,
                None => vec![0],
            };
            if scale.len() != 1 || zero.len() != 1 {
                return Err(OnnxError::BadTensor {
                    name: table.name.clone(),
                    problem: format!(
                        "{} scales and {} zero points; Cairn dequantizes embedding tables \
                         with one of each",
                        scale.len(),
                        zero.len()
                    ),
                });
            }
            small_ints(table)?
                .into_iter()
                .map(|q| (q - zero[0]) as f32 * scale[0])
                .collect()
        };
        used.insert(table.name.clone());
        put(&mut out, name.to_string(), shape, values)?;
    }

    // Weight matrices: the second input of a MatMul or MatMulInteger, named by its bias.
    for node in g.nodes.iter() {
        let quantized = match node.op_type.as_str() {
            "MatMulInteger" => true,
            "MatMul" => false,
            _ => continue,
        };
        let Some(b) = node.input.get(1).and_then(|i| g.inits.get(i.as_str())) else {
            continue; // activations times activations (attention)
        };
        // One weight, one layer: a matrix read twice would be dequantized twice (and a small
        // file could ask for any amount of memory that way).
        if !used.insert(b.name.clone()) {
            return Err(OnnxError::Unmapped {
                weight: b.name.clone(),
                problem: "it is read by more than one MatMul (or is also a table or scale)".into(),
            });
        }
        let shape = dims(b)?;
        let &[k, n] = shape.as_slice() else {
            return Err(OnnxError::BadTensor {
                name: b.name.clone(),
                problem: format!("a weight matrix of shape {shape:?}, not two dimensions"),
            });
        };
        // ONNX multiplies `x (in) * W (in x out)`; PyTorch stores `out x in`: each value goes
        // straight to its transposed place.
        let mut t = vec![0f32; k * n];
        if quantized {
            if !is_small_int(b) {
                return Err(bad(
                    b,
                    format!("{} where MatMulInteger takes int8 or uint8", type_name(b)),
                ));
            }
            let act_scale = g.dynamic_activation_scale(node, &b.name)?;
            let (layer, scale_name) = g.follow_to_bias(node, Some(act_scale), &b.name)?;
            let scale = g.init_floats(Some(&scale_name), &b.name, "scale")?;
            let zero = match node.input.get(3).filter(|s| !s.is_empty()) {
                Some(z) => {
                    used.insert(z.clone());
                    small_ints(g.init(z, &b.name)?)?
                }
                None => vec![0],
            };
            for (what, len) in [("scales", scale.len()), ("zero points", zero.len())] {
                if len != 1 && len != n {
                    return Err(OnnxError::BadTensor {
                        name: b.name.clone(),
                        problem: format!("{len} {what} for {n} output columns"),
                    });
                }
            }
            used.insert(scale_name);
            for (i, q) in small_ints(b)?.into_iter().enumerate() {
                let (r, c) = (i / n, i % n);
                let z = zero[if zero.len() == 1 { 0 } else { c }];
                let s = scale[if scale.len() == 1 { 0 } else { c }];
                t[c * k + r] = (q - z) as f32 * s;
            }
            put(&mut out, format!("{layer}.weight"), vec![n, k], t)?;
        } else {
            let (layer, _) = g.follow_to_bias(node, None, &b.name)?;
            for (i, v) in floats(b)?.into_iter().enumerate() {
                t[(i % n) * k + i / n] = v;
            }
            put(&mut out, format!("{layer}.weight"), vec![n, k], t)?;
        }
    }
    // A stored int8/uint8 matrix left unread is a weight behind an op this reader does not
    // know (a fused `MatMulIntegerToFloat`, say): name it rather than report a missing layer.
    for t in graph.initializer.iter() {
        if is_small_int(t) && t.dims.len() == 2 && !used.contains(&t.name) {
            if let Some(consumer) = g.consumers.get(t.name.as_str()).and_then(|c| c.first()) {
                return Err(g.unknown(consumer, &t.name));
            }
        }
    }
    if !out.contains_key(WORD_EMBEDDINGS) {
        return Err(OnnxError::NotBert(format!(
            "no word-embedding table is gathered by `input_ids` (its most used ops: {})",
            g.common_ops()
        )));
    }

    // Layer norms and biases: f32 initializers under their own names.
    for t in graph.initializer.iter() {
        if used.contains(&t.name) || !is_float(t) || out.contains_key(&t.name) {
            continue;
        }
        put(&mut out, t.name.clone(), dims(t)?, floats(t)?)?;
    }
    out.into_iter()
        .map(|(name, (shape, values))| {
            let t = Tensor::from_vec(values, shape, &Device::Cpu).map_err(|e| {
                OnnxError::BadTensor {
                    name: name.clone(),
                    problem: e.to_string(),
                }
            })?;
            Ok((name, t))
        })
        .collect()
}

/// Weights found so far: name to shape and values.
type Weights = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

fn put(out: &mut Weights, name: String, shape: Vec<usize>, values: Vec<f32>) -> Result<()> {
    if out.contains_key(&name) {
        return Err(OnnxError::Unmapped {
            weight: name,
            problem: "two tensors of the graph map to it".into(),
        });
    }
    out.insert(name, (shape, values));
    Ok(())
}

/// The graph's nodes and initializers, indexed by the tensors they read and write.
struct Graph<'a> {
    nodes: &'a [NodeProto],
    inits: HashMap<&'a str, &'a TensorProto>,
    consumers: HashMap<&'a str, Vec<&'a NodeProto>>,
    producer: HashMap<&'a str, &'a NodeProto>,
}

impl<'a> Graph<'a> {
    fn new(nodes: &'a [NodeProto], initializers: &'a [TensorProto]) -> Self {
        let mut consumers: HashMap<&str, Vec<&NodeProto>> = HashMap::new();
        let mut producer = HashMap::new();
        for n in nodes {
            for i in n.input.iter().filter(|i| !i.is_empty()) {
                consumers.entry(i.as_str()).or_default().push(n);
            }
            for o in &n.output {
                producer.insert(o.as_str(), n);
            }
        }
        Self {
            nodes,
            inits: initializers.iter().map(|t| (t.name.as_str(), t)).collect(),
            consumers,
            producer,
        }
    }

    /// The five most frequent op types, for messages about a graph that is not BERT.
    fn common_ops(&self) -> String {
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for n in self.nodes {
            *count.entry(n.op_type.as_str()).or_default() += 1;
        }
        let mut ops: Vec<_> = count.into_iter().collect();
        ops.sort_by_key(|&(op, c)| (std::cmp::Reverse(c), op));
        ops.iter()
            .take(5)
            .map(|(op, c)| format!("{op} x{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Where `tensor`'s values come from through ops that keep them (casts, reshapes): a
    /// graph input, or the first tensor another op computes. Bounded, as graphs may be forged.
    fn source_of(&self, mut tensor: &'a str) -> &'a str {
        for _ in 0..8 {
            match self.producer.get(tensor) {
                Some(n)
                    if matches!(
                        n.op_type.as_str(),
                        "Cast" | "Unsqueeze" | "Squeeze" | "Reshape" | "Identity" | "Flatten"
                    ) =>
                {
                    match n.input.first() {
                        Some(i) => tensor = i.as_str(),
                        None => break,
                    }
                }
                _ => break,
            }
        }
        tensor
    }

    fn unknown(&self, node: &NodeProto, weight: &str) -> OnnxError {
        OnnxError::UnknownOp {
            op: node.op_type.clone(),
            node: node.name.clone(),
            weight: weight.to_string(),
        }
    }

    fn init(&self, name: &str, weight: &str) -> Result<&'a TensorProto> {
        self.inits
            .get(name)
            .copied()
            .ok_or_else(|| OnnxError::Unmapped {
                weight: weight.to_string(),
                problem: format!("`{name}` is computed, not a stored tensor"),
            })
    }

    fn init_floats(&self, name: Option<&String>, weight: &str, what: &str) -> Result<Vec<f32>> {
        let name = name.ok_or_else(|| OnnxError::Unmapped {
            weight: weight.to_string(),
            problem: format!("its {what} is missing"),
        })?;
        floats(self.init(name, weight)?)
    }

    /// The one node reading `tensor`, on the path of `weight`.
    fn only_consumer(&self, tensor: &str, weight: &str) -> Result<&'a NodeProto> {
        match self.consumers.get(tensor).map(Vec::as_slice) {
            Some([one]) => Ok(one),
            found => Err(OnnxError::Unmapped {
                weight: weight.to_string(),
                problem: format!(
                    "its product `{tensor}` is read by {} nodes, not one",
                    found.map_or(0, <[_]>::len)
                ),
            }),
        }
    }

    /// Follows the product of a matmul to the Add of its bias: returns the layer (the bias's
    /// name without `.bias`) and, for a quantized one (`act_scale`: the run-time scale of its
    /// input), the weight scale's name.
    fn follow_to_bias(
        &self,
        matmul: &NodeProto,
        act_scale: Option<&str>,
        weight: &str,
    ) -> Result<(String, String)> {
        let quantized = act_scale.is_some();
        let mut tensor = matmul.output.first().map(String::as_str).unwrap_or("");
        let mut scale = None;
        // A bounded walk: Cast, then Mul by the scales, then Add; never more than a few ops.
        for _ in 0..8 {
            let node = self.only_consumer(tensor, weight)?;
            let other = node
                .input
                .iter()
                .map(String::as_str)
                .find(|i| *i != tensor)
                .unwrap_or("");
            match (node.op_type.as_str(), act_scale) {
                ("Cast", Some(_)) => {}
                ("Mul", Some(act)) if scale.is_none() => {
                    scale = Some(self.weight_scale(other, act, weight)?)
                }
                ("Add", _) => {
                    let Some(layer) = other
                        .strip_suffix(".bias")
                        .filter(|_| self.inits.contains_key(other))
                    else {
                        return Err(OnnxError::Unmapped {
                            weight: weight.to_string(),
                            problem: format!(
                                "its product is added to `{other}`, not to a stored `.bias`"
                            ),
                        });
                    };
                    let layer = layer.strip_prefix("bert.").unwrap_or(layer).to_string();
                    return match (quantized, scale) {
                        (false, _) => Ok((layer, String::new())),
                        (true, Some(s)) => Ok((layer, s)),
                        (true, None) => Err(OnnxError::Unmapped {
                            weight: weight.to_string(),
                            problem: "its product reaches the bias unscaled".into(),
                        }),
                    };
                }
                _ => return Err(self.unknown(node, weight)),
            }
            tensor = node.output.first().map(String::as_str).unwrap_or("");
        }
        Err(OnnxError::Unmapped {
            weight: weight.to_string(),
            problem: "its product does not reach a bias".into(),
        })
    }

    /// The run-time scale of a `MatMulInteger`'s input: the second output of the
    /// `DynamicQuantizeLinear` that makes it (dynamic quantization is what this reader
    /// knows; a statically quantized input's scale would be folded into the weight's).
    fn dynamic_activation_scale(&self, matmul: &NodeProto, weight: &str) -> Result<&'a str> {
        let input = matmul.input.first().map(String::as_str).unwrap_or("");
        match self.producer.get(input) {
            Some(q) if q.op_type == "DynamicQuantizeLinear" => q
                .output
                .get(1)
                .map(String::as_str)
                .ok_or_else(|| OnnxError::Unmapped {
                    weight: weight.to_string(),
                    problem: format!("`{}` has no scale output", q.name),
                }),
            Some(q) => Err(self.unknown(q, weight)),
            None => Err(OnnxError::Unmapped {
                weight: weight.to_string(),
                problem: format!("its input `{input}` is not quantized in the graph"),
            }),
        }
    }

    /// The weight's scale in the `Mul` after a `MatMulInteger`: the `Mul` that computes
    /// `factor` multiplies the input's run-time scale `act` by one stored tensor, the
    /// weight's scale.
    fn weight_scale(&self, factor: &str, act: &str, weight: &str) -> Result<String> {
        let unmapped = |problem: String| OnnxError::Unmapped {
            weight: weight.to_string(),
            problem,
        };
        let n = match self.producer.get(factor) {
            Some(n) if n.op_type == "Mul" => n,
            Some(n) => return Err(self.unknown(n, weight)),
            None => {
                return Err(unmapped(format!(
                    "its product is scaled by `{factor}`, which no Mul of the input's scale \
                     and a stored weight scale computes"
                )))
            }
        };
        match n.input.as_slice() {
            [a, w] | [w, a] if a == act && self.inits.contains_key(w.as_str()) => Ok(w.clone()),
            _ => Err(unmapped(format!(
                "`{}` multiplies {:?}, not the input's scale `{act}` by one stored scale",
                n.name, n.input
            ))),
        }
    }
}

fn bad(t: &TensorProto, problem: impl Into<String>) -> OnnxError {
    OnnxError::BadTensor {
        name: t.name.clone(),
        problem: problem.into(),
    }
}

/// The tensor's shape, checked: no negative dimension, at most [`MAX_TENSOR_ELEMENTS`]
/// values (so its bytes fit a 32-bit `usize`), and not stored in an external file.
fn dims(t: &TensorProto) -> Result<Vec<usize>> {
    if t.data_location == DataLocation::External as i32 {
        return Err(bad(
            t,
            "its data is in an external file; convert a model.onnx that holds its weights",
        ));
    }
    let shape: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(t, format!("dimension {d}"))))
        .collect::<Result<_>>()?;
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_TENSOR_ELEMENTS)
        .ok_or_else(|| bad(t, format!("shape {shape:?} is too large")))?;
    Ok(shape)
}

fn len(t: &TensorProto) -> Result<usize> {
    Ok(dims(t)?.iter().product())
}

fn is_float(t: &TensorProto) -> bool {
    [DataType::Float, DataType::Float16, DataType::Double]
        .iter()
        .any(|&d| t.data_type == d as i32)
}

fn type_name(t: &TensorProto) -> String {
    DataType::try_from(t.data_type)
        .map(|d| d.as_str_name().to_lowercase())
        .unwrap_or_else(|_| format!("type {}", t.data_type))
}

/// `raw_data` as `n` values of `size` bytes, or the typed field's values, whichever is used.
fn raw_or<T, U>(
    t: &TensorProto,
    size: usize,
    typed: &[T],
    from_raw: impl Fn(&[u8]) -> U,
    from_typed: impl Fn(&T) -> U,
) -> Result<Vec<U>> {
    let n = len(t)?;
    if !t.raw_data.is_empty() {
        if Some(t.raw_data.len()) != n.checked_mul(size) {
            return Err(bad(
                t,
                format!("{} bytes of data for {n} values", t.raw_data.len()),
            ));
        }
        return Ok(t.raw_data.chunks_exact(size).map(from_raw).collect());
    }
    if typed.len() != n {
        return Err(bad(t, format!("{} values for a shape of {n}", typed.len())));
    }
    Ok(typed.iter().map(from_typed).collect())
}

/// A floating-point tensor's values as f32.
fn floats(t: &TensorProto) -> Result<Vec<f32>> {
    let f16 = |bits: u16| half::f16::from_bits(bits).to_f32();
    match DataType::try_from(t.data_type) {
        Ok(DataType::Float) => raw_or(
            t,
            4,
            &t.float_data,
            |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            |&v| v,
        ),
        Ok(DataType::Float16) => raw_or(
            t,
            2,
            &t.int32_data,
            |b| f16(u16::from_le_bytes([b[0], b[1]])),
            |&v| f16(v as u16),
        ),
        Ok(DataType::Double) => raw_or(
            t,
            8,
            &t.double_data,
            |b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32,
            |&v| v as f32,
        ),
        _ => Err(bad(
            t,
            format!(
                "{} where a floating-point tensor was expected",
                type_name(t)
            ),
        )),
    }
}

fn is_small_int(t: &TensorProto) -> bool {
    [DataType::Int8, DataType::Uint8]
        .iter()
        .any(|&d| t.data_type == d as i32)
}

/// An int8 or uint8 tensor's values (raw bytes, or the typed field `int32_data`, whose
/// values must lie in the type's range).
fn small_ints(t: &TensorProto) -> Result<Vec<i32>> {
    let (read, range): (fn(&[u8]) -> i32, _) = match DataType::try_from(t.data_type) {
        Ok(DataType::Int8) => (|b| b[0] as i8 as i32, -128..=127),
        Ok(DataType::Uint8) => (|b| b[0] as i32, 0..=255),
        _ => {
            return Err(bad(
                t,
                format!("{} where int8 or uint8 was expected", type_name(t)),
            ))
        }
    };
    let values = raw_or(t, 1, &t.int32_data, read, |&v| v)?;
    if let Some(v) = values.iter().find(|v| !range.contains(*v)) {
        return Err(bad(t, format!("value {v} outside its type's range")));
    }
    Ok(values)
}
