//! The partners file: who gets an export topic, and for which territories.
//!
//! ```toml
//! [[partner]]
//! id = "isp-a"
//! territories = ["FR", "BE"]
//!
//! [[partner]]
//! id = "salto"
//! territories = ["FR"]
//! ```
//!
//! `id` is the partner id used in the catalogue's distribution rights (`rights[].partner`)
//! and names the topic `export.<id>.catalog`: letters, digits, `.`, `_` or `-`.
//! `territories` are ISO 3166-1 alpha-2 codes, at least one. Ids must be unique.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// A partner that receives an export topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partner {
    /// Partner id, as in `rights[].partner`.
    pub id: String,
    /// Territories the partner publishes in (ISO 3166-1 alpha-2), sorted, unique.
    pub territories: BTreeSet<String>,
}

impl Partner {
    pub fn new<'a>(id: &str, territories: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            id: id.to_owned(),
            territories: territories.into_iter().map(str::to_owned).collect(),
        }
    }

    /// The partner's export topic, `export.<id>.catalog`.
    pub fn topic(&self) -> String {
        fleuve_schemas::export::topic(&self.id)
    }
}

/// The configured partners (possibly none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partners {
    #[serde(default, rename = "partner")]
    pub partners: Vec<Partner>,
}

/// A partners file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("partners file {path}: {reason}")]
pub struct PartnersError {
    pub path: String,
    pub reason: String,
}

impl Partners {
    pub fn new(partners: Vec<Partner>) -> Result<Self, String> {
        let p = Self { partners };
        p.validate()?;
        Ok(p)
    }

    /// Reads and checks a partners file.
    pub fn load(path: &Path) -> Result<Self, PartnersError> {
        let err = |reason: String| PartnersError {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        Self::parse(&text).map_err(err)
    }

    /// Parses and checks the text of a partners file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let p: Partners = toml::from_str(text).map_err(|e| e.to_string())?;
        p.validate()?;
        Ok(p)
    }

    fn validate(&self) -> Result<(), String> {
        let mut ids = BTreeSet::new();
        for p in &self.partners {
            if p.id.is_empty()
                || p.id.len() > 200
                || !p
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            {
                return Err(format!(
                    "partner id `{}` must be 1 to 200 letters, digits, '.', '_' or '-' (it names the topic export.<id>.catalog)",
                    p.id
                ));
            }
            if !ids.insert(p.id.as_str()) {
                return Err(format!("partner `{}` is configured twice", p.id));
            }
            if p.territories.is_empty() {
                return Err(format!("partner `{}` has no territory", p.id));
            }
            for t in &p.territories {
                fleuve_schemas::check_country(t)
                    .map_err(|e| format!("partner `{}`: territory `{t}`: {e}", p.id))?;
            }
        }
        Ok(())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Partner> {
        self.partners.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.partners.is_empty()
    }
}
