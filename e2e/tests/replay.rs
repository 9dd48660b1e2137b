//! `fleuve replay` on a real broker (Tansu) and the schema registry: known events of several
//! types at known times, three of them written with an older version of their schema and one
//! undecodable record; replays by time (including times past every partition's end, where
//! Tansu's offsets-for-times answer is wrong) and by offset, with type and key filters, as
//! JSON lines and CSV, must return exactly those events, in order per partition, as JSON
//! the ingest validator accepts again. Then the error cases. (The same time bounds on the
//! MockCluster, which answers no offsets-for-times look-up: `replay/tests/mock_cluster.rs`.)
#![expect(
    clippy::unwrap_used,
    reason = "a test stops at the first unexpected error"
)]

use fleuve_schemas::clock::now_ms;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use apache_avro::Schema;
use fleuve_e2e::{Broker, RegistryProcess};
use fleuve_kafka::topics::{ensure_topics, TopicSpec};
use fleuve_kafka::KafkaConfig;
use fleuve_producers::{Publisher, PublisherConfig};
use fleuve_schemas::json::{rfc3339_millis, to_avro};
use fleuve_schemas::Envelope;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::{json, Value};

const TOPIC: &str = "user-activity";
const EVENTS: i64 = 30;
const KEYS: i64 = 4;
const TYPES: [&str; 3] = ["PlaybackProgressed", "BookmarkAdded", "BookmarkRemoved"];
/// Events written with the older PlaybackProgressed schema (no `correlation_id`).
const OLDER: [i64; 3] = [0, 3, 6];

/// One event the test wrote, and where it landed.
#[derive(Debug, Clone)]
struct Sent {
    partition: i32,
    offset: i64,
    ts: i64,
    key: String,
    event_type: &'static str,
    json: Value,
    older: bool,
}

fn fleuve_binary() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("FLEUVE_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let p = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("fleuve"))
        .context("cannot locate the target directory")?;
    if !p.exists() {
        bail!("{} is missing: run `cargo build -p fleuve`", p.display());
    }
    Ok(p)
}

/// `fleuve replay <args>` against these brokers and registry.
fn replay(brokers: &str, registry: &str, args: &[&str]) -> Result<Output> {
    let out = Command::new(fleuve_binary()?)
        .env("FLEUVE_BROKERS", brokers)
        .env("FLEUVE_REGISTRY_URL", registry)
        .env("RUST_LOG", "error")
        .env_remove("FLEUVE_CONFIG")
        .arg("replay")
        .args(args)
        .output()?;
    Ok(out)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The older PlaybackProgressed schema: the current one less `correlation_id`, an optional
/// field with a default that the current version added.
fn older_schema() -> String {
    let spec = fleuve_schemas::find("PlaybackProgressed").unwrap();
    let mut doc: Value = serde_json::from_str(spec.schema_json).unwrap();
    doc["fields"]
        .as_array_mut()
        .unwrap()
        .retain(|f| f["name"] != "correlation_id");
    doc.to_string()
}

fn event_json(i: i64, ts: i64, older: bool) -> (String, &'static str, Value) {
    let key = format!("u-{}", i % KEYS);
    let event_type = TYPES[usize::try_from(i % 3).unwrap()];
    let mut doc = json!({
        "event_id": uuid_for(i),
        "occurred_at": ts,
        "producer": "replay-test",
        "user_id": key,
        "content_id": format!("c-{i}"),
    });
    if event_type == "PlaybackProgressed" {
        doc["position_ms"] = json!(1000 * i);
        doc["duration_ms"] = json!(3_600_000);
        doc["device"] = json!("web");
    }
    if !older && i % 5 == 0 {
        doc["correlation_id"] = json!(format!("corr-{i}"));
    }
    (key, event_type, doc)
}

fn uuid_for(i: i64) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

async fn register(
    http: &reqwest::Client,
    registry: &str,
    subject: &str,
    schema: &str,
) -> Result<u32> {
    let r = http
        .post(format!("{registry}/subjects/{subject}/versions"))
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .json(&json!({ "schema": schema }))
        .send()
        .await?;
    let status = r.status();
    let body: Value = r.json().await?;
    if !status.is_success() {
        bail!("registering {subject}: {status} {body}");
    }
    Ok(u32::try_from(body["id"].as_u64().context("no id")?)?)
}

/// Writes the events: the older ones framed by hand with the older schema's id, the
/// others through the Publisher (which registers the current version), then one record
/// that is not Avro.
async fn publish(broker: &Broker, registry: &str, t0: i64) -> Result<(Vec<Sent>, u32)> {
    let http = reqwest::Client::new();
    let spec = fleuve_schemas::find("PlaybackProgressed").unwrap();
    let older_text = older_schema();
    let older_id = register(&http, registry, &spec.subject(), &older_text).await?;
    let older = Schema::parse_str(&older_text)?;
    let kafka = KafkaConfig::new(broker.bootstrap());
    let publisher = Publisher::new(PublisherConfig::new(kafka.clone(), registry, "replay-test"))?;
    let raw: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("enable.idempotence", "true")
        .create()?;
    let mut sent = Vec::new();
    for i in 0..EVENTS {
        let ts = t0 + i * 1000;
        let is_older = OLDER.contains(&i);
        let (key, event_type, doc) = event_json(i, ts, is_older);
        let spec = fleuve_schemas::find(event_type).unwrap();
        let (partition, offset) = if is_older {
            let value = to_avro(&older, &doc)?;
            let mut payload = vec![0];
            payload.extend_from_slice(&older_id.to_be_bytes());
            payload.extend(
                apache_avro::writer::datum::GenericDatumWriter::builder(&older)
                    .build()?
                    .write_value_to_vec(value)?,
            );
            let event_id = uuid_for(i);
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "event_type",
                    value: Some(event_type),
                })
                .insert(Header {
                    key: "event_id",
                    value: Some(&event_id),
                });
            let record = FutureRecord::to(TOPIC)
                .key(&key)
                .payload(&payload)
                .headers(headers)
                .timestamp(ts);
            raw.send(record, Duration::from_secs(10))
                .await
                .map(|d| (d.partition, d.offset))
                .map_err(|(e, _)| e)?
        } else {
            let value = to_avro(&spec.schema, &doc)?;
            let envelope = Envelope {
                event_id: uuid_for(i),
                occurred_at: ts,
                producer: "replay-test".into(),
                correlation_id: doc["correlation_id"].as_str().map(str::to_owned),
            };
            let p = publisher
                .publish_value(spec, &key, &envelope, value)
                .await?;
            (p.position.partition, p.position.offset)
        };
        sent.push(Sent {
            partition,
            offset,
            ts,
            key,
            event_type,
            json: doc,
            older: is_older,
        });
    }
    raw.send(
        FutureRecord::to(TOPIC)
            .key("u-0")
            .payload(&b"not avro"[..])
            .timestamp(t0 + 100_000),
        Duration::from_secs(10),
    )
    .await
    .map_err(|(e, _)| e)?;
    Ok((sent, older_id))
}

/// One replayed event, from a JSON line or a CSV row.
#[derive(Debug, Clone, PartialEq)]
struct Got {
    topic: String,
    partition: i32,
    offset: i64,
    timestamp: String,
    key: String,
    event_type: String,
    schema_id: u32,
    event: Value,
}

fn parse_jsonl(text: &str) -> Vec<Got> {
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            Got {
                topic: v["topic"].as_str().unwrap().to_owned(),
                partition: i32::try_from(v["partition"].as_i64().unwrap()).unwrap(),
                offset: v["offset"].as_i64().unwrap(),
                timestamp: v["timestamp"].as_str().unwrap().to_owned(),
                key: v["key"].as_str().unwrap().to_owned(),
                event_type: v["type"].as_str().unwrap().to_owned(),
                schema_id: u32::try_from(v["schema_id"].as_u64().unwrap()).unwrap(),
                event: v["event"].clone(),
            }
        })
        .collect()
}

fn parse_csv(text: &str) -> Vec<Got> {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        fleuve_replay::output::CSV_COLUMNS
    );
    r.records()
        .map(|row| {
            let row = row.unwrap();
            Got {
                topic: row[0].to_owned(),
                partition: row[1].parse().unwrap(),
                offset: row[2].parse().unwrap(),
                timestamp: row[3].to_owned(),
                key: row[4].to_owned(),
                event_type: row[5].to_owned(),
                schema_id: row[6].parse().unwrap(),
                event: serde_json::from_str(&row[7]).unwrap(),
            }
        })
        .collect()
}

/// The replay returned exactly `expected`, in order per partition, and every event
/// validates against its current schema with the ingest validator and equals what was
/// written.
fn assert_exactly(got: &[Got], expected: &[&Sent], older_id: u32, what: &str) {
    let mut got_by_p: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for g in got {
        got_by_p.entry(g.partition).or_default().push(g.offset);
    }
    let mut want_by_p: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for s in expected {
        want_by_p.entry(s.partition).or_default().push(s.offset);
    }
    assert_eq!(got_by_p, want_by_p, "{what}: offsets per partition");
    for g in got {
        let s = expected
            .iter()
            .find(|s| s.partition == g.partition && s.offset == g.offset)
            .unwrap();
        assert_eq!(g.topic, TOPIC, "{what}");
        assert_eq!(g.key, s.key, "{what}");
        assert_eq!(g.event_type, s.event_type, "{what}");
        assert_eq!(Some(g.timestamp.clone()), rfc3339_millis(s.ts), "{what}");
        assert_eq!(
            g.schema_id == older_id,
            s.older,
            "{what}: schema id of {g:?}"
        );
        let spec = fleuve_schemas::find(s.event_type).unwrap();
        // The ingest path: JSON → Avro against the current schema, then the type's rules.
        let value = to_avro(&spec.schema, &g.event)
            .unwrap_or_else(|e| panic!("{what}: {e} in {}", g.event));
        spec.check(&value).unwrap();
        assert_eq!(value, to_avro(&spec.schema, &s.json).unwrap(), "{what}");
        if s.older {
            assert_eq!(g.event["correlation_id"], Value::Null, "{what}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_returns_exactly_the_range_decoded_and_valid() -> Result<()> {
    let started = Instant::now();
    let broker = Broker::start()?;
    let kafka = KafkaConfig::new(broker.bootstrap());
    ensure_topics(
        &kafka,
        &[
            fleuve_kafka::topics::schemas_topic(),
            TopicSpec::new(TOPIC, 3),
        ],
    )
    .await?;
    let logs = tempfile::tempdir()?;
    let registry = RegistryProcess::start(&broker, logs.path())?;
    // Whole seconds, an hour ago: well inside any retention.
    let t0 = (now_ms() / 1000 - 3600) * 1000;
    let (sent, older_id) = publish(&broker, &registry.url, t0).await?;
    let brokers = broker.bootstrap();
    let reg = registry.url.as_str();
    let dir = tempfile::tempdir()?;

    // 1. Everything (default range), JSON lines on stdout: every event, the undecodable
    //    record counted in the summary.
    let out = replay(&brokers, reg, &["--topic", TOPIC])?;
    assert!(out.status.success(), "{}", stderr(&out));
    let got = parse_jsonl(&String::from_utf8(out.stdout.clone())?);
    let all: Vec<&Sent> = sent.iter().collect();
    assert_exactly(&got, &all, older_id, "whole topic");
    let summary = stderr(&out);
    assert!(
        summary.contains(&format!("replayed {EVENTS} event(s)")),
        "{summary}"
    );
    assert!(summary.contains("1 undecodable"), "{summary}");
    assert!(summary.contains("PlaybackProgressed 10"), "{summary}");

    // 2. By time, [t0+5 s, t0+20 s), to a file.
    let file = dir.path().join("range.jsonl");
    let from = rfc3339_millis(t0 + 5_000).unwrap();
    let to = rfc3339_millis(t0 + 20_000).unwrap();
    let out = replay(
        &brokers,
        reg,
        &[
            "--topic",
            TOPIC,
            "--from",
            &from,
            "--to",
            &to,
            "--output",
            file.to_str().unwrap(),
        ],
    )?;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let got = parse_jsonl(&std::fs::read_to_string(&file)?);
    let want: Vec<&Sent> = sent
        .iter()
        .filter(|s| (t0 + 5_000..t0 + 20_000).contains(&s.ts))
        .collect();
    assert_eq!(want.len(), 15);
    assert_exactly(&got, &want, older_id, "time range");

    // 2b. Times past every partition's last record: `--from` now replays nothing, `--to` a
    //     future time replays up to the end. (Tansu answers offsets-for-times with offset
    //     0 there, where Kafka answers none: trusted, `--from` now would replay everything
    //     and `--to` the future nothing.)
    let now = rfc3339_millis(now_ms()).unwrap();
    let out = replay(&brokers, reg, &["--topic", TOPIC, "--from", &now])?;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        out.stdout.is_empty(),
        "--from now replayed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let summary = stderr(&out);
    assert!(summary.contains("replayed 0 event(s)"), "{summary}");
    assert!(summary.contains("0 record(s) read"), "{summary}");
    let future = rfc3339_millis(now_ms() + 3_600_000).unwrap();
    let out = replay(&brokers, reg, &["--topic", TOPIC, "--to", &future])?;
    assert!(out.status.success(), "{}", stderr(&out));
    let got = parse_jsonl(&String::from_utf8(out.stdout.clone())?);
    assert_exactly(&got, &all, older_id, "to a future time");
    let summary = stderr(&out);
    assert!(summary.contains("1 undecodable"), "{summary}");
    let out = replay(
        &brokers,
        reg,
        &["--topic", TOPIC, "--from", &from, "--to", &future],
    )?;
    assert!(out.status.success(), "{}", stderr(&out));
    let got = parse_jsonl(&String::from_utf8(out.stdout.clone())?);
    let want: Vec<&Sent> = sent.iter().filter(|s| s.ts >= t0 + 5_000).collect();
    assert_exactly(&got, &want, older_id, "from a time to a future time");

    // 3. By offset in every partition, [2, 6), two types, as CSV.
    let out = replay(
        &brokers,
        reg,
        &[
            "--topic",
            TOPIC,
            "--from",
            "2",
            "--to",
            "6",
            "--type",
            "PlaybackProgressed,BookmarkAdded",
            "--format",
            "csv",
        ],
    )?;
    assert!(out.status.success(), "{}", stderr(&out));
    let got = parse_csv(&String::from_utf8(out.stdout)?);
    let want: Vec<&Sent> = sent
        .iter()
        .filter(|s| (2..6).contains(&s.offset) && s.event_type != "BookmarkRemoved")
        .collect();
    assert!(!want.is_empty());
    assert_exactly(&got, &want, older_id, "offset range with types, csv");

    // 4. Keys, from a date, to per-partition offsets (partition 0 up to offset 3, the
    //    others to their end).
    let date = rfc3339_millis(t0).unwrap()[..10].to_owned();
    let out = replay(
        &brokers,
        reg,
        &[
            "--topic", TOPIC, "--from", &date, "--to", "0:3", "--key", "u-1", "--key", "u-2",
        ],
    )?;
    assert!(out.status.success(), "{}", stderr(&out));
    let got = parse_jsonl(&String::from_utf8(out.stdout)?);
    let want: Vec<&Sent> = sent
        .iter()
        .filter(|s| (s.key == "u-1" || s.key == "u-2") && (s.partition != 0 || s.offset < 3))
        .collect();
    assert_exactly(&got, &want, older_id, "keys and partition offsets");

    // 5. --strict stops at the undecodable record.
    let out = replay(&brokers, reg, &["--topic", TOPIC, "--strict"])?;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot be decoded"),
        "{}",
        stderr(&out)
    );

    // Errors a user can act on.
    let fails = |args: &[&str], brokers: &str, registry: &str, needles: &[&str]| -> Result<()> {
        let t = Instant::now();
        let out = replay(brokers, registry, args)?;
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} should fail");
        for n in needles {
            assert!(err.contains(n), "{args:?}: `{n}` not in: {err}");
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{args:?} took {:?}",
            t.elapsed()
        );
        Ok(())
    };
    fails(
        &["--topic", "nope"],
        &brokers,
        reg,
        &["topic `nope` does not exist", TOPIC],
    )?;
    fails(
        &["--topic", TOPIC, "--from", "yesterday"],
        &brokers,
        reg,
        &["yesterday", "RFC 3339", "offset"],
    )?;
    fails(
        &["--topic", TOPIC, "--type", "Nope"],
        &brokers,
        reg,
        &["unknown event type `Nope`", "BookmarkAdded"],
    )?;
    fails(
        &["--topic", TOPIC, "--type", "OrderPlaced"],
        &brokers,
        reg,
        &["published to `orders`"],
    )?;
    fails(
        &["--topic", TOPIC, "--output", "/nonexistent-dir/x.jsonl"],
        &brokers,
        reg,
        &["cannot write the output file /nonexistent-dir/x.jsonl"],
    )?;
    let dead_broker = format!("127.0.0.1:{}", fleuve_e2e::free_port()?);
    fails(
        &["--topic", TOPIC, "--timeout-ms", "2000"],
        &dead_broker,
        reg,
        &[&format!("no answer from the broker at {dead_broker}")],
    )?;
    let dead_registry = format!("http://127.0.0.1:{}", fleuve_e2e::free_port()?);
    fails(
        &["--topic", TOPIC, "--timeout-ms", "2000"],
        &brokers,
        &dead_registry,
        &[&format!("schema registry at {dead_registry}")],
    )?;
    eprintln!("replay test took {:?}", started.elapsed());
    Ok(())
}
