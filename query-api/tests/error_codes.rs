//! The error codes, documented and real, agree: the table of docs/query-api.md ("Errors")
//! is the crate documentation's (`src/lib.rs`, "Errors"), status for status, and every code
//! the OpenAPI document names for an error answer is in it, under the same status.

use std::collections::BTreeSet;

use fleuve_query_api::openapi;
use fleuve_query_api::QueryConfig;

/// The rows `| status | `code` | … |` of the table under `heading`, each line first
/// stripped of `prefix` (`//! ` in Rust docs).
fn table(text: &str, heading: &str, prefix: &str) -> BTreeSet<(u16, String)> {
    let mut rows = BTreeSet::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.strip_prefix(prefix.trim_end()).unwrap_or(line).trim();
        if line.starts_with('#') {
            inside = line.trim_start_matches('#').trim() == heading;
            continue;
        }
        if !inside || !line.starts_with('|') {
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(status), Some(code)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        let Ok(status) = status.parse::<u16>() else {
            continue; // the header and its rule
        };
        let code = code.trim_matches('`');
        assert!(
            !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "not a code: {line}"
        );
        rows.insert((status, code.to_owned()));
    }
    rows
}

/// The codes an OpenAPI error description names: each sentence or bullet opening with
/// `` `code`: ``.
fn named_codes(description: &str) -> Vec<String> {
    description
        .split(['\n', '.'])
        .filter_map(|part| {
            let part = part.trim().trim_start_matches("- ");
            let rest = part.strip_prefix('`')?;
            let (code, after) = rest.split_once('`')?;
            after.starts_with(':').then(|| code.to_owned())
        })
        .collect()
}

#[test]
fn the_error_tables_and_the_openapi_document_agree() {
    let docs = table(include_str!("../../docs/query-api.md"), "Errors", "");
    let crate_docs = table(include_str!("../src/lib.rs"), "Errors", "//! ");
    assert!(docs.len() >= 20, "{docs:?}");
    assert_eq!(docs, crate_docs, "docs/query-api.md and src/lib.rs differ");
    // The codes no route handler chooses are documented too: the rewrite of a plain error
    // answer, and `/readyz`.
    for row in [(400, "bad_request"), (503, "not_ready")] {
        assert!(docs.contains(&(row.0, row.1.to_owned())), "{row:?}");
    }

    let doc = openapi::document(&QueryConfig::default());
    let mut seen = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, response) in op["responses"].as_object().unwrap() {
                let status: u16 = status.parse().unwrap();
                if status < 400 {
                    continue;
                }
                let description = response["description"].as_str().unwrap();
                for code in named_codes(description) {
                    assert!(
                        docs.contains(&(status, code.clone())),
                        "{method} {path}: {status} `{code}` is not in the error table"
                    );
                    seen.insert(code);
                }
            }
        }
    }
    // The document names most of them (not `method_not_allowed` nor the catalog's
    // `unauthorized`, say, on every operation): check it was read at all.
    for code in [
        "invalid_parameter",
        "bad_request",
        "position_not_reached",
        "not_ready",
    ] {
        assert!(
            seen.contains(code),
            "{code} not found in the OpenAPI document: {seen:?}"
        );
    }
}

#[test]
fn codes_are_read_from_sentences_and_bullets_only() {
    assert_eq!(
        named_codes("`unauthorized`: no token. `invalid_token`: the token does not verify."),
        ["unauthorized", "invalid_token"]
    );
    assert_eq!(
        named_codes("Bad request.\n\n- `invalid_cursor`: a cursor (`field`: `cursor`)."),
        ["invalid_cursor"]
    );
}
