//! The dense index scan on the GPU: [`DenseView::search`], with the same answers.
//!
//! The codes, int8 rows and scales are uploaded once. Per search, as on the CPU: small
//! indexes score every row in int8; large ones rank every binary code by Hamming distance to
//! the query's, keep the best [`BINARY_CANDIDATES`] (exactly the CPU's set: ties go to the
//! lower row) and score those. The GPU then selects the best `k +` [`RESCORE_MARGIN`] rows
//! by its own scores (`select.wgsl`), and only those row numbers are read back. GPUs may
//! fuse multiply-adds, so their float sums can differ from the CPU's in the last bits: the
//! CPU rescores the returned rows with [`DenseView::score`] and keeps the top `k`, so the
//! result is exactly [`DenseView::search`]'s (unless more than the margin's worth of rows
//! sat within a rounding error of the k-th score).

use super::{
    grid, poll_now, read_back, record, shader, storage, storage_init, words_of, GpuContext, Kernel,
    Scopes, Slot, Step,
};
use crate::index::dense::{
    code, top_k, words_per_code, DenseQuery, DenseView, BINARY_CANDIDATES, EXACT_SCAN_LIMIT,
};
use crate::{Error, Result};

/// Rows beyond `k` that the GPU returns for the CPU's exact rescoring.
pub const RESCORE_MARGIN: usize = 32;

struct Kernels {
    hamming: Kernel,
    rescore: Kernel,
    histogram: Kernel,
    pick: Kernel,
    count: Kernel,
    scan: Kernel,
    scatter: Kernel,
}

/// A dense index's vectors on the GPU. Built once per index ([`GpuScorer::new`]); each
/// [`GpuScorer::search`] uploads the query (and its binary code), runs one submission and
/// reads back `k + 32` row numbers.
pub struct GpuScorer {
    ctx: GpuContext,
    dim: usize,
    len: usize,
    /// u32 words per binary code.
    code_words: usize,
    /// u32 words per int8 row (rows are padded to whole words).
    row_words: usize,
    codes: wgpu::Buffer,
    rows: wgpu::Buffer,
    scales: wgpu::Buffer,
    kernels: Kernels,
}

impl GpuScorer {
    /// Uploads `view`'s codes, rows and scales (for MiniLM, 432 bytes a passage).
    pub fn new(ctx: &GpuContext, view: &DenseView<'_>) -> Result<Self> {
        let (dim, len) = (view.dim, view.len());
        let wpc = words_per_code(dim);
        if view.codes.len() != len * wpc || view.rows.len() != len * dim || view.mean.len() != dim {
            return Err(Error::InvalidArgument(format!(
                "dense view of {len} rows of {dim} has {} code words, {} row values and a \
                 mean of {}",
                view.codes.len(),
                view.rows.len(),
                view.mean.len()
            )));
        }
        if len > u32::MAX as usize / 2 {
            return Err(Error::Gpu(format!(
                "{len} rows are too many for the GPU scorer"
            )));
        }
        let row_words = dim.div_ceil(4);
        let row_bytes = (len * row_words * 4) as u64;
        if row_bytes > ctx.max_binding() {
            return Err(Error::Gpu(format!(
                "the index's int8 rows take {row_bytes} bytes; this device binds at most {} in \
                 one buffer",
                ctx.max_binding()
            )));
        }
        let device = &ctx.device;
        let usage = wgpu::BufferUsages::STORAGE;
        let scopes = Scopes::push(device);
        let code_words: Vec<u32> = view
            .codes
            .iter()
            .flat_map(|&w| [w as u32, (w >> 32) as u32])
            .collect();
        let codes = storage_init(device, "codes", bytemuck::cast_slice(&code_words), usage);
        let rows = if dim.is_multiple_of(4) {
            storage_init(device, "rows", bytemuck::cast_slice(view.rows), usage)
        } else {
            let mut padded = vec![0u8; len * row_words * 4];
            for (dst, src) in padded
                .chunks_exact_mut(row_words * 4)
                .zip(view.rows.chunks_exact(dim))
            {
                dst[..dim].copy_from_slice(bytemuck::cast_slice(src));
            }
            storage_init(device, "rows", &padded, usage)
        };
        let scales = storage_init(device, "scales", bytemuck::cast_slice(view.scales), usage);
        let kernels = build_kernels(device);
        let errors = scopes.pop("uploading the index");
        let kernels = kernels?;
        if let Some(Err(e)) = poll_now(errors) {
            return Err(e);
        }
        Ok(Self {
            ctx: ctx.clone(),
            dim,
            len,
            code_words: 2 * wpc,
            row_words,
            codes,
            rows,
            scales,
            kernels,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `k` passages closest to `query` (a unit vector), best first, as `(passage,
    /// score)`: exactly what `view.search(query, k)` returns. `view` must be the one the
    /// scorer was built from (the CPU rescores the GPU's short list from it).
    pub async fn search(
        &self,
        view: &DenseView<'_>,
        query: &[f32],
        k: usize,
    ) -> Result<Vec<(u32, f32)>> {
        if view.dim != self.dim || view.len() != self.len {
            return Err(Error::InvalidArgument(format!(
                "the view has {} rows of {}; the GPU scorer was built from {} rows of {}",
                view.len(),
                view.dim,
                self.len,
                self.dim
            )));
        }
        if query.len() != self.dim {
            return Err(Error::InvalidArgument(format!(
                "query of {} values for vectors of {}",
                query.len(),
                self.dim
            )));
        }
        let q = DenseQuery::new(query)?;
        let n = self.len;
        if k == 0 || n == 0 {
            return Ok(Vec::new());
        }
        let want = k.saturating_add(RESCORE_MARGIN);
        let candidates = BINARY_CANDIDATES.max(k);
        let rows = if n <= EXACT_SCAN_LIMIT || candidates >= n {
            if want >= n {
                // Every row comes back anyway: nothing for the GPU to save.
                return view.search(query, k);
            }
            self.top_rows(view, &q, query, None, want).await?
        } else {
            self.top_rows(view, &q, query, Some(candidates), want)
                .await?
        };
        let mut scored: Vec<(u32, f32)> = rows
            .into_iter()
            .filter(|&r| (r as usize) < n)
            .map(|r| (r, view.score(&q, r as usize)))
            .collect();
        top_k(&mut scored, k);
        Ok(scored)
    }

    /// The GPU's best `want` rows (`want` < `len`) by its own scores, in ascending row order:
    /// over every row, or over the `hamming` rows nearest in Hamming distance (all of them
    /// when `want` >= `hamming`).
    async fn top_rows(
        &self,
        view: &DenseView<'_>,
        rounded: &DenseQuery,
        query: &[f32],
        hamming: Option<usize>,
        want: usize,
    ) -> Result<Vec<u32>> {
        let device = &self.ctx.device;
        let n = self.len;
        let usage = wgpu::BufferUsages::STORAGE;
        let scopes = Scopes::push(device);

        // The query as the CPU scores it (rounded to int8 blocks), so the short list ranks as
        // the CPU's scan does; the binary code stays the float query's, as on the CPU.
        let dequantized = rounded.dequantized();
        let query_buf = storage_init(device, "query", bytemuck::cast_slice(&dequantized), usage);
        let mut qcode = vec![0u64; words_per_code(self.dim)];
        code(query, view.mean, &mut qcode);
        let qcode: Vec<u32> = qcode
            .iter()
            .flat_map(|&w| [w as u32, (w >> 32) as u32])
            .collect();
        let qcode_buf = storage_init(device, "query code", bytemuck::cast_slice(&qcode), usage);
        let none = wgpu::BufferUsages::empty();
        let keys = storage(device, "keys", (n * 4) as u64, none);
        let hist = storage(device, "histogram", 256 * 4, none);
        let chunks = storage(device, "chunks", (n.div_ceil(256) * 8) as u64, none);
        let state = |want: usize| {
            storage_init(
                device,
                "select state",
                bytemuck::cast_slice(&[0u32, want as u32, 0, 0]),
                usage,
            )
        };
        // Candidate buffers: only the Hamming path uses them.
        let m = hamming.unwrap_or(0);
        let first_state = state(hamming.unwrap_or(want));
        let second_state = state(want);
        let cand = storage(
            device,
            "candidates",
            (m * 4) as u64,
            wgpu::BufferUsages::COPY_SRC,
        );
        let keys2 = storage(device, "candidate keys", (m * 4) as u64, none);
        let best = storage(
            device,
            "best",
            (want * 4) as u64,
            wgpu::BufferUsages::COPY_SRC,
        );
        let dummy = &self.scales;

        let k = &self.kernels;
        let mut steps = Vec::new();
        let scan_params = |count: usize, use_ids: bool| {
            [
                count as u32,
                self.code_words as u32,
                self.dim as u32,
                self.row_words as u32,
                use_ids as u32,
                0,
                0,
                0,
            ]
        };
        let (gx, gy) = grid(device, n.div_ceil(256) as u32);
        // The rows whose candidates the final selection picks from, and how many.
        let result = match hamming {
            None => {
                steps.push(Step {
                    kernel: &k.rescore,
                    params: scan_params(n, false),
                    buffers: vec![&self.rows, &query_buf, &self.scales, dummy, &keys],
                    grid: (gx, gy, 1),
                });
                self.select(
                    &mut steps,
                    n,
                    &keys,
                    None,
                    &hist,
                    &first_state,
                    &chunks,
                    &best,
                );
                (&best, want)
            }
            Some(m) => {
                steps.push(Step {
                    kernel: &k.hamming,
                    params: scan_params(n, false),
                    buffers: vec![&self.codes, &qcode_buf, dummy, dummy, &keys],
                    grid: (gx, gy, 1),
                });
                self.select(
                    &mut steps,
                    n,
                    &keys,
                    None,
                    &hist,
                    &first_state,
                    &chunks,
                    &cand,
                );
                if want >= m {
                    (&cand, m)
                } else {
                    let (cx, cy) = grid(device, m.div_ceil(256) as u32);
                    steps.push(Step {
                        kernel: &k.rescore,
                        params: scan_params(m, true),
                        buffers: vec![&self.rows, &query_buf, &self.scales, &cand, &keys2],
                        grid: (cx, cy, 1),
                    });
                    let ids = Some(&cand);
                    self.select(
                        &mut steps,
                        m,
                        &keys2,
                        ids,
                        &hist,
                        &second_state,
                        &chunks,
                        &best,
                    );
                    (&best, want)
                }
            }
        };
        let (result, count) = result;
        let bytes = (count * 4) as u64;
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("rows readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("dense search"),
        });
        record(device, &mut encoder, &steps);
        encoder.copy_buffer_to_buffer(result, 0, &staging, 0, bytes);
        self.ctx.queue.submit([encoder.finish()]);
        scopes.pop("scanning the index").await?;
        let bytes = read_back(device, &staging, bytes).await?;
        Ok(words_of(&bytes))
    }

    /// Records a selection of the `want` smallest (key, position) pairs among `count` keys
    /// (`want` was written into `state`); see `select.wgsl`. With `ids`, the rows written to
    /// `out` are `ids[position]`.
    #[allow(clippy::too_many_arguments)]
    fn select<'a>(
        &'a self,
        steps: &mut Vec<Step<'a>>,
        count: usize,
        keys: &'a wgpu::Buffer,
        ids: Option<&'a wgpu::Buffer>,
        hist: &'a wgpu::Buffer,
        state: &'a wgpu::Buffer,
        chunks: &'a wgpu::Buffer,
        out: &'a wgpu::Buffer,
    ) {
        let k = &self.kernels;
        let nchunks = count.div_ceil(256) as u32;
        let (gx, gy) = grid(&self.ctx.device, nchunks);
        let use_ids = ids.is_some() as u32;
        let buffers = vec![keys, ids.unwrap_or(&self.scales), hist, state, chunks, out];
        let params = |shift: u32| [count as u32, shift, nchunks, use_ids, 0, 0, 0, 0];
        for shift in [24, 16, 8, 0] {
            steps.push(Step {
                kernel: &k.histogram,
                params: params(shift),
                buffers: buffers.clone(),
                grid: (gx, gy, 1),
            });
            steps.push(Step {
                kernel: &k.pick,
                params: params(shift),
                buffers: buffers.clone(),
                grid: (1, 1, 1),
            });
        }
        for (kernel, grid) in [
            (&k.count, (gx, gy, 1)),
            (&k.scan, (1, 1, 1)),
            (&k.scatter, (gx, gy, 1)),
        ] {
            steps.push(Step {
                kernel,
                params: params(0),
                buffers: buffers.clone(),
                grid,
            });
        }
    }
}

fn build_kernels(device: &wgpu::Device) -> Result<Kernels> {
    use Slot::{Read, ReadWrite, Uniform};
    let scan = shader(device, "scan.wgsl")?;
    let select = shader(device, "select.wgsl")?;
    let scan_slots = [Uniform, Read, Read, Read, Read, ReadWrite];
    let select_slots = [
        Uniform, Read, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite,
    ];
    Ok(Kernels {
        hamming: Kernel::new(device, &scan, "hamming", &scan_slots),
        rescore: Kernel::new(device, &scan, "rescore", &scan_slots),
        histogram: Kernel::new(device, &select, "histogram", &select_slots),
        pick: Kernel::new(device, &select, "pick", &select_slots),
        count: Kernel::new(device, &select, "count", &select_slots),
        scan: Kernel::new(device, &select, "scan", &select_slots),
        scatter: Kernel::new(device, &select, "scatter", &select_slots),
    })
}
