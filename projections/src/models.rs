//! Look-ups over the registered read models ([`crate::MODELS`], declared by
//! [`crate::read_models!`]).

use crate::read_model::ReadModel;
use crate::MODELS;

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
    use crate::progress;

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
