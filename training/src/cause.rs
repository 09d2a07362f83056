//! [`Cause`]: the error under a training-crate error (a run directory that cannot be read, a checkpoint that does
//! not load, a file that cannot be imported). Foreign errors are kept as errors, so the chain reaches the user
//! (`source()`); a check of this crate's own is a message. `During` adds the step that failed without losing the
//! error under it.

/// What went wrong underneath a training-crate error.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Protobuf(#[from] protobuf::Error),
    /// Burn could not save, load or apply a record.
    #[error(transparent)]
    Record(#[from] burn::store::RecordError),
    #[error(transparent)]
    Pack(#[from] burn_pack::Error),
    #[error(transparent)]
    Card(#[from] cxr_core::card::CardError),
    #[error(transparent)]
    Decode(#[from] cxr_core::decode::DecodeError),
    /// Any other library's error (plotting, burn-store's readers, Burn's device errors).
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
    /// A check of this crate's own failed; there is no underlying error.
    #[error("{0}")]
    Check(String),
    /// `source` failed during `step`.
    #[error("{step}: {source}")]
    During { step: String, source: Box<Cause> },
}

impl Cause {
    /// `source`, which happened during `step` (e.g. "reading probabilities").
    pub fn during(step: impl Into<String>, source: impl Into<Cause>) -> Cause {
        Cause::During { step: step.into(), source: Box::new(source.into()) }
    }

    /// Another library's error, kept as an error.
    pub fn other(error: impl std::error::Error + Send + Sync + 'static) -> Cause {
        Cause::Other(Box::new(error))
    }

    /// An error type that implements only `Debug` (some of Burn's): its debug text, as a check.
    pub fn debug(error: impl std::fmt::Debug) -> Cause {
        Cause::Check(format!("{error:?}"))
    }
}

impl From<String> for Cause {
    fn from(message: String) -> Self {
        Cause::Check(message)
    }
}

impl From<&str> for Cause {
    fn from(message: &str) -> Self {
        Cause::Check(message.to_string())
    }
}
