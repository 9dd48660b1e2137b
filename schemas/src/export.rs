//! The export contract: the Avro records partners read from their export topics.
//!
//! These are not events (ingest does not accept them and no processor consumes them), so
//! they are not in [`crate::catalog`]; they live in `avro/export/` and are listed by
//! [`export_schemas`]. A partner's topic is [`topic`] (`export.<partner>.catalog`) and its
//! values are registered under [`subject`] (`export.<partner>.catalog-value`, Confluent's
//! TopicNameStrategy, which is what default Kafka clients look up).
//!
//! ```
//! assert_eq!(fleuve_schemas::export::topic("isp-a"), "export.isp-a.catalog");
//! assert_eq!(fleuve_schemas::export::subject("isp-a"), "export.isp-a.catalog-value");
//! assert_eq!(fleuve_schemas::export::catalog_item().full_name, "fleuve.export.CatalogItem");
//! ```

use std::sync::LazyLock;

use apache_avro::Schema;

/// Folder of the export schemas under `avro/`.
pub const FOLDER: &str = "export";

/// One export record type.
#[derive(Debug)]
pub struct ExportSchema {
    /// Record name (`CatalogItem`), the file's stem.
    pub name: &'static str,
    /// The `.avsc` text, as registered in the schema registry.
    pub schema_json: &'static str,
    /// The parsed schema.
    pub schema: Schema,
    /// Full name of the record (`fleuve.export.CatalogItem`).
    pub full_name: String,
}

impl ExportSchema {
    fn parse(name: &'static str, json: &'static str) -> Self {
        // Bundled and checked by this crate's tests: a parse failure is a build defect.
        #[expect(
            clippy::expect_used,
            reason = "the bundled .avsc files are valid Avro, which tests check"
        )]
        let schema = Schema::parse_str(json).expect("bundled .avsc files are valid Avro");
        let full_name = match &schema {
            Schema::Record(r) => r.name.fullname(None),
            _ => name.to_owned(),
        };
        Self {
            name,
            schema_json: json,
            schema,
            full_name,
        }
    }
}

static SCHEMAS: LazyLock<Vec<ExportSchema>> = LazyLock::new(|| {
    vec![ExportSchema::parse(
        "CatalogItem",
        include_str!("../avro/export/CatalogItem.avsc"),
    )]
});

/// Every export record type.
pub fn export_schemas() -> &'static [ExportSchema] {
    &SCHEMAS
}

/// `fleuve.export.CatalogItem`: a content a partner may publish, the value of its export
/// topic.
pub fn catalog_item() -> &'static ExportSchema {
    &SCHEMAS[0]
}

/// The export topic of a partner: `export.<partner>.catalog`.
pub fn topic(partner: &str) -> String {
    format!("export.{partner}.catalog")
}

/// The registry subject of a partner's export values: `export.<partner>.catalog-value`.
pub fn subject(partner: &str) -> String {
    format!("{}-value", topic(partner))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Every file of `avro/export/` is listed, with exactly its text.
    #[test]
    fn export_files_are_listed() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("avro")
            .join(FOLDER);
        let mut seen = 0;
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            let spec = export_schemas()
                .iter()
                .find(|s| s.name == stem)
                .unwrap_or_else(|| panic!("{} is not listed", path.display()));
            assert_eq!(spec.schema_json, text);
            assert!(spec.full_name.ends_with(&format!(".{stem}")));
            seen += 1;
        }
        assert_eq!(seen, export_schemas().len());
    }
}
