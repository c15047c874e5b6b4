//! Times each available kernel on the encoder's shapes (MiniLM: hidden 384, FFN 1536) for a
//! 10-token query and a batch of passages: `cargo run --release -p cairn-kernels --example
//! gemm`. Prints GMAC/s per kernel and shape; single-threaded unless the shape is split.

use std::time::Instant;

use cairn_kernels::{gemm, Kernel, PackedMatrix, QuantizedRows};

fn main() {
    let shapes = [
        ("query qkv/out", 10, 384, 384),
        ("query ffn up", 10, 1536, 384),
        ("query ffn down", 10, 384, 1536),
        ("batch ffn up", 2048, 1536, 384),
        ("batch ffn down", 2048, 384, 1536),
    ];
    for (name, m, n, k) in shapes {
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919) % 255) as f32 / 127.0 - 1.0)
            .collect();
        let wf: Vec<f32> = (0..n * k)
            .map(|i| ((i * 104729) % 251) as f32 / 125.0 - 1.0)
            .collect();
        let w = PackedMatrix::from_f32(&wf, n, k).unwrap();
        let mut out = vec![0f32; m * n];
        for kernel in Kernel::available() {
            let mut rows = QuantizedRows::new(kernel);
            let reps = (2e9 / (m * n * k) as f64).clamp(3.0, 2000.0) as usize;
            let t0 = Instant::now();
            for _ in 0..reps {
                rows.quantize(kernel, &x, m, k).unwrap();
                gemm(&rows, &w, None, &mut out).unwrap();
            }
            let secs = t0.elapsed().as_secs_f64() / reps as f64;
            println!(
                "{name:16} {m:5}x{n:5}x{k:5} {:12} {:9.3} ms {:7.1} GMAC/s",
                kernel.name(),
                secs * 1e3,
                (m * n * k) as f64 / secs / 1e9
            );
        }
    }
}
