use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use crate::{Checkpoint, Page, PageRequest, Progress, ProgressBatch};

/// Errors of a projection store. [`StoreError::is_transient`] tells a processor whether to
/// retry with backoff (never skip) or to stop.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names a backend this build does not include.
    #[error("store backend `{scheme}` is not compiled in: rebuild with the `{feature}` feature")]
    FeatureNotEnabled {
        scheme: String,
        feature: &'static str,
    },
    /// The URL could not be understood.
    #[error("invalid store URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// A pagination cursor that this store did not issue.
    #[error("invalid cursor: {0}")]
    InvalidCursor(String),
    /// The store is temporarily unavailable (I/O hiccup, timeout, node down): retry.
    #[error("store temporarily unavailable: {0}")]
    Unavailable(String),
    /// Data in the store could not be read back: a bug or corruption; stop.
    #[error("corrupt data in the store at `{key}`: {reason}")]
    Corrupt { key: String, reason: String },
    /// Any other backend failure; stop.
    #[error("store failure: {0}")]
    Backend(String),
}

impl StoreError {
    /// Whether retrying the same operation later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// A projection store. Implementations must apply batches atomically (rows and checkpoints
/// together) and idempotently (last write wins by [`crate::EventVersion`]).
#[async_trait]
pub trait Store: Send + Sync + Debug + 'static {
    /// Applies rows and checkpoints in one atomic write.
    async fn apply(&self, batch: ProgressBatch) -> Result<(), StoreError>;

    /// The checkpoint of `projection` for one partition, if it has applied anything there.
    async fn checkpoint(
        &self,
        projection: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<Checkpoint>, StoreError>;

    /// One user's progress on one content.
    async fn get_progress(
        &self,
        user_id: &str,
        content_id: &str,
    ) -> Result<Option<Progress>, StoreError>;

    /// A user's progress rows, most recently updated first.
    async fn list_progress(
        &self,
        user_id: &str,
        page: PageRequest,
    ) -> Result<Page<Progress>, StoreError>;

    /// Checks that the store answers (for readiness probes).
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Opens the store a URL names (see the crate docs for the schemes).
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| StoreError::InvalidUrl {
            url: url.to_owned(),
            reason: "expected <scheme>://<location>, for example embedded://var/projections".into(),
        })?;
    match scheme {
        #[cfg(feature = "embedded")]
        "embedded" => {
            if rest.is_empty() {
                return Err(StoreError::InvalidUrl {
                    url: url.to_owned(),
                    reason: "missing directory path".into(),
                });
            }
            Ok(Arc::new(crate::embedded::EmbeddedStore::open(rest).await?))
        }
        #[cfg(not(feature = "embedded"))]
        "embedded" => Err(StoreError::FeatureNotEnabled {
            scheme: scheme.to_owned(),
            feature: "embedded",
        }),
        "scylla" => Err(StoreError::FeatureNotEnabled {
            scheme: scheme.to_owned(),
            feature: "scylla",
        }),
        other => Err(StoreError::InvalidUrl {
            url: url.to_owned(),
            reason: format!("unknown scheme `{other}` (expected `embedded` or `scylla`)"),
        }),
    }
}
