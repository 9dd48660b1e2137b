//! Several replicas on one log answer identically; a new replica reloads everything, and
//! unreadable records in the log are skipped.

use std::time::Duration;

use serde_json::json;

use crate::common::{self, record, Api};

#[tokio::test]
async fn replicas_converge_and_a_new_one_reloads_everything() {
    let cluster = common::cluster();
    let one = common::start(&cluster).await;
    let two = common::start(&cluster).await;
    let a = Api::new(common::serve(&one).await);
    let b = Api::new(common::serve(&two).await);

    let order1 = record("Order", r#"{"name":"id","type":"string"}"#);
    let order2 = record(
        "Order",
        r#"{"name":"id","type":"string"},{"name":"n","type":"int","default":0}"#,
    );
    let user = record("User", r#"{"name":"id","type":"long"}"#);

    assert_eq!(a.register("orders-fleuve.test.Order", &order1).await, 1);
    assert_eq!(b.register("users-fleuve.test.User", &user).await, 2);
    // `two` answers from the record `one` wrote (after reading it), without writing.
    let id = common::eventually(Duration::from_secs(10), || async {
        let (status, body) = b.get("/subjects/orders-fleuve.test.Order/versions/1").await;
        (status == 200).then(|| body["id"].as_u64().unwrap())
    })
    .await;
    assert_eq!(id, 1);
    assert_eq!(b.register("orders-fleuve.test.Order", &order1).await, 1);
    assert_eq!(b.register("orders-fleuve.test.Order", &order2).await, 3);
    // The same schema under another subject, through the other replica, shares the id.
    assert_eq!(a.register("legacy-orders", &order2).await, 3);

    // Both replicas register the same new schema at once: both write, the log keeps both
    // records, the fold makes the second a no-op, both answer the same id.
    let racing = record("Race", r#"{"name":"x","type":"boolean"}"#);
    let (ra, rb) = tokio::join!(a.register("race", &racing), b.register("race", &racing));
    assert_eq!(ra, rb);

    let expected = a.dump().await;
    common::eventually(Duration::from_secs(10), || async {
        (b.dump().await == expected).then_some(())
    })
    .await;
    assert_eq!(
        a.get("/subjects/orders-fleuve.test.Order/versions").await,
        (200, json!([1, 2]))
    );
    assert_eq!(a.get("/subjects/race/versions").await, (200, json!([1])));

    // Unreadable records in the log are skipped by every replica, live or starting.
    let bad: Vec<common::RawRecord<'_>> = vec![
        (None, Some(b"no key")),
        (Some(b"not json"), Some(b"{}")),
        (Some(br#"{"keytype":"NOOP","magic":0}"#), None),
        (
            Some(br#"{"keytype":"SCHEMA","subject":"x","magic":1}"#),
            None,
        ),
        (
            Some(br#"{"keytype":"SCHEMA","subject":"x","magic":1}"#),
            Some(br#"{"subject":"x","schema":"{\"type\":\"bogus\"}"}"#),
        ),
    ];
    for (key, value) in bad {
        common::write_raw(&cluster, key, value).await;
    }
    // Registrations keep working through the live replicas after the bad records; the id is
    // the offset + 1 of the new record, which comes after the skipped ones.
    let late = record("Late", r#"{"name":"y","type":"double"}"#);
    let (_, next_offset) = common::watermarks(&cluster);
    let late_id = b.register("late", &late).await;
    assert_eq!(late_id, u64::try_from(next_offset).unwrap() + 1);
    // `a` may not have read b's record yet (then it writes a no-op duplicate): same id.
    assert_eq!(a.register("late", &late).await, late_id);

    // A replica started now reloads everything from the log.
    let expected = a.dump().await;
    let three = common::start(&cluster).await;
    let c = Api::new(common::serve(&three).await);
    assert_eq!(c.dump().await, expected);
    common::eventually(Duration::from_secs(10), || async {
        (b.dump().await == expected).then_some(())
    })
    .await;

    // Restart: stop every replica, start a fresh one.
    for r in [&one, &two, &three] {
        r.shutdown().await;
    }
    let four = common::start(&cluster).await;
    let d = Api::new(common::serve(&four).await);
    assert_eq!(d.dump().await, expected);
    assert_eq!(d.register("orders-fleuve.test.Order", &order2).await, 3);
    four.shutdown().await;
}

#[tokio::test]
async fn a_topic_with_several_partitions_is_refused() {
    let cluster = common::bare_cluster();
    cluster.create_topic("_schemas", 3, 1).unwrap();
    let err = fleuve_registry::Registry::start(fleuve_registry::RegistryConfig::new(
        common::kafka(&cluster),
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            fleuve_registry::RegistryError::NotSinglePartition { partitions: 3, .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("exactly one"), "{err}");
}

#[tokio::test]
async fn a_custom_topic_name_is_used() {
    let cluster = common::bare_cluster();
    cluster.create_topic("team-schemas", 1, 1).unwrap();
    let mut config = fleuve_registry::RegistryConfig::new(common::kafka(&cluster));
    config.topic = "team-schemas".to_owned();
    let registry = fleuve_registry::Registry::start(config).await.unwrap();
    let api = Api::new(common::serve(&registry).await);
    assert_eq!(api.register("s", "\"int\"").await, 1);
    registry.shutdown().await;
}

#[tokio::test]
async fn replicas_agree_on_config_deletes_and_refusals_and_a_restart_reloads_them() {
    let cluster = common::cluster();
    let one = common::start(&cluster).await;
    let two = common::start(&cluster).await;
    let a = Api::new(common::serve(&one).await);
    let b = Api::new(common::serve(&two).await);
    let id = r#"{"name":"id","type":"string"}"#;
    let v1 = record("Order", id);
    let v2 = record(
        "Order",
        &format!(r#"{id},{{"name":"n","type":"int","default":0}}"#),
    );

    // Config written through one replica, applied by the other.
    assert_eq!(
        a.put("/config", &json!({"compatibility": "FORWARD"}))
            .await
            .0,
        200
    );
    assert_eq!(
        b.put("/config/race", &json!({"compatibility": "BACKWARD"}))
            .await
            .0,
        200
    );
    common::eventually(Duration::from_secs(10), || async {
        (b.get("/config").await.1 == json!({"compatibilityLevel": "FORWARD"})).then_some(())
    })
    .await;

    // Deletes through either replica.
    a.register("s", &v1).await;
    b.register("s", &v2).await;
    common::eventually(Duration::from_secs(10), || async {
        (a.get("/subjects/s/versions").await.1 == json!([1, 2])).then_some(())
    })
    .await;
    assert_eq!(a.delete("/subjects/s/versions/1").await, (200, json!(1)));
    common::eventually(Duration::from_secs(10), || async {
        (b.get("/subjects/s/versions").await.1 == json!([2])).then_some(())
    })
    .await;
    assert_eq!(
        b.delete("/subjects/s/versions/1?permanent=true").await,
        (200, json!(1))
    );
    a.register("gone", "\"string\"").await;
    a.delete("/subjects/gone").await;

    // Two replicas racing two schemas, each compatible with v1 but not with the other:
    // whichever the log orders first wins, the other is refused (by its handler or by the
    // fold), and both replicas agree.
    a.register("race", &v1).await;
    common::eventually(Duration::from_secs(10), || async {
        (b.get("/subjects/race/versions").await.1 == json!([1])).then_some(())
    })
    .await;
    let x = record(
        "Order",
        &format!(r#"{id},{{"name":"n","type":"int","default":0}}"#),
    );
    let y = record(
        "Order",
        &format!(r#"{id},{{"name":"n","type":"string","default":""}}"#),
    );
    let (ra, rb) = tokio::join!(a.try_register("race", &x), b.try_register("race", &y));
    let mut statuses = [ra.0, rb.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{ra:?} {rb:?}");

    // A registration written straight to the log with a level it does not meet is ignored by
    // every replica's fold.
    let bad = record(
        "Order",
        &format!(r#"{id},{{"name":"n","type":"int","default":0}},{{"name":"m","type":"long"}}"#),
    );
    let key = br#"{"keytype":"SCHEMA","subject":"s","magic":1,"write_id":"raw-1"}"#;
    let value =
        json!({"subject": "s", "schema": bad, "schemaType": "AVRO", "compatibility": "BACKWARD"})
            .to_string();
    let bad_offset = common::write_raw(&cluster, Some(key), Some(value.as_bytes())).await;
    a.register("after", "\"int\"").await;
    b.register("after", "\"int\"").await;
    assert_eq!(a.get("/subjects/s/versions").await.1, json!([2]));
    common::assert_error(
        a.get(&format!("/schemas/ids/{}", bad_offset + 1)).await,
        404,
        40403,
        "not found",
    );

    let expected = a.dump_all().await;
    assert_eq!(expected["global"], json!({"compatibilityLevel": "FORWARD"}));
    assert_eq!(
        expected["race"],
        json!([[200, [1, 2]], [200, {"compatibilityLevel": "BACKWARD"}]])
    );
    assert_eq!(
        expected["gone"],
        json!([[200, [1]], [404, {"error_code": 40408, "message": "Subject 'gone' does not have subject-level compatibility configured"}]])
    );
    common::eventually(Duration::from_secs(10), || async {
        (b.dump_all().await == expected).then_some(())
    })
    .await;

    // Restart: every replica stops, a fresh one reloads config, deletes and refusals.
    one.shutdown().await;
    two.shutdown().await;
    let three = common::start(&cluster).await;
    let c = Api::new(common::serve(&three).await);
    assert_eq!(c.dump_all().await, expected);
    three.shutdown().await;
}
