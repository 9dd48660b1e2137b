//! One folder per processor. Each folds the events of its topics into its read model: the
//! model's declaration in `fleuve_projections` (its `MODEL`, its typed tables, its key
//! functions) says where rows go and how they are encoded, and the processor holds only the
//! logic from events to rows, written with the tables' helpers
//! ([`fleuve_projections::Table::put`], `delete`, `delete_partition`, …). `exports`, which
//! is no read model, declares its own tables the same way.
//!
//! | processor | consumes | builds |
//! | --- | --- | --- |
//! | `user_progress` | `user-activity`: `PlaybackProgressed`, `UserDataErased` | [`fleuve_projections::progress`] |
//! | `bookmarks` | `user-activity`: `BookmarkAdded`, `BookmarkRemoved`, `UserDataErased` | [`fleuve_projections::bookmarks`] |
//! | `catalog` | `catalog`: every event, plus a timer | [`fleuve_projections::catalog`] |
//! | `orders` | `orders`: every event | [`fleuve_projections::orders`] |
//! | `inventory` | `inventory`: every event | [`fleuve_projections::inventory`] |
//! | `exports` | `catalog`: every event, plus a timer | its own tables, and each configured partner's topic `export.<partner>.catalog` through an outbox and its [`exports::Relay`] |

pub mod exports;
#[cfg(test)]
mod testing;

use std::sync::Arc;

use fleuve_schemas::Event;

pub use exports::Exports;

use crate::runtime::{Handler, Incoming};

/// A handler module per read model of [`fleuve_projections::read_models!`], named as the
/// model's module; each offers `handler()`. `exports` builds no read model and is added by
/// hand.
macro_rules! declare_handlers {
    ($($model:ident),*) => {
        $(pub mod $model;)*

        /// Names of every processor, as `fleuve process <name>` accepts them.
        pub const NAMES: &[&str] = &[$(fleuve_projections::$model::MODEL.name,)* exports::NAME];

        /// The processor called `name`.
        pub fn by_name(name: &str) -> Option<Arc<dyn Handler>> {
            $(
                if name == fleuve_projections::$model::MODEL.name {
                    return Some($model::handler());
                }
            )*
            // No partner: `fleuve` builds it with the configured partners (and runs its relay).
            (name == exports::NAME).then(|| Arc::new(Exports::default()) as Arc<dyn Handler>)
        }
    };
}

fleuve_projections::read_models!(declare_handlers);

/// Decodes each event of a batch with `decode` (which names the event type it expects):
/// the events that decode, with their index in the batch, and the reasons of the others
/// added to `rejected`.
pub(crate) fn decode_each<'e, I>(
    events: &'e [Incoming],
    rejected: &mut Vec<(usize, String)>,
    decode: impl Fn(&Incoming) -> Result<I, String>,
) -> Vec<(usize, &'e Incoming, I)> {
    let mut items = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        match decode(event) {
            Ok(item) => items.push((i, event, item)),
            Err(reason) => rejected.push((i, reason)),
        }
    }
    items
}

/// Decodes an event into its Rust type and checks its rules; the error is the reason a
/// dead letter carries.
pub(crate) fn decode<E: Event>(event: &Incoming) -> Result<E, String> {
    let e = E::from_avro(&event.value).map_err(|e| e.to_string())?;
    e.validate()
        .map_err(|e| format!("invalid {}: {e}", E::TYPE))?;
    Ok(e)
}
