//! Schema evolution over HTTP: compatibility config, enforcement on register, the
//! compatibility check route, soft and permanent deletes; one test per error code.

use serde_json::{json, Value};

use crate::common::{self, assert_error, record, Api, CT};

const ID: &str = r#"{"name":"id","type":"string"}"#;

fn v1() -> String {
    record("Order", ID)
}

/// A new field without default: breaks BACKWARD.
fn no_default() -> String {
    record("Order", &format!(r#"{ID},{{"name":"qty","type":"int"}}"#))
}

/// A new field with a default: compatible both ways.
fn with_default() -> String {
    record(
        "Order",
        &format!(r#"{ID},{{"name":"qty","type":"int","default":1}}"#),
    )
}

#[tokio::test]
async fn acceptance_an_incompatible_change_is_a_409_a_compatible_one_a_new_version() {
    let cluster = common::cluster();
    let registry = common::start(&cluster).await;
    let api = Api::new(common::serve(&registry).await);
    let subject = "orders-fleuve.test.Order";

    let id1 = api.register(subject, &v1()).await;
    let before = common::watermarks(&cluster);
    let (status, body) = api.try_register(subject, &no_default()).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error_code"], 409, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "Schema being registered is incompatible with an earlier schema for subject \"orders-fleuve.test.Order\", details: ["
        ),
        "{message}"
    );
    assert!(
        message.contains("version 1: ")
            && message.contains("reader field `qty` has no default and is missing from the writer"),
        "{message}"
    );
    // Refused before anything was written.
    assert_eq!(common::watermarks(&cluster), before);

    let id2 = api.register(subject, &with_default()).await;
    assert_ne!(id1, id2);
    assert_eq!(
        api.get(&format!("/subjects/{subject}/versions")).await,
        (200, json!([1, 2]))
    );
    let (_, latest) = api
        .get(&format!("/subjects/{subject}/versions/latest"))
        .await;
    assert_eq!(
        (latest["version"].clone(), latest["id"].clone()),
        (json!(2), json!(id2))
    );
    registry.shutdown().await;
}

#[tokio::test]
async fn config_routes_and_levels_applied_on_register() {
    let cluster = common::cluster();
    let registry = common::start(&cluster).await;
    let api = Api::new(common::serve(&registry).await);

    assert_eq!(
        api.get("/config").await,
        (200, json!({"compatibilityLevel": "BACKWARD"}))
    );
    assert_eq!(
        api.put("/config", &json!({"compatibility": "FULL"})).await,
        (200, json!({"compatibility": "FULL"}))
    );
    assert_eq!(
        api.get("/config").await,
        (200, json!({"compatibilityLevel": "FULL"}))
    );
    // 40408: no subject-level config.
    assert_error(
        api.get("/config/s").await,
        404,
        40408,
        "Subject 's' does not have subject-level compatibility configured",
    );
    assert_eq!(
        api.get("/config/s?defaultToGlobal=true").await,
        (200, json!({"compatibilityLevel": "FULL"}))
    );
    assert_eq!(
        api.put("/config/s", &json!({"compatibility": "none"}))
            .await,
        (200, json!({"compatibility": "NONE"}))
    );
    assert_eq!(
        api.get("/config/s").await,
        (200, json!({"compatibilityLevel": "NONE"}))
    );
    // 42203: invalid level, globally and per subject; nothing changes.
    for path in ["/config", "/config/s"] {
        assert_error(
            api.put(path, &json!({"compatibility": "SIDEWAYS"})).await,
            422,
            42203,
            "Invalid compatibility level",
        );
        assert_error(
            api.put(path, &json!({"compatibility": 3})).await,
            422,
            422,
            "Unprocessable entity",
        );
    }
    assert_eq!(
        api.get("/config/s").await,
        (200, json!({"compatibilityLevel": "NONE"}))
    );

    // Subject `s` is NONE: anything goes; subject `t` follows the global FULL.
    api.register("s", &v1()).await;
    api.register("s", &no_default()).await;
    api.register("t", &v1()).await;
    let (status, body) = api.try_register("t", &no_default()).await;
    assert_eq!(status, 409, "{body}");
    api.register("t", &with_default()).await;
    // FULL refuses removing a field without default... which `with_default` has: fine.
    // Under FORWARD_TRANSITIVE on `t`, v1 cannot read a schema without `id`.
    api.put("/config/t", &json!({"compatibility": "FORWARD_TRANSITIVE"}))
        .await;
    let no_id = record("Order", r#"{"name":"qty","type":"int","default":1}"#);
    let (status, body) = api.try_register("t", &no_id).await;
    assert_eq!(status, 409, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("version 2: ")
            && message.contains("version 1: ")
            && message.contains("`id`"),
        "{message}"
    );

    // DELETE /config/{s} answers the removed level, then the subject follows the global one.
    assert_eq!(
        api.delete("/config/s").await,
        (200, json!({"compatibilityLevel": "NONE"}))
    );
    assert_error(api.get("/config/s").await, 404, 40408, "'s'");
    assert_error(api.delete("/config/s").await, 404, 40408, "'s'");
    registry.shutdown().await;
}

#[tokio::test]
async fn compatibility_check_route() {
    let cluster = common::cluster();
    let registry = common::start(&cluster).await;
    let api = Api::new(common::serve(&registry).await);
    api.register("s", &v1()).await;
    api.register("s", &with_default()).await;
    let before = common::watermarks(&cluster);
    let check = |path: &str, schema: String| {
        let api = api.clone();
        let path = path.to_owned();
        async move {
            api.post(&path, &json!({ "schema": schema }), Some(CT))
                .await
        }
    };

    assert_eq!(
        check("/compatibility/subjects/s/versions/latest", with_default()).await,
        (200, json!({"is_compatible": true}))
    );
    assert_eq!(
        check(
            "/compatibility/subjects/s/versions/1?verbose=true",
            with_default()
        )
        .await,
        (200, json!({"is_compatible": true, "messages": []}))
    );
    // Adding a second field without default: incompatible with version 2 under BACKWARD.
    let more = record(
        "Order",
        &format!(r#"{ID},{{"name":"qty","type":"int","default":1}},{{"name":"x","type":"long"}}"#),
    );
    assert_eq!(
        check("/compatibility/subjects/s/versions/2", more.clone()).await,
        (200, json!({"is_compatible": false}))
    );
    let (status, body) = check(
        "/compatibility/subjects/s/versions/latest?verbose=true",
        more.clone(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["is_compatible"], false);
    let messages: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(messages.len(), 1, "{body}");
    assert!(
        messages[0].starts_with("version 2: ") && messages[0].contains("`x` has no default"),
        "{body}"
    );
    // Against every version the level asks for (BACKWARD: the latest).
    assert_eq!(
        check("/compatibility/subjects/s/versions", more.clone()).await,
        (200, json!({"is_compatible": false}))
    );
    assert_eq!(
        check("/compatibility/subjects/new/versions", more.clone()).await,
        (200, json!({"is_compatible": true}))
    );

    // 40401, 40402, 42201, 42202, 422.
    assert_error(
        check("/compatibility/subjects/nope/versions/latest", v1()).await,
        404,
        40401,
        "Subject 'nope' not found.",
    );
    assert_error(
        check("/compatibility/subjects/s/versions/7", v1()).await,
        404,
        40402,
        "Version 7 not found.",
    );
    assert_error(
        check(
            "/compatibility/subjects/s/versions/1",
            r#"{"type":"nope"}"#.to_owned(),
        )
        .await,
        422,
        42201,
        "Invalid schema",
    );
    assert_error(
        check("/compatibility/subjects/s/versions/first", v1()).await,
        422,
        42202,
        "'first' is not a valid version",
    );
    assert_error(
        api.post_raw(
            "/compatibility/subjects/s/versions/1",
            "[".to_owned(),
            Some(CT),
        )
        .await,
        422,
        422,
        "Unprocessable entity",
    );
    // A check writes nothing.
    assert_eq!(common::watermarks(&cluster), before);
    registry.shutdown().await;
}

async fn versions(api: &Api, subject: &str, deleted: bool) -> Value {
    let (_, body) = api
        .get(&format!("/subjects/{subject}/versions?deleted={deleted}"))
        .await;
    body
}

#[tokio::test]
async fn soft_and_permanent_deletes() {
    let cluster = common::cluster();
    let registry = common::start(&cluster).await;
    let api = Api::new(common::serve(&registry).await);
    let id1 = api.register("s", &v1()).await;
    let id2 = api.register("s", &with_default()).await;
    // The first schema is also used by another subject.
    assert_eq!(api.register("other", &v1()).await, id1);

    // 40407: permanent before soft.
    assert_error(
        api.delete("/subjects/s/versions/1?permanent=true").await,
        404,
        40407,
        "Subject 's' Version 1 was not deleted first before being permanently deleted",
    );
    assert_eq!(api.delete("/subjects/s/versions/1").await, (200, json!(1)));
    // 40406: soft twice.
    assert_error(
        api.delete("/subjects/s/versions/1").await,
        404,
        40406,
        "Version 1 was soft deleted",
    );
    assert_error(
        api.delete("/subjects/s/versions/9").await,
        404,
        40402,
        "Version 9 not found.",
    );
    assert_error(
        api.delete("/subjects/s/versions/zero").await,
        422,
        42202,
        "'zero'",
    );
    assert_eq!(versions(&api, "s", false).await, json!([2]));
    assert_eq!(versions(&api, "s", true).await, json!([1, 2]));
    assert_error(
        api.get("/subjects/s/versions/1").await,
        404,
        40402,
        "Version 1",
    );
    let (status, body) = api.get("/subjects/s/versions/1?deleted=true").await;
    assert_eq!((status, body["id"].clone()), (200, json!(id1)));
    assert_eq!(api.get(&format!("/schemas/ids/{id1}")).await.0, 200);
    assert_eq!(
        api.get(&format!("/schemas/ids/{id1}/versions")).await.1,
        json!([{"subject": "other", "version": 1}])
    );
    assert_eq!(
        api.get(&format!("/schemas/ids/{id1}/versions?deleted=true"))
            .await
            .1,
        json!([{"subject": "other", "version": 1}, {"subject": "s", "version": 1}])
    );
    // The lookup sees soft-deleted versions only when asked to.
    let lookup = json!({ "schema": v1() });
    assert_error(
        api.post("/subjects/s", &lookup, Some(CT)).await,
        404,
        40403,
        "Schema not found",
    );
    assert_eq!(
        api.post("/subjects/s?deleted=true", &lookup, Some(CT))
            .await
            .1["version"],
        1
    );

    // Re-registering the soft-deleted schema: a new version, the same id.
    assert_eq!(api.register("s", &v1()).await, id1);
    assert_eq!(versions(&api, "s", true).await, json!([1, 2, 3]));
    assert_eq!(versions(&api, "s", false).await, json!([2, 3]));

    // 40405: a permanent subject delete before the soft one.
    assert_error(
        api.delete("/subjects/s?permanent=true").await,
        404,
        40405,
        "Subject 's' was not deleted first before being permanently deleted",
    );
    assert_eq!(api.delete("/subjects/s").await, (200, json!([2, 3])));
    assert_error(api.delete("/subjects/s").await, 404, 40404, "soft deleted");
    assert_eq!(api.get("/subjects").await, (200, json!(["other"])));
    assert_eq!(
        api.get("/subjects?deleted=true").await,
        (200, json!(["other", "s"]))
    );
    assert_error(api.get("/subjects/s/versions").await, 404, 40401, "'s'");
    assert_eq!(versions(&api, "s", true).await, json!([1, 2, 3]));
    // Ids of soft-deleted versions stay resolvable.
    assert_eq!(
        api.get(&format!("/schemas/ids/{id2}")).await,
        (200, json!({ "schema": with_default() }))
    );

    // Permanent: the subject is gone; id2 was only used by it, id1 is still used by `other`.
    assert_eq!(
        api.delete("/subjects/s?permanent=true").await,
        (200, json!([1, 2, 3]))
    );
    assert_eq!(
        api.get("/subjects?deleted=true").await,
        (200, json!(["other"]))
    );
    assert_error(
        api.get("/subjects/s/versions?deleted=true").await,
        404,
        40401,
        "'s'",
    );
    assert_error(api.delete("/subjects/s").await, 404, 40401, "'s'");
    assert_error(
        api.get(&format!("/schemas/ids/{id2}")).await,
        404,
        40403,
        &format!("Schema {id2} not found"),
    );
    assert_eq!(api.get(&format!("/schemas/ids/{id1}")).await.0, 200);

    // One version of `other`, soft then permanently, by `latest`; then id1 is gone too.
    assert_eq!(
        api.delete("/subjects/other/versions/latest").await,
        (200, json!(1))
    );
    assert_eq!(
        api.delete("/subjects/other/versions/latest?permanent=true")
            .await,
        (200, json!(1))
    );
    assert_error(
        api.get(&format!("/schemas/ids/{id1}")).await,
        404,
        40403,
        "not found",
    );
    assert_eq!(api.get("/subjects?deleted=true").await, (200, json!([])));

    // A new registration after a permanent delete starts again at version 1 (Confluent's
    // behaviour) and brings the old id back for the same schema.
    assert_eq!(api.register("s", &v1()).await, id1);
    assert_eq!(versions(&api, "s", false).await, json!([1]));
    registry.shutdown().await;
}
