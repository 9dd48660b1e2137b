//! Interop with an independent client: Confluent's Python `confluent-kafka` (from PyPI, in
//! the virtualenv `make venv` creates) serializes with `AvroSerializer` against our
//! registry and deserializes with `AvroDeserializer`. It decodes records our Rust producer
//! wrote; our processor decodes the records it wrote.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use fleuve_e2e::{Broker, Platform, Ports};
use serde_json::{json, Value};

fn python() -> Result<PathBuf> {
    let root = repo_root();
    let p = std::env::var("FLEUVE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join(".venv/bin/python"));
    if p.exists() {
        Ok(p)
    } else {
        bail!(
            "{} is missing: run `make venv` (make test does) to install the Python client",
            p.display()
        )
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_confluent_client_and_fleuve_read_each_other() -> Result<()> {
    let python = python()?;
    let broker = Broker::start()?;
    let data = tempfile::tempdir()?;
    let platform = Platform::start(&broker, data.path(), Ports::free()?)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;

    // Rust side writes.
    let mut ours = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..5i64 {
        let body = json!({"user_id":"rs-user","content_id":format!("rs-c-{i}"),
            "position_ms": 500 + i, "duration_ms": 10_000, "device":"web"});
        loop {
            let r = http
                .post(format!("{}/v1/events/PlaybackProgressed", platform.ingest))
                .bearer_auth(fleuve_e2e::token("rust-service", &["events:write"]))
                .json(&body)
                .send()
                .await?;
            if r.status() == 202 {
                let reply: Value = r.json().await?;
                ours.insert(reply["event_id"].as_str().unwrap().to_owned(), body.clone());
                break;
            }
            if Instant::now() > deadline {
                bail!("ingest never accepted: {} {}", r.status(), r.text().await?);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // Python side writes 5 and reads everything.
    let root = repo_root();
    let out = Command::new(&python)
        .arg(root.join("e2e/python/interop.py"))
        .args([
            "--bootstrap",
            &broker.bootstrap(),
            "--registry",
            &platform.registry,
        ])
        .arg("--schema")
        .arg(root.join("schemas/avro/user-activity/PlaybackProgressed.avsc"))
        .args([
            "--topic",
            "user-activity",
            "--produce",
            "5",
            "--user",
            "py-user",
        ])
        .output()
        .context("running the Python client")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python client failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (summary, records) = lines.split_last().unwrap();
    let produced: Vec<String> = serde_json::from_value(summary["produced"].clone())?;
    assert_eq!(produced.len(), 5);
    assert_eq!(records.len(), 10, "python read {} records", records.len());

    // Python decoded every Rust record with its values.
    for (event_id, sent) in &ours {
        let rec = records
            .iter()
            .find(|r| r["event_id"] == json!(event_id))
            .with_context(|| format!("python did not read {event_id}"))?;
        assert_eq!(rec["written_by"], "other");
        for field in [
            "user_id",
            "content_id",
            "position_ms",
            "duration_ms",
            "device",
        ] {
            assert_eq!(rec["fields"][field], sent[field], "{field} of {event_id}");
        }
        assert_eq!(rec["fields"]["producer"], "http-ingest");
        assert!(rec["fields"]["occurred_at"].as_i64().unwrap() > 1_700_000_000_000);
    }

    // Python registered the same schema: one subject, one version, no new id.
    let versions: Value = http
        .get(format!(
            "{}/subjects/user-activity-fleuve.user_activity.PlaybackProgressed/versions",
            platform.registry
        ))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(versions, json!([1]));

    // Fleuve's processor decoded every Python record into the projection.
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..5i64 {
        let url = format!("{}/v1/users/py-user/progress/py-c-{i}", platform.query);
        loop {
            let r = http
                .get(&url)
                .bearer_auth(fleuve_e2e::token("py-user", &["user"]))
                .send()
                .await?;
            let status = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            if status == 200 && body["position_ms"] == json!(1000 * (i + 1)) {
                assert!(produced.contains(&body["event_id"].as_str().unwrap().to_owned()));
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "python record py-c-{i} not projected: {status} {body}\n{}",
                    platform.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(platform.stop()?);
    Ok(())
}
