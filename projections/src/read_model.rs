//! What a read model declares once: its name, the topics its processor folds, its tables.
//! Everything that lists read models (versions, readiness lag, handlers' topics, routes,
//! read-your-writes) derives from [`crate::MODELS`].

/// The declaration of one read model.
#[derive(Debug, PartialEq, Eq)]
pub struct ReadModel {
    /// Name of the read model, of the processor that builds it and of its checkpoints
    /// (`user_progress`, `catalog`, …).
    pub name: &'static str,
    /// The topics its processor consumes: a position on any other topic cannot change what
    /// it holds.
    pub topics: &'static [&'static str],
    /// Its tables, each a name of the store.
    pub tables: &'static [&'static str],
}

impl ReadModel {
    /// Whether a record of `topic` can change this read model.
    pub fn reads_topic(&self, topic: &str) -> bool {
        self.topics.contains(&topic)
    }
}
