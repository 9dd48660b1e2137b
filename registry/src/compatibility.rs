//! Confluent's compatibility levels and the check behind them, usable without a registry.
//!
//! ```
//! use apache_avro::Schema;
//! use fleuve_registry::compatibility::{check, CompatibilityLevel};
//! let v1 = Schema::parse_str(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#).unwrap();
//! let v2 = Schema::parse_str(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int"}]}"#).unwrap();
//! let reasons = check(CompatibilityLevel::Backward, &v2, &[v1.clone()]).unwrap_err();
//! assert_eq!(reasons, vec!["version 1: the new schema cannot read data written with version 1: reader field `b` has no default and is missing from the writer".to_owned()]);
//! assert!(check(CompatibilityLevel::Forward, &v2, &[v1]).is_ok());
//! ```
//!
//! * `BACKWARD`: the new schema can read data written with the latest version (consumers
//!   upgrade first). `FORWARD`: the latest version can read data written with the new schema
//!   (producers upgrade first). `FULL`: both. `NONE`: anything goes.
//! * `*_TRANSITIVE`: the same, against every existing version instead of the latest only.
//!
//! The verdict comes from `apache_avro::schema_compatibility` (Avro's schema-resolution
//! rules: promotions int→long→float→double, string↔bytes, defaults for missing reader fields,
//! record names must match). A *partial* match — the reader can decode only some of the
//! writer's values, e.g. an enum missing symbols without a default, or a union missing
//! branches — counts as incompatible, as in Confluent. Each reason names the version and,
//! where it can, the field path (`address.zip`).

use std::fmt;
use std::str::FromStr;

use apache_avro::error::CompatibilityError;
use apache_avro::schema::{EnumSchema, RecordSchema};
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use apache_avro::Schema;
use serde::{Deserialize, Serialize};

/// A subject's (or the registry's global) compatibility level, with Confluent's names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CompatibilityLevel {
    None,
    #[default]
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl CompatibilityLevel {
    /// Every level, in Confluent's documentation order.
    pub const ALL: [CompatibilityLevel; 7] = [
        CompatibilityLevel::None,
        CompatibilityLevel::Backward,
        CompatibilityLevel::BackwardTransitive,
        CompatibilityLevel::Forward,
        CompatibilityLevel::ForwardTransitive,
        CompatibilityLevel::Full,
        CompatibilityLevel::FullTransitive,
    ];

    /// Confluent's name, e.g. `BACKWARD_TRANSITIVE`.
    pub fn as_str(self) -> &'static str {
        match self {
            CompatibilityLevel::None => "NONE",
            CompatibilityLevel::Backward => "BACKWARD",
            CompatibilityLevel::BackwardTransitive => "BACKWARD_TRANSITIVE",
            CompatibilityLevel::Forward => "FORWARD",
            CompatibilityLevel::ForwardTransitive => "FORWARD_TRANSITIVE",
            CompatibilityLevel::Full => "FULL",
            CompatibilityLevel::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// The same directions against one version only (`FULL_TRANSITIVE` → `FULL`), for a
    /// check against a given version.
    pub fn non_transitive(self) -> CompatibilityLevel {
        match self {
            CompatibilityLevel::BackwardTransitive => CompatibilityLevel::Backward,
            CompatibilityLevel::ForwardTransitive => CompatibilityLevel::Forward,
            CompatibilityLevel::FullTransitive => CompatibilityLevel::Full,
            other => other,
        }
    }

    /// Must the new schema read data written with the old ones?
    fn backward(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::Backward
                | CompatibilityLevel::BackwardTransitive
                | CompatibilityLevel::Full
                | CompatibilityLevel::FullTransitive
        )
    }

    /// Must the old schemas read data written with the new one?
    fn forward(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::Forward
                | CompatibilityLevel::ForwardTransitive
                | CompatibilityLevel::Full
                | CompatibilityLevel::FullTransitive
        )
    }

    /// Against every version rather than the latest only?
    pub fn is_transitive(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::BackwardTransitive
                | CompatibilityLevel::ForwardTransitive
                | CompatibilityLevel::FullTransitive
        )
    }
}

impl fmt::Display for CompatibilityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown compatibility level name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid compatibility level '{0}'; valid levels are NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL and FULL_TRANSITIVE")]
pub struct InvalidLevel(pub String);

impl FromStr for CompatibilityLevel {
    type Err = InvalidLevel;

    /// Confluent's names, case-insensitively (`backward_transitive` is accepted).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CompatibilityLevel::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| InvalidLevel(s.to_owned()))
    }
}

/// Checks `new` against a subject's versions under `level`.
///
/// `existing`: the subject's versions, oldest first; they are named `version 1`, `version 2`
/// … in the reasons (use [`check_versions`] when the version numbers differ). `Ok(())`, or
/// every readable reason why not.
pub fn check(
    level: CompatibilityLevel,
    new: &Schema,
    existing: &[Schema],
) -> Result<(), Vec<String>> {
    let numbered: Vec<(u32, &Schema)> = (1u32..).zip(existing).collect();
    check_versions(level, new, &numbered)
}

/// Like [`check`], with the version number of each existing schema (oldest first).
pub fn check_versions(
    level: CompatibilityLevel,
    new: &Schema,
    existing: &[(u32, &Schema)],
) -> Result<(), Vec<String>> {
    let against: &[(u32, &Schema)] = if level.is_transitive() {
        existing
    } else {
        existing.last().map_or(&[], std::slice::from_ref)
    };
    let mut reasons = Vec::new();
    // Newest first, like Confluent's messages: the most relevant break comes first.
    for (version, old) in against.iter().rev() {
        if level.backward() {
            if let Err(reason) = can_read(old, new) {
                reasons.push(format!(
                    "version {version}: the new schema cannot read data written with version {version}: {reason}"
                ));
            }
        }
        if level.forward() {
            if let Err(reason) = can_read(new, old) {
                reasons.push(format!(
                    "version {version}: version {version} cannot read data written with the new schema: {reason}"
                ));
            }
        }
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(reasons)
    }
}

/// Can data written with `writer` be read with `reader`? `Err` explains why not.
fn can_read(writer: &Schema, reader: &Schema) -> Result<(), String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => Ok(()),
        Ok(Compatibility::Partial) => Err(explain_partial(writer, reader, &mut Vec::new())),
        Err(error) => Err(explain(&error, &mut Vec::new())),
    }
}

/// `field `a.b`: ` or nothing at the top level.
fn at(path: &[String]) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("field `{}`: ", path.join("."))
    }
}

/// Turns Avro's nested error into one sentence naming the field path.
fn explain(error: &CompatibilityError, path: &mut Vec<String>) -> String {
    match error {
        CompatibilityError::FieldTypeMismatch(field, inner) => {
            path.push(field.clone());
            explain(inner, path)
        }
        CompatibilityError::MissingDefaultValue(field) => {
            path.push(field.clone());
            format!(
                "reader field `{}` has no default and is missing from the writer",
                path.join(".")
            )
        }
        CompatibilityError::WrongType {
            writer_schema_type,
            reader_schema_type,
        } => format!(
            "{}the writer's type {} cannot be read as the reader's type {}",
            at(path),
            type_name(writer_schema_type),
            type_name(reader_schema_type)
        ),
        CompatibilityError::NameMismatch {
            writer_name,
            reader_name,
        } => format!(
            "{}the writer's type is named `{writer_name}` but the reader's is named `{reader_name}`",
            at(path)
        ),
        CompatibilityError::MissingSymbols => format!(
            "{}the reader's enum has none of the writer's symbols",
            at(path)
        ),
        CompatibilityError::MissingUnionElements
        | CompatibilityError::SchemaMismatchAllUnionElements => format!(
            "{}no branch of the writer's union can be read by the reader (or the reverse)",
            at(path)
        ),
        CompatibilityError::FixedMismatch => {
            format!("{}the fixed sizes differ", at(path))
        }
        CompatibilityError::DecimalMismatch {
            r_precision,
            r_scale,
            w_precision,
            w_scale,
        } => format!(
            "{}the writer's decimal({w_precision},{w_scale}) differs from the reader's decimal({r_precision},{r_scale})",
            at(path)
        ),
        other => format!("{}{other}", at(path)),
    }
}

/// Avro's `WrongType` carries the `Debug` dump of both schemas; keep the variant name only
/// (`Long`, `Record`, …), lowercased like Avro type names.
fn type_name(debug: &str) -> String {
    let name: String = debug
        .trim_start()
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    if name.is_empty() {
        "?".to_owned()
    } else {
        format!("`{}`", name.to_ascii_lowercase())
    }
}

/// Locates where a partial match comes from: the reader can decode only some of the writer's
/// values.
fn explain_partial(writer: &Schema, reader: &Schema, path: &mut Vec<String>) -> String {
    match (writer, reader) {
        (
            Schema::Record(RecordSchema {
                fields: w_fields, ..
            }),
            Schema::Record(RecordSchema {
                fields: r_fields, ..
            }),
        ) => {
            for r_field in r_fields {
                let Some(w_field) = std::iter::once(&r_field.name)
                    .chain(r_field.aliases.iter())
                    .find_map(|name| w_fields.iter().find(|w| &w.name == name))
                else {
                    continue;
                };
                if matches!(
                    SchemaCompatibility::can_read(&w_field.schema, &r_field.schema),
                    Ok(Compatibility::Partial)
                ) {
                    path.push(r_field.name.clone());
                    return explain_partial(&w_field.schema, &r_field.schema, path);
                }
            }
            format!("{}some values cannot be read", at(path))
        }
        (
            Schema::Enum(EnumSchema {
                symbols: w_symbols, ..
            }),
            Schema::Enum(EnumSchema {
                symbols: r_symbols, ..
            }),
        ) => {
            let missing: Vec<&str> = w_symbols
                .iter()
                .filter(|s| !r_symbols.contains(s))
                .map(String::as_str)
                .collect();
            format!(
                "{}the reader's enum lacks the writer's symbols {} and has no default",
                at(path),
                missing.join(", ")
            )
        }
        (Schema::Array(w), Schema::Array(r)) => {
            path.push("[]".to_owned());
            explain_partial(&w.items, &r.items, path)
        }
        (Schema::Map(w), Schema::Map(r)) => {
            path.push("{}".to_owned());
            explain_partial(&w.types, &r.types, path)
        }
        (Schema::Union(_), _) | (_, Schema::Union(_)) => format!(
            "{}some branches of the writer's union cannot be read by the reader",
            at(path)
        ),
        _ => format!("{}some values cannot be read", at(path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &str) -> Schema {
        Schema::parse_str(&format!(
            r#"{{"type":"record","name":"R","namespace":"t","fields":[{fields}]}}"#
        ))
        .unwrap()
    }

    const A: &str = r#"{"name":"a","type":"string"}"#;

    use CompatibilityLevel as L;

    #[test]
    fn levels_parse_and_print_with_confluent_names() {
        for level in L::ALL {
            assert_eq!(level.to_string().parse::<L>(), Ok(level));
            let json = serde_json::to_string(&level).unwrap();
            assert_eq!(json, format!("\"{level}\""));
        }
        assert_eq!("full_transitive".parse::<L>(), Ok(L::FullTransitive));
        assert_eq!(L::default(), L::Backward);
        let err = "SIDEWAYS".parse::<L>().unwrap_err();
        assert!(err.to_string().contains("'SIDEWAYS'"), "{err}");
    }

    #[test]
    fn adding_a_field_without_default_breaks_backward_only() {
        let v1 = record(A);
        let v2 = record(&format!(r#"{A},{{"name":"foo","type":"int"}}"#));
        let reasons = check(L::Backward, &v2, std::slice::from_ref(&v1)).unwrap_err();
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(reasons[0].starts_with("version 1: "), "{reasons:?}");
        assert!(
            reasons[0].contains("reader field `foo` has no default and is missing from the writer"),
            "{reasons:?}"
        );
        assert_eq!(check(L::Forward, &v2, std::slice::from_ref(&v1)), Ok(()));
        assert!(check(L::Full, &v2, &[v1]).is_err());
    }

    #[test]
    fn adding_a_field_with_default_is_fully_compatible() {
        let v1 = record(A);
        let v2 = record(&format!(r#"{A},{{"name":"foo","type":"int","default":0}}"#));
        for level in L::ALL {
            assert_eq!(
                check(level, &v2, std::slice::from_ref(&v1)),
                Ok(()),
                "{level}"
            );
        }
    }

    #[test]
    fn removing_a_field_without_default_breaks_forward() {
        let v1 = record(&format!(r#"{A},{{"name":"gone","type":"long"}}"#));
        let v2 = record(A);
        assert_eq!(check(L::Backward, &v2, std::slice::from_ref(&v1)), Ok(()));
        let reasons = check(L::Forward, &v2, &[v1]).unwrap_err();
        assert!(
            reasons[0].contains("version 1 cannot read data written with the new schema")
                && reasons[0].contains("`gone` has no default"),
            "{reasons:?}"
        );
    }

    #[test]
    fn changing_a_type_is_reported_with_its_field() {
        let v1 = record(r#"{"name":"n","type":"long"}"#);
        let v2 = record(r#"{"name":"n","type":"string"}"#);
        for level in [L::Backward, L::Forward, L::Full] {
            let reasons = check(level, &v2, std::slice::from_ref(&v1)).unwrap_err();
            assert!(reasons[0].contains("field `n`: "), "{reasons:?}");
        }
        let reasons = check(L::Backward, &v2, &[v1]).unwrap_err();
        assert!(
            reasons[0]
                .contains("the writer's type `long` cannot be read as the reader's type `string`"),
            "{reasons:?}"
        );
        // Nested fields give a path.
        let inner = |t: &str| {
            record(&format!(
                r#"{{"name":"address","type":{{"type":"record","name":"Address","fields":[{{"name":"zip","type":"{t}"}}]}}}}"#
            ))
        };
        let reasons = check(L::Backward, &inner("string"), &[inner("long")]).unwrap_err();
        assert!(reasons[0].contains("field `address.zip`"), "{reasons:?}");
    }

    #[test]
    fn int_to_long_is_a_backward_promotion_only() {
        let v1 = record(r#"{"name":"n","type":"int"}"#);
        let v2 = record(r#"{"name":"n","type":"long"}"#);
        assert_eq!(check(L::Backward, &v2, std::slice::from_ref(&v1)), Ok(()));
        assert!(check(L::Forward, &v2, std::slice::from_ref(&v1)).is_err());
        assert!(check(L::Full, &v2, &[v1]).is_err());
    }

    #[test]
    fn transitive_levels_check_every_version() {
        // v1 has `x` without default; v2 drops it; v3 (new) also lacks it but is fine with v2.
        let v1 = record(&format!(r#"{A},{{"name":"x","type":"int"}}"#));
        let v2 = record(A);
        let v3 = record(&format!(r#"{A},{{"name":"y","type":"int","default":1}}"#));
        let existing = [v1, v2];
        assert_eq!(check(L::Forward, &v3, &existing), Ok(()));
        let reasons = check(L::ForwardTransitive, &v3, &existing).unwrap_err();
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(reasons[0].starts_with("version 1: "), "{reasons:?}");
        assert!(check(L::FullTransitive, &v3, &existing).is_err());
        assert_eq!(check(L::BackwardTransitive, &v3, &existing), Ok(()));
        // Version numbers as the registry has them.
        let reasons = check_versions(
            L::ForwardTransitive,
            &v3,
            &[(4, &existing[0]), (7, &existing[1])],
        )
        .unwrap_err();
        assert!(reasons[0].starts_with("version 4: "), "{reasons:?}");
    }

    #[test]
    fn none_accepts_anything_and_nothing_to_check_is_fine() {
        let v1 = record(A);
        assert_eq!(check(L::None, &Schema::Boolean, &[v1]), Ok(()));
        for level in L::ALL {
            assert_eq!(check(level, &Schema::Boolean, &[]), Ok(()));
        }
    }

    #[test]
    fn partial_matches_are_incompatible_and_located() {
        let e = |symbols: &str| {
            record(&format!(
                r#"{{"name":"status","type":{{"type":"enum","name":"S","symbols":[{symbols}]}}}}"#
            ))
        };
        let old = e(r#""A","B""#);
        let new = e(r#""A""#);
        let reasons = check(L::Backward, &new, std::slice::from_ref(&old)).unwrap_err();
        assert!(
            reasons[0].contains("field `status`: the reader's enum lacks the writer's symbols B"),
            "{reasons:?}"
        );
        // Adding a symbol is backward compatible.
        assert_eq!(check(L::Backward, &old, &[new]), Ok(()));
        let other_name =
            Schema::parse_str(r#"{"type":"record","name":"Other","fields":[]}"#).unwrap();
        let reasons = check(L::Backward, &other_name, &[record(A)]).unwrap_err();
        assert!(reasons[0].contains("named"), "{reasons:?}");
    }
}
