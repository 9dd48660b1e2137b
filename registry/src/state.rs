//! The registry's state: a pure, deterministic fold of the `_schemas` log.
//!
//! Every replica folds the same records in the same order, so every replica holds the same
//! ids, versions, deletes and compatibility levels, and refuses the same incompatible
//! registrations. Nothing here talks to Kafka.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use apache_avro::Schema;

use crate::compatibility::{self, CompatibilityLevel};
use crate::record::{LogRecord, ParsedSchema, SchemaType};

/// How many recent outcomes are kept for the handlers that wrote the records.
const OUTCOMES_KEPT: usize = 4096;

/// A schema known by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredSchema {
    pub id: u32,
    pub schema_type: SchemaType,
    /// The text of the first record that introduced this schema.
    pub text: Arc<str>,
    pub parsed: Arc<ParsedSchema>,
}

/// One version of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Version {
    pub id: u32,
    /// Soft-deleted: hidden unless asked for with `deleted=true`.
    pub deleted: bool,
}

/// The versions of one subject (soft-deleted ones included; permanently deleted ones are
/// gone).
#[derive(Debug, Default, Clone)]
pub(crate) struct Subject {
    versions: BTreeMap<u32, Version>,
}

impl Subject {
    /// Versions in increasing order; soft-deleted ones only with `deleted`.
    pub(crate) fn versions(&self, deleted: bool) -> impl Iterator<Item = u32> + '_ {
        self.versions
            .iter()
            .filter(move |(_, v)| deleted || !v.deleted)
            .map(|(n, _)| *n)
    }

    /// A version, soft-deleted or not.
    pub(crate) fn version(&self, version: u32) -> Option<Version> {
        self.versions.get(&version).copied()
    }

    /// The schema id of a version (a soft-deleted one only with `deleted`).
    pub(crate) fn id_of(&self, version: u32, deleted: bool) -> Option<u32> {
        self.version(version)
            .filter(|v| deleted || !v.deleted)
            .map(|v| v.id)
    }

    /// The latest version and its schema id (a soft-deleted one only with `deleted`).
    pub(crate) fn latest(&self, deleted: bool) -> Option<(u32, u32)> {
        self.versions
            .iter()
            .rev()
            .find(|(_, v)| deleted || !v.deleted)
            .map(|(n, v)| (*n, v.id))
    }

    /// Does the subject have a version that is not soft-deleted?
    pub(crate) fn is_live(&self) -> bool {
        self.versions.values().any(|v| !v.deleted)
    }

    /// The latest version holding schema `id` (a soft-deleted one only with `deleted`).
    fn version_of(&self, id: u32, deleted: bool) -> Option<u32> {
        self.versions
            .iter()
            .rev()
            .find(|(_, v)| v.id == id && (deleted || !v.deleted))
            .map(|(n, _)| *n)
    }
}

/// Why the fold refused a delete (the handler turns it into Confluent's error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// 40401
    SubjectNotFound,
    /// 40402
    VersionNotFound(u32),
    /// 40404: the subject is already soft-deleted.
    SubjectSoftDeleted,
    /// 40405: a permanent delete of a subject that was not soft-deleted first.
    SubjectNotSoftDeleted,
    /// 40406: the version is already soft-deleted.
    VersionSoftDeleted(u32),
    /// 40407: a permanent delete of a version that was not soft-deleted first.
    VersionNotSoftDeleted(u32),
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
    /// The subject already had this schema (not soft-deleted): nothing changed.
    AlreadyRegistered {
        subject: String,
        version: u32,
        id: u32,
    },
    /// The schema is incompatible with the subject's versions under the record's level:
    /// the record is ignored.
    Incompatible {
        subject: String,
        reasons: Vec<String>,
    },
    /// The record's offset cannot be turned into a schema id (beyond `i32::MAX`).
    IdOutOfRange,
    /// A compatibility level was set (`Some`) or removed (`None`).
    Config {
        subject: Option<String>,
        level: Option<CompatibilityLevel>,
    },
    /// These versions of the subject were soft- or permanently deleted.
    Deleted {
        subject: String,
        versions: Vec<u32>,
        permanent: bool,
    },
    /// A delete the state does not allow: nothing changed.
    Refused { subject: String, refusal: Refusal },
}

/// The folded state.
#[derive(Debug, Default, Clone)]
pub(crate) struct State {
    /// Every schema ever registered, by id (kept after permanent deletes: re-registering the
    /// same schema brings the same id back).
    schemas: BTreeMap<u32, StoredSchema>,
    id_by_canonical: HashMap<Arc<str>, u32>,
    subjects: BTreeMap<String, Subject>,
    global_level: Option<CompatibilityLevel>,
    subject_levels: BTreeMap<String, CompatibilityLevel>,
    /// The outcome of the last records folded, by offset, for the handler that wrote them.
    outcomes: VecDeque<(i64, Applied)>,
}

impl State {
    /// Folds the record found at `offset`.
    ///
    /// A registration is a no-op when the subject already has a live version with the same
    /// canonical form; it is refused when the record carries a level and the schema is
    /// incompatible under it with the subject's live versions; otherwise it becomes version
    /// `last + 1` of the subject (soft-deleted versions count), with the id of the first
    /// record of the log that carried an equal schema, else `offset + 1`.
    pub(crate) fn apply(&mut self, offset: i64, record: LogRecord) -> Applied {
        let applied = match record {
            LogRecord::Schema {
                subject,
                schema,
                compatibility,
            } => self.register(offset, subject, schema, compatibility),
            LogRecord::Config { subject, level } => {
                match (&subject, level) {
                    (None, level) => self.global_level = level,
                    (Some(s), Some(level)) => {
                        self.subject_levels.insert(s.clone(), level);
                    }
                    (Some(s), None) => {
                        self.subject_levels.remove(s);
                    }
                }
                Applied::Config { subject, level }
            }
            LogRecord::DeleteSubject { subject, permanent } => {
                self.delete(subject, None, permanent)
            }
            LogRecord::DeleteVersion {
                subject,
                version,
                permanent,
            } => self.delete(subject, Some(version), permanent),
        };
        if self.outcomes.len() >= OUTCOMES_KEPT {
            self.outcomes.pop_front();
        }
        self.outcomes.push_back((offset, applied.clone()));
        applied
    }

    /// Is `schema` compatible, under `level`, with the live versions of `subject`?
    pub(crate) fn check_registration(
        &self,
        subject: &str,
        schema: &Schema,
        level: CompatibilityLevel,
    ) -> Result<(), Vec<String>> {
        let Some(s) = self.subjects.get(subject) else {
            return Ok(());
        };
        let existing: Vec<(u32, &Schema)> = s
            .versions
            .iter()
            .filter(|(_, v)| !v.deleted)
            .filter_map(|(n, v)| Some((*n, self.schemas.get(&v.id)?.parsed.schema.as_ref())))
            .collect();
        compatibility::check_versions(level, schema, &existing)
    }

    fn register(
        &mut self,
        offset: i64,
        subject: String,
        schema: ParsedSchema,
        level: Option<CompatibilityLevel>,
    ) -> Applied {
        let known = self.id_by_canonical.get(&schema.canonical).copied();
        if let Some(id) = known {
            if let Some(version) = self
                .subjects
                .get(&subject)
                .and_then(|s| s.version_of(id, false))
            {
                return Applied::AlreadyRegistered {
                    subject,
                    version,
                    id,
                };
            }
        }
        if let Some(level) = level {
            if let Err(reasons) = self.check_registration(&subject, &schema.schema, level) {
                return Applied::Incompatible { subject, reasons };
            }
        }
        let id = match known {
            Some(id) => id,
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
                        text: schema.text.clone(),
                        parsed: Arc::new(schema),
                    },
                );
                id
            }
        };
        let entry = self.subjects.entry(subject.clone()).or_default();
        let version = entry.versions.last_key_value().map_or(1, |(v, _)| v + 1);
        entry
            .versions
            .insert(version, Version { id, deleted: false });
        Applied::Registered {
            subject,
            version,
            id,
        }
    }

    /// Why a delete of `subject` (one `version`, or all of it) would be refused, if it would.
    /// The handlers ask before writing; the fold asks again when it reads the record.
    pub(crate) fn delete_refusal(
        &self,
        subject: &str,
        version: Option<u32>,
        permanent: bool,
    ) -> Option<Refusal> {
        let Some(s) = self.subjects.get(subject) else {
            return Some(Refusal::SubjectNotFound);
        };
        match version {
            None if permanent && s.is_live() => Some(Refusal::SubjectNotSoftDeleted),
            None if !permanent && !s.is_live() => Some(Refusal::SubjectSoftDeleted),
            None => None,
            Some(version) => match s.version(version) {
                None => Some(Refusal::VersionNotFound(version)),
                Some(v) if permanent && !v.deleted => Some(Refusal::VersionNotSoftDeleted(version)),
                Some(v) if !permanent && v.deleted => Some(Refusal::VersionSoftDeleted(version)),
                Some(_) => None,
            },
        }
    }

    fn delete(&mut self, subject: String, version: Option<u32>, permanent: bool) -> Applied {
        if let Some(refusal) = self.delete_refusal(&subject, version, permanent) {
            return Applied::Refused { subject, refusal };
        }
        let Some(s) = self.subjects.get_mut(&subject) else {
            return Applied::Refused {
                subject,
                refusal: Refusal::SubjectNotFound,
            };
        };
        let versions: Vec<u32> = match version {
            Some(version) => vec![version],
            None => s.versions(permanent).collect(),
        };
        for version in &versions {
            if permanent {
                s.versions.remove(version);
            } else if let Some(v) = s.versions.get_mut(version) {
                v.deleted = true;
            }
        }
        if s.versions.is_empty() {
            self.subjects.remove(&subject);
        }
        Applied::Deleted {
            subject,
            versions,
            permanent,
        }
    }

    /// The outcome of the record folded at `offset`, if it is recent and was decodable.
    pub(crate) fn outcome(&self, offset: i64) -> Option<&Applied> {
        self.outcomes
            .iter()
            .rev()
            .find(|(o, _)| *o == offset)
            .map(|(_, a)| a)
    }

    /// Subject names, sorted: those with a live version, or with any version (`deleted`).
    pub(crate) fn subject_names(&self, deleted: bool) -> Vec<String> {
        self.subjects
            .iter()
            .filter(|(_, s)| deleted || s.is_live())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// A subject, with at least one version (soft-deleted or not).
    #[cfg(test)]
    pub(crate) fn subject(&self, name: &str) -> Option<&Subject> {
        self.subjects.get(name)
    }

    /// A subject with a live version, or with any version when `deleted`.
    pub(crate) fn visible_subject(&self, name: &str, deleted: bool) -> Option<&Subject> {
        self.subjects.get(name).filter(|s| deleted || s.is_live())
    }

    /// A schema by id, while some version (soft-deleted or not) of some subject uses it.
    pub(crate) fn schema(&self, id: u32) -> Option<&StoredSchema> {
        self.schemas.get(&id).filter(|_| {
            self.subjects
                .values()
                .any(|s| s.versions.values().any(|v| v.id == id))
        })
    }

    /// Number of distinct schemas (ids) ever registered.
    pub(crate) fn schema_count(&self) -> usize {
        self.schemas.len()
    }

    /// The version and id under which `subject` has a schema with this canonical form (a
    /// soft-deleted version only with `deleted`).
    pub(crate) fn lookup(
        &self,
        subject: &str,
        canonical: &str,
        deleted: bool,
    ) -> Option<(u32, u32)> {
        let id = *self.id_by_canonical.get(canonical)?;
        let version = self.subjects.get(subject)?.version_of(id, deleted)?;
        Some((version, id))
    }

    /// Every `(subject, version)` that uses schema `id`, sorted (soft-deleted ones only with
    /// `deleted`).
    pub(crate) fn usages(&self, id: u32, deleted: bool) -> Vec<(String, u32)> {
        self.subjects
            .iter()
            .flat_map(|(name, s)| {
                s.versions
                    .iter()
                    .filter(move |(_, v)| v.id == id && (deleted || !v.deleted))
                    .map(move |(n, _)| (name.clone(), *n))
            })
            .collect()
    }

    /// The global level (`BACKWARD` unless set).
    pub(crate) fn global_level(&self) -> CompatibilityLevel {
        self.global_level.unwrap_or_default()
    }

    /// The level set on a subject, if any.
    pub(crate) fn subject_level(&self, subject: &str) -> Option<CompatibilityLevel> {
        self.subject_levels.get(subject).copied()
    }

    /// The level that applies to a subject: its own, else the global one.
    pub(crate) fn effective_level(&self, subject: &str) -> CompatibilityLevel {
        self.subject_level(subject)
            .unwrap_or_else(|| self.global_level())
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
            compatibility: None,
        }
    }

    fn checked(subject: &str, text: &str, level: CompatibilityLevel) -> LogRecord {
        LogRecord::Schema {
            subject: subject.to_owned(),
            schema: ParsedSchema::avro(text).unwrap(),
            compatibility: Some(level),
        }
    }

    fn del_version(subject: &str, version: u32, permanent: bool) -> LogRecord {
        LogRecord::DeleteVersion {
            subject: subject.to_owned(),
            version,
            permanent,
        }
    }

    fn del_subject(subject: &str, permanent: bool) -> LogRecord {
        LogRecord::DeleteSubject {
            subject: subject.to_owned(),
            permanent,
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
        assert_eq!(s.versions(false).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(s.latest(false), Some((3, 3)));
        assert_eq!(s.id_of(2, false), Some(2));
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
            state
                .subject("s")
                .unwrap()
                .versions(false)
                .collect::<Vec<_>>(),
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
            state.usages(2, false),
            vec![("s".to_owned(), 1), ("t".to_owned(), 1)]
        );
        assert_eq!(
            state.usages(1, false),
            vec![("t".to_owned(), 2), ("x".to_owned(), 1)]
        );
        assert_eq!(state.subject_names(false), vec!["s", "t", "x"]);
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
        assert_eq!(state.lookup("t", &canonical, false), Some((1, 1)));
        assert_eq!(state.lookup("nope", &canonical, false), None);
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
        assert_eq!(one.subject("t").unwrap().id_of(1, false), Some(5));
        assert_eq!(one.subject_names(false), two.subject_names(false));
        assert_eq!(one.schema(5), two.schema(5));
        assert_eq!(
            State::default().apply(i64::from(i32::MAX), reg("s", &a)),
            Applied::IdOutOfRange
        );
    }

    #[test]
    fn incompatible_registrations_are_refused_by_the_fold() {
        let v1 = user(r#"{"name":"id","type":"string"}"#);
        let bad = user(r#"{"name":"id","type":"string"},{"name":"n","type":"int"}"#);
        let good = user(r#"{"name":"id","type":"string"},{"name":"n","type":"int","default":0}"#);
        let (state, applied) = fold(vec![
            checked("s", &v1, CompatibilityLevel::Backward),
            checked("s", &bad, CompatibilityLevel::Backward),
            checked("s", &good, CompatibilityLevel::Backward),
            // Checked under NONE by its writer: accepted whatever the config says.
            checked("s", &bad, CompatibilityLevel::None),
        ]);
        assert_eq!(applied[0], registered("s", 1, 1));
        let Applied::Incompatible { reasons, .. } = &applied[1] else {
            panic!("{:?}", applied[1]);
        };
        assert!(reasons[0].contains("`n` has no default"), "{reasons:?}");
        assert_eq!(applied[2], registered("s", 2, 3));
        assert_eq!(applied[3], registered("s", 3, 4));
        // The refused record created no id.
        assert_eq!(state.schema(2), None);
        assert_eq!(state.outcome(1), Some(&applied[1]));
    }

    #[test]
    fn config_records_set_and_remove_levels() {
        let (state, _) = fold(vec![
            LogRecord::Config {
                subject: None,
                level: Some(CompatibilityLevel::Full),
            },
            LogRecord::Config {
                subject: Some("s".to_owned()),
                level: Some(CompatibilityLevel::None),
            },
            LogRecord::Config {
                subject: Some("t".to_owned()),
                level: Some(CompatibilityLevel::Forward),
            },
            LogRecord::Config {
                subject: Some("t".to_owned()),
                level: None,
            },
        ]);
        assert_eq!(state.global_level(), CompatibilityLevel::Full);
        assert_eq!(state.effective_level("s"), CompatibilityLevel::None);
        assert_eq!(state.subject_level("t"), None);
        assert_eq!(state.effective_level("t"), CompatibilityLevel::Full);
        assert_eq!(
            State::default().global_level(),
            CompatibilityLevel::Backward
        );
    }

    #[test]
    fn soft_and_permanent_deletes() {
        let a = user(r#"{"name":"id","type":"string"}"#);
        let b = user(r#"{"name":"id","type":"string"},{"name":"n","type":"int","default":0}"#);
        let (state, applied) = fold(vec![
            reg("s", &a),               // 0: v1 id 1
            reg("s", &b),               // 1: v2 id 2
            del_version("s", 1, true),  // 2: not soft-deleted first
            del_version("s", 1, false), // 3: soft
            del_version("s", 1, false), // 4: already soft-deleted
            del_version("s", 9, false), // 5: no such version
            reg("s", &a),               // 6: back as v3, same id 1
            del_subject("s", true),     // 7: not soft-deleted first
            del_subject("s", false),    // 8: soft: v2, v3
            del_subject("s", false),    // 9: already
            del_version("s", 3, true),  // 10: permanent v3
            del_subject("nope", false), // 11
        ]);
        let refused = |refusal| Applied::Refused {
            subject: "s".to_owned(),
            refusal,
        };
        assert_eq!(applied[2], refused(Refusal::VersionNotSoftDeleted(1)));
        assert_eq!(applied[4], refused(Refusal::VersionSoftDeleted(1)));
        assert_eq!(applied[5], refused(Refusal::VersionNotFound(9)));
        assert_eq!(applied[6], registered("s", 3, 1));
        assert_eq!(applied[7], refused(Refusal::SubjectNotSoftDeleted));
        assert_eq!(
            applied[8],
            Applied::Deleted {
                subject: "s".to_owned(),
                versions: vec![2, 3],
                permanent: false
            }
        );
        assert_eq!(applied[9], refused(Refusal::SubjectSoftDeleted));
        assert!(matches!(
            &applied[11],
            Applied::Refused {
                refusal: Refusal::SubjectNotFound,
                ..
            }
        ));
        assert_eq!(state.subject_names(false), Vec::<String>::new());
        assert_eq!(state.subject_names(true), vec!["s"]);
        let s = state.subject("s").unwrap();
        assert_eq!(s.versions(true).collect::<Vec<_>>(), vec![1, 2]);
        // Id 1 is still used by the soft-deleted v1; id 2 by v2.
        assert!(state.schema(1).is_some() && state.schema(2).is_some());
        assert_eq!(state.usages(1, false), vec![]);
        assert_eq!(state.usages(1, true), vec![("s".to_owned(), 1)]);

        // Permanently deleting the whole subject frees every id.
        let mut state = state;
        state.apply(12, del_subject("s", true));
        assert!(state.subject("s").is_none());
        assert_eq!(state.schema(1), None);
        // Registering again starts at version 1, and the schema gets its old id back.
        assert_eq!(state.apply(13, reg("s", &a)), registered("s", 1, 1));
    }
}
