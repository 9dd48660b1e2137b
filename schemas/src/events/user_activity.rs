//! Topic `user-activity`, keyed by user id: what a user does with contents.

use serde::{Deserialize, Serialize};

use super::{envelope_rules, id_field, Envelope, Event};
use crate::json::FieldError;

/// A user's player reported how far it got in a content (`user-activity`, key `user_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybackProgressed {
    pub event_id: String,
    pub occurred_at: i64,
    pub producer: String,
    pub correlation_id: Option<String>,
    pub user_id: String,
    pub content_id: String,
    pub position_ms: i64,
    pub duration_ms: i64,
    pub device: String,
}

impl Event for PlaybackProgressed {
    const TYPE: &'static str = "PlaybackProgressed";

    fn envelope(&self) -> Envelope {
        Envelope {
            event_id: self.event_id.clone(),
            occurred_at: self.occurred_at,
            producer: self.producer.clone(),
            correlation_id: self.correlation_id.clone(),
        }
    }

    fn key(&self) -> &str {
        &self.user_id
    }

    fn validate(&self) -> Result<(), FieldError> {
        envelope_rules(&self.envelope())?;
        id_field("user_id", &self.user_id)?;
        id_field("content_id", &self.content_id)?;
        id_field("device", &self.device)?;
        let fail = |field: &str, reason: String| {
            Err(FieldError {
                field: field.to_owned(),
                reason,
            })
        };
        if self.duration_ms <= 0 {
            return fail(
                "duration_ms",
                format!("must be > 0, got {}", self.duration_ms),
            );
        }
        if self.position_ms < 0 {
            return fail(
                "position_ms",
                format!("must be >= 0, got {}", self.position_ms),
            );
        }
        if self.position_ms > self.duration_ms {
            return fail(
                "position_ms",
                format!(
                    "must not exceed duration_ms ({}), got {}",
                    self.duration_ms, self.position_ms
                ),
            );
        }
        Ok(())
    }
}

/// A user bookmarked a content to watch it later (`user-activity`, key `user_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookmarkAdded {
    pub event_id: String,
    pub occurred_at: i64,
    pub producer: String,
    pub correlation_id: Option<String>,
    /// The user who added the bookmark; the Kafka key.
    pub user_id: String,
    /// The bookmarked content.
    pub content_id: String,
}

impl Event for BookmarkAdded {
    const TYPE: &'static str = "BookmarkAdded";

    envelope_from_fields!();

    fn key(&self) -> &str {
        &self.user_id
    }

    fn validate(&self) -> Result<(), FieldError> {
        envelope_rules(&self.envelope())?;
        id_field("user_id", &self.user_id)?;
        id_field("content_id", &self.content_id)
    }
}

/// A user removed a content from their bookmarks (`user-activity`, key `user_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookmarkRemoved {
    pub event_id: String,
    pub occurred_at: i64,
    pub producer: String,
    pub correlation_id: Option<String>,
    /// The user who removed the bookmark; the Kafka key.
    pub user_id: String,
    /// The content no longer bookmarked.
    pub content_id: String,
}

impl Event for BookmarkRemoved {
    const TYPE: &'static str = "BookmarkRemoved";

    envelope_from_fields!();

    fn key(&self) -> &str {
        &self.user_id
    }

    fn validate(&self) -> Result<(), FieldError> {
        envelope_rules(&self.envelope())?;
        id_field("user_id", &self.user_id)?;
        id_field("content_id", &self.content_id)
    }
}

avro_enum! {
    /// Why a user's data is erased (Avro enum `fleuve.user_activity.ErasureReason`).
    pub enum ErasureReason {
        /// The user asked for it.
        UserRequest = "USER_REQUEST",
        /// The account was closed.
        AccountClosed = "ACCOUNT_CLOSED",
        /// A court or regulator ordered it.
        LegalOrder = "LEGAL_ORDER",
    }
}

/// Every piece of activity data held about a user must be erased (`user-activity`, key
/// `user_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDataErased {
    pub event_id: String,
    pub occurred_at: i64,
    pub producer: String,
    pub correlation_id: Option<String>,
    /// The user whose data is erased; the Kafka key.
    pub user_id: String,
    pub reason: ErasureReason,
}

impl Event for UserDataErased {
    const TYPE: &'static str = "UserDataErased";

    envelope_from_fields!();

    fn key(&self) -> &str {
        &self.user_id
    }

    fn validate(&self) -> Result<(), FieldError> {
        envelope_rules(&self.envelope())?;
        id_field("user_id", &self.user_id)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::events::testing::{enum_symbols, envelope, id, rejects};

    prop_compose! {
        fn progress()(
            user_id in id(), content_id in id(), device in id(), producer in id(),
            correlation_id in proptest::option::of(id()),
            duration_ms in 1i64..=i64::MAX, frac in 0.0f64..=1.0,
            occurred_at in 0i64..=4_102_444_800_000, uuid in any::<u128>(),
        ) -> PlaybackProgressed {
            #[expect(clippy::cast_possible_truncation, clippy::cast_precision_loss, reason = "a position within the duration, from a fraction in 0..=1")]
            let position_ms = ((duration_ms as f64) * frac) as i64;
            PlaybackProgressed {
                event_id: uuid::Uuid::from_u128(uuid).to_string(),
                occurred_at, producer, correlation_id, user_id, content_id,
                position_ms: position_ms.clamp(0, duration_ms), duration_ms, device,
            }
        }
    }

    prop_compose! {
        fn bookmark_added()(e in envelope(), user_id in id(), content_id in id()) -> BookmarkAdded {
            BookmarkAdded {
                event_id: e.event_id, occurred_at: e.occurred_at, producer: e.producer,
                correlation_id: e.correlation_id, user_id, content_id,
            }
        }
    }

    prop_compose! {
        fn bookmark_removed()(e in envelope(), user_id in id(), content_id in id()) -> BookmarkRemoved {
            BookmarkRemoved {
                event_id: e.event_id, occurred_at: e.occurred_at, producer: e.producer,
                correlation_id: e.correlation_id, user_id, content_id,
            }
        }
    }

    prop_compose! {
        fn user_data_erased()(
            e in envelope(), user_id in id(),
            reason in proptest::sample::select(ErasureReason::ALL),
        ) -> UserDataErased {
            UserDataErased {
                event_id: e.event_id, occurred_at: e.occurred_at, producer: e.producer,
                correlation_id: e.correlation_id, user_id, reason,
            }
        }
    }

    round_trip_proptests! {
        playback_progressed_round_trips_through_avro_binary: PlaybackProgressed => progress();
        bookmark_added_round_trips_through_avro_binary: BookmarkAdded => bookmark_added();
        bookmark_removed_round_trips_through_avro_binary: BookmarkRemoved => bookmark_removed();
        user_data_erased_round_trips_through_avro_binary: UserDataErased => user_data_erased();
    }

    fn sample() -> PlaybackProgressed {
        PlaybackProgressed {
            event_id: "0b5b1f6e-7a0b-4a53-9c0e-0d2f4e3b8a11".into(),
            occurred_at: 1,
            producer: "p".into(),
            correlation_id: None,
            user_id: "u".into(),
            content_id: "c".into(),
            position_ms: 10,
            duration_ms: 20,
            device: "web".into(),
        }
    }

    #[test]
    fn rules_name_the_field() {
        rejects(
            &sample(),
            &[
                (|e| e.position_ms = -1, "position_ms"),
                (|e| e.position_ms = 21, "position_ms"),
                (|e| e.duration_ms = 0, "duration_ms"),
                (|e| e.user_id = String::new(), "user_id"),
                (|e| e.content_id = "x\u{0}y".into(), "content_id"),
                (|e| e.producer = String::new(), "producer"),
                (|e| e.correlation_id = Some("\n".into()), "correlation_id"),
                (|e| e.event_id = "not-a-uuid".into(), "event_id"),
                (
                    |e| e.event_id = "0B5B1F6E-7A0B-4A53-9C0E-0D2F4E3B8A11".into(),
                    "event_id",
                ),
                (
                    |e| e.event_id = "0b5b1f6e7a0b4a539c0e0d2f4e3b8a11".into(),
                    "event_id",
                ),
            ],
        );
        let bookmark = BookmarkAdded {
            event_id: "0b5b1f6e-7a0b-4a53-9c0e-0d2f4e3b8a11".into(),
            occurred_at: 1,
            producer: "p".into(),
            correlation_id: None,
            user_id: "u".into(),
            content_id: "c".into(),
        };
        rejects(
            &bookmark,
            &[
                (|e| e.user_id = "x".repeat(129), "user_id"),
                (|e| e.content_id = String::new(), "content_id"),
            ],
        );
        let erased = UserDataErased {
            event_id: "0b5b1f6e-7a0b-4a53-9c0e-0d2f4e3b8a11".into(),
            occurred_at: 1,
            producer: "p".into(),
            correlation_id: None,
            user_id: "u".into(),
            reason: ErasureReason::LegalOrder,
        };
        rejects(&erased, &[(|e| e.user_id = String::new(), "user_id")]);
    }

    #[test]
    fn enum_symbols_match_the_schema() {
        let symbols: Vec<&str> = ErasureReason::ALL.iter().map(|r| r.symbol()).collect();
        assert_eq!(
            enum_symbols(UserDataErased::spec(), "ErasureReason"),
            symbols
        );
    }
}
