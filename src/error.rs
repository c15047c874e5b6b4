//! The library's one error type.

use thiserror::Error;

/// Every fallible operation in the library returns this error.
///
/// Messages are written for a person: they say what was wrong with which input and, where it
/// helps, what to do about it.
#[derive(Debug, Error)]
pub enum Error {
    /// The bytes are not a model bundle at all (wrong magic, not GGUF).
    #[error("not a Cairn model bundle: {0}")]
    NotABundle(String),

    /// The bundle is GGUF but written for another architecture or by a newer Cairn.
    #[error("unsupported model bundle: {0}")]
    UnsupportedBundle(String),

    /// The bundle is cut short or its sections point outside the file.
    #[error("model bundle is truncated or corrupt: {0}")]
    CorruptBundle(String),

    /// A tensor the architecture needs is absent from the bundle.
    #[error("model bundle is missing tensor `{0}`")]
    MissingTensor(String),

    /// A tensor has a shape other than the configuration implies.
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?}")]
    WrongShape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    /// A metadata key is missing or has the wrong type.
    #[error("model bundle metadata `{key}`: {problem}")]
    Metadata { key: String, problem: String },

    /// The source model folder (for conversion) is unusable.
    #[error("cannot convert model: {0}")]
    Convert(String),

    /// An ONNX model (for conversion) is not a readable BERT encoder.
    #[cfg(all(feature = "encoder", not(target_arch = "wasm32")))]
    #[error("cannot convert model: {0}")]
    Onnx(#[from] crate::model::onnx::OnnxError),

    /// Tokenization failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),

    /// An argument is out of range (unknown quantization, empty batch where one is needed, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The bytes are not a Cairn index at all.
    #[error("not a Cairn index: {0}")]
    NotAnIndex(String),

    /// The index was written in a format version this build does not read.
    #[error("index format version {found} is not supported (this build reads versions {min} to {max}); rebuild the index with this version of `cairn index`")]
    UnsupportedIndexVersion { found: u32, min: u32, max: u32 },

    /// An index folder's manifest (`cairn-entry.json`) of a layout this build does not read,
    /// or naming files this build cannot use.
    #[error("{0}")]
    UnsupportedManifest(String),

    /// The index is cut short, fails its checksum, or its sections are inconsistent.
    #[error("index is truncated or corrupt: {0}")]
    CorruptIndex(String),

    /// A file of a sharded index is cut short, fails its checksum, is not the file the meta
    /// file names, or its contents are inconsistent. The caller evicts it and fetches it again.
    #[error("index file {file} is truncated or corrupt: {reason}")]
    CorruptPart { file: String, reason: String },

    /// The index was built with another model than the one loaded.
    #[error("the index was built with model {index} but the loaded model is {model}; rebuild the index or load the model it was built with")]
    ModelMismatch { index: String, model: String },

    /// A failure inside the tensor library.
    #[error("tensor computation failed: {0}")]
    #[cfg(feature = "encoder")]
    Tensor(#[from] candle_core::Error),

    /// An I/O error while reading or writing a file.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    /// A JSON document (model configs) could not be parsed.
    #[error("invalid JSON in {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },

    /// The GPU backend (feature `gpu`) failed: no usable device, a size past the device's
    /// limits, or work the device rejected.
    #[error("GPU backend: {0}")]
    Gpu(String),
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<cairn_kernels::Error> for Error {
    fn from(e: cairn_kernels::Error) -> Self {
        match e {
            cairn_kernels::Error::Weights(m) => Error::CorruptBundle(m),
            cairn_kernels::Error::Shape(m) => Error::InvalidArgument(m),
        }
    }
}
