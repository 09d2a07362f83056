//! Where a worker assembles each batch before the session run, and how the run receives it.
//!
//! - [`Staging::Host`]: one reusable `Vec<f32>`, passed to `Session::run` as a borrowed tensor. The CPU default:
//!   the CPU execution provider reads it in place.
//! - [`Staging::Bound`]: one tensor per run size, allocated once by an ONNX Runtime allocator and bound with an
//!   `IoBinding` (outputs bound to host memory). With CUDA the allocator is the provider's page-locked ("pinned")
//!   host memory, so the host→device copy is a direct DMA that ONNX Runtime queues when the input is bound,
//!   instead of a staging copy through its own pinned buffer at every run. On the CPU (`--io-binding on`) it is the
//!   session's allocator; that mode exists so that the bound path is exercised and compared on machines without a
//!   GPU.
//!
//! Either way the jobs' rows are copied once into the staging memory (the worker's only per-batch copy) and rows
//! past the real jobs are zeros that never reach a response.
//!
//! A run fetches `probabilities` and `logits`, plus the per-position outputs ([`Maps`]) only when a job of the batch
//! asked for them: ONNX Runtime then does not copy them out (it still runs every node: its inference builds do not
//! prune the graph to the fetched outputs, microsoft/onnxruntime#16483).

use std::collections::HashMap;

use cxr_core::card::{CAM_NAME, FEATURES_NAME, INPUT_NAME, LOGITS_NAME, PROBABILITIES_NAME};
use cxr_core::labels::NUM_LABELS;
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{HasSelectedOutputs, IoBinding, OutputSelector, RunOptions, Session, SessionOutputs};
use ort::value::{Tensor, TensorRef};

use std::sync::Arc;

use crate::settings::IoBindingMode;
use crate::{Cause, InferError, Maps, ModelInfo};

/// What a model's batches actually go through, reported in `GET /v1/models` as `io_binding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StagingKind {
    /// A host `Vec` given to `Session::run`.
    Off,
    /// An `IoBinding` over tensors from the session's own (CPU) allocator.
    Host,
    /// An `IoBinding` over page-locked host tensors from the CUDA provider's allocator.
    Pinned,
}

cxr_core::keywords!(StagingKind, "staging", { Off => "off", Host => "host", Pinned => "pinned" });

/// The outputs of the real rows of one session run, row-major: `n × 14` probabilities and logits, and the maps
/// that were asked for (`n × 14 × g²` and `n × C × g²`).
pub(crate) struct BatchOutput {
    pub probabilities: Vec<f32>,
    pub logits: Vec<f32>,
    pub cam: Option<Vec<f32>>,
    pub features: Option<Vec<f32>>,
}

/// A worker's batch memory (see the module documentation).
pub(crate) enum Staging {
    Host(Vec<f32>, Selectors),
    Bound(Box<Bound>),
}

/// One `RunOptions` per set of fetched outputs, made on first use and kept: a plain run must name its outputs, or
/// ONNX Runtime would compute and copy every output of the graph, the maps included.
#[derive(Default)]
pub(crate) struct Selectors(HashMap<Maps, RunOptions<HasSelectedOutputs>>);

impl Selectors {
    fn get(&mut self, maps: Maps) -> Result<&RunOptions<HasSelectedOutputs>, Cause> {
        match self.0.entry(maps) {
            std::collections::hash_map::Entry::Occupied(options) => Ok(options.into_mut()),
            std::collections::hash_map::Entry::Vacant(slot) => {
                let selector = fetched(maps).fold(OutputSelector::no_default(), OutputSelector::with);
                let options = RunOptions::new()
                    .map_err(|e| Cause::during("cannot create run options", e))?
                    .with_outputs(selector);
                Ok(slot.insert(options))
            }
        }
    }
}

/// The graph outputs a run with `maps` fetches.
fn fetched(maps: Maps) -> impl Iterator<Item = &'static str> {
    [PROBABILITIES_NAME, LOGITS_NAME].into_iter().chain(maps.output_names())
}

/// The state of [`Staging::Bound`].
pub(crate) struct Bound {
    /// `None`: the session's own allocator.
    allocator: Option<Allocator>,
    outputs: MemoryInfo<'static>,
    tensors: HashMap<usize, Tensor<f32>>,
    binding: IoBinding,
    kind: StagingKind,
}

impl Staging {
    /// Plain runs on one host buffer sized for `info`'s largest batch.
    pub(crate) fn plain(info: &ModelInfo) -> Staging {
        Staging::Host(Vec::with_capacity(info.max_batch * info.tensor_len()), Selectors::default())
    }

    /// The staging `mode` asks for on the session of `info`. On CUDA, a provider without a pinned allocator falls
    /// back to plain runs (logged), since bound pageable memory would gain nothing.
    pub(crate) fn new(session: &Session, mode: IoBindingMode, info: &ModelInfo) -> Result<Staging, Cause> {
        let cuda = info.provider == crate::Provider::Cuda;
        if mode == IoBindingMode::Off || (mode == IoBindingMode::Auto && !cuda) {
            return Ok(Staging::plain(info));
        }
        let binding = session.create_binding().map_err(|e| Cause::during("cannot create an I/O binding", e))?;
        if cuda {
            let pinned =
                |memory_type| MemoryInfo::new(AllocationDevice::CUDA_PINNED, 0, AllocatorType::Device, memory_type);
            let allocator = pinned(MemoryType::CPUInput).and_then(|info| Allocator::new(session, info));
            match (allocator, pinned(MemoryType::CPUOutput)) {
                (Ok(allocator), Ok(outputs)) => {
                    return Ok(Staging::Bound(Box::new(Bound {
                        allocator: Some(allocator),
                        outputs,
                        tensors: HashMap::new(),
                        binding,
                        kind: StagingKind::Pinned,
                    })));
                }
                (Err(error), _) | (_, Err(error)) => {
                    tracing::warn!(%error, "no pinned host allocator on the CUDA provider: batches are not I/O-bound");
                    return Ok(Staging::plain(info));
                }
            }
        }
        let outputs = MemoryInfo::new(AllocationDevice::CPU, 0, AllocatorType::Device, MemoryType::Default)
            .map_err(|e| Cause::during("host memory info", e))?;
        Ok(Staging::Bound(Box::new(Bound {
            allocator: None,
            outputs,
            tensors: HashMap::new(),
            binding,
            kind: StagingKind::Host,
        })))
    }

    /// What the batches go through.
    pub(crate) fn kind(&self) -> StagingKind {
        match self {
            Staging::Host(..) => StagingKind::Off,
            Staging::Bound(bound) => bound.kind,
        }
    }

    /// Runs `rows` (each one image's `C × H × W` values) as one batch of `run_size` ≥ `rows.len()` rows, the rest
    /// zeros; returns the outputs of the real rows only, with the `maps` asked for.
    pub(crate) fn run(
        &mut self,
        session: &mut Session,
        info: &ModelInfo,
        rows: &[&[f32]],
        run_size: usize,
        maps: Maps,
    ) -> Result<BatchOutput, InferError> {
        let variant = info.variant;
        let failed = |cause: Cause| InferError::Run { variant, cause: Arc::new(cause) };
        let len = info.tensor_len();
        let size = info.card.input_size;
        let shape = [run_size, info.card.channels, size, size];
        let fill = |buffer: &mut [f32]| {
            for (slot, row) in buffer.chunks_exact_mut(len).zip(rows) {
                slot.copy_from_slice(row);
            }
            buffer[rows.len() * len..].fill(0.0);
        };
        match self {
            Staging::Host(buffer, selectors) => {
                // Reused from batch to batch: a fresh multi-megabyte allocation per batch would be returned to the
                // kernel and faulted in again every time.
                buffer.resize(run_size * len, 0.0);
                fill(buffer);
                let options = selectors.get(maps).map_err(failed)?;
                let tensor = TensorRef::from_array_view((shape, buffer.as_slice())).map_err(|e| failed(e.into()))?;
                let outputs = session
                    .run_with_options(ort::inputs![INPUT_NAME => tensor], options)
                    .map_err(|e| failed(e.into()))?;
                read_outputs(&outputs, info, rows.len(), run_size, maps).map_err(failed)
            }
            Staging::Bound(bound) => {
                if !bound.tensors.contains_key(&run_size) {
                    let allocator = bound.allocator.as_ref().unwrap_or_else(|| session.allocator());
                    let tensor = Tensor::<f32>::new(allocator, shape)
                        .map_err(|e| failed(Cause::during(format!("cannot allocate the batch-{run_size} input"), e)))?;
                    bound.tensors.insert(run_size, tensor);
                }
                let tensor = bound.tensors.get_mut(&run_size).expect("inserted above");
                let (_, data) = tensor.try_extract_tensor_mut().map_err(|e| failed(e.into()))?;
                fill(data);
                // Binding copies (or queues the device copy of) the data as it is now, so it comes after the fill.
                let binding = &mut bound.binding;
                binding.bind_input(INPUT_NAME, &*tensor).map_err(|e| failed(e.into()))?;
                // Rebound at every run: the set of outputs follows the batch's jobs.
                binding.clear_outputs();
                for name in fetched(maps) {
                    binding.bind_output_to_device(name, &bound.outputs).map_err(|e| failed(e.into()))?;
                }
                let outputs = session.run_binding(binding).map_err(|e| failed(e.into()))?;
                read_outputs(&outputs, info, rows.len(), run_size, maps).map_err(failed)
            }
        }
    }
}

/// The first `n` rows of each fetched output of a run of `run_size` rows, checked for shape and finiteness.
fn read_outputs(
    outputs: &SessionOutputs<'_>,
    info: &ModelInfo,
    n: usize,
    run_size: usize,
    maps: Maps,
) -> Result<BatchOutput, Cause> {
    let extract = |name: &str, row: &[usize]| -> Result<Vec<f32>, Cause> {
        let output = outputs.get(name).ok_or_else(|| Cause::Check(format!("no {name:?} output")))?;
        let (shape, values) = output.try_extract_tensor::<f32>()?;
        let expected: Vec<i64> = std::iter::once(run_size).chain(row.iter().copied()).map(|d| d as i64).collect();
        if **shape != *expected {
            return Err(Cause::Check(format!("{name:?} has shape {:?}, expected {expected:?}", &**shape)));
        }
        // Padding rows are cut off here and never reach a response.
        let values = &values[..n * row.iter().product::<usize>()];
        if let Some(bad) = values.iter().find(|p| !p.is_finite()) {
            return Err(Cause::Check(format!("non-finite {name:?} value {bad}")));
        }
        Ok(values.to_vec())
    };
    let map = |wanted: bool, name: &str, channels: fn(&super::MapShape) -> usize| -> Result<Option<Vec<f32>>, Cause> {
        if !wanted {
            return Ok(None);
        }
        let shape = info.maps.as_ref().ok_or_else(|| Cause::Check(format!("the model has no {name:?} output")))?;
        extract(name, &[channels(shape), shape.grid, shape.grid]).map(Some)
    };
    Ok(BatchOutput {
        probabilities: extract(PROBABILITIES_NAME, &[NUM_LABELS])?,
        logits: extract(LOGITS_NAME, &[NUM_LABELS])?,
        cam: map(maps.cam, CAM_NAME, |_| NUM_LABELS)?,
        features: map(maps.features, FEATURES_NAME, |shape| shape.channels)?,
    })
}
