//! The GPU backend against the CPU path, on the native adapter (in CI and the sandbox: Mesa's
//! lavapipe, a Vulkan driver on the CPU).
//!
//! Without an adapter every test prints `SKIPPED: no GPU adapter (...)` with wgpu's reason and
//! returns, unless `CAIRN_REQUIRE_GPU` is set (`make test-native`, so CI): then it fails.
#![cfg(all(feature = "gpu", not(target_arch = "wasm32")))]

mod common;

use std::time::Instant;

use cairn::gpu::{GpuContext, GpuEncoder, GpuScorer};
use cairn::index::dense::{self, DenseView};
use cairn::kernels::PackedMatrix;
use cairn::{Encoder, Role};
use common::{cosine, read_model_file};
use serde::Deserialize;

/// The native adapter, or `None` after printing why there is none.
fn context(test: &str) -> Option<GpuContext> {
    match pollster::block_on(GpuContext::new()) {
        Ok(Some(ctx)) => {
            println!("{test}: adapter {}", ctx.describe());
            Some(ctx)
        }
        Ok(None) => {
            let instance = wgpu::Instance::new(
                wgpu::InstanceDescriptor::new_without_display_handle_from_env(),
            );
            let reason = match pollster::block_on(
                instance.request_adapter(&wgpu::RequestAdapterOptions::default()),
            ) {
                Err(e) => e.to_string(),
                Ok(a) => format!("an adapter appeared on a second try: {:?}", a.get_info()),
            };
            // `make test` (and so CI, which installs lavapipe) requires an adapter: there a
            // missing one is a failure, not a silent pass.
            if std::env::var_os("CAIRN_REQUIRE_GPU").is_some() {
                panic!(
                    "{test}: no GPU adapter ({reason}) and CAIRN_REQUIRE_GPU is set; install \
                     Mesa's lavapipe (apt-get install mesa-vulkan-drivers) or unset it"
                );
            }
            println!("SKIPPED: no GPU adapter ({reason}); {test} did not run");
            None
        }
        Err(e) => panic!("{test}: an adapter exists but gave no device: {e}"),
    }
}

fn sentences() -> Vec<String> {
    #[derive(Deserialize)]
    struct Sentences {
        sentences: Vec<String>,
    }
    let s: Sentences =
        serde_json::from_str(include_str!("fixtures/parity/sentences.json")).unwrap();
    s.sentences
}

/// GPU vectors against the CPU's for every parity sentence, alone and in padded batches.
///
/// The fixture's last sentences fill the whole window (256 tokens), and on lavapipe each
/// such row costs about ten seconds: the first of them runs alone, the others only in the
/// batch that also pads the shortest sentence to the full window (the most padding a row
/// can have, so the strongest check that padding does not leak into a vector). Every
/// sentence is compared with the CPU at least once.
fn check_encoder(file: &str) {
    let Some(ctx) = context(file) else { return };
    let bytes = read_model_file(file);
    let cpu = Encoder::from_bytes(&bytes).unwrap();
    let gpu = GpuEncoder::from_bytes(&ctx, &bytes).unwrap();
    assert_eq!(gpu.dim(), cpu.dim());
    let sentences = sentences();
    let reference = cpu.embed(&sentences, Role::Query).unwrap();
    let tokens: Vec<usize> = sentences
        .iter()
        .map(|s| cpu.tokenize(&[s.as_str()], Role::Query).unwrap().seq)
        .collect();
    let window = *tokens.iter().max().unwrap();
    let (full, short): (Vec<usize>, Vec<usize>) =
        (0..sentences.len()).partition(|&i| tokens[i] == window);
    assert!(
        full.len() >= 2 && !short.is_empty(),
        "{file}: the fixture should have sentences that fill the window and some that do not"
    );

    // One sentence per call: all but the second and later full-window ones.
    let mut worst = (f32::MAX, 0);
    for (i, s) in sentences.iter().enumerate() {
        if full[1..].contains(&i) {
            continue;
        }
        let batch = cpu.tokenize(&[s.as_str()], Role::Query).unwrap();
        let v = pollster::block_on(gpu.embed(&batch)).unwrap();
        assert_eq!(v.len(), 1);
        let norm: f32 = v[0].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(
            (norm - 1.0).abs() < 1e-4,
            "{file}: vector {i} has norm {norm}"
        );
        let c = cosine(&v[0], &reference[i]);
        println!(
            "{file}: sentence {i:2} ({:3} tokens) cosine {c:.6}",
            batch.seq
        );
        if c < worst.0 {
            worst = (c, i);
        }
        assert!(
            c >= 0.999,
            "{file}: sentence {i} ({:?}) GPU vs CPU cosine {c:.6} < 0.999",
            s.chars().take(40).collect::<String>()
        );
    }
    println!(
        "{file}: single sentences: min cosine {:.6} (sentence {})",
        worst.0, worst.1
    );

    // Padded batches (padding must not leak into a vector): the shorter sentences in
    // batches of 7, in fixture order, then the shortest with the other full-window ones.
    let shortest = *short.iter().min_by_key(|&&i| tokens[i]).unwrap();
    let mut batches: Vec<Vec<usize>> = short.chunks(7).map(<[usize]>::to_vec).collect();
    batches.push([&[shortest], &full[1..]].concat());
    let mut worst_batched = f32::MAX;
    for members in &batches {
        let refs: Vec<&str> = members.iter().map(|&i| sentences[i].as_str()).collect();
        let batch = cpu.tokenize(&refs, Role::Query).unwrap();
        let vs = pollster::block_on(gpu.embed(&batch)).unwrap();
        assert_eq!(vs.len(), members.len());
        for (v, &i) in vs.iter().zip(members) {
            let c = cosine(v, &reference[i]);
            worst_batched = worst_batched.min(c);
            assert!(c >= 0.999, "{file}: batched sentence {i} cosine {c:.6}");
        }
    }
    println!(
        "{file}: padded batches ({} of up to 7 shorter sentences; the {}-token sentence {shortest} \
         with sentences {:?} of {window}): min cosine {worst_batched:.6}",
        batches.len() - 1,
        tokens[shortest],
        &full[1..]
    );
}

#[test]
fn q8_0_encoder_matches_cpu() {
    check_encoder("all-minilm-l6-v2-q8_0.gguf");
}

#[test]
fn q4_0_encoder_matches_cpu() {
    check_encoder("all-minilm-l6-v2-q4_0.gguf");
}

/// The small bundle: a flat `q3_k` word-embedding table (uploaded as f32) and `q5_0`
/// matrices (widened to `q8_0`).
#[test]
fn q4_mix_encoder_matches_cpu() {
    check_encoder("all-minilm-l6-v2-q4_mix.gguf");
}

#[test]
fn encoder_rejects_bad_batches() {
    let Some(ctx) = context("encoder_rejects_bad_batches") else {
        return;
    };
    let bytes = read_model_file("all-minilm-l6-v2-q4_0.gguf");
    let cpu = Encoder::from_bytes(&bytes).unwrap();
    let gpu = GpuEncoder::from_bytes(&ctx, &bytes).unwrap();
    let good = cpu.tokenize(&["hello world"], Role::Query).unwrap();
    let mut bad = good.clone();
    bad.ids[1] = 1_000_000;
    assert!(pollster::block_on(gpu.embed(&bad)).is_err());
    let mut bad = good.clone();
    bad.mask.pop();
    assert!(pollster::block_on(gpu.embed(&bad)).is_err());
    let mut empty = good.clone();
    empty.batch = 0;
    empty.ids.clear();
    empty.type_ids.clear();
    empty.mask.clear();
    assert!(pollster::block_on(gpu.embed(&empty)).unwrap().is_empty());
    assert!(GpuEncoder::from_bytes(&ctx, b"GGUF but not really").is_err());
}

/// Timings on this adapter: one query, a batch of 64 passages. Slow on lavapipe (a batch of
/// 64 takes half a minute there), so only on request: `-- --ignored encoder_timings`.
#[test]
#[ignore = "timings only; run with --ignored"]
fn encoder_timings() {
    let Some(ctx) = context("encoder_timings") else {
        return;
    };
    let bytes = read_model_file("all-minilm-l6-v2-q8_0.gguf");
    let cpu = Encoder::from_bytes(&bytes).unwrap();
    let gpu = GpuEncoder::from_bytes(&ctx, &bytes).unwrap();
    let query = cpu
        .tokenize(&["how do I share data between threads"], Role::Query)
        .unwrap();
    pollster::block_on(gpu.embed(&query)).unwrap(); // warm-up: pipelines compile lazily
    let runs = 5;
    let start = Instant::now();
    for _ in 0..runs {
        pollster::block_on(gpu.embed(&query)).unwrap();
    }
    let single = start.elapsed().as_secs_f64() * 1000.0 / runs as f64;
    let start = Instant::now();
    for _ in 0..runs {
        cpu.embed(&["how do I share data between threads"], Role::Query)
            .unwrap();
    }
    let single_cpu = start.elapsed().as_secs_f64() * 1000.0 / runs as f64;

    let sentences = sentences();
    let passages: Vec<&str> = (0..64).map(|i| sentences[i % 8].as_str()).collect();
    let batch = cpu.tokenize(&passages, Role::Document).unwrap();
    let start = Instant::now();
    let vs = pollster::block_on(gpu.embed(&batch)).unwrap();
    let batch_ms = start.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(vs.len(), 64);
    let start = Instant::now();
    cpu.embed_batched(&passages, Role::Document, 64).unwrap();
    let batch_cpu = start.elapsed().as_secs_f64() * 1000.0;
    println!(
        "encoder on {}: one query ({} tokens) {single:.1} ms (CPU {single_cpu:.1} ms); \
         batch of 64 x {} tokens {batch_ms:.0} ms (CPU {batch_cpu:.0} ms)",
        ctx.describe(),
        query.seq,
        batch.seq
    );
}

/// Deterministic pseudo-random unit vectors (xorshift), with some structure shared between
/// them so Hamming codes are informative.
fn unit_vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let centers: Vec<Vec<f32>> = (0..16)
        .map(|_| (0..dim).map(|_| next()).collect())
        .collect();
    (0..n)
        .map(|i| {
            let c = &centers[i % centers.len()];
            let v: Vec<f32> = c.iter().map(|x| x + 0.8 * next()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / norm).collect()
        })
        .collect()
}

fn view<'a>(d: &'a dense::DenseData, packed: Option<&'a PackedMatrix>) -> DenseView<'a> {
    DenseView {
        dim: d.dim,
        mean: &d.mean,
        codes: &d.codes,
        rows: &d.rows,
        scales: &d.scales,
        packed,
    }
}

/// GPU top-k equals `DenseView::search` for `queries`; returns the mean GPU search time (ms).
fn check_scorer(ctx: &GpuContext, data: &dense::DenseData, queries: &[Vec<f32>], k: usize) -> f64 {
    // Small indexes are packed for the CPU's kernels at load, as `Index::from_bytes` does.
    let packed = (data.scales.len() <= dense::EXACT_SCAN_LIMIT)
        .then(|| dense::pack(&data.rows, &data.scales, data.dim).unwrap());
    let v = view(data, packed.as_ref());
    let scorer = GpuScorer::new(ctx, &v).unwrap();
    assert_eq!(scorer.len(), v.len());
    pollster::block_on(scorer.search(&v, &queries[0], k)).unwrap(); // warm-up
    let mut total = 0.0;
    for (qi, q) in queries.iter().enumerate() {
        let start = Instant::now();
        let gpu = pollster::block_on(scorer.search(&v, q, k)).unwrap();
        total += start.elapsed().as_secs_f64() * 1000.0;
        let cpu = v.search(q, k).unwrap();
        assert_eq!(gpu, cpu, "query {qi}: GPU top-{k} differs from the CPU's");
    }
    total / queries.len() as f64
}

#[test]
fn scorer_matches_cpu_search() {
    let Some(ctx) = context("scorer_matches_cpu_search") else {
        return;
    };
    let dim = 384;
    let vectors = unit_vectors(30_000, dim, 7);
    let data = dense::build(&vectors, dim);
    // Queries: stored vectors (an exact match exists) and fresh ones.
    let mut queries: Vec<Vec<f32>> = (0..10).map(|i| vectors[i * 2_999].clone()).collect();
    queries.extend(unit_vectors(10, dim, 99));
    // 30k rows: binary candidates, then int8 rescoring.
    let ms = check_scorer(&ctx, &data, &queries, 10);
    println!(
        "scorer: 30k x {dim}, top-10 identical to the CPU for {} queries; {ms:.1} ms a search",
        queries.len()
    );
    // Other k, including more than the binary candidates.
    check_scorer(&ctx, &data, &queries[..3], 1);
    check_scorer(&ctx, &data, &queries[..3], 500);

    // 5k rows: the exact int8 scan.
    let small = dense::build(&vectors[..5_000], dim);
    check_scorer(&ctx, &small, &queries, 10);

    // Odd dimension (rows padded to whole words) and a tiny index.
    let odd = unit_vectors(3_000, 99, 3);
    let odd_data = dense::build(&odd, 99);
    check_scorer(&ctx, &odd_data, &odd[..5], 10);
    let tiny = dense::build(&odd[..20], 99);
    check_scorer(&ctx, &tiny, &odd[..3], 10);

    let v = view(&data, None);
    let scorer = GpuScorer::new(&ctx, &v).unwrap();
    assert!(pollster::block_on(scorer.search(&v, &queries[0], 0))
        .unwrap()
        .is_empty());
    assert!(pollster::block_on(scorer.search(&v, &queries[0][..10], 10)).is_err());
    let mut nan = queries[0].clone();
    nan[3] = f32::NAN;
    assert!(pollster::block_on(scorer.search(&v, &nan, 10)).is_err());
}

/// 100k passages (MiniLM's 384 dimensions): the scale the backend is meant for.
#[test]
fn scorer_handles_100k_vectors() {
    let Some(ctx) = context("scorer_handles_100k_vectors") else {
        return;
    };
    let dim = 384;
    let vectors = unit_vectors(100_000, dim, 11);
    let data = dense::build(&vectors, dim);
    let queries: Vec<Vec<f32>> = (0..5).map(|i| vectors[i * 19_997].clone()).collect();
    let gpu_ms = check_scorer(&ctx, &data, &queries, 10);
    let v = view(&data, None);
    let start = Instant::now();
    for q in &queries {
        v.search(q, 10).unwrap();
    }
    let cpu_ms = start.elapsed().as_secs_f64() * 1000.0 / queries.len() as f64;
    println!(
        "scorer: 100k x {dim} on {}: {gpu_ms:.1} ms a search (CPU {cpu_ms:.1} ms)",
        ctx.describe()
    );
}

/// The engine's GPU session (`GpuSession`, what `initGpu` builds in the browser): built for
/// one index from the bytes the CPU encoder was loaded from, it embeds as the CPU does, scans
/// as the CPU ranks, and never scans an index it was not built for.
#[test]
fn session_serves_only_its_own_index() {
    use cairn::gpu::{now_ms, GpuSession, Preference};
    use cairn::index::{build_index, Index, Passage};
    use std::rc::Rc;
    let Some(ctx) = context("session_serves_only_its_own_index") else {
        return;
    };
    // One read of the bundle, as the engine's loadModel(bytes, true) does: the CPU encoder
    // takes a copy, the session the original.
    let bytes = read_model_file("all-minilm-l6-v2-q4_mix.gguf");
    let bundle = cairn::model::gguf::read_bundle(&bytes).unwrap();
    let cpu = Encoder::from_bundle(bundle.duplicate().unwrap()).unwrap();
    let texts = sentences();
    let passages: Vec<Passage> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| Passage {
            id: format!("p{i}"),
            url: format!("/p{i}.html"),
            anchor: String::new(),
            title: format!("Passage {i}"),
            heading: String::new(),
            text: t.clone(),
            ..Default::default()
        })
        .collect();
    let vectors = cpu.embed(&texts, Role::Document).unwrap();
    let built = build_index(&passages, &vectors, cpu.fingerprint(), &cpu.config().name).unwrap();
    let index = Rc::new(Index::from_bytes(built.clone()).unwrap());
    let session = pollster::block_on(GpuSession::build(
        &ctx,
        index.clone(),
        &cpu,
        bundle,
        Preference::Gpu,
        &now_ms,
    ))
    .unwrap();
    let c = session.calibration();
    assert!(c.accepted, "{}", c.reason);
    assert!(session.query_on_gpu() && session.scan_on_gpu());
    assert!(session.serves(&index));

    let query = "a question about the weather tomorrow";
    let gpu_vector = pollster::block_on(session.embed_query(&cpu, query)).unwrap();
    let cpu_vector = cpu.embed_query(query).unwrap();
    assert!(cosine(&gpu_vector, &cpu_vector) >= 0.999);

    let k = 5;
    let ids = |hits: &[(u32, f32)]| hits.iter().take(k).map(|h| h.0).collect::<Vec<_>>();
    let on_gpu = pollster::block_on(session.scan(&index, &cpu_vector, k))
        .unwrap()
        .expect("its own index is scanned on the GPU");
    let on_cpu = index.dense().search(&cpu_vector, k).unwrap();
    assert_eq!(ids(&on_gpu), ids(&on_cpu));

    // The same bytes loaded again are another index (as after a `loadIndex`): not scanned.
    let other = Index::from_bytes(built).unwrap();
    assert!(!session.serves(&other));
    assert!(pollster::block_on(session.scan(&other, &cpu_vector, k))
        .unwrap()
        .is_none());
}
