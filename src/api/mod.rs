//! The HTTP layer: the route table, the router with its middleware, and the small handlers (models, health,
//! metrics, A/B summary, OpenAPI document).
//!
//! [`Endpoint::ALL`] is the single list of routes: [`app`] builds the router from it and the test suite checks
//! that `openapi.yaml` documents exactly these routes, so a route cannot be added without its documentation.
//! `POST /predict` lives in [`predict`] (its maps and overlays come from [`crate::inference::explain`]), the Open
//! Inference Protocol in [`v2`], request bodies in [`body`], errors as problem details in [`error`], API keys in
//! [`auth`] and the request middleware in [`middleware`]. `GET /metrics` renders [`crate::telemetry::metrics`] and
//! `GET /v1/ab` summarises [`crate::telemetry::ab`].
//!
//! Architecture invariants: this is the top layer below `server`; its modules use the layers below (inference,
//! state, telemetry, config) and never the other way round, and this file (the router) is the only one that
//! imports the handlers. Handlers know nothing about DICOM (decoding is `cxr_core::decode`'s job) and nothing
//! about ONNX Runtime (that is [`cxr_engine`]'s).

pub mod auth;
pub mod body;
pub mod dicomweb;
pub mod error;
pub mod middleware;
pub mod predict;
pub mod v2;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use cxr_core::card::{ModelCard, ModelVariant};
use serde::Serialize;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultOnFailure, DefaultOnRequest, DefaultOnResponse, TraceLayer};
use tracing::Level;

use self::error::ApiError;
use self::middleware::RequestId;
use crate::state::AppState;
use crate::telemetry::ab::AbSummary;
use crate::telemetry::metrics;
use crate::telemetry::millis;
use cxr_engine::Precision;
use cxr_engine::{CardSource, StagingKind, TensorInfo};

/// The OpenAPI description served at `/openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

/// Every route of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /predict`: classify one image.
    Predict,
    /// `GET /v1/models`: the loaded models and their cards.
    Models,
    /// `GET /v1/ab`: live A/B statistics of the color and gray models.
    Ab,
    /// `GET /healthz`: liveness.
    Healthz,
    /// `GET /readyz`: readiness (models loaded and warmed up).
    Readyz,
    /// `GET /metrics`: Prometheus metrics (text exposition format 0.0.4).
    Metrics,
    /// `GET /openapi.yaml`: this API's description.
    OpenApi,
    /// `GET /v2`: Open Inference Protocol server metadata.
    V2Server,
    /// `GET /v2/health/live`.
    V2Live,
    /// `GET /v2/health/ready`.
    V2Ready,
    /// `GET /v2/models/{name}`: model metadata.
    V2Model,
    /// `GET /v2/models/{name}/ready`.
    V2ModelReady,
    /// `POST /v2/models/{name}/infer`: inference on preprocessed tensors.
    V2Infer,
    /// `POST /dicomweb/studies`: STOW-RS intake of instances of any study.
    DicomWebStore,
    /// `POST /dicomweb/studies/{study}`: STOW-RS intake of one study's instances.
    DicomWebStoreStudy,
}

/// One row of the route table.
struct Route {
    endpoint: Endpoint,
    /// The HTTP method, upper case.
    method: &'static str,
    path: &'static str,
    /// Whether the route needs an API key when keys are configured.
    protected: bool,
    /// The route's handler with its own layers (the concurrency limit of the inference routes).
    handler: fn(&AppState) -> MethodRouter<AppState>,
}

/// The route table, in the order of [`Endpoint`]'s variants (row `i` is the endpoint whose discriminant is `i`,
/// checked by a test): adding a route is a variant and a row.
const ROUTES: [Route; 15] = [
    Route {
        endpoint: Endpoint::Predict,
        method: "POST",
        path: "/predict",
        protected: true,
        handler: |state| {
            post(predict::predict)
                .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::limit_concurrency))
        },
    },
    Route { endpoint: Endpoint::Models, method: "GET", path: "/v1/models", protected: true, handler: |_| get(models) },
    Route { endpoint: Endpoint::Ab, method: "GET", path: "/v1/ab", protected: true, handler: |_| get(ab) },
    Route { endpoint: Endpoint::Healthz, method: "GET", path: "/healthz", protected: false, handler: |_| get(healthz) },
    Route { endpoint: Endpoint::Readyz, method: "GET", path: "/readyz", protected: false, handler: |_| get(readyz) },
    Route { endpoint: Endpoint::Metrics, method: "GET", path: "/metrics", protected: false, handler: |_| get(metrics) },
    Route {
        endpoint: Endpoint::OpenApi,
        method: "GET",
        path: "/openapi.yaml",
        protected: false,
        handler: |_| get(openapi),
    },
    Route {
        endpoint: Endpoint::V2Server,
        method: "GET",
        path: "/v2",
        protected: false,
        handler: |_| get(v2::server_metadata),
    },
    Route {
        endpoint: Endpoint::V2Live,
        method: "GET",
        path: "/v2/health/live",
        protected: false,
        handler: |_| get(v2::live),
    },
    Route {
        endpoint: Endpoint::V2Ready,
        method: "GET",
        path: "/v2/health/ready",
        protected: false,
        handler: |_| get(v2::ready),
    },
    Route {
        endpoint: Endpoint::V2Model,
        method: "GET",
        path: "/v2/models/{name}",
        protected: true,
        handler: |_| get(v2::model_metadata),
    },
    Route {
        endpoint: Endpoint::V2ModelReady,
        method: "GET",
        path: "/v2/models/{name}/ready",
        protected: true,
        handler: |_| get(v2::model_ready),
    },
    Route {
        endpoint: Endpoint::V2Infer,
        method: "POST",
        path: "/v2/models/{name}/infer",
        protected: true,
        handler: |state| {
            post(v2::infer).layer(axum::middleware::from_fn_with_state(state.clone(), v2::limit_concurrency))
        },
    },
    Route {
        endpoint: Endpoint::DicomWebStore,
        method: "POST",
        path: "/dicomweb/studies",
        protected: true,
        handler: |state| {
            post(dicomweb::store)
                .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::limit_concurrency))
        },
    },
    Route {
        endpoint: Endpoint::DicomWebStoreStudy,
        method: "POST",
        path: "/dicomweb/studies/{study}",
        protected: true,
        handler: |state| {
            post(dicomweb::store_in_study)
                .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::limit_concurrency))
        },
    },
];

impl Endpoint {
    /// The route table's endpoints; [`app`] serves exactly these.
    pub const ALL: [Endpoint; ROUTES.len()] = {
        let mut all = [Endpoint::Predict; ROUTES.len()];
        let mut i = 0;
        while i < ROUTES.len() {
            all[i] = ROUTES[i].endpoint;
            i += 1;
        }
        all
    };

    const fn route(self) -> &'static Route {
        &ROUTES[self as usize]
    }

    /// The HTTP method, upper case.
    pub const fn method(self) -> &'static str {
        self.route().method
    }

    /// The path.
    pub const fn path(self) -> &'static str {
        self.route().path
    }

    /// Whether the route needs an API key when keys are configured (inference and model routes; health, readiness,
    /// metrics and the OpenAPI document stay open).
    pub const fn protected(self) -> bool {
        self.route().protected
    }

    fn handler(self, state: &AppState) -> MethodRouter<AppState> {
        let handler = (self.route().handler)(state);
        if self.protected() {
            handler.layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_api_key))
        } else {
            handler
        }
    }
}

/// The application: every [`Endpoint`], problem-details fallbacks and the middleware stack.
///
/// Layers, outermost first: request id (and problem `instance`), tracing, request metrics, panic catching, body
/// limit; `/predict` additionally holds a concurrency permit. The metrics layer sits inside the request id (so it
/// sees problem responses, and panics already turned into 500s) and is applied per route by [`Router::layer`], so
/// it sees the matched route template.
pub fn app(state: AppState) -> Router {
    let routes = Endpoint::ALL
        .into_iter()
        .filter(|endpoint| !(*endpoint == Endpoint::Metrics && state.metrics_elsewhere()))
        .fold(Router::new(), |router, endpoint| router.route(endpoint.path(), endpoint.handler(&state)));
    let cors = cors_layer(state.cors_origins());
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &Request| {
            let id = request.extensions().get::<RequestId>().map_or("", RequestId::as_str);
            tracing::info_span!("request", id, method = %request.method(), path = request.uri().path())
        })
        .on_request(DefaultOnRequest::new().level(Level::DEBUG))
        .on_response(DefaultOnResponse::new().level(Level::INFO).latency_unit(tower_http::LatencyUnit::Millis))
        // Error responses are logged where they are made (`ApiError`); this only adds the classification.
        .on_failure(DefaultOnFailure::new().level(Level::DEBUG));
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.max_body_bytes()))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::track_requests))
        .layer(trace)
        .layer(axum::middleware::from_fn(middleware::request_id))
        .layer(cors)
        .with_state(state)
}

/// CORS for `--cors-origin` (off when none: no CORS headers, browsers keep the same-origin rule).
fn cors_layer(origins: &[String]) -> tower::util::Either<tower_http::cors::CorsLayer, tower::layer::util::Identity> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return tower::util::Either::Right(tower::layer::util::Identity::new());
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    tower::util::Either::Left(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                header::HeaderName::from_static("x-api-key"),
                header::HeaderName::from_static("x-request-id"),
                header::HeaderName::from_static(v2::HEADER_LENGTH),
            ])
            .expose_headers([
                header::HeaderName::from_static("x-request-id"),
                header::HeaderName::from_static(v2::HEADER_LENGTH),
            ]),
    )
}

/// The router of `--metrics-bind`: `/metrics` alone.
pub fn metrics_app(state: AppState) -> Router {
    Router::new().route(Endpoint::Metrics.path(), get(metrics)).with_state(state)
}

async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound(request.uri().path().to_string())
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::MethodNotAllowed { method: request.method().to_string(), path: request.uri().path().to_string() }
}

/// `GET /healthz`: the process is up and serving HTTP.
async fn healthz() -> Json<Status> {
    Json(Status { status: "ok", models: None })
}

/// `GET /readyz`: 200 once both models are loaded and warmed up, until shutdown starts.
async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    if !state.is_ready() {
        let reason = match state.engine() {
            None => "the models are still loading",
            Some(engine) if engine.models().any(|m| !m.is_running()) => "a model worker has stopped (see the log)",
            Some(_) => "the server is shutting down",
        };
        return Err(ApiError::NotReady(reason.into()));
    }
    let engine = state.ready_engine()?;
    Ok(Json(Status { status: "ready", models: Some(engine.models().map(|m| m.info().variant).collect()) }))
}

#[derive(Debug, Serialize)]
struct Status {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    models: Option<Vec<ModelVariant>>,
}

/// `GET /v1/models`: the loaded models.
async fn models(State(state): State<AppState>) -> Result<Json<ModelsResponse>, ApiError> {
    let engine = state.ready_engine()?;
    let models = engine
        .models()
        .map(|model| {
            let info = model.info();
            ModelDescription {
                model: info.variant,
                file: info.path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
                precision: info.precision,
                io_binding: info.io_binding,
                provider: info.provider,
                card_source: info.card_source,
                input: info.input.clone(),
                outputs: info.outputs.clone(),
                warm_up_ms: millis(info.warm_up),
                max_batch: info.max_batch,
                batch_sizes: info.batch_sizes.clone(),
                warmed_batch_sizes: info.warmed.clone(),
                queue_capacity: info.queue_capacity,
                card: info.card.clone(),
            }
        })
        .collect();
    Ok(Json(ModelsResponse { default_model: state.default_model().as_str(), models }))
}

/// Body of `GET /v1/models`.
#[derive(Debug, Serialize)]
pub struct ModelsResponse {
    /// What `POST /predict` runs without `?model=`.
    pub default_model: &'static str,
    pub models: Vec<ModelDescription>,
}

/// One loaded model.
#[derive(Debug, Serialize)]
pub struct ModelDescription {
    pub model: ModelVariant,
    /// File name inside the models directory.
    pub file: String,
    /// `fp32`, or `fp16` for the `<name>.fp16.onnx` files (`--precision`).
    pub precision: Precision,
    /// `off`, `host` or `pinned`: what the model's batches go through (`--io-binding`).
    pub io_binding: StagingKind,
    pub provider: cxr_engine::Provider,
    pub card_source: CardSource,
    pub input: TensorInfo,
    pub outputs: Vec<TensorInfo>,
    pub warm_up_ms: f64,
    /// Most images the model's worker stacks into one session run.
    pub max_batch: usize,
    /// The padded batch sizes (empty: every batch runs at its own size).
    pub batch_sizes: Vec<usize>,
    /// The batch sizes run once before the model became ready.
    pub warmed_batch_sizes: Vec<usize>,
    /// Jobs that may wait in the model's queue.
    pub queue_capacity: usize,
    pub card: ModelCard,
}

/// `GET /metrics`: the Prometheus text exposition; answers before the models are loaded too.
async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let text = state
        .metrics()
        .render(state.engine().map(Arc::as_ref))
        .map_err(|error| ApiError::Internal(format!("cannot encode the metrics: {error}")))?;
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static(metrics::CONTENT_TYPE))], text).into_response())
}

/// `GET /v1/ab`: the A/B summary; the bootstrap runs on the blocking pool.
async fn ab(State(state): State<AppState>) -> Result<Json<AbSummary>, ApiError> {
    let ab = Arc::clone(state.ab());
    let summary = tokio::task::spawn_blocking(move || ab.summary()).await?;
    Ok(Json(AbSummary::clone(&summary)))
}

/// `GET /openapi.yaml`.
async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/yaml"))], OPENAPI_YAML).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_row_is_its_endpoint() {
        for (i, route) in ROUTES.iter().enumerate() {
            assert_eq!(route.endpoint as usize, i, "row {i} ({}) is out of declaration order", route.path);
        }
    }
}
