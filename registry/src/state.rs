//! The registry's state: a pure, deterministic fold of the `_schemas` log.
//!
//! Every replica folds the same records in the same order, so every replica holds the same
//! ids and versions. Nothing here talks to Kafka.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::record::{LogRecord, ParsedSchema, SchemaType};

/// A schema known by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredSchema {
    pub id: u32,
    pub schema_type: SchemaType,
    /// The text of the first record that introduced this schema.
    pub text: Arc<str>,
}

/// The versions of one subject.
#[derive(Debug, Default, Clone)]
pub(crate) struct Subject {
    /// version → schema id
    versions: BTreeMap<u32, u32>,
    /// schema id → version (one version per distinct schema in a subject)
    version_of_id: HashMap<u32, u32>,
}

impl Subject {
    /// Versions in increasing order.
    pub(crate) fn versions(&self) -> impl Iterator<Item = u32> + '_ {
        self.versions.keys().copied()
    }

    /// The schema id of a version.
    pub(crate) fn id_of(&self, version: u32) -> Option<u32> {
        self.versions.get(&version).copied()
    }

    /// The latest version and its schema id.
    pub(crate) fn latest(&self) -> Option<(u32, u32)> {
        self.versions.last_key_value().map(|(v, id)| (*v, *id))
    }
}

/// What folding one record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Applied {
    /// A new version of a subject.
    Registered {
        subject: String,
        version: u32,
        id: u32,
    },
    /// The subject already had this schema: nothing changed.
    AlreadyRegistered {
        subject: String,
        version: u32,
        id: u32,
    },
    /// The record's offset cannot be turned into a schema id (beyond `i32::MAX`).
    IdOutOfRange,
}

/// The folded state.
#[derive(Debug, Default, Clone)]
pub(crate) struct State {
    schemas: BTreeMap<u32, StoredSchema>,
    id_by_canonical: HashMap<Arc<str>, u32>,
    subjects: BTreeMap<String, Subject>,
}

impl State {
    /// Folds the record found at `offset`.
    ///
    /// A registration is a no-op when the subject already has a schema with the same
    /// canonical form; otherwise it becomes version `last + 1` of the subject, with the id of
    /// the first record of the log that carried an equal schema, else `offset + 1`.
    pub(crate) fn apply(&mut self, offset: i64, record: LogRecord) -> Applied {
        match record {
            LogRecord::Schema { subject, schema } => self.register(offset, subject, schema),
        }
    }

    fn register(&mut self, offset: i64, subject: String, schema: ParsedSchema) -> Applied {
        let id = match self.id_by_canonical.get(&schema.canonical) {
            Some(id) => *id,
            None => {
                let Some(id) = offset
                    .checked_add(1)
                    .and_then(|id| i32::try_from(id).ok())
                    .and_then(|id| u32::try_from(id).ok())
                else {
                    return Applied::IdOutOfRange;
                };
                self.id_by_canonical.insert(schema.canonical.clone(), id);
                self.schemas.insert(
                    id,
                    StoredSchema {
                        id,
                        schema_type: schema.schema_type,
                        text: schema.text,
                    },
                );
                id
            }
        };
        let entry = self.subjects.entry(subject.clone()).or_default();
        if let Some(version) = entry.version_of_id.get(&id) {
            return Applied::AlreadyRegistered {
                subject,
                version: *version,
                id,
            };
        }
        let version = entry.latest().map_or(1, |(v, _)| v + 1);
        entry.versions.insert(version, id);
        entry.version_of_id.insert(id, version);
        Applied::Registered {
            subject,
            version,
            id,
        }
    }

    /// Subject names, sorted.
    pub(crate) fn subject_names(&self) -> Vec<String> {
        self.subjects.keys().cloned().collect()
    }

    pub(crate) fn subject(&self, name: &str) -> Option<&Subject> {
        self.subjects.get(name)
    }

    pub(crate) fn schema(&self, id: u32) -> Option<&StoredSchema> {
        self.schemas.get(&id)
    }

    /// Number of distinct schemas (ids).
    pub(crate) fn schema_count(&self) -> usize {
        self.schemas.len()
    }

    /// The version and id under which `subject` has a schema with this canonical form.
    pub(crate) fn lookup(&self, subject: &str, canonical: &str) -> Option<(u32, u32)> {
        let id = *self.id_by_canonical.get(canonical)?;
        let version = *self.subjects.get(subject)?.version_of_id.get(&id)?;
        Some((version, id))
    }

    /// Every `(subject, version)` that uses schema `id`, sorted.
    pub(crate) fn usages(&self, id: u32) -> Vec<(String, u32)> {
        self.subjects
            .iter()
            .filter_map(|(name, s)| s.version_of_id.get(&id).map(|v| (name.clone(), *v)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(fields: &str) -> String {
        format!(r#"{{"type":"record","name":"User","namespace":"t","fields":[{fields}]}}"#)
    }

    fn reg(subject: &str, text: &str) -> LogRecord {
        LogRecord::Schema {
            subject: subject.to_owned(),
            schema: ParsedSchema::avro(text).unwrap(),
        }
    }

    fn fold(records: Vec<LogRecord>) -> (State, Vec<Applied>) {
        let mut state = State::default();
        let applied = records
            .into_iter()
            .enumerate()
            .map(|(offset, r)| state.apply(offset as i64, r))
            .collect();
        (state, applied)
    }

    fn registered(subject: &str, version: u32, id: u32) -> Applied {
        Applied::Registered {
            subject: subject.to_owned(),
            version,
            id,
        }
    }

    #[test]
    fn versions_increment_and_ids_are_offset_plus_one() {
        let v1 = user(r#"{"name":"id","type":"string"}"#);
        let v2 = user(r#"{"name":"id","type":"string"},{"name":"n","type":"int","default":0}"#);
        let v3 = user(r#"{"name":"id","type":"long"}"#);
        let (state, applied) = fold(vec![reg("s", &v1), reg("s", &v2), reg("s", &v3)]);
        assert_eq!(
            applied,
            vec![
                registered("s", 1, 1),
                registered("s", 2, 2),
                registered("s", 3, 3)
            ]
        );
        let s = state.subject("s").unwrap();
        assert_eq!(s.versions().collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(s.latest(), Some((3, 3)));
        assert_eq!(s.id_of(2), Some(2));
        assert_eq!(state.schema(2).unwrap().text.as_ref(), v2);
        assert_eq!(state.schema_count(), 3);
    }

    #[test]
    fn re_registering_the_same_schema_is_a_no_op() {
        let v1 = user(r#"{"name":"id","type":"string"}"#);
        let v2 = user(r#"{"name":"id","type":"long"}"#);
        let (state, applied) = fold(vec![reg("s", &v1), reg("s", &v2), reg("s", &v1)]);
        assert_eq!(
            applied[2],
            Applied::AlreadyRegistered {
                subject: "s".to_owned(),
                version: 1,
                id: 1
            }
        );
        assert_eq!(
            state.subject("s").unwrap().versions().collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(state.schema_count(), 2);
    }

    #[test]
    fn one_schema_in_two_subjects_shares_its_id() {
        let a = user(r#"{"name":"id","type":"string"}"#);
        let b = user(r#"{"name":"id","type":"long"}"#);
        let (state, applied) = fold(vec![reg("x", &b), reg("s", &a), reg("t", &a), reg("t", &b)]);
        assert_eq!(
            applied,
            vec![
                registered("x", 1, 1),
                registered("s", 1, 2),
                registered("t", 1, 2),
                registered("t", 2, 1)
            ]
        );
        assert_eq!(
            state.usages(2),
            vec![("s".to_owned(), 1), ("t".to_owned(), 1)]
        );
        assert_eq!(
            state.usages(1),
            vec![("t".to_owned(), 2), ("x".to_owned(), 1)]
        );
        assert_eq!(state.subject_names(), vec!["s", "t", "x"]);
    }

    #[test]
    fn schemas_differing_only_by_whitespace_are_equal() {
        let compact = user(r#"{"name":"id","type":"string"}"#);
        let spaced = "{\n  \"namespace\": \"t\",\n  \"name\": \"User\",\n  \"type\": \"record\",\n  \"fields\": [ { \"type\": \"string\", \"name\": \"id\" } ]\n}";
        let (state, applied) = fold(vec![reg("s", &compact), reg("s", spaced), reg("t", spaced)]);
        assert_eq!(
            applied[1],
            Applied::AlreadyRegistered {
                subject: "s".to_owned(),
                version: 1,
                id: 1
            }
        );
        assert_eq!(applied[2], registered("t", 1, 1));
        // Stored as first sent.
        assert_eq!(state.schema(1).unwrap().text.as_ref(), compact);
        let canonical = crate::record::canonical_avro(spaced).unwrap();
        assert_eq!(state.lookup("t", &canonical), Some((1, 1)));
        assert_eq!(state.lookup("nope", &canonical), None);
    }

    #[test]
    fn the_fold_is_deterministic_over_gaps_in_offsets() {
        let a = user(r#"{"name":"id","type":"string"}"#);
        let mut one = State::default();
        let mut two = State::default();
        for state in [&mut one, &mut two] {
            state.apply(4, reg("s", &a));
            state.apply(9, reg("t", &a));
        }
        assert_eq!(one.subject("t").unwrap().id_of(1), Some(5));
        assert_eq!(one.subject_names(), two.subject_names());
        assert_eq!(one.schema(5), two.schema(5));
        assert_eq!(
            State::default().apply(i64::from(i32::MAX), reg("s", &a)),
            Applied::IdOutOfRange
        );
    }
}
