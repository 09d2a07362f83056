//! Opening a model: the process-wide ONNX Runtime environment, the session with the requested execution provider,
//! the model card (embedded or sidecar) and the checks that the graph matches the card.

use std::path::Path;
use std::sync::Mutex;

use cxr_core::card::{
    CAM_NAME, CARD_METADATA_KEY, FEATURES_NAME, INPUT_NAME, LOGITS_NAME, ModelCard, ModelVariant, PROBABILITIES_NAME,
};
use cxr_core::labels::NUM_LABELS;
use ort::environment::{Environment, GlobalThreadPoolOptions};
use ort::ep::{self, ExecutionProvider, ExecutionProviderDispatch};
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{Outlet, TensorElementType, ValueType};

use crate::settings::{ConvSearch, Device, EngineSettings};
use crate::{CardSource, Cause, EngineError, MapShape, Provider, TensorInfo};

/// The one ONNX Runtime environment of the process (ONNX Runtime allows a single one, and the shared library can be
/// loaded only once).
static ENVIRONMENT: Mutex<Option<Environment>> = Mutex::new(None);

/// ONNX Runtime's global intra-op thread pool, shared by every session of the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadPool {
    pub intra_threads: usize,
    /// Whether idle threads spin before sleeping.
    pub spinning: bool,
}

/// Loads ONNX Runtime from `dylib` and creates the process's environment, or returns the existing one (a later call
/// gets the library and thread pool of the first).
///
/// With `pool`, the environment has one global intra-op thread pool and every session created in it uses that pool
/// instead of its own threads: the server's two models then share `intra_threads` threads instead of starting
/// 2 × `intra_threads` that compete for the same cores. Without it (the benchmark's raw sessions), each session
/// owns its threads as ONNX Runtime does by default.
pub fn ort_environment(dylib: &Path, pool: Option<ThreadPool>) -> Result<Environment, EngineError> {
    let mut slot = ENVIRONMENT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(environment) = slot.as_ref() {
        return Ok(environment.clone());
    }
    let runtime_error = |cause: Cause| EngineError::Runtime { path: dylib.to_path_buf(), cause };
    if !dylib.is_file() {
        return Err(runtime_error(std::io::Error::from(std::io::ErrorKind::NotFound).into()));
    }
    let mut builder =
        ort::init_from(dylib).map_err(|e| runtime_error(e.into()))?.with_name("cxr-serve").with_telemetry(false);
    if let Some(pool) = pool {
        let options = GlobalThreadPoolOptions::default()
            .with_intra_threads(pool.intra_threads)
            .and_then(|o| o.with_inter_threads(1))
            .and_then(|o| o.with_spin_control(pool.spinning))
            .map_err(|e| runtime_error(Cause::during("global thread pool", e)))?;
        builder = builder.with_global_thread_pool(options);
    }
    let environment = builder.build().map_err(|e| runtime_error(e.into()))?;
    tracing::info!(dylib = %dylib.display(), pool = ?pool, "ONNX Runtime loaded");
    *slot = Some(environment.clone());
    Ok(environment)
}

/// Creates the session of one model on the requested device; returns it with the active provider's name. The
/// benchmark (`bench/rust`, `cxr-bench`) builds its "raw ONNX Runtime with the server's options" sessions here too.
pub fn open_session(
    environment: &Environment,
    path: &Path,
    settings: &EngineSettings,
) -> Result<(Session, Provider), EngineError> {
    match settings.device {
        Device::Cpu => Ok((commit(environment, path, settings, cpu())?, Provider::Cpu)),
        Device::Cuda => match commit(environment, path, settings, cuda(path, settings)?) {
            Ok(session) => Ok((session, Provider::Cuda)),
            Err(EngineError::Session { path, cause }) => Err(EngineError::Cuda { path, cause }),
            Err(other) => Err(other),
        },
        Device::Auto => {
            let attempt = cuda(path, settings).and_then(|eps| commit(environment, path, settings, eps));
            match attempt {
                Ok(session) => Ok((session, Provider::Cuda)),
                Err(error) => {
                    tracing::warn!(model = %path.display(), %error, "device auto: CUDA unavailable, falling back to CPU");
                    Ok((commit(environment, path, settings, cpu())?, Provider::Cpu))
                }
            }
        }
    }
}

/// The CPU provider with ONNX Runtime's arena allocator on, as ONNX Runtime's own default has it: `ort`'s
/// `ep::CPU::default()` turns the arena *off*, and then every intermediate tensor of every run is a fresh `malloc`
/// (an `mmap` and its page faults for the multi-megabyte ones), which cost ~8 % at batch 8 on the development VM.
fn cpu() -> ExecutionProviderDispatch {
    ep::CPU::default().with_arena_allocator(true).build().error_on_failure()
}

/// The CUDA provider, registered so that a failure is an error instead of ONNX Runtime's silent CPU fallback.
fn cuda(path: &Path, settings: &EngineSettings) -> Result<ExecutionProviderDispatch, EngineError> {
    let unavailable = |cause: Cause| EngineError::Cuda { path: path.to_path_buf(), cause };
    match ep::CUDA::is_available() {
        Ok(true) => {
            let mut cuda = ep::CUDA::default();
            if let Some(search) = settings.conv_search {
                cuda = cuda.with_conv_algorithm_search(match search {
                    ConvSearch::Exhaustive => ep::cuda::ConvAlgorithmSearch::Exhaustive,
                    ConvSearch::Heuristic => ep::cuda::ConvAlgorithmSearch::Heuristic,
                    ConvSearch::Default => ep::cuda::ConvAlgorithmSearch::Default,
                });
            }
            Ok(cuda.build().error_on_failure())
        }
        Ok(false) => Err(unavailable(Cause::Check(
            "this ONNX Runtime build has no CUDA execution provider (install the GPU build: scripts/setup-ort.sh gpu)"
                .into(),
        ))),
        Err(e) => Err(unavailable(e.into())),
    }
}

fn commit(
    environment: &Environment,
    path: &Path,
    settings: &EngineSettings,
    provider: ExecutionProviderDispatch,
) -> Result<Session, EngineError> {
    let session_error = |e: ort::Error| EngineError::Session { path: path.to_path_buf(), cause: e.into() };
    let log_id = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    Session::builder(environment)
        .map_err(session_error)?
        .with_execution_providers([provider])
        .map_err(|e| session_error(e.into()))?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| session_error(e.into()))?
        .with_intra_threads(settings.intra_threads)
        .map_err(|e| session_error(e.into()))?
        .with_inter_threads(1)
        .map_err(|e| session_error(e.into()))?
        // Ignored in the server's environment, whose sessions use the global pool (see `ort_environment`); used by
        // sessions in an environment without one (the benchmark's "server's options" row).
        .with_intra_op_spinning(settings.spinning)
        .map_err(|e| session_error(e.into()))?
        .with_log_id(log_id)
        .map_err(|e| session_error(e.into()))?
        .commit_from_file(path)
        .map_err(session_error)
}

/// Reads the model card: the embedded one when present (it travels with the weights), else the sidecar JSON. When
/// both exist they must agree.
pub(crate) fn read_card(
    session: &Session,
    path: &Path,
    settings: &EngineSettings,
    variant: ModelVariant,
) -> Result<(ModelCard, CardSource), EngineError> {
    let sidecar_path = settings.card_path(variant);
    let embedded = session
        .metadata()
        .map_err(|e| EngineError::Card { path: path.to_path_buf(), cause: Cause::during("cannot read metadata", e) })?
        .custom(CARD_METADATA_KEY);
    let embedded = embedded
        .map(|json| {
            ModelCard::from_json(&json).map_err(|e| EngineError::Card {
                path: path.to_path_buf(),
                cause: Cause::during(format!("embedded card ({CARD_METADATA_KEY})"), e),
            })
        })
        .transpose()?;
    let sidecar = match std::fs::read_to_string(&sidecar_path) {
        Ok(json) => Some(
            ModelCard::from_json(&json)
                .map_err(|e| EngineError::Card { path: sidecar_path.clone(), cause: e.into() })?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(EngineError::Card { path: sidecar_path, cause: e.into() }),
    };
    let (card, source) = match (embedded, sidecar) {
        (Some(embedded), Some(sidecar)) if embedded != sidecar => {
            return Err(EngineError::Card {
                path: sidecar_path,
                cause: Cause::Check(format!("sidecar card differs from the card embedded in {}", path.display())),
            });
        }
        (Some(embedded), _) => (embedded, CardSource::Embedded),
        (None, Some(sidecar)) => (sidecar, CardSource::Sidecar),
        (None, None) => {
            return Err(EngineError::Card {
                path: path.to_path_buf(),
                cause: Cause::Check(format!(
                    "no model card: neither metadata_props[{CARD_METADATA_KEY}] nor {}",
                    sidecar_path.display()
                )),
            });
        }
    };
    if card.variant != variant {
        return Err(EngineError::Mismatch {
            path: path.to_path_buf(),
            problem: format!("the card describes the {} model, the file name the {variant} model", card.variant),
        });
    }
    Ok((card, source))
}

/// Checks the session's inputs and outputs against the card; returns their descriptions and the shape of the
/// per-position outputs, when the graph has them (`features` `[N, C, g, g]` and `cam` `[N, 14, g, g]`, both listed
/// in the card; a graph with neither is served without heatmaps).
pub(crate) fn check_signature(
    session: &Session,
    path: &Path,
    card: &ModelCard,
) -> Result<(TensorInfo, Vec<TensorInfo>, Option<MapShape>), EngineError> {
    let mismatch = |problem: String| EngineError::Mismatch { path: path.to_path_buf(), problem };
    if card.input_name != INPUT_NAME {
        return Err(mismatch(format!("card input_name is {:?}, expected {INPUT_NAME:?}", card.input_name)));
    }
    for required in [PROBABILITIES_NAME, LOGITS_NAME] {
        if !card.outputs.iter().any(|o| o == required) {
            return Err(mismatch(format!("card outputs {:?} lack {required:?}", card.outputs)));
        }
    }

    let [input] = session.inputs() else {
        return Err(mismatch(format!(
            "graph has {} inputs, expected exactly one ({INPUT_NAME:?})",
            session.inputs().len()
        )));
    };
    let input_info = tensor_info(input).map_err(&mismatch)?;
    if input_info.name != INPUT_NAME {
        return Err(mismatch(format!("graph input is named {:?}, expected {INPUT_NAME:?}", input_info.name)));
    }
    let size = card.input_size as i64;
    match input_info.shape.as_slice() {
        [n, c, h, w] if *n < 0 && *c == card.channels as i64 && fits(*h, size) && fits(*w, size) => {}
        [n, ..] if *n >= 0 => {
            return Err(mismatch(format!(
                "input {:?} has a fixed batch dimension {n}; it must be dynamic",
                input_info.name
            )));
        }
        shape => {
            return Err(mismatch(format!(
                "input {:?} has shape {shape:?}, the card expects [N, {}, {size}, {size}] ({} channels for the {} model)",
                input_info.name, card.channels, card.channels, card.variant
            )));
        }
    }

    let outputs = session.outputs().iter().map(tensor_info).collect::<Result<Vec<_>, _>>().map_err(&mismatch)?;
    for required in [PROBABILITIES_NAME, LOGITS_NAME] {
        let Some(output) = outputs.iter().find(|o| o.name == required) else {
            let names: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
            return Err(mismatch(format!("graph has no output {required:?} (outputs: {names:?})")));
        };
        match output.shape.as_slice() {
            [n, k] if *n < 0 && fits(*k, NUM_LABELS as i64) => {}
            shape => {
                return Err(mismatch(format!("output {required:?} has shape {shape:?}, expected [N, {NUM_LABELS}]")));
            }
        }
    }
    let maps = map_shape(&outputs, card).map_err(mismatch)?;
    Ok((input_info, outputs, maps))
}

/// The shape of the `features` and `cam` outputs: both or neither, each listed in the card exactly when the graph
/// has it, on the same fixed square grid.
fn map_shape(outputs: &[TensorInfo], card: &ModelCard) -> Result<Option<MapShape>, String> {
    let find = |name: &str| -> Result<Option<&TensorInfo>, String> {
        let in_graph = outputs.iter().find(|o| o.name == name);
        let in_card = card.outputs.iter().any(|o| o == name);
        match (in_graph, in_card) {
            (Some(_), false) => Err(format!("graph output {name:?} is not in the card's outputs {:?}", card.outputs)),
            (None, true) => Err(format!("card outputs {:?} name {name:?}, which the graph lacks", card.outputs)),
            (found, _) => Ok(found),
        }
    };
    match (find(FEATURES_NAME)?, find(CAM_NAME)?) {
        (None, None) => Ok(None),
        (Some(features), Some(cam)) => match (features.shape.as_slice(), cam.shape.as_slice()) {
            ([n, c, h, w], [m, k, h2, w2])
                if *n < 0 && *m < 0 && *c > 0 && *h > 0 && [*w, *h2, *w2] == [*h; 3] && *k == NUM_LABELS as i64 =>
            {
                Ok(Some(MapShape { grid: *h as usize, channels: *c as usize }))
            }
            (f, c) => Err(format!(
                "{FEATURES_NAME:?} has shape {f:?} and {CAM_NAME:?} {c:?}; expected [N, C, g, g] and [N, {NUM_LABELS}, g, g]"
            )),
        },
        _ => Err(format!("the graph has one of {FEATURES_NAME:?} and {CAM_NAME:?}, not both")),
    }
}

/// A graph dimension matches `expected` when equal or dynamic.
fn fits(dim: i64, expected: i64) -> bool {
    dim == expected || dim < 0
}

fn tensor_info(outlet: &Outlet) -> Result<TensorInfo, String> {
    match outlet.dtype() {
        ValueType::Tensor { ty: TensorElementType::Float32, shape, .. } => {
            Ok(TensorInfo { name: outlet.name().to_string(), dtype: "float32".into(), shape: shape.to_vec() })
        }
        other => Err(format!("{:?} is {other}, expected a float32 tensor", outlet.name())),
    }
}
