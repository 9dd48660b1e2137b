//! Read-your-writes across Kafka, a projection and HTTP, on Tansu with `fleuve run`: an
//! event posted through ingest is read back at once through the query API with the position
//! ingest returned, 1,000 times in a row, never stale. A position the projection cannot
//! reach gets the documented `503 position_not_reached`, never an old answer.

#![expect(
    clippy::unwrap_used,
    reason = "a test stops at the first unexpected error"
)]

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use fleuve_e2e::{token, wait_ready, Broker, Platform, Ports};
use serde_json::{json, Value};

const ROUNDS: usize = 1_000;

async fn post(
    http: &reqwest::Client,
    ingest: &str,
    event_type: &str,
    body: &Value,
) -> Result<String> {
    let r = http
        .post(format!("{ingest}/v1/events/{event_type}"))
        .bearer_auth(token("ryw-test", &["events:write"]))
        .json(body)
        .send()
        .await?;
    let status = r.status();
    let reply: Value = r.json().await?;
    ensure!(status == 202, "{event_type} refused: {status} {reply}");
    Ok(reply["position"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_with_the_ingest_position_sees_the_write_every_time() -> Result<()> {
    let broker = Broker::start()?;
    let data = tempfile::tempdir()?;
    let platform = Platform::start(&broker, data.path(), Ports::free()?)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    wait_ready(&http, &platform.ingest, Duration::from_secs(60)).await?;
    wait_ready(&http, &platform.query, Duration::from_secs(60)).await?;

    let user = "u-ryw";
    let reader = token(user, &["user"]);
    let started = Instant::now();
    let mut waits = Vec::with_capacity(ROUNDS);
    for i in 0..ROUNDS {
        // Alternate contents so that a stale answer is always a different value.
        let content = format!("c-{}", i % 3);
        let position_ms = i64::try_from(i).unwrap() * 1_000 + 1;
        let position = post(
            &http,
            &platform.ingest,
            "PlaybackProgressed",
            &json!({"user_id": user, "content_id": content, "position_ms": position_ms,
                    "duration_ms": 90_000_000, "device": "web"}),
        )
        .await?;
        let asked = Instant::now();
        let r = http
            .get(format!(
                "{}/v1/users/{user}/progress/{content}",
                platform.query
            ))
            .bearer_auth(&reader)
            .header("X-Fleuve-Position", &position)
            .send()
            .await?;
        waits.push(asked.elapsed());
        let status = r.status();
        let body: Value = r.json().await?;
        ensure!(
            status == 200 && body["position_ms"] == json!(position_ms),
            "read {i} with position {position}: expected position_ms {position_ms}, got {status} {body}\nplatform log tail:\n{}",
            tail(&platform.log())
        );
    }
    waits.sort();
    eprintln!(
        "{ROUNDS} writes read back in {:.1} s; read latency p50 {:?}, p99 {:?}, max {:?}",
        started.elapsed().as_secs_f64(),
        waits[ROUNDS / 2],
        waits[ROUNDS * 99 / 100],
        waits[ROUNDS - 1]
    );

    // A position the projection will not reach in time (an offset far past the end of the
    // partition): the documented refusal, within the configured wait (2 s by default).
    let beyond = fleuve_kafka::Position::new("user-activity", 0, 1 << 40).token();
    let asked = Instant::now();
    let r = http
        .get(format!("{}/v1/users/{user}/progress/c-0", platform.query))
        .bearer_auth(&reader)
        .header("X-Fleuve-Position", &beyond)
        .send()
        .await?;
    let took = asked.elapsed();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["x-fleuve-consistency"], "behind");
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await?;
    assert_eq!(body["error"]["code"], "position_not_reached", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("user-activity/0"),
        "{body}"
    );
    assert!(
        took >= Duration::from_millis(1_900) && took < Duration::from_secs(10),
        "the wait is bounded by the configured 2 s: took {took:?}"
    );

    // A token ingest did not issue is a 400 naming the header.
    let r = http
        .get(format!("{}/v1/users/{user}/progress/c-0", platform.query))
        .bearer_auth(&reader)
        .header("X-Fleuve-Position", "not-a-token")
        .send()
        .await?;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await?;
    assert_eq!(body["error"]["code"], "invalid_position", "{body}");
    assert_eq!(body["error"]["field"], "X-Fleuve-Position", "{body}");

    assert!(platform.stop()?, "fleuve run did not stop cleanly");
    Ok(())
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
