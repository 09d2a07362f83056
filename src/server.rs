//! Running the server: logging setup, binding, background model loading and graceful shutdown.
//!
//! [`serve`] binds first, prints `listening on ADDR` on stdout (so a caller that asked for port 0 learns the port)
//! and answers `/healthz` at once; the models load on the blocking pool and `/readyz` turns 200 when they are warm.
//! SIGTERM or SIGINT stops accepting connections, lets in-flight requests finish (at most
//! `--shutdown-grace-secs`), drains the model queues and returns `Ok`, so the process exits 0.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use crate::api::app;
use crate::config::{Config, ConfigError, KeyFileError, LogFormat};

use crate::state::{AppState, LoadError};

/// Why the server stopped other than by a signal.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("HTTP server failed: {0}")]
    Http(#[source] std::io::Error),
    #[error("cannot install the SIGTERM/SIGINT handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error("models failed to load: {0}")]
    Load(#[from] LoadError),
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Keys(#[from] KeyFileError),
}

/// Installs the global `tracing` subscriber (stderr, `RUST_LOG` filter, default `info`).
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if installed.is_err() {
        tracing::debug!("a tracing subscriber was already installed");
    }
}

/// Serves until SIGTERM/SIGINT (then returns `Ok` once drained) or until the models fail to load.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    tracing::info!(?config, "effective configuration");
    config.validate()?;
    if config.tune_malloc {
        let tuning = crate::malloc::tune();
        let (mmap_threshold, trim_threshold) = (crate::malloc::MMAP_THRESHOLD, crate::malloc::TRIM_THRESHOLD);
        tracing::info!(?tuning, mmap_threshold, trim_threshold, "malloc");
    }
    let keys = config.api_keys()?;
    if keys.required() {
        tracing::info!(keys = ?keys, "API keys required on the inference and model routes");
    }
    let signals = ShutdownSignals::register()?;
    let listener =
        TcpListener::bind(config.bind).await.map_err(|source| ServeError::Bind { addr: config.bind, source })?;
    let addr = listener.local_addr().map_err(ServeError::Http)?;
    tracing::info!(%addr, "listening");
    // The one line meant for machines: scripts and tests read the bound port from it.
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "listening on {addr}");
    let _ = stdout.flush();
    drop(stdout);

    let state = AppState::new(&config);
    let (failure_tx, failure) = oneshot::channel::<LoadError>();
    {
        let state = state.clone();
        let settings = config.engine_settings();
        // Not awaited: a signal during startup shuts down without waiting for the models.
        drop(tokio::task::spawn_blocking(move || match state.load_engine(&settings) {
            Ok(engine) => {
                state.set_engine(engine);
                tracing::info!("models loaded and warmed up: ready");
            }
            Err(error) => {
                tracing::error!(%error, "models failed to load; shutting down");
                let _ = failure_tx.send(error);
            }
        }));
    }

    // The load error that stopped the server; `None` when a signal did.
    let failed: Arc<Mutex<Option<LoadError>>> = Arc::default();
    let (draining_tx, mut draining) = watch::channel(false);
    let shutdown = {
        let state = state.clone();
        let failed = Arc::clone(&failed);
        async move {
            tokio::select! {
                signal = signals.recv() => {
                    tracing::info!(signal, "shutdown requested: finishing in-flight requests");
                }
                error = async {
                    match failure.await {
                        Ok(error) => error,
                        // The loader drops its sender once it succeeded: that is no reason to stop.
                        Err(_) => std::future::pending().await,
                    }
                } => {
                    *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
                }
            }
            state.start_draining();
            let _ = draining_tx.send(true);
        }
    };
    let metrics_server = match config.metrics_bind {
        Some(metrics_addr) => Some(serve_metrics(metrics_addr, &state).await?),
        None => None,
    };
    let server = axum::serve(listener, app(state.clone())).with_graceful_shutdown(shutdown);
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let served = tokio::select! {
        served = server => served.map_err(ServeError::Http),
        _ = async {
            let _ = draining.wait_for(|d| *d).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish in time; exiting anyway");
            Ok(())
        }
    };

    if let Some(task) = metrics_server {
        task.abort();
    }
    if let Some(error) = failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(ServeError::Load(error));
    }
    served?;
    wind_down(state, grace).await;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// After the last request: the results still on their way to the PACS get the same grace as the requests had, then
/// the engine's workers stop.
async fn wind_down(state: AppState, grace: Duration) {
    if let Some(delivery) = state.delivery() {
        let left = delivery.drain(grace).await;
        if left > 0 {
            tracing::warn!(
                left,
                "DICOMweb results still queued at shutdown are lost (the PACS did not take them in time)"
            );
        }
    }
    // Dropping the engine waits for its workers; keep that off the async threads.
    if let Some(engine) = state.into_engine() {
        let _ = tokio::task::spawn_blocking(move || drop(engine)).await;
    }
}

/// SIGTERM and SIGINT, registered up front so that a signal arriving during startup is not lost (or fatal).
struct ShutdownSignals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn register() -> Result<ShutdownSignals, ServeError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(ShutdownSignals {
                terminate: signal(SignalKind::terminate()).map_err(ServeError::Signals)?,
                interrupt: signal(SignalKind::interrupt()).map_err(ServeError::Signals)?,
            })
        }
        #[cfg(not(unix))]
        Ok(ShutdownSignals {})
    }

    /// Resolves with the name of the first signal received.
    async fn recv(mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.terminate.recv() => "SIGTERM",
                _ = self.interrupt.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}

/// `/metrics` on its own listener (`--metrics-bind`); it stops with the process (or when the task is aborted).
async fn serve_metrics(
    addr: std::net::SocketAddr,
    state: &AppState,
) -> Result<tokio::task::JoinHandle<std::io::Result<()>>, ServeError> {
    let listener = TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr, source })?;
    let bound = listener.local_addr().map_err(ServeError::Http)?;
    tracing::info!(addr = %bound, "metrics listening");
    let router = crate::api::metrics_app(state.clone());
    Ok(tokio::spawn(async move { axum::serve(listener, router).await }))
}
