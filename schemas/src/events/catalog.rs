//! Topic `catalog`, keyed by content id: the contents fronts and partners may show.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{
    country_field, envelope_rules, fail, id_field, long_text_field, non_negative, positive,
    text_field, Event,
};
use crate::json::FieldError;

/// Longest title accepted, in bytes.
pub const MAX_TITLE_BYTES: usize = 512;
/// Longest description accepted, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 16_384;
/// Longest unpublication reason accepted, in bytes.
pub const MAX_REASON_BYTES: usize = 1024;

avro_enum! {
    /// What a content of the catalogue is (Avro enum `fleuve.catalog.ContentKind`).
    pub enum ContentKind {
        /// A show or a film.
        Programme = "PROGRAMME",
        /// A season of a programme.
        Season = "SEASON",
        /// An episode of a programme.
        Episode = "EPISODE",
        /// A short extract or bonus.
        Clip = "CLIP",
    }
}

/// A partner allowed to distribute a content, and where (record
/// `fleuve.catalog.DistributionRight`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistributionRight {
    /// Partner id: ASCII letters, digits, `.`, `_`, `-` (it names `export.<partner>.catalog`).
    pub partner: String,
    /// ISO 3166-1 alpha-2 codes; at least one, no duplicates.
    pub territories: Vec<String>,
}

/// A content was created or replaced as a whole; the last one wins (`catalog`, key
/// `content_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentUpserted {
    pub event_id: String,
    pub occurred_at: i64,
    pub producer: String,
    pub correlation_id: Option<String>,
    /// The content; the Kafka key.
    pub content_id: String,
    pub kind: ContentKind,
    /// Programme it belongs to: required for a season and an episode, absent for a programme.
    pub program_id: Option<String>,
    /// Required for a season, absent for a programme; >= 0.
    pub season_number: Option<i32>,
    /// Required for an episode, absent for a programme and a season; >= 0.
    pub episode_number: Option<i32>,
    pub title: String,
    pub description: Option<String>,
    /// Unique tags, possibly none.
    pub tags: Vec<String>,
    /// Duration in milliseconds, > 0 when present.
    pub duration_ms: Option<i64>,
    /// Start of availability, ms since the Unix epoch.
    pub available_from: i64,
    /// End of availability (exclusive), after `available_from`; `None` when open-ended.
    pub available_until: Option<i64>,
    /// One entry per partner allowed to distribute the content.
    pub rights: Vec<DistributionRight>,
}

impl Event for ContentUpserted {
    const TYPE: &'static str = "ContentUpserted";

    envelope_from_fields!();

    fn key(&self) -> &str {
        &self.content_id
    }

    fn validate(&self) -> Result<(), FieldError> {
        envelope_rules(&self.envelope())?;
        id_field("content_id", &self.content_id)?;
        self.structure_rules()?;
        if let Some(program_id) = &self.program_id {
            id_field("program_id", program_id)?;
            if *program_id == self.content_id {
                return Err(fail("program_id", "must differ from content_id"));
            }
        }
        if let Some(n) = self.season_number {
            non_negative("season_number", n.into())?;
        }
        if let Some(n) = self.episode_number {
            non_negative("episode_number", n.into())?;
        }
        text_field("title", &self.title, MAX_TITLE_BYTES)?;
        if let Some(d) = &self.description {
            long_text_field("description", d, MAX_DESCRIPTION_BYTES)?;
        }
        unique_ids("tags", &self.tags)?;
        if let Some(d) = self.duration_ms {
            positive("duration_ms", d)?;
        }
        if let Some(until) = self.available_until {
            if until <= self.available_from {
                return Err(fail(
                    "available_until",
                    format!(
                        "must be after available_from ({}), got {until}",
                        self.available_from
                    ),
                ));
            }
        }
        let mut partners = HashSet::new();
        for (i, right) in self.rights.iter().enumerate() {
            let field = format!("rights[{i}].partner");
            id_field(&field, &right.partner)?;
            if !right
                .partner
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return Err(fail(
                    &field,
                    "must contain only ASCII letters, digits, '.', '_' and '-' (it names the partner's export topic)",
                ));
            }
            if !partners.insert(right.partner.as_str()) {
                return Err(fail(&field, "appears in more than one right"));
            }
            let field = format!("rights[{i}].territories");
            if right.territories.is_empty() {
                return Err(fail(&field, "must list at least one territory"));
            }
            let mut seen = HashSet::new();
            for (j, t) in right.territories.iter().enumerate() {
                let field = format!("{field}[{j}]");
                country_field(&field, t)?;
                if !seen.insert(t.as_str()) {
                    return Err(fail(&field, format!("`{t}` is listed twice")));
                }
            }
        }
        Ok(())
    }
}

impl ContentUpserted {
    /// Which of `program_id`, `season_number`, `episode_number` the kind requires or forbids.
    fn structure_rules(&self) -> Result<(), FieldError> {
        let kind = self.kind.symbol();
        let (program, season, episode) = match self.kind {
            ContentKind::Programme => (Some(false), Some(false), Some(false)),
            ContentKind::Season => (Some(true), Some(true), Some(false)),
            ContentKind::Episode => (Some(true), None, Some(true)),
            ContentKind::Clip => (None, None, None),
        };
        for (field, present, wanted) in [
            ("program_id", self.program_id.is_some(), program),
            ("season_number", self.season_number.is_some(), season),
            ("episode_number", self.episode_number.is_some(), episode),
        ] {
            match wanted {
                Some(true) if !present => {
                    return Err(fail(field, format!("is required for a {kind}")))
                }
                Some(false) if present => {
                    return Err(fail(field, format!("must be absent for a {kind}")))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Each item an id (`check_id`), none twice; errors name `field[i]`.
fn unique_ids(field: &str, items: &[String]) -> Result<(), FieldError> {
    let mut seen = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("{field}[{i}]");
        id_field(&path, item)?;
        if !seen.insert(item.as_str()) {
            return Err(fail(&path, "is listed twice"));
        }
    }
    Ok(())
}

/// A content is withdrawn from the fronts and exports, but kept (`catalog`, key
/// `content_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentUnpublished {
    pub event_id: String,
    pub occurred_at: i64,
    pub producer: String,
    pub correlation_id: Option<String>,
    /// The content; the Kafka key.
    pub content_id: String,
    /// Optional human-readable reason.
    pub reason: Option<String>,
}

impl Event for ContentUnpublished {
    const TYPE: &'static str = "ContentUnpublished";

    envelope_from_fields!();

    fn key(&self) -> &str {
        &self.content_id
    }

    fn validate(&self) -> Result<(), FieldError> {
        envelope_rules(&self.envelope())?;
        id_field("content_id", &self.content_id)?;
        if let Some(reason) = &self.reason {
            text_field("reason", reason, MAX_REASON_BYTES)?;
        }
        Ok(())
    }
}

/// A content is removed from the catalogue for good (`catalog`, key `content_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentDeleted {
    pub event_id: String,
    pub occurred_at: i64,
    pub producer: String,
    pub correlation_id: Option<String>,
    /// The content; the Kafka key.
    pub content_id: String,
}

impl Event for ContentDeleted {
    const TYPE: &'static str = "ContentDeleted";

    envelope_from_fields!();

    fn key(&self) -> &str {
        &self.content_id
    }

    fn validate(&self) -> Result<(), FieldError> {
        envelope_rules(&self.envelope())?;
        id_field("content_id", &self.content_id)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::events::testing::{country, enum_symbols, envelope, id, rejects, text};

    prop_compose! {
        fn right()(
            partner in "[a-z0-9_.-]{1,20}",
            territories in proptest::collection::btree_set(country(), 1..5),
        ) -> DistributionRight {
            DistributionRight { partner, territories: territories.into_iter().collect() }
        }
    }

    prop_compose! {
        fn content_upserted()(
            e in envelope(),
            content_id in "c[a-zA-Z0-9_:.-]{0,40}",
            kind in proptest::sample::select(ContentKind::ALL),
            program_id in proptest::option::of("p[a-zA-Z0-9_:.-]{0,40}"),
            season_number in proptest::option::of(0..=i32::MAX),
            episode_number in proptest::option::of(0..=i32::MAX),
            title in text(60),
            description in proptest::option::of("[\\PC\n\t]{1,200}"),
            tags in proptest::collection::btree_set(text(20), 0..5),
            duration_ms in proptest::option::of(1..=i64::MAX),
            available_from in 0i64..=4_102_444_800_000,
            window in proptest::option::of(1i64..=1_000_000_000_000),
            rights in proptest::collection::btree_map("[a-z0-9_.-]{1,20}", right(), 0..4),
        ) -> ContentUpserted {
            let (mut program_id, mut season_number, mut episode_number) =
                (program_id, season_number, episode_number);
            match kind {
                ContentKind::Programme => {
                    (program_id, season_number, episode_number) = (None, None, None);
                }
                ContentKind::Season => {
                    program_id.get_or_insert_with(|| "p".to_owned());
                    season_number.get_or_insert(1);
                    episode_number = None;
                }
                ContentKind::Episode => {
                    program_id.get_or_insert_with(|| "p".to_owned());
                    episode_number.get_or_insert(1);
                }
                ContentKind::Clip => {}
            }
            ContentUpserted {
                event_id: e.event_id, occurred_at: e.occurred_at, producer: e.producer,
                correlation_id: e.correlation_id, content_id, kind, program_id, season_number,
                episode_number, title, description,
                tags: tags.into_iter().collect(),
                duration_ms, available_from,
                available_until: window.map(|w| available_from + w),
                rights: rights
                    .into_iter()
                    .map(|(partner, r)| DistributionRight { partner, ..r })
                    .collect(),
            }
        }
    }

    prop_compose! {
        fn content_unpublished()(
            e in envelope(), content_id in id(), reason in proptest::option::of(text(100)),
        ) -> ContentUnpublished {
            ContentUnpublished {
                event_id: e.event_id, occurred_at: e.occurred_at, producer: e.producer,
                correlation_id: e.correlation_id, content_id, reason,
            }
        }
    }

    prop_compose! {
        fn content_deleted()(e in envelope(), content_id in id()) -> ContentDeleted {
            ContentDeleted {
                event_id: e.event_id, occurred_at: e.occurred_at, producer: e.producer,
                correlation_id: e.correlation_id, content_id,
            }
        }
    }

    round_trip_proptests! {
        content_upserted_round_trips_through_avro_binary: ContentUpserted => content_upserted();
        content_unpublished_round_trips_through_avro_binary: ContentUnpublished => content_unpublished();
        content_deleted_round_trips_through_avro_binary: ContentDeleted => content_deleted();
    }

    fn episode() -> ContentUpserted {
        ContentUpserted {
            event_id: "0b5b1f6e-7a0b-4a53-9c0e-0d2f4e3b8a11".into(),
            occurred_at: 1,
            producer: "cms".into(),
            correlation_id: None,
            content_id: "ep-1".into(),
            kind: ContentKind::Episode,
            program_id: Some("prog-1".into()),
            season_number: Some(2),
            episode_number: Some(3),
            title: "Épisode 3".into(),
            description: Some("Une description\nsur deux lignes.".into()),
            tags: vec!["drame".into(), "série".into()],
            duration_ms: Some(2_700_000),
            available_from: 1_000,
            available_until: Some(2_000),
            rights: vec![
                DistributionRight {
                    partner: "salto".into(),
                    territories: vec!["FR".into(), "MC".into()],
                },
                DistributionRight {
                    partner: "isp-1".into(),
                    territories: vec!["FR".into()],
                },
            ],
        }
    }

    #[test]
    fn content_rules_name_the_field() {
        rejects(
            &episode(),
            &[
                (|e| e.program_id = None, "program_id"),
                (|e| e.episode_number = None, "episode_number"),
                (|e| e.episode_number = Some(-1), "episode_number"),
                (|e| e.season_number = Some(-1), "season_number"),
                (|e| e.program_id = Some("ep-1".into()), "program_id"),
                (|e| e.kind = ContentKind::Season, "episode_number"),
                (
                    |e| {
                        e.kind = ContentKind::Season;
                        e.episode_number = None;
                        e.season_number = None;
                    },
                    "season_number",
                ),
                (
                    |e| {
                        e.kind = ContentKind::Programme;
                        e.program_id = None;
                    },
                    "season_number",
                ),
                (|e| e.kind = ContentKind::Programme, "program_id"),
                (|e| e.title = String::new(), "title"),
                (|e| e.title = "a\tb".into(), "title"),
                (|e| e.description = Some(String::new()), "description"),
                (|e| e.description = Some("\u{7}".into()), "description"),
                (|e| e.tags.push("drame".into()), "tags[2]"),
                (|e| e.tags[1] = String::new(), "tags[1]"),
                (|e| e.duration_ms = Some(0), "duration_ms"),
                (|e| e.available_until = Some(1_000), "available_until"),
                (
                    |e| e.rights[1].partner = "salto".into(),
                    "rights[1].partner",
                ),
                (|e| e.rights[0].partner = "a b".into(), "rights[0].partner"),
                (|e| e.rights[0].territories.clear(), "rights[0].territories"),
                (
                    |e| e.rights[0].territories[1] = "fr".into(),
                    "rights[0].territories[1]",
                ),
                (
                    |e| e.rights[0].territories[1] = "FR".into(),
                    "rights[0].territories[1]",
                ),
                (
                    |e| e.rights[1].territories[0] = "UK".into(),
                    "rights[1].territories[0]",
                ),
            ],
        );
        let mut season = episode();
        season.kind = ContentKind::Season;
        season.episode_number = None;
        assert_eq!(season.validate(), Ok(()));
        let mut clip = episode();
        clip.kind = ContentKind::Clip;
        (clip.program_id, clip.season_number, clip.episode_number) = (None, None, None);
        assert_eq!(clip.validate(), Ok(()));
        let mut programme = clip.clone();
        programme.kind = ContentKind::Programme;
        programme.available_until = None;
        programme.rights.clear();
        assert_eq!(programme.validate(), Ok(()));

        let unpublished = ContentUnpublished {
            event_id: "0b5b1f6e-7a0b-4a53-9c0e-0d2f4e3b8a11".into(),
            occurred_at: 1,
            producer: "cms".into(),
            correlation_id: None,
            content_id: "c".into(),
            reason: Some("rights expired".into()),
        };
        rejects(
            &unpublished,
            &[
                (|e| e.reason = Some(String::new()), "reason"),
                (|e| e.reason = Some("x".repeat(1025)), "reason"),
                (|e| e.content_id = String::new(), "content_id"),
            ],
        );
    }

    #[test]
    fn json_from_the_ingest_is_checked_with_the_field_path() {
        let spec = ContentUpserted::spec();
        let mut doc = serde_json::to_value(episode()).unwrap();
        doc["rights"][1]["territories"] = json!(["BE", "XX"]);
        doc["available_until"] = json!("1970-01-01T00:00:02Z");
        let value = crate::json::to_avro(&spec.schema, &doc).unwrap();
        let Err(crate::EventError::Invalid(e)) = spec.check(&value) else {
            panic!("expected a field error")
        };
        assert_eq!(e.field, "rights[1].territories[1]");
        doc["kind"] = json!("FILM");
        assert_eq!(
            crate::json::to_avro(&spec.schema, &doc).unwrap_err().field,
            "kind"
        );
    }

    #[test]
    fn enum_symbols_match_the_schema() {
        let symbols: Vec<&str> = ContentKind::ALL.iter().map(|k| k.symbol()).collect();
        assert_eq!(
            enum_symbols(ContentUpserted::spec(), "ContentKind"),
            symbols
        );
    }
}
