//! [`open`]: the store a URL names, by its scheme. The only module that knows every backend
//! (backends import [`crate::store`] and nothing that imports them back).

use std::sync::Arc;

use crate::store::{Store, StoreError};

/// Opens the store a URL names (see the crate docs for the schemes).
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    // `rest` is the embedded backend's directory.
    #[cfg_attr(
        not(feature = "embedded"),
        expect(unused_variables, reason = "only the embedded backend reads `rest`")
    )]
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
        #[cfg(feature = "scylla")]
        "scylla" => Ok(Arc::new(crate::scylla::ScyllaStore::open(url).await?)),
        #[cfg(not(feature = "scylla"))]
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
