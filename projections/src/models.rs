//! The one registration list of read models ([`MODELS`]) and what derives from it.

use crate::read_model::ReadModel;
use crate::{bookmarks, catalog, inventory, orders, progress};

/// Every read model, in the order tools list them: the one registration list.
pub const MODELS: &[&ReadModel] = &[
    &progress::MODEL,
    &bookmarks::MODEL,
    &catalog::MODEL,
    &orders::MODEL,
    &inventory::MODEL,
];

/// The read model called `name`.
pub fn model(name: &str) -> Option<&'static ReadModel> {
    MODELS.iter().copied().find(|m| m.name == name)
}

/// Every table of every read model, for tools that walk them all (dumps, comparisons).
pub fn tables() -> impl Iterator<Item = &'static str> {
    MODELS.iter().flat_map(|m| m.tables.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tables_are_unique() {
        let mut names: Vec<&str> = MODELS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), MODELS.len(), "two read models share a name");
        let mut all: Vec<&str> = tables().collect();
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), count, "two read models share a table");
        assert_eq!(model("user_progress"), Some(&progress::MODEL));
        assert_eq!(model("nope"), None);
    }
}
