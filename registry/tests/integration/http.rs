//! Every route over HTTP, with Confluent's bodies and error codes.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{self, assert_error, record, Api, CT};

const V1_FIELDS: &str = r#"{"name":"id","type":"string"}"#;
const V2_FIELDS: &str = r#"{"name":"id","type":"string"},{"name":"qty","type":"int","default":1}"#;

#[tokio::test]
async fn routes_answer_like_confluent() {
    let cluster = common::cluster();
    let registry = common::start(&cluster).await;
    let api = Api::new(common::serve(&registry).await);
    let v1 = record("Order", V1_FIELDS);
    let v2 = record("Order", V2_FIELDS);

    assert_eq!(api.get("/").await, (200, json!({})));
    assert_eq!(api.get("/subjects").await, (200, json!([])));
    assert_eq!(api.get("/schemas/types").await, (200, json!(["AVRO"])));

    // Register under a subject with a slash (percent-encoded in the URL).
    let (status, body) = api
        .post(
            "/subjects/a%2Fb/versions",
            &json!({"schema": v1, "schemaType": "AVRO", "references": []}),
            Some(CT),
        )
        .await;
    assert_eq!((status, body), (200, json!({"id": 1})));

    // The same schema, laid out differently: answered from state, nothing written.
    let before = common::watermarks(&cluster);
    let spaced: Value = serde_json::from_str(&v1).unwrap();
    let spaced = serde_json::to_string_pretty(&spaced).unwrap();
    assert_ne!(spaced, v1);
    assert_eq!(api.register("a/b", &spaced).await, 1);
    assert_eq!(common::watermarks(&cluster), before);

    // A second version, sent with the other accepted content types.
    let (status, body) = api
        .post(
            "/subjects/a%2Fb/versions",
            &json!({"schema": v2}),
            Some("application/vnd.schemaregistry+json"),
        )
        .await;
    assert_eq!((status, body), (200, json!({"id": 2})));
    let (status, body) = api
        .post("/subjects/a%2Fb/versions", &json!({"schema": v2}), None)
        .await;
    assert_eq!((status, body), (200, json!({"id": 2})));

    // The first schema under another subject shares its id.
    let (status, body) = api
        .post(
            "/subjects/c/versions",
            &json!({"schema": v1}),
            Some("application/json; charset=utf-8"),
        )
        .await;
    assert_eq!((status, body), (200, json!({"id": 1})));

    assert_eq!(api.get("/subjects").await, (200, json!(["a/b", "c"])));
    assert_eq!(
        api.get("/subjects/a%2Fb/versions").await,
        (200, json!([1, 2]))
    );
    assert_eq!(api.get("/subjects/c/versions").await, (200, json!([1])));

    let version = |v: u64, id: u64, schema: &str| json!({"subject": "a/b", "version": v, "id": id, "schema": schema});
    assert_eq!(
        api.get("/subjects/a%2Fb/versions/1").await,
        (200, version(1, 1, &v1))
    );
    assert_eq!(
        api.get("/subjects/a%2Fb/versions/2").await,
        (200, version(2, 2, &v2))
    );
    assert_eq!(
        api.get("/subjects/a%2Fb/versions/latest").await,
        (200, version(2, 2, &v2))
    );
    assert_eq!(
        api.get("/subjects/a%2Fb/versions/-1").await,
        (200, version(2, 2, &v2))
    );

    let (status, raw) = api.get("/subjects/a%2Fb/versions/latest/schema").await;
    assert_eq!(status, 200);
    assert_eq!(raw, serde_json::from_str::<Value>(&v2).unwrap());
    let (status, raw) = api.get("/subjects/c/versions/1/schema").await;
    assert_eq!(
        (status, raw),
        (200, serde_json::from_str::<Value>(&v1).unwrap())
    );

    // Lookup of a schema under a subject.
    let (status, body) = api
        .post("/subjects/a%2Fb", &json!({"schema": spaced}), Some(CT))
        .await;
    assert_eq!((status, body), (200, version(1, 1, &v1)));
    let (status, body) = api
        .post(
            "/subjects/a%2Fb?deleted=false",
            &json!({"schema": v2}),
            Some(CT),
        )
        .await;
    assert_eq!((status, body), (200, version(2, 2, &v2)));

    // By id.
    assert_eq!(
        api.get("/schemas/ids/1").await,
        (200, json!({"schema": v1}))
    );
    assert_eq!(
        api.get("/schemas/ids/2?deleted=true").await,
        (200, json!({"schema": v2}))
    );
    assert_eq!(
        api.get("/schemas/ids/1?subject=c").await,
        (200, json!({"schema": v1}))
    );
    assert_eq!(
        api.get("/schemas/ids/1/versions").await,
        (
            200,
            json!([{"subject": "a/b", "version": 1}, {"subject": "c", "version": 1}])
        )
    );
    assert_eq!(
        api.get("/schemas/ids/2/versions").await,
        (200, json!([{"subject": "a/b", "version": 2}]))
    );
    // Two distinct records were written in all (ids 1 and 2 are their offsets + 1), plus
    // the one for subject `c`.
    assert_eq!(common::watermarks(&cluster), (0, 3));
    registry.shutdown().await;
}

#[tokio::test]
async fn errors_have_confluent_codes() {
    let cluster = common::cluster();
    let registry = common::start(&cluster).await;
    let api = Api::new(common::serve(&registry).await);
    let v1 = record("Order", V1_FIELDS);
    let other = record("Other", V1_FIELDS);
    assert_eq!(api.register("s", &v1).await, 1);

    assert_error(
        api.get("/subjects/nope/versions").await,
        404,
        40401,
        "Subject 'nope' not found.",
    );
    assert_error(
        api.get("/subjects/nope/versions/1").await,
        404,
        40401,
        "Subject 'nope' not found.",
    );
    assert_error(
        api.get("/subjects/nope/versions/latest").await,
        404,
        40401,
        "'nope'",
    );
    assert_error(
        api.get("/subjects/nope/versions/1/schema").await,
        404,
        40401,
        "'nope'",
    );
    assert_error(
        api.get("/subjects/s/versions/9").await,
        404,
        40402,
        "Version 9 not found.",
    );
    assert_error(
        api.get("/subjects/s/versions/9/schema").await,
        404,
        40402,
        "Version 9",
    );
    for bad in ["0", "abc", "-2", "99999999999", "1.5"] {
        assert_error(
            api.get(&format!("/subjects/s/versions/{bad}")).await,
            422,
            42202,
            &format!("'{bad}' is not a valid version"),
        );
    }
    assert_error(
        api.get("/schemas/ids/999").await,
        404,
        40403,
        "Schema 999 not found",
    );
    assert_error(api.get("/schemas/ids/abc").await, 404, 40403, "not found");
    assert_error(
        api.get("/schemas/ids/999/versions").await,
        404,
        40403,
        "Schema 999",
    );

    // Lookups.
    let body = json!({"schema": v1});
    assert_error(
        api.post("/subjects/nope", &body, Some(CT)).await,
        404,
        40401,
        "Subject 'nope' not found.",
    );
    assert_error(
        api.post("/subjects/s", &json!({"schema": other}), Some(CT))
            .await,
        404,
        40403,
        "Schema not found",
    );

    // Invalid schemas, for registration and lookup alike.
    for path in ["/subjects/s/versions", "/subjects/s"] {
        assert_error(
            api.post(
                path,
                &json!({"schema": r#"{"type":"record","name":"X"}"#}),
                Some(CT),
            )
            .await,
            422,
            42201,
            "Invalid schema: ",
        );
        assert_error(
            api.post(path, &json!({"schema": "not json"}), Some(CT))
                .await,
            422,
            42201,
            "Invalid schema",
        );
        assert_error(
            api.post(
                path,
                &json!({"schema": "\"string\"", "schemaType": "PROTOBUF"}),
                Some(CT),
            )
            .await,
            422,
            42201,
            "only AVRO",
        );
        assert_error(
            api.post(
                path,
                &json!({"schema": v1, "references": [{"name": "x", "subject": "y", "version": 1}]}),
                Some(CT),
            )
            .await,
            422,
            42201,
            "references are not supported",
        );
        assert_error(
            api.post_raw(path, "{".to_owned(), Some(CT)).await,
            422,
            422,
            "Unprocessable entity",
        );
        assert_error(
            api.post(path, &json!({"schemaa": v1}), Some(CT)).await,
            422,
            422,
            "schema",
        );
        assert_error(
            api.post(path, &json!({"schema": 12}), Some(CT)).await,
            422,
            422,
            "",
        );
        assert_error(
            api.post(path, &body, Some("text/plain")).await,
            415,
            415,
            "text/plain",
        );
    }
    assert_error(api.get("/no/such/route").await, 404, 404, "Not Found");

    // Nothing above was registered.
    assert_eq!(api.get("/subjects").await, (200, json!(["s"])));
    assert_eq!(api.get("/subjects/s/versions").await, (200, json!([1])));
    registry.shutdown().await;
}

#[tokio::test]
async fn kafka_failure_is_a_50001() {
    let cluster = common::cluster();
    let kafka = common::kafka(&cluster).with_delivery_timeout(Duration::from_millis(1500));
    let registry = fleuve_registry::Registry::start(fleuve_registry::RegistryConfig::new(kafka))
        .await
        .unwrap();
    let api = Api::new(common::serve(&registry).await);
    cluster.broker_down(1).unwrap();
    let got = api
        .post(
            "/subjects/s/versions",
            &json!({"schema": "\"string\""}),
            Some(CT),
        )
        .await;
    assert_error(got, 500, 50001, "could not write to topic '_schemas'");
    registry.shutdown().await;
}

#[tokio::test]
async fn ops_routes_and_metrics() {
    let cluster = common::cluster();
    let registry = common::start(&cluster).await;
    let base = common::serve(&registry).await;
    let api = Api::new(base.clone());
    api.register("metrics/subject", &record("M", V1_FIELDS))
        .await;
    let (status, _) = api.get("/subjects/metrics%2Fsubject/versions/7").await;
    assert_eq!(status, 404);

    let http = reqwest::Client::new();
    let get = |path: &'static str| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move {
            let response = http.get(url).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(get("/healthz").await.0, 200);
    assert_eq!(get("/readyz").await, (200, "ready\n".to_owned()));
    let (status, metrics) = get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains(
            r#"fleuve_registry_requests_total{route="/subjects/{subject}/versions",status="200"}"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"fleuve_registry_requests_total{route="/subjects/{subject}/versions/{version}",status="404"}"#),
        "{metrics}"
    );
    assert!(!metrics.contains("metrics%2Fsubject") && !metrics.contains("metrics/subject"));
    let schemas_line = metrics
        .lines()
        .find(|l| l.starts_with("fleuve_registry_schemas "))
        .expect("schemas gauge");
    let schemas: f64 = schemas_line.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(schemas >= 1.0, "{schemas_line}");

    registry.shutdown().await;
    let (status, reason) = get("/readyz").await;
    assert_eq!(status, 503);
    assert!(reason.contains("stopped"), "{reason}");
    // After shutdown the API still answers from the last state.
    assert_eq!(
        api.get("/subjects").await,
        (200, json!(["metrics/subject"]))
    );
}
