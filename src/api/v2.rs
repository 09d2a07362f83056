//! The Open Inference Protocol (KServe v2 / Triton HTTP) beside `/predict`, for clients such as `tritonclient`.
//!
//! Routes: `GET /v2` (server metadata), `GET /v2/health/live`, `GET /v2/health/ready`, `GET /v2/models/{name}`
//! (model metadata), `GET /v2/models/{name}/ready`, `POST /v2/models/{name}/infer`. Models are named `color` and
//! `gray`, version `1`; each has one input `image` (FP32 `[-1, C, S, S]`, already preprocessed: the tensor the
//! server would build from an image with `cxr-core`) and the outputs `probabilities` and `logits` (FP32
//! `[-1, 14]`, NIH label order) and, for models exported by `cxr-train`, `features` (FP32 `[-1, 2048, g, g]`, the
//! last feature map before pooling) and `cam` (FP32 `[-1, 14, g, g]`, the class activation maps). The last two are
//! returned only when the request names them in `outputs`: the default is the first two, and the engine does not
//! even fetch the maps for a request that does not ask.
//!
//! An inference request is JSON, or JSON followed by binary tensor data (the binary tensor extension): the header
//! `Inference-Header-Content-Length` then gives the JSON's length, and each input with
//! `parameters.binary_data_size` takes that many bytes (little-endian FP32) from what follows, in input order. The
//! Python client sends such bodies without a `Content-Type`. The answer is JSON, with each output whose request
//! asks for `parameters.binary_data` (or all, with `parameters.binary_data_output`) appended as binary data in the
//! same way. Every image of the batch is one job of the model's batcher, exactly like a `/predict` request, so
//! batching, queue limits and the engine's metrics are shared.
//!
//! Errors are `{"error": "..."}` as the protocol specifies — not problem+json — with the status of their
//! [`ProblemKind`] (the same map as `/predict`'s problems): 400 (malformed request), 404 (unknown model), 408, 413,
//! 503 (not ready, overloaded; with `Retry-After`) or 500, whose message never carries internals.

use std::str::FromStr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cxr_core::card::{CAM_NAME, FEATURES_NAME, INPUT_NAME, LOGITS_NAME, ModelVariant, PROBABILITIES_NAME};
use cxr_core::labels::NUM_LABELS;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use cxr_engine::{InferError, MapShape, Maps, ModelHandle, Prediction};

use super::body::read_bytes;
use super::error::{ApiError, INTERNAL_DETAIL};
use crate::inference::{self, run::InferenceError};
use crate::problem::{ProblemKind, RETRY_AFTER_SECS};
use crate::state::AppState;

/// The header of the binary tensor extension.
pub const HEADER_LENGTH: &str = "inference-header-content-length";
/// The only model version.
pub const MODEL_VERSION: &str = "1";

/// An Open Inference Protocol error: `{"error": message}` with the status of its [`ProblemKind`]
/// ([`ProblemKind::status`], the one cause → status map, as for `/predict`). 503s carry `Retry-After`
/// ([`RETRY_AFTER_SECS`]); a 500's message is logged and never sent (the client gets a generic one).
#[derive(Debug)]
pub struct V2Error {
    kind: ProblemKind,
    message: String,
}

impl V2Error {
    fn new(kind: ProblemKind, message: impl Into<String>) -> V2Error {
        V2Error { kind, message: message.into() }
    }

    fn bad_request(message: impl Into<String>) -> V2Error {
        V2Error::new(ProblemKind::BadRequest, message)
    }

    fn internal(message: impl Into<String>) -> V2Error {
        V2Error::new(ProblemKind::Internal, message)
    }
}

impl IntoResponse for V2Error {
    fn into_response(self) -> Response {
        let message = if self.kind == ProblemKind::Internal {
            tracing::error!(error = %self.message, "v2 request failed");
            INTERNAL_DETAIL.to_string()
        } else {
            tracing::info!(error = %self.message, problem = self.kind.slug(), "v2 request rejected");
            self.message
        };
        let mut response = (self.kind.status(), Json(json!({ "error": message }))).into_response();
        if self.kind.retry_after() {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

impl From<ApiError> for V2Error {
    fn from(error: ApiError) -> Self {
        V2Error::new(error.kind(), error.to_string())
    }
}

impl From<InferError> for V2Error {
    fn from(error: InferError) -> Self {
        match error {
            // Here the tensor and the outputs come from the client, so these are its mistakes (on `/predict` the
            // server builds both, and they would be bugs).
            InferError::InputSize { .. } | InferError::NoMaps { .. } => V2Error::bad_request(error.to_string()),
            other => ApiError::from(other).into(),
        }
    }
}

impl From<InferenceError> for V2Error {
    fn from(error: InferenceError) -> Self {
        match error {
            InferenceError::Infer(error) => error.into(),
            other => ApiError::from(other).into(),
        }
    }
}

/// The outputs a `/v2` client may ask for, spelled as the graph names them (checked by a test against
/// `cxr_core::card`'s interface names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Probabilities,
    Logits,
    Features,
    Cam,
}

cxr_core::keywords!(Output, "output", {
    Probabilities => "probabilities", Logits => "logits", Features => "features", Cam => "cam"
});

impl Output {
    /// The outputs of a model: the maps only when its graph has them.
    fn of(has_maps: bool) -> &'static [Output] {
        if has_maps { &Output::ALL } else { &[Output::Probabilities, Output::Logits] }
    }

    /// The shape of `n` images' output.
    fn shape(self, n: usize, maps: Option<MapShape>) -> Vec<usize> {
        let (grid, channels) = maps.map_or((0, 0), |shape| (shape.grid, shape.channels));
        match self {
            Output::Probabilities | Output::Logits => vec![n, NUM_LABELS],
            Output::Features => vec![n, channels, grid, grid],
            Output::Cam => vec![n, NUM_LABELS, grid, grid],
        }
    }

    /// This output of one prediction.
    fn values(self, prediction: &Prediction) -> &[f32] {
        match self {
            Output::Probabilities => &prediction.probabilities,
            Output::Logits => &prediction.logits,
            Output::Features => prediction.features.as_deref().unwrap_or_default(),
            Output::Cam => prediction.cam.as_deref().unwrap_or_default(),
        }
    }
}

/// The model handle for `name`: 404 for a name that is no model, 400 `model-not-loaded` for one this server did not
/// load, 503 while loading.
fn model(state: &AppState, name: &str) -> Result<ModelHandle, V2Error> {
    let variant = ModelVariant::from_str(name).map_err(|_| {
        V2Error::new(ProblemKind::UnknownModel, format!("unknown model {name:?} (models: color, gray)"))
    })?;
    let engine = state.ready_engine().map_err(ApiError::from)?;
    let mut models = inference::models(engine, variant.into()).map_err(ApiError::from)?;
    Ok(models.remove(0))
}

/// `GET /v2`: server metadata.
pub async fn server_metadata() -> Json<Value> {
    Json(json!({
        "name": "cxr-serve",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data"],
    }))
}

/// `GET /v2/health/live`: 200 while the process serves.
pub async fn live() -> StatusCode {
    StatusCode::OK
}

/// `GET /v2/health/ready`: 200 once the models are loaded and warmed up, 503 before and while shutting down.
pub async fn ready(State(state): State<AppState>) -> StatusCode {
    if state.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }
}

/// `GET /v2/models/{name}/ready`.
pub async fn model_ready(State(state): State<AppState>, Path(name): Path<String>) -> Result<StatusCode, V2Error> {
    let handle = model(&state, &name)?;
    if handle.is_running() && state.is_ready() {
        Ok(StatusCode::OK)
    } else {
        Err(V2Error::new(ProblemKind::NotReady, format!("model {name} is not ready")))
    }
}

/// `GET /v2/models/{name}`: model metadata.
pub async fn model_metadata(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, V2Error> {
    let handle = model(&state, &name)?;
    let card = &handle.info().card;
    let size = card.input_size as i64;
    let tensor = |name: &str, shape: Vec<i64>| json!({ "name": name, "datatype": "FP32", "shape": shape });
    let mut outputs =
        vec![tensor(PROBABILITIES_NAME, vec![-1, NUM_LABELS as i64]), tensor(LOGITS_NAME, vec![-1, NUM_LABELS as i64])];
    if let Some(shape) = handle.info().maps {
        let g = shape.grid as i64;
        outputs.push(tensor(FEATURES_NAME, vec![-1, shape.channels as i64, g, g]));
        outputs.push(tensor(CAM_NAME, vec![-1, NUM_LABELS as i64, g, g]));
    }
    Ok(Json(json!({
        "name": handle.info().variant,
        "versions": [MODEL_VERSION],
        "platform": "onnxruntime_onnx",
        "inputs": [tensor(INPUT_NAME, vec![-1, card.channels as i64, size, size])],
        "outputs": outputs,
    })))
}

/// The inference route's request limit: the same permit and message as `/predict`'s
/// ([`super::middleware::permit_or_drain`]), answered in the protocol's error shape.
pub async fn limit_concurrency(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match super::middleware::permit_or_drain(&state, request).await {
        Ok((permit, request)) => {
            let response = next.run(request).await;
            drop(permit);
            response
        }
        Err(error) => V2Error::from(error).into_response(),
    }
}

/// One input tensor of an inference request.
#[derive(Debug, Deserialize)]
struct RequestInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Parameters,
    data: Option<Value>,
}

/// One requested output.
#[derive(Debug, Deserialize)]
struct RequestOutput {
    name: String,
    #[serde(default)]
    parameters: Parameters,
}

#[derive(Debug, Default, Deserialize)]
struct Parameters {
    binary_data_size: Option<u64>,
    binary_data: Option<bool>,
    binary_data_output: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct InferRequest {
    id: Option<String>,
    inputs: Vec<RequestInput>,
    outputs: Option<Vec<RequestOutput>>,
    #[serde(default)]
    parameters: Parameters,
}

#[derive(Debug, Serialize)]
struct ResponseOutput {
    name: Output,
    datatype: &'static str,
    shape: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Vec<f32>>,
}

/// Splits a body into the JSON request and the binary data after it.
fn split_body(headers: &HeaderMap, body: &Bytes) -> Result<(InferRequest, Bytes), V2Error> {
    let json_len = match headers.get(HEADER_LENGTH) {
        None => body.len(),
        Some(value) => {
            let len = value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| V2Error::bad_request(format!("{HEADER_LENGTH} is not a byte count")))?;
            if len > body.len() {
                return Err(V2Error::bad_request(format!(
                    "{HEADER_LENGTH} is {len} but the body has only {} bytes",
                    body.len()
                )));
            }
            len
        }
    };
    let request: InferRequest = serde_json::from_slice(&body[..json_len])
        .map_err(|e| V2Error::bad_request(format!("the inference request is not valid JSON for this protocol: {e}")))?;
    Ok((request, body.slice(json_len..)))
}

/// Flattens nested JSON arrays of numbers (the protocol allows both flat and nested `data`).
fn flatten(value: &Value, out: &mut Vec<f32>) -> Result<(), V2Error> {
    match value {
        Value::Array(items) => items.iter().try_for_each(|v| flatten(v, out)),
        Value::Number(n) => {
            out.push(n.as_f64().ok_or_else(|| V2Error::bad_request("data holds a number that is not FP32"))? as f32);
            Ok(())
        }
        _ => Err(V2Error::bad_request("data must hold only numbers")),
    }
}

/// The `[N, C, S, S]` input as N image tensors, checked against the model.
fn images(handle: &ModelHandle, request: &InferRequest, binary: &Bytes) -> Result<Vec<Vec<f32>>, V2Error> {
    let [input] = request.inputs.as_slice() else {
        return Err(V2Error::bad_request(format!(
            "expected exactly one input ({INPUT_NAME:?}), got {}",
            request.inputs.len()
        )));
    };
    if input.name != INPUT_NAME {
        return Err(V2Error::bad_request(format!(
            "unknown input {:?} (the model's input is {INPUT_NAME:?})",
            input.name
        )));
    }
    if input.datatype != "FP32" {
        return Err(V2Error::bad_request(format!("input datatype {} is not FP32", input.datatype)));
    }
    let card = &handle.info().card;
    let expected = [card.channels as i64, card.input_size as i64, card.input_size as i64];
    let n = match input.shape.as_slice() {
        [n, c, h, w] if *n >= 1 && [*c, *h, *w] == expected => *n as usize,
        shape => {
            return Err(V2Error::bad_request(format!(
                "input shape {shape:?} does not match [N ≥ 1, {}, {}, {}]",
                expected[0], expected[1], expected[2]
            )));
        }
    };
    let per_image = handle.info().tensor_len();
    let total = n.checked_mul(per_image).ok_or_else(|| V2Error::bad_request("input shape is too large"))?;
    let values: Vec<f32> = match (&input.data, input.parameters.binary_data_size) {
        (Some(_), Some(_)) => return Err(V2Error::bad_request("input has both data and binary_data_size")),
        (Some(data), None) => {
            let mut values = Vec::with_capacity(total);
            flatten(data, &mut values)?;
            values
        }
        (None, Some(size)) => {
            if size as usize != binary.len() || size as usize != total * 4 {
                return Err(V2Error::bad_request(format!(
                    "binary_data_size is {size}, the binary data after the header has {} bytes, and the shape needs \
                     {} bytes",
                    binary.len(),
                    total * 4
                )));
            }
            binary.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
        }
        (None, None) => return Err(V2Error::bad_request("input has neither data nor binary_data_size")),
    };
    if values.len() != total {
        return Err(V2Error::bad_request(format!("input has {} values, its shape needs {total}", values.len())));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(V2Error::bad_request("input holds NaN or infinite values"));
    }
    Ok(values.chunks_exact(per_image).map(<[f32]>::to_vec).collect())
}

/// `POST /v2/models/{name}/infer`: the body under the one body reader, the images through the inference service
/// ([`inference::infer_tensors`]), the predictions back in the protocol's shape. The route holds one of the
/// `--max-concurrent-requests` permits, as `/predict` does ([`limit_concurrency`]).
pub async fn infer(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: axum::extract::Request,
) -> Result<Response, V2Error> {
    let headers = request.headers().clone();
    let body = read_bytes(request, &state).await?;
    let handle = model(&state, &name)?;
    let (request, binary) = split_body(&headers, &body)?;
    let images = images(&handle, &request, &binary)?;
    drop(body);
    let requested = requested_outputs(&request, handle.info().maps.is_some())?;
    let maps = Maps {
        cam: requested.iter().any(|(output, _)| *output == Output::Cam),
        features: requested.iter().any(|(output, _)| *output == Output::Features),
    };
    let predictions = inference::infer_tensors(&state, &handle, images, maps).await?;
    let all_binary = request.parameters.binary_data_output.unwrap_or(false);
    respond(&handle, request.id, &requested, &predictions, all_binary)
}

/// The outputs the request names (by default `probabilities` and `logits`), each with whether it goes as binary.
fn requested_outputs(request: &InferRequest, has_maps: bool) -> Result<Vec<(Output, bool)>, V2Error> {
    let known = Output::of(has_maps);
    let Some(outputs) = &request.outputs else {
        return Ok(vec![(Output::Probabilities, false), (Output::Logits, false)]);
    };
    outputs
        .iter()
        .map(|o| match known.iter().find(|output| output.as_str() == o.name) {
            Some(output) => Ok((*output, o.parameters.binary_data.unwrap_or(false))),
            None => {
                let names: Vec<&str> = known.iter().map(|output| output.as_str()).collect();
                Err(V2Error::bad_request(format!("unknown output {:?} (outputs: {})", o.name, names.join(", "))))
            }
        })
        .collect()
}

/// The response document, with binary outputs appended after the JSON.
fn respond(
    handle: &ModelHandle,
    id: Option<String>,
    requested: &[(Output, bool)],
    predictions: &[Prediction],
    all_binary: bool,
) -> Result<Response, V2Error> {
    let n = predictions.len();
    let mut outputs = Vec::with_capacity(requested.len());
    let mut tail: Vec<u8> = Vec::new();
    for &(output, binary) in requested {
        let shape = output.shape(n, handle.info().maps);
        let values: Vec<f32> = predictions.iter().flat_map(|p| output.values(p)).copied().collect();
        if values.len() != shape.iter().product::<usize>() {
            return Err(V2Error::internal(format!("the engine returned {output} of the wrong size")));
        }
        let (parameters, data) = if binary || all_binary {
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            let parameters = json!({ "binary_data_size": bytes.len() });
            tail.extend(bytes);
            (Some(parameters), None)
        } else {
            (None, Some(values))
        };
        outputs.push(ResponseOutput { name: output, datatype: "FP32", shape, parameters, data });
    }
    let mut document =
        json!({ "model_name": handle.info().variant, "model_version": MODEL_VERSION, "outputs": outputs });
    if let Some(id) = id {
        document["id"] = Value::String(id);
    }
    let json =
        serde_json::to_vec(&document).map_err(|e| V2Error::internal(format!("cannot serialise the response: {e}")))?;
    if tail.is_empty() {
        return Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], json).into_response());
    }
    let header_len = json.len();
    let mut body = json;
    body.extend(tail);
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream")),
            (header::HeaderName::from_static(HEADER_LENGTH), HeaderValue::from(header_len)),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt as _;

    use super::*;
    use cxr_engine::Cause;

    /// Sends one request to a route whose handler fails with `error` and returns the status, `Retry-After` and the
    /// body's `error` message.
    async fn answer(error: fn() -> V2Error) -> (StatusCode, Option<String>, String) {
        let app = axum::Router::new().route("/v2/fail", get(move || async move { Err::<(), _>(error()) }));
        let request = axum::extract::Request::get("/v2/fail").body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let retry = response.headers().get(header::RETRY_AFTER).map(|v| v.to_str().unwrap().to_string());
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let message = serde_json::from_slice::<Value>(&body).unwrap()["error"].as_str().unwrap().to_string();
        (status, retry, message)
    }

    #[tokio::test]
    async fn a_failure_inside_is_a_500_without_its_internals() {
        let run = || {
            let cause = Cause::Check("onnxruntime: CUDA kernel 0xdeadbeef".into());
            InferError::Run { variant: ModelVariant::Gray, cause: std::sync::Arc::new(cause) }.into()
        };
        let (status, retry, message) = answer(run).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(retry, None);
        assert_eq!(message, INTERNAL_DETAIL);
        assert!(!message.contains("0xdeadbeef") && !message.contains("onnxruntime"), "{message}");

        let (status, _, message) = answer(|| V2Error::internal("cannot serialise the response: secret detail")).await;
        assert_eq!((status, message.contains("secret")), (StatusCode::INTERNAL_SERVER_ERROR, false));
    }

    #[test]
    fn outputs_are_spelled_as_the_graph_names_them() {
        let names: Vec<&str> = Output::ALL.iter().map(|output| output.as_str()).collect();
        assert_eq!(names, [PROBABILITIES_NAME, LOGITS_NAME, FEATURES_NAME, CAM_NAME]);
    }

    #[tokio::test]
    async fn statuses_come_from_the_problem_kinds() {
        let overloaded = || InferError::Overloaded { variant: ModelVariant::Color, capacity: 64 }.into();
        let (status, retry, message) = answer(overloaded).await;
        assert_eq!(status, ProblemKind::Overloaded.status());
        assert_eq!(retry, Some(RETRY_AFTER_SECS.to_string()));
        assert!(message.contains("queue is full"), "{message}");

        let stopped = || InferError::Stopped { variant: ModelVariant::Color }.into();
        assert_eq!(answer(stopped).await.0, ProblemKind::NotReady.status());
        let wrong_size = || InferError::InputSize { variant: ModelVariant::Gray, got: 3, expected: 89401 }.into();
        let (status, _, message) = answer(wrong_size).await;
        assert_eq!((status, message.contains("89401")), (StatusCode::BAD_REQUEST, true), "a v2 client's mistake");
        let timeout = || ApiError::RequestTimeout(30).into();
        assert_eq!(answer(timeout).await.0, ProblemKind::RequestTimeout.status());
    }
}
