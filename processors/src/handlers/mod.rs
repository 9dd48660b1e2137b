//! One folder per processor.

mod user_progress;

pub use user_progress::UserProgress;

use std::sync::Arc;

use fleuve_projections::Store;

use crate::runtime::Handler;

/// Names of every processor, as `fleuve process <name>` accepts them.
pub const NAMES: &[&str] = &[user_progress::NAME];

/// The processor called `name`, writing to `store`.
pub fn by_name(name: &str, store: Arc<dyn Store>) -> Option<Arc<dyn Handler>> {
    match name {
        user_progress::NAME => Some(Arc::new(UserProgress::new(store))),
        _ => None,
    }
}
