//! End to end on a real broker: HTTP ingest → Kafka (Tansu) → processor → embedded store →
//! query API, with the platform restarted in the middle.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use fleuve_e2e::{wait_ready, Broker, Platform, Ports};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{json, Value};

const USERS: usize = 8;
const CONTENTS: usize = 12;
const ROUNDS: usize = 3;

async fn post(
    http: &reqwest::Client,
    ingest: &str,
    event_type: &str,
    body: &Value,
) -> Result<(u16, Value)> {
    let r = http
        .post(format!("{ingest}/v1/events/{event_type}"))
        .bearer_auth(fleuve_e2e::token("e2e", &["events:write"]))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

/// Reads every record of `topic` from the beginning; returns the `event_id` header of each.
fn event_ids_in_topic(bootstrap: &str, topic: &str) -> Result<Vec<String>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "e2e-topic-reader")
        .set("enable.auto.commit", "false")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    let mut tpl = TopicPartitionList::new();
    let mut remaining = 0i64;
    for &p in &partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        remaining += high - low;
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut ids = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while remaining > 0 {
        if Instant::now() > deadline {
            bail!("{remaining} records of {topic} not read within 30 s");
        }
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m?;
            remaining -= 1;
            let id = m
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == "event_id"))
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .context("record without event_id header")?;
            ids.push(id);
        }
    }
    Ok(ids)
}

/// One hostile request and the answer it must get.
struct Case {
    event_type: &'static str,
    body: String,
    content_type: &'static str,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
}

impl Case {
    fn new(
        event_type: &'static str,
        body: String,
        content_type: &'static str,
        status: u16,
        code: &'static str,
        field: Option<&'static str>,
    ) -> Self {
        Self {
            event_type,
            body,
            content_type,
            status,
            code,
            field,
        }
    }
}

/// A query API read with an admin token (the test reads many users' data).
async fn get_json(http: &reqwest::Client, url: &str) -> Result<(u16, Value)> {
    let r = http
        .get(url)
        .bearer_auth(fleuve_e2e::token("e2e-admin", &["admin"]))
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

/// Polls until every expected (user, content) → position is served.
async fn wait_projection(
    http: &reqwest::Client,
    query: &str,
    expected: &BTreeMap<(String, String), i64>,
    platform: &Platform,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    for ((user, content), position) in expected {
        loop {
            let (status, body) =
                get_json(http, &format!("{query}/v1/users/{user}/progress/{content}")).await?;
            if status == 200 && body["position_ms"] == json!(position) {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "{user}/{content}: expected position {position}, last answer {status} {body}\nplatform log:\n{}",
                    platform.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_posted_over_http_are_read_back_and_survive_a_restart() -> Result<()> {
    let broker = Broker::start()?;
    let data = tempfile::tempdir()?;
    let ports = Ports::free()?;
    let platform = Platform::start(&broker, data.path(), ports)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    wait_ready(&http, &platform.ingest, Duration::from_secs(30)).await?;
    wait_ready(&http, &platform.query, Duration::from_secs(30)).await?;

    // Valid events: ROUNDS updates of every (user, content), increasing positions.
    let mut expected = BTreeMap::new();
    let mut accepted = BTreeSet::new();
    let base_ms: i64 = 1_795_341_600_000;
    for round in 0..ROUNDS {
        for u in 0..USERS {
            for c in 0..CONTENTS {
                let position = i64::try_from(1000 * (round + 1) + c).unwrap();
                let occurred_at = base_ms + i64::try_from(round * 1000 + c).unwrap();
                let body = json!({"user_id": format!("u-{u}"), "content_id": format!("c-{c}"),
                    "position_ms": position, "duration_ms": 3_600_000, "device": "web",
                    "occurred_at": occurred_at});
                let (status, reply) =
                    post(&http, &platform.ingest, "PlaybackProgressed", &body).await?;
                assert_eq!(status, 202, "valid event refused: {reply}");
                assert_eq!(reply["topic"], "user-activity");
                assert!(reply["offset"].as_i64().unwrap() >= 0);
                assert!(!reply["position"].as_str().unwrap().is_empty());
                accepted.insert(reply["event_id"].as_str().unwrap().to_owned());
                expected.insert((format!("u-{u}"), format!("c-{c}")), position);
            }
        }
    }

    // Hostile input: each gets its 4xx, with a message naming the problem.
    let valid =
        json!({"user_id":"u-x","content_id":"c-x","position_ms":1,"duration_ms":2,"device":"web"});
    let mut missing = valid.clone();
    missing.as_object_mut().unwrap().remove("content_id");
    let mut wrong_type = valid.clone();
    wrong_type["position_ms"] = json!("ten");
    let mut unknown = valid.clone();
    unknown["colour"] = json!("blue");
    let mut beyond = valid.clone();
    beyond["position_ms"] = json!(3);
    let mut bad_id = valid.clone();
    bad_id["event_id"] = json!("not-a-uuid");
    let huge = "x".repeat(70 * 1024);
    let json_ct = "application/json";
    let pp = "PlaybackProgressed";
    let cases = [
        Case::new(
            pp,
            "{\"user_id\": \"u\",".into(),
            json_ct,
            400,
            "invalid_json",
            None,
        ),
        Case::new(pp, "[1,2]".into(), json_ct, 400, "invalid_json", None),
        Case::new(
            pp,
            missing.to_string(),
            json_ct,
            400,
            "invalid_event",
            Some("content_id"),
        ),
        Case::new(
            pp,
            wrong_type.to_string(),
            json_ct,
            400,
            "invalid_event",
            Some("position_ms"),
        ),
        Case::new(
            pp,
            unknown.to_string(),
            json_ct,
            400,
            "invalid_event",
            Some("colour"),
        ),
        Case::new(
            pp,
            beyond.to_string(),
            json_ct,
            400,
            "invalid_event",
            Some("position_ms"),
        ),
        Case::new(
            pp,
            bad_id.to_string(),
            json_ct,
            400,
            "invalid_event",
            Some("event_id"),
        ),
        Case::new(
            "NoSuchEvent",
            valid.to_string(),
            json_ct,
            404,
            "unknown_event_type",
            None,
        ),
        Case::new(
            pp,
            format!("{{\"user_id\":\"{huge}\"}}"),
            json_ct,
            413,
            "payload_too_large",
            None,
        ),
        Case::new(
            pp,
            valid.to_string(),
            "text/plain",
            415,
            "unsupported_media_type",
            None,
        ),
    ];
    for Case {
        event_type,
        body,
        content_type,
        status,
        code,
        field,
    } in cases
    {
        let r = http
            .post(format!("{}/v1/events/{event_type}", platform.ingest))
            .bearer_auth(fleuve_e2e::token("e2e", &["events:write"]))
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await?;
        let got = r.status().as_u16();
        let reply: Value = r.json().await?;
        assert_eq!(
            got,
            status,
            "{event_type} {} → {reply}",
            &body[..body.len().min(80)]
        );
        assert_eq!(reply["error"]["code"], code, "{reply}");
        assert!(
            !reply["error"]["message"].as_str().unwrap().is_empty(),
            "{reply}"
        );
        if let Some(field) = field {
            assert_eq!(reply["error"]["field"], field, "{reply}");
            assert!(reply["error"]["message"].is_string());
        }
    }

    // Without a token, or with a token lacking the scope: refused, nothing produced.
    let cases = [
        (None, 401, "unauthorized"),
        (
            Some(fleuve_e2e::token("e2e", &["catalog:read"])),
            403,
            "forbidden",
        ),
    ];
    for (token, status, code) in cases {
        let mut req = http
            .post(format!("{}/v1/events/PlaybackProgressed", platform.ingest))
            .header("content-type", "application/json")
            .body(valid.to_string());
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let r = req.send().await?;
        assert_eq!(r.status().as_u16(), status);
        let reply: Value = r.json().await?;
        assert_eq!(reply["error"]["code"], code, "{reply}");
    }

    // Every accepted event is read back; nothing else reached Kafka.
    wait_projection(&http, &platform.query, &expected, &platform).await?;
    let in_topic = event_ids_in_topic(&broker.bootstrap(), "user-activity")?;
    assert_eq!(
        in_topic.len(),
        accepted.len(),
        "records in the topic vs 202 answers"
    );
    assert_eq!(in_topic.into_iter().collect::<BTreeSet<_>>(), accepted);

    // The list: by content id, paginated with the opaque cursor, complete.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{}/v1/users/u-3/progress?limit=5", platform.query);
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = get_json(&http, &url).await?;
        assert_eq!(status, 200, "{page}");
        for item in page["items"].as_array().unwrap() {
            seen.push(item["content_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    // By content id, as bytes.
    let mut by_content: Vec<String> = (0..CONTENTS).map(|c| format!("c-{c}")).collect();
    by_content.sort();
    assert_eq!(seen, by_content);
    let (status, _) = get_json(
        &http,
        &format!("{}/v1/users/u-3/progress/nope", platform.query),
    )
    .await?;
    assert_eq!(status, 404);

    // Restart: the projection is still there, and the pipeline still works.
    assert!(platform.stop()?, "fleuve did not exit cleanly on SIGTERM");
    let platform = Platform::start(&broker, data.path(), ports)?;
    wait_ready(&http, &platform.ingest, Duration::from_secs(30)).await?;
    let (status, body) = get_json(
        &http,
        &format!("{}/v1/users/u-0/progress/c-0", platform.query),
    )
    .await?;
    assert_eq!(status, 200, "progress lost across a restart: {body}");
    assert_eq!(
        body["position_ms"],
        json!(expected[&("u-0".to_owned(), "c-0".to_owned())])
    );
    let (status, _) = post(&http, &platform.ingest, "PlaybackProgressed",
        &json!({"user_id":"u-0","content_id":"c-0","position_ms":999_999,"duration_ms":3_600_000,"device":"tv"})).await?;
    assert_eq!(status, 202);
    expected.insert(("u-0".into(), "c-0".into()), 999_999);
    wait_projection(&http, &platform.query, &expected, &platform).await?;
    assert!(platform.stop()?);
    drop(broker);
    Ok(())
}
