//! A wgpu compute backend (feature `gpu`): the encoder's forward pass and the dense index
//! scan on a GPU, natively (Vulkan, Metal, DX12) and in the browser (WebGPU).
//!
//! Both halves mirror the CPU code they stand in for and are checked against it
//! (`tests/gpu_native.rs`):
//!
//! - [`GpuEncoder`] runs `model::bert` + `model::pool` over the bundle's weights, kept in
//!   their block-quantized form on the GPU (`Q8_0`, `Q4_0`; any other storage type is
//!   uploaded as f32). Activations stay f32 throughout (the CPU path rounds them to `Q8_0`
//!   blocks inside its quantized matmuls), so vectors agree to a cosine of about 0.9999,
//!   not bit for bit. Tokenization stays on the CPU ([`crate::Encoder::tokenize`]).
//! - [`GpuScorer`] runs `index::dense::DenseView::search`: Hamming distances and int8
//!   scores for every row, and the top-k selection, on the GPU; only a short candidate list
//!   comes back, which is rescored on the CPU so results are exactly the CPU's.
//!
//! Kernels are WGSL files beside this one; [`KERNELS`] lists them. Each is compiled with
//! `common.wgsl` (shared helpers) prepended. Everything here is async and never blocks on
//! wasm32; natively, waiting for the GPU blocks the calling thread inside the future (use
//! `pollster::block_on` or any executor).
//!
//! # Use
//!
//! ```ignore
//! // Once per engine (in the browser, inside an async wasm-bindgen function):
//! let Some(ctx) = GpuContext::new().await? else { /* no WebGPU: stay on the CPU */ };
//! let gpu = GpuEncoder::from_bytes(&ctx, &bundle_bytes)?; // uploads weights, builds pipelines
//! let scorer = GpuScorer::new(&ctx, &index.dense())?;   // uploads codes, rows, scales
//! // Per query:
//! let tokens = encoder.tokenize(&[query], Role::Query)?; // CPU tokenizer, same as the CPU path
//! let vector = gpu.embed(&tokens).await?.remove(0);     // upload tokens, run, read back 384 f32
//! let hits = scorer.search(&index.dense(), &vector, k).await?; // read back k + 32 row numbers
//! ```
//!
//! Each `embed` is one submission: a 12-bytes-a-token upload, the whole forward pass
//! recorded in one compute pass, and a read-back of `batch x hidden` f32. Each `search` is
//! one submission too: the query (and its binary code) up, `k + RESCORE_MARGIN` u32s back.
//! Device errors (validation, out of memory) are caught with error scopes and returned as
//! [`Error::Gpu`], never wgpu's default panic.

pub mod choose;
mod encoder;
mod scorer;
mod session;
mod weights;

use std::future::Future;
use std::num::NonZeroU64;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

pub use crate::clock::now_ms;
pub use choose::{calibrate, Backend, Calibration, Preference};
pub use encoder::{GpuEncoder, MAX_SEQ_LEN, MAX_TOKENS};
pub use scorer::{GpuScorer, RESCORE_MARGIN};
pub use session::GpuSession;

use crate::{Error, Result};

/// Helpers prepended to every kernel.
const COMMON_WGSL: &str = include_str!("common.wgsl");

/// The kernels, by file name: each is compiled as [`COMMON_WGSL`] followed by the file.
pub const KERNELS: &[(&str, &str)] = &[
    ("embed.wgsl", include_str!("embed.wgsl")),
    ("layernorm.wgsl", include_str!("layernorm.wgsl")),
    ("matmul.wgsl", include_str!("matmul.wgsl")),
    ("attention.wgsl", include_str!("attention.wgsl")),
    ("pool.wgsl", include_str!("pool.wgsl")),
    ("scan.wgsl", include_str!("scan.wgsl")),
    ("select.wgsl", include_str!("select.wgsl")),
];

/// The complete WGSL source of kernel file `name` (with the shared helpers), as compiled.
pub fn kernel_source(name: &str) -> Option<String> {
    KERNELS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, src)| format!("{COMMON_WGSL}\n{src}"))
}

fn gpu_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Gpu(format!("{what}: {e}"))
}

/// A GPU device and its queue: what the encoder and the scorer run on.
///
/// Cheap to clone (wgpu's handles are reference-counted).
#[derive(Clone, Debug)]
pub struct GpuContext {
    device: wgpu::Device,
    queue: wgpu::Queue,
    adapter_info: wgpu::AdapterInfo,
}

impl GpuContext {
    /// Asks for the system's (or the browser's) preferred high-performance adapter and opens
    /// a device on it. `Ok(None)` when there is no adapter at all (no GPU, no driver, no
    /// WebGPU in this browser); an error when an adapter exists but refuses a device.
    ///
    /// Natively, wgpu's environment variables (`WGPU_BACKEND`, `WGPU_ADAPTER_NAME`, ...)
    /// choose among adapters.
    pub async fn new() -> Result<Option<Self>> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = match instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
        {
            Ok(adapter) => adapter,
            Err(_) => return Ok(None),
        };
        // WebGPU's default limits, except that buffers may be as large as the adapter allows
        // (the weights and a large index's rows are single buffers).
        let supported = adapter.limits();
        let required_limits = wgpu::Limits {
            max_storage_buffer_binding_size: supported.max_storage_buffer_binding_size,
            max_buffer_size: supported.max_buffer_size,
            ..wgpu::Limits::default()
        };
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("cairn"),
                required_limits,
                ..Default::default()
            })
            .await
            .map_err(|e| gpu_err("the adapter refused a device", e))?;
        Ok(Some(Self {
            device,
            queue,
            adapter_info: adapter.get_info(),
        }))
    }

    /// Wraps a device and queue the caller already has (a browser page's, a test's). The
    /// kernels need WebGPU's default limits: 8 storage buffers per stage, 16 KiB of
    /// workgroup memory, 256 invocations per workgroup.
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Self {
        let adapter_info = device.adapter_info();
        Self {
            device,
            queue,
            adapter_info,
        }
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.adapter_info
    }

    /// A one-line description of the adapter: name, backend, device type.
    pub fn describe(&self) -> String {
        let i = &self.adapter_info;
        format!("{} ({:?}, {:?})", i.name, i.backend, i.device_type)
    }

    /// The largest buffer a kernel can bind on this device, in bytes.
    fn max_binding(&self) -> u64 {
        let l = self.device.limits();
        l.max_storage_buffer_binding_size.min(l.max_buffer_size)
    }
}

/// One binding of a kernel's bind group, in binding order.
#[derive(Clone, Copy)]
enum Slot {
    Uniform,
    Read,
    ReadWrite,
}

/// A compute pipeline and the layout of its one bind group.
struct Kernel {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

impl Kernel {
    fn new(
        device: &wgpu::Device,
        module: &wgpu::ShaderModule,
        entry: &str,
        slots: &[Slot],
    ) -> Self {
        let entries: Vec<wgpu::BindGroupLayoutEntry> = slots
            .iter()
            .enumerate()
            .map(|(i, slot)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match slot {
                        Slot::Uniform => wgpu::BufferBindingType::Uniform,
                        Slot::Read => wgpu::BufferBindingType::Storage { read_only: true },
                        Slot::ReadWrite => wgpu::BufferBindingType::Storage { read_only: false },
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(entry),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(entry),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: Some(&pipeline_layout),
            module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        });
        Self { pipeline, layout }
    }

    /// A bind group over `buffers`, in binding order; uniforms are slices of the arena.
    fn bind(&self, device: &wgpu::Device, buffers: &[Binding<'_>]) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: match *b {
                    Binding::Buffer(buffer) => buffer.as_entire_binding(),
                    Binding::Uniform(buffer, offset) => {
                        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer,
                            offset,
                            size: NonZeroU64::new(UNIFORM_SIZE),
                        })
                    }
                },
            })
            .collect();
        device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &self.layout,
            entries: &entries,
        })
    }
}

/// A buffer to bind: a whole storage buffer, or a uniform block at an offset of the arena.
#[derive(Clone, Copy)]
enum Binding<'a> {
    Buffer(&'a wgpu::Buffer),
    Uniform(&'a wgpu::Buffer, u64),
}

/// One dispatch to record: a kernel, its parameter block, its storage buffers (bindings 1,
/// 2, ...; binding 0 is the parameter block) and its workgroup grid.
struct Step<'a> {
    kernel: &'a Kernel,
    params: [u32; 8],
    buffers: Vec<&'a wgpu::Buffer>,
    grid: (u32, u32, u32),
}

/// Records `steps` as one compute pass into `encoder`: the parameter blocks go into one
/// uniform buffer, each step gets its bind group. wgpu orders the dispatches' storage
/// accesses (each dispatch is a usage scope), so a step reads what the ones before it wrote.
fn record(device: &wgpu::Device, encoder: &mut wgpu::CommandEncoder, steps: &[Step<'_>]) {
    let mut uniforms = Uniforms::new(device);
    let offsets: Vec<u64> = steps.iter().map(|s| uniforms.push(s.params)).collect();
    let params = uniforms.upload(device);
    let groups: Vec<wgpu::BindGroup> = steps
        .iter()
        .zip(&offsets)
        .map(|(s, &offset)| {
            let mut bindings = Vec::with_capacity(s.buffers.len() + 1);
            bindings.push(Binding::Uniform(&params, offset));
            bindings.extend(s.buffers.iter().map(|&b| Binding::Buffer(b)));
            s.kernel.bind(device, &bindings)
        })
        .collect();
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: None,
        timestamp_writes: None,
    });
    for (s, group) in steps.iter().zip(&groups) {
        pass.set_pipeline(&s.kernel.pipeline);
        pass.set_bind_group(0, group, &[]);
        pass.dispatch_workgroups(s.grid.0, s.grid.1, s.grid.2);
    }
}

/// Polls a future once: its output if it is ready at once (natively, error scopes are).
fn poll_now<F: Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// Compiles kernel file `name` (with the shared helpers).
fn shader(device: &wgpu::Device, name: &str) -> Result<wgpu::ShaderModule> {
    let source =
        kernel_source(name).ok_or_else(|| Error::Gpu(format!("kernel {name} is not built in")))?;
    Ok(device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(name),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    }))
}

/// Every kernel's parameters are one 32-byte uniform block (8 words, f32 as bits).
const UNIFORM_SIZE: u64 = 32;

/// The parameter blocks of one submission, packed at the device's uniform offset alignment
/// into one buffer.
struct Uniforms {
    bytes: Vec<u8>,
    stride: usize,
}

impl Uniforms {
    fn new(device: &wgpu::Device) -> Self {
        let align = device.limits().min_uniform_buffer_offset_alignment as usize;
        Self {
            bytes: Vec::new(),
            stride: align.max(UNIFORM_SIZE as usize),
        }
    }

    /// Appends a parameter block; returns its offset.
    fn push(&mut self, words: [u32; 8]) -> u64 {
        let offset = self.bytes.len();
        self.bytes
            .extend(words.iter().flat_map(|w| w.to_le_bytes()));
        self.bytes.resize(offset + self.stride, 0);
        offset as u64
    }

    fn upload(&self, device: &wgpu::Device) -> wgpu::Buffer {
        storage_init(device, "params", &self.bytes, wgpu::BufferUsages::UNIFORM)
    }
}

/// A buffer holding `contents` (padded to at least 4 bytes, as bindings need).
fn storage_init(
    device: &wgpu::Device,
    label: &str,
    contents: &[u8],
    usage: wgpu::BufferUsages,
) -> wgpu::Buffer {
    use wgpu::util::DeviceExt;
    let padded;
    let contents = if contents.len() < 4 || !contents.len().is_multiple_of(4) {
        let mut v = contents.to_vec();
        v.resize(contents.len().next_multiple_of(4).max(4), 0);
        padded = v;
        &padded[..]
    } else {
        contents
    };
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents,
        usage,
    })
}

/// A zero-filled storage buffer of `bytes` (at least 4).
fn storage(
    device: &wgpu::Device,
    label: &str,
    bytes: u64,
    extra: wgpu::BufferUsages,
) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes.max(4).next_multiple_of(4),
        usage: wgpu::BufferUsages::STORAGE | extra,
        mapped_at_creation: false,
    })
}

/// The workgroup grid for `groups` workgroups: 1-D when it fits a dimension, else 2-D
/// (kernels recover the linear index with `linear_index` in `common.wgsl`).
fn grid(device: &wgpu::Device, groups: u32) -> (u32, u32) {
    let max = device.limits().max_compute_workgroups_per_dimension.max(1);
    if groups <= max {
        (groups, 1)
    } else {
        (max, groups.div_ceil(max))
    }
}

/// Validation and out-of-memory error scopes around a stretch of work, so a device error
/// becomes an [`Error`] instead of wgpu's default panic. Push, do the work without awaiting,
/// then [`Scopes::pop`] (before any await) and await its result.
struct Scopes {
    // Dropped (and so popped) in declaration order: the inner scope first.
    validation: wgpu::ErrorScopeGuard,
    memory: wgpu::ErrorScopeGuard,
}

impl Scopes {
    fn push(device: &wgpu::Device) -> Self {
        let memory = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        Self { validation, memory }
    }

    fn pop(self, what: &'static str) -> impl Future<Output = Result<()>> {
        let Scopes { validation, memory } = self;
        let validation = validation.pop();
        let memory = memory.pop();
        async move {
            if let Some(e) = validation.await {
                return Err(gpu_err(what, e));
            }
            if let Some(e) = memory.await {
                return Err(gpu_err(what, e));
            }
            Ok(())
        }
    }
}

/// Shared state between a `map_async` callback and the future waiting for it.
#[derive(Default)]
struct MapState {
    result: Option<std::result::Result<(), wgpu::BufferAsyncError>>,
    waker: Option<Waker>,
}

/// Resolves when the `map_async` callback owning the other half of `state` has run.
struct MapFuture {
    state: Arc<Mutex<MapState>>,
}

impl Future for MapFuture {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(_) => return Poll::Ready(Err(Error::Gpu("buffer mapping state poisoned".into()))),
        };
        match state.result.take() {
            Some(r) => Poll::Ready(r.map_err(|e| gpu_err("reading results back", e))),
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Copies the first `bytes` of `buffer` (`MAP_READ`, after the submission that filled it)
/// to the CPU. On wasm the browser completes the mapping; natively this waits for the
/// device, blocking the thread.
async fn read_back(device: &wgpu::Device, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
    let state = Arc::new(Mutex::new(MapState::default()));
    let shared = state.clone();
    buffer
        .slice(..bytes)
        .map_async(wgpu::MapMode::Read, move |result| {
            if let Ok(mut s) = shared.lock() {
                s.result = Some(result);
                if let Some(w) = s.waker.take() {
                    w.wake();
                }
            }
        });
    #[cfg(not(target_arch = "wasm32"))]
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| gpu_err("waiting for the GPU", e))?;
    #[cfg(target_arch = "wasm32")]
    let _ = device;
    MapFuture { state }.await?;
    let out = buffer
        .slice(..bytes)
        .get_mapped_range()
        .map_err(|e| gpu_err("reading results back", e))?
        .to_vec();
    buffer.unmap();
    Ok(out)
}

/// Little-endian u32 words of `bytes` (whose length is a multiple of 4).
fn words_of(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use wgpu::naga;

    /// Parses and validates WGSL as WebGPU would accept it (no native-only capabilities).
    fn validate(name: &str, source: &str) {
        let module = naga::front::wgsl::parse_str(source)
            .unwrap_or_else(|e| panic!("{name} does not parse:\n{}", e.emit_to_string(source)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name} does not validate:\n{}", e.emit_to_string(source)));
    }

    #[test]
    fn common_helpers_validate_alone() {
        validate("common.wgsl", COMMON_WGSL);
    }

    #[test]
    fn every_kernel_validates() {
        for (name, _) in KERNELS {
            let source = kernel_source(name).expect("listed kernel");
            validate(name, &source);
        }
    }

    /// Every `.wgsl` file beside this module is compiled into the crate, so none escapes the
    /// validation above.
    #[test]
    fn every_wgsl_file_is_a_listed_kernel() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/gpu");
        let mut found = 0;
        for entry in std::fs::read_dir(&dir).expect("src/gpu is readable") {
            let path = entry.expect("directory entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("wgsl") {
                continue;
            }
            found += 1;
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let text = std::fs::read_to_string(&path).expect("readable");
            let listed = name == "common.wgsl" || KERNELS.iter().any(|(n, _)| *n == name);
            assert!(listed, "{name} is not listed in KERNELS");
            let compiled = if name == "common.wgsl" {
                COMMON_WGSL
            } else {
                KERNELS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, s)| *s)
                    .unwrap_or("")
            };
            assert_eq!(text, compiled, "{name} differs from the compiled-in copy");
        }
        assert_eq!(found, KERNELS.len() + 1);
    }

    #[test]
    fn workgroup_memory_fits_webgpu_defaults() {
        for (name, _) in KERNELS {
            let source = kernel_source(name).expect("listed kernel");
            let module = naga::front::wgsl::parse_str(&source).expect("parses");
            let mut bytes = 0u32;
            for (_, var) in module.global_variables.iter() {
                if var.space == naga::AddressSpace::WorkGroup {
                    bytes += module.types[var.ty].inner.size(module.to_ctx());
                }
            }
            assert!(
                bytes <= 16384,
                "{name} uses {bytes} bytes of workgroup memory"
            );
        }
    }
}
