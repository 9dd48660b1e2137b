//! The OpenAPI document against the running router: it is served openly, its `/v1` paths are
//! the router's (same templates, same methods), every real answer matches the schema its
//! operation documents (exactly the documented properties, at every depth), every error
//! status a real request gets is documented for its operation, and the document is valid
//! OpenAPI 3.1 (Python's `openapi-spec-validator`, as for the ingest's document).
#![expect(
    clippy::unwrap_used,
    reason = "a test fails at once on what it does not expect"
)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use axum::http::{header, StatusCode};
use common::*;
use fleuve_kafka::{topics, Position};
use fleuve_projections::catalog::ContentKind;
use fleuve_query_api::openapi;
use fleuve_query_api::QueryConfig;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;

const T0: i64 = 1_714_594_503_120;

/// The documented headers of a `200` that only a `?snapshot=` read carries.
const SNAPSHOT_ONLY: &[&str] = &["X-Fleuve-Snapshot", "X-Fleuve-As-Of"];

/// The value each path parameter takes in the seeded world.
fn sample(param: &str) -> &'static str {
    match param {
        "user_id" => "u-1",
        "content_id" => "film-1",
        "program_id" => "prog-1",
        "order_id" => "o-1",
        "buyer_id" => "b-1",
        "seller_id" => "s-1",
        "sku" => "sku-1",
        other => panic!("no sample for path parameter `{other}`: add one"),
    }
}

/// `template` with every `{param}` replaced by `value(param)`.
fn fill(template: &str, value: impl Fn(&str) -> &'static str) -> String {
    template
        .split('/')
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(param) => value(param).to_owned(),
                None => seg.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// One row of every read model, so that every documented operation answers 200 with data.
async fn seed(app: &App) {
    app.progress(&[progress("u-1", "film-1", T0, 61_000)]).await;
    app.bookmarks("u-1", &[bookmark("film-1", T0)]).await;
    let mut film = content("film-1", ContentKind::Programme, &["p-1", "p-2"]);
    film.description = Some("A film.".into());
    film.tags = vec!["drama".into()];
    film.duration_ms = Some(5_400_000);
    film.available_until_ms = Some(T0 + 86_400_000 * 3_650);
    app.content(&published(film)).await;
    app.content(&published(episode("ep-1", "prog-1", 1, 1, &["p-1"])))
        .await;
    app.order(&order("o-1", "b-1", "s-1", T0)).await;
    app.stock(&stock("sku-1", 5, 2)).await;
}

/// The body of `POST …:batchGet` in the seeded world: two found, one missing.
const BATCH_BODY: &str = r#"{"ids":["film-1","ep-1","nope"]}"#;

/// Every documented `/v1` operation: `(method, template, operation)`.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/") {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            out.push((method.to_uppercase(), path.clone(), op.clone()));
        }
    }
    assert!(out.len() >= 10, "{out:?}");
    out
}

/// The request of an operation in the seeded world.
async fn request(
    app: &App,
    method: &str,
    uri: &str,
    authorization: Option<&str>,
    headers: &[(&str, &str)],
) -> Resp {
    if method == "POST" {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        call(
            &app.router,
            method,
            uri,
            authorization,
            &all,
            BATCH_BODY.as_bytes().to_vec(),
        )
        .await
    } else {
        call(&app.router, method, uri, authorization, headers, Vec::new()).await
    }
}

/// Follows a local `$ref` if `v` is one.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => doc
            .pointer(r.strip_prefix('#').unwrap())
            .unwrap_or_else(|| panic!("dangling $ref {r}")),
        None => v,
    }
}

/// Checks `value` against `schema` (the JSON Schema subset the document uses), pushing what
/// is wrong to `errors` and each `(schema, property)` seen in an answer to `seen`.
fn check(
    doc: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
    errors: &mut Vec<String>,
    seen: &mut BTreeSet<(String, String)>,
) {
    let name = schema
        .get("$ref")
        .and_then(Value::as_str)
        .map(|r| r.rsplit('/').next().unwrap().to_owned());
    let schema = resolve(doc, schema);
    for key in ["anyOf", "oneOf"] {
        if let Some(branches) = schema.get(key).and_then(Value::as_array) {
            let fits = branches.iter().any(|b| {
                let mut e = Vec::new();
                check(doc, b, value, at, &mut e, &mut BTreeSet::new());
                e.is_empty()
            });
            if !fits {
                errors.push(format!("{at}: {value} fits no branch of {key}"));
                return;
            }
            // Record what the fitting branch saw.
            for b in branches {
                let mut e = Vec::new();
                let mut s = BTreeSet::new();
                check(doc, b, value, at, &mut e, &mut s);
                if e.is_empty() {
                    seen.extend(s);
                    break;
                }
            }
        }
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().map(|v| v.as_str().unwrap()).collect(),
            other => panic!("{at}: odd type {other}"),
        };
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let ok = types.contains(&actual) || (actual == "integer" && types.contains(&"number"));
        if !ok {
            errors.push(format!("{at}: {value} is {actual}, documented {types:?}"));
            return;
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        if !values.contains(value) {
            errors.push(format!("{at}: {value} is not one of {values:?}"));
        }
    }
    if let (Some("date-time"), Some(s)) =
        (schema.get("format").and_then(Value::as_str), value.as_str())
    {
        if time::OffsetDateTime::parse(s, &Rfc3339).is_err() {
            errors.push(format!("{at}: `{s}` is not RFC 3339"));
        }
    }
    match value {
        Value::Object(fields) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let closed = schema.get("additionalProperties") == Some(&json!(false));
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for r in required {
                    if !fields.contains_key(r.as_str().unwrap()) {
                        errors.push(format!("{at}: required `{r}` is missing"));
                    }
                }
            }
            for (k, v) in fields {
                match props.and_then(|p| p.get(k)) {
                    Some(prop) => {
                        if let Some(name) = &name {
                            seen.insert((name.clone(), k.clone()));
                        }
                        check(doc, prop, v, &format!("{at}.{k}"), errors, seen);
                    }
                    None if closed || props.is_some() => {
                        errors.push(format!("{at}: `{k}` is not documented"));
                    }
                    None => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    check(doc, item, v, &format!("{at}[{i}]"), errors, seen);
                }
            }
        }
        _ => {}
    }
}

/// The schema of the JSON body of `status` in `op`.
fn body_schema<'a>(doc: &'a Value, op: &'a Value, status: &str) -> &'a Value {
    let response = resolve(doc, &op["responses"][status]);
    &response["content"]["application/json"]["schema"]
}

#[tokio::test]
async fn openapi_json_is_served_without_a_token() {
    let app = App::secured().await;
    // The same token-free request is refused on a `/v1` route that needs a token.
    let refused = get(&app.router, "/v1/inventory/sku-1", None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    let resp = get(&app.router, openapi::PATH, None).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(resp.header(header::CONTENT_TYPE), Some("application/json"));
    assert_eq!(
        resp.header(header::CACHE_CONTROL),
        Some("public, max-age=300")
    );
    let served = resp.json();
    assert_eq!(served["openapi"], "3.1.0");
    let config = QueryConfig {
        auth: Some(
            fleuve_service::auth::Authenticator::new(fleuve_service::auth::AuthConfig::hs256(
                SECRET,
            ))
            .unwrap(),
        ),
        ..QueryConfig::default()
    };
    assert_eq!(served, openapi::document(&config));
    assert!(!served["info"]["description"]
        .as_str()
        .unwrap()
        .contains("without authentication"));

    // Without an authenticator the document says so.
    let open = App::open().await;
    let served = get(&open.router, openapi::PATH, None).await.json();
    assert!(served["info"]["description"]
        .as_str()
        .unwrap()
        .contains("runs without authentication"));
}

#[tokio::test]
async fn documented_paths_are_the_routers_templates_and_methods() {
    let app = App::open().await;
    seed(&app).await;
    let doc = openapi::document(&QueryConfig::default());
    let ops = operations(&doc);
    for (method, template, _) in &ops {
        let uri = fill(template, sample);
        let resp = request(&app, method, &uri, None, &[]).await;
        assert_eq!(
            resp.status,
            StatusCode::OK,
            "{method} {uri}: {}",
            resp.text()
        );
    }
    // The router matched each request with the documented template itself (its metrics
    // label the requests by the matched template).
    let metrics = get(&app.router, "/metrics", None).await.text();
    for (method, template, _) in &ops {
        let label = format!("fleuve_query_requests_total{{route=\"{template}\",status=\"200\"}}");
        assert!(
            metrics.contains(&label),
            "{method} {template} was not matched as `{template}`"
        );
    }
    // No undocumented method on a documented path.
    let paths: BTreeSet<&String> = ops.iter().map(|(_, p, _)| p).collect();
    for template in paths {
        let documented: Vec<&str> = ops
            .iter()
            .filter(|(_, p, _)| p == template)
            .map(|(m, _, _)| m.as_str())
            .collect();
        let uri = fill(template, sample);
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            if documented.contains(&method) {
                continue;
            }
            let resp = call(&app.router, method, &uri, None, &[], Vec::new()).await;
            assert_error(
                &resp,
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                None,
            );
        }
    }
    // The ops routes answer too.
    for path in doc["paths"].as_object().unwrap().keys() {
        if !path.starts_with("/v1/") && path != "/readyz" {
            let resp = get(&app.router, path, None).await;
            assert_eq!(resp.status, StatusCode::OK, "{path}");
        }
    }
}

#[tokio::test]
async fn every_200_answer_has_exactly_its_documented_properties() {
    let open = App::open().await;
    seed(&open).await;
    let secured = App::secured().await;
    seed(&secured).await;
    let doc = openapi::document(&QueryConfig::default());
    let admin = bearer("root", &["admin"]);
    let mut seen = BTreeSet::new();
    let mut checked = 0;
    for (method, template, op) in operations(&doc) {
        let uri = fill(&template, sample);
        let schema = body_schema(&doc, &op, "200");
        // Rights shown (authentication off, or admin), and hidden (anonymous).
        let answers = [
            request(&open, &method, &uri, None, &[]).await,
            request(&secured, &method, &uri, admin.as_deref(), &[]).await,
            request(&secured, &method, &uri, None, &[]).await,
        ];
        for (i, resp) in answers.iter().enumerate() {
            if i == 2 && template.starts_with("/v1/catalog/") {
                assert_eq!(resp.status, StatusCode::OK, "{method} {uri}");
            }
            if resp.status != StatusCode::OK {
                continue;
            }
            let body = resp.json();
            let resolved = resolve(&doc, schema);
            let documented: BTreeSet<&str> = resolved["properties"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let required: BTreeSet<&str> = resolved["required"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            let sent: BTreeSet<&str> = body
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert!(
                sent.is_subset(&documented) && required.is_subset(&sent),
                "{method} {uri}: sent {sent:?}, documented {documented:?}, required {required:?}"
            );
            if let Some(items) = body.get("items") {
                assert!(
                    !items.as_array().unwrap().is_empty(),
                    "{method} {uri}: no items to check"
                );
            }
            let mut errors = Vec::new();
            check(
                &doc,
                schema,
                &body,
                &format!("{method} {uri}"),
                &mut errors,
                &mut seen,
            );
            assert!(errors.is_empty(), "{}", errors.join("\n"));
            // The documented headers of a 200.
            let headers = resolve(&doc, &op["responses"]["200"])["headers"]
                .as_object()
                .unwrap();
            // The snapshot headers come with `snapshot` only (tests/snapshots.rs).
            for name in headers.keys() {
                assert!(
                    SNAPSHOT_ONLY.contains(&name.as_str())
                        || resp.headers.contains_key(name.as_str()),
                    "{method} {uri}: no {name}"
                );
            }
            checked += 1;
        }
    }
    let catalog_ops = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|p| p.starts_with("/v1/catalog/"))
        .count();
    // Every operation answered openly and to the admin, the catalog's anonymously too.
    assert_eq!(checked, 2 * operations(&doc).len() + catalog_ops);
    // Every property of every answer schema was sent by some answer: none is documented but
    // never sent.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for (name, schema) in schemas {
        if name.starts_with("Error") || name == "BatchGetRequest" {
            continue;
        }
        for prop in schema["properties"].as_object().unwrap().keys() {
            assert!(
                seen.contains(&(name.clone(), prop.clone())),
                "{name}.{prop} is documented but no answer sent it"
            );
        }
    }
}

#[tokio::test]
async fn every_error_answer_is_documented_for_its_operation() {
    let config = QueryConfig {
        auth: Some(
            fleuve_service::auth::Authenticator::new(fleuve_service::auth::AuthConfig::hs256(
                SECRET,
            ))
            .unwrap(),
        ),
        position_wait: Duration::from_millis(1),
        ..QueryConfig::default()
    };
    let app = App::with(config.clone()).await;
    seed(&app).await;
    let doc = openapi::document(&config);
    let admin = bearer("root", &["admin"]);
    let partner = bearer("p-9", &["partner"]);
    let bad_token = Some("Bearer not-a-token".to_owned());
    let far: Vec<String> = topics::EVENT_TOPICS
        .iter()
        .map(|t| Position::new(*t, 0, 1_000_000).token())
        .collect();
    let far = far.join(",");
    let mut statuses = BTreeSet::new();
    for (method, template, op) in operations(&doc) {
        let uri = fill(&template, sample);
        let absent = fill(&template, |_| "nope");
        let catalog = template.starts_with("/v1/catalog/");
        let mut answers = vec![
            request(
                &app,
                &method,
                &format!("{uri}?bogus=1"),
                admin.as_deref(),
                &[],
            )
            .await,
            request(&app, &method, &uri, bad_token.as_deref(), &[]).await,
            request(
                &app,
                &method,
                &uri,
                admin.as_deref(),
                &[("x-fleuve-position", "nope")],
            )
            .await,
            request(
                &app,
                &method,
                &uri,
                admin.as_deref(),
                &[("x-fleuve-position", &far)],
            )
            .await,
            request(&app, &method, &absent, admin.as_deref(), &[]).await,
        ];
        if !catalog {
            answers.push(request(&app, &method, &uri, None, &[]).await);
            answers.push(request(&app, &method, &uri, partner.as_deref(), &[]).await);
        }
        if method == "GET" {
            answers.push(
                request(
                    &app,
                    &method,
                    &uri,
                    admin.as_deref(),
                    &[("if-none-match", "*")],
                )
                .await,
            );
        } else {
            answers.push(
                call(
                    &app.router,
                    "POST",
                    &uri,
                    None,
                    &[("content-type", "text/plain")],
                    BATCH_BODY.into(),
                )
                .await,
            );
            answers.push(
                call(
                    &app.router,
                    "POST",
                    &uri,
                    None,
                    &[("content-type", "application/json")],
                    vec![b' '; config.max_body_bytes + 1],
                )
                .await,
            );
            answers.push(
                call(
                    &app.router,
                    "POST",
                    &uri,
                    None,
                    &[("content-type", "application/json")],
                    br#"{"ids":[]}"#.to_vec(),
                )
                .await,
            );
        }
        for resp in &answers {
            let status = resp.status.as_str().to_owned();
            let response = resolve(&doc, &op["responses"][&status]);
            assert!(
                response.is_object(),
                "{method} {template}: {status} is not documented ({})",
                resp.text()
            );
            statuses.insert(status.clone());
            if let Some(headers) = response["headers"].as_object() {
                for name in headers.keys() {
                    // `X-Fleuve-Consistency` comes with `position_not_reached` only, the
                    // snapshot headers with `snapshot` only (tests/snapshots.rs).
                    let conditional = (name == "X-Fleuve-Consistency"
                        && resp.json()["error"]["code"] != "position_not_reached")
                        || SNAPSHOT_ONLY.contains(&name.as_str());
                    assert!(
                        conditional || resp.headers.contains_key(name.as_str()),
                        "{method} {template} {status}: no {name}"
                    );
                }
            }
            if resp.status == StatusCode::NOT_MODIFIED || resp.status == StatusCode::OK {
                continue;
            }
            let mut errors = Vec::new();
            check(
                &doc,
                body_schema(&doc, &op, &status),
                &resp.json(),
                &format!("{method} {template} {status}"),
                &mut errors,
                &mut BTreeSet::new(),
            );
            assert!(errors.is_empty(), "{}", errors.join("\n"));
        }
    }
    let expected: BTreeSet<String> = [
        "200", "304", "400", "401", "403", "404", "413", "415", "503",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    assert_eq!(statuses, expected);
}

#[tokio::test]
async fn document_is_valid_openapi_and_real_answers_validate() {
    let app = App::open().await;
    seed(&app).await;
    let doc = openapi::document(&QueryConfig::default());
    let mut cases = Vec::new();
    for (method, template, op) in operations(&doc) {
        let uri = fill(&template, sample);
        let resp = request(&app, &method, &uri, None, &[]).await;
        assert_eq!(resp.status, StatusCode::OK, "{method} {uri}");
        let schema = body_schema(&doc, &op, "200")["$ref"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        cases.push(json!({"schema": schema, "label": format!("{method} {uri}"), "data": resp.json(), "valid": true}));
        // A property the schema does not document is refused.
        let mut extra = resp.json();
        extra["surprise"] = json!(1);
        cases.push(json!({"schema": schema, "label": format!("{method} {uri} with an extra property"), "data": extra, "valid": false}));
    }
    let not_found = get(&app.router, "/v1/inventory/nope", None).await;
    cases.push(json!({"schema": "Error", "label": "404", "data": not_found.json(), "valid": true}));
    let limit = get(&app.router, "/v1/users/u-1/bookmarks?limit=0", None).await;
    cases.push(
        json!({"schema": "Error", "label": "400 with field", "data": limit.json(), "valid": true}),
    );
    cases.push(json!({"schema": "BatchGetRequest", "label": "batch body", "data": serde_json::from_str::<Value>(BATCH_BODY).unwrap(), "valid": true}));
    cases.push(json!({"schema": "BatchGetRequest", "label": "empty batch", "data": {"ids": []}, "valid": false}));
    cases.push(json!({"schema": "BatchGetRequest", "label": "dot id", "data": {"ids": [".."]}, "valid": false}));

    let input = json!({"document": doc, "cases": cases});
    fleuve_testkit::validate_openapi(&input);
}
