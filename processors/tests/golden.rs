//! Golden tests: event fixtures in, expected projection JSON out.
//!
//! Each case is a folder `tests/golden/<processor>/<case>/` holding:
//!
//! * `events.jsonl`: one line per event, `{"type": "<EventType>", "event": {…}}` with the
//!   event's fields as the ingest API takes them (`event_id`, `producer` and
//!   `correlation_id` may be left out: the runner fills them in), and optionally
//!   `"partition": n` (default 0). A line `{"tick": "<RFC 3339 time>"}` runs the processor's
//!   timer at that instant. Blank lines and lines starting with `#` are ignored.
//! * `expected.json`: every non-empty table the processor writes, rows in store order with
//!   their values as JSON, and the dead letters (offset, type, reason).
//!
//! Each case runs four ways, which must all give the expected tables: every event between
//! two ticks in one batch; one event per batch; every batch applied twice (a redelivery the
//! checkpoints did not filter, as after a crash between a ScyllaDB write and its
//! checkpoint); and every batch first cut short after its derived writes, then folded and
//! applied again (a crash half-way through a ScyllaDB apply, which writes derived rows
//! before state rows). Dead letters are compared for the first way.
//!
//! Every case runs against every store backend, as the store conformance suite does
//! (`fleuve_projections::testing`): the embedded store always, ScyllaDB when `SCYLLA_URI` is
//! set and the ignored cases are included (`SCYLLA_URI=scylla://127.0.0.1:9042 cargo test
//! -p fleuve-processors --test golden -- --include-ignored`), each way of running a case in
//! a fresh store (a new directory, a new keyspace). Tests are named by backend
//! (`embedded::bookmarks`, `scylla::bookmarks`), and so is each failure they report.
//!
//! `FLEUVE_BLESS=1 cargo test -p fleuve-processors --test golden` rewrites the
//! `expected.json` files from the embedded store's output (the ScyllaDB tests then only
//! say they were skipped); review the diff before committing it.

// Test helpers outside #[test] functions unwrap too: a failure is a test failure.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap too: a failure is a test failure"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fleuve_processors::handlers;
use fleuve_processors::runtime::{Handler, Incoming};
use fleuve_projections::testing::{Backend, FreshStore};
use fleuve_projections::{Store, WriteBatch};
use serde_json::{json, Value as Json};

enum Step {
    Event {
        line: usize,
        partition: i32,
        spec: &'static fleuve_schemas::EventSpec,
        value: apache_avro::types::Value,
    },
    Tick(i64),
}

fn parse_time(v: &Json, line: usize) -> i64 {
    match v {
        Json::Number(n) => n.as_i64().unwrap(),
        Json::String(s) => {
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|e| panic!("line {line}: bad time {s:?}: {e}"));
            i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap()
        }
        other => panic!("line {line}: bad time {other}"),
    }
}

fn load(path: &Path) -> Vec<Step> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut steps = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let raw = raw.trim();
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        let doc: Json = serde_json::from_str(raw)
            .unwrap_or_else(|e| panic!("{}:{line}: not JSON: {e}", path.display()));
        if let Some(t) = doc.get("tick") {
            steps.push(Step::Tick(parse_time(t, line)));
            continue;
        }
        let ty = doc["type"]
            .as_str()
            .unwrap_or_else(|| panic!("{}:{line}: missing \"type\"", path.display()));
        let spec = fleuve_schemas::find(ty)
            .unwrap_or_else(|| panic!("{}:{line}: unknown event type {ty}", path.display()));
        let mut event = doc["event"].clone();
        let fields = event
            .as_object_mut()
            .unwrap_or_else(|| panic!("{}:{line}: \"event\" must be an object", path.display()));
        fields
            .entry("event_id")
            .or_insert_with(|| json!(format!("00000000-0000-4000-8000-{line:012}")));
        fields.entry("producer").or_insert_with(|| json!("golden"));
        fields.entry("correlation_id").or_insert(Json::Null);
        let value = fleuve_schemas::json::to_avro(&spec.schema, &event)
            .unwrap_or_else(|e| panic!("{}:{line}: {e}", path.display()));
        let partition = doc
            .get("partition")
            .and_then(Json::as_i64)
            .map_or(0, |p| i32::try_from(p).unwrap());
        steps.push(Step::Event {
            line,
            partition,
            spec,
            value,
        });
    }
    steps
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    OneBatch,
    OneEventPerBatch,
    EveryBatchTwice,
    CrashAfterDerived,
}

async fn apply(
    store: &Arc<dyn Store>,
    handler: &Arc<dyn Handler>,
    batch: &[Incoming],
    mode: Mode,
    dead: &mut Vec<Json>,
) {
    if batch.is_empty() {
        return;
    }
    if mode == Mode::CrashAfterDerived {
        let fold = handler.fold(&**store, batch).await.unwrap();
        store
            .apply(WriteBatch {
                projection: handler.name().to_owned(),
                writes: fold.writes.derived.into(),
                checkpoints: Vec::new(),
            })
            .await
            .unwrap();
    }
    let twice = mode == Mode::EveryBatchTwice;
    for round in 0..if twice { 2 } else { 1 } {
        let fold = handler.fold(&**store, batch).await.unwrap();
        if round == 0 {
            for (i, reason) in &fold.rejected {
                let e = &batch[*i];
                dead.push(json!({"partition": e.partition, "offset": e.offset, "type": e.event_type, "reason": reason}));
            }
        }
        let mut checkpoints = BTreeMap::new();
        for e in batch {
            checkpoints.insert((e.topic.clone(), e.partition), e.offset + 1);
        }
        store
            .apply(WriteBatch {
                projection: handler.name().to_owned(),
                writes: fold.writes,
                checkpoints: checkpoints
                    .into_iter()
                    .map(
                        |((topic, partition), next_offset)| fleuve_projections::Checkpoint {
                            topic,
                            partition,
                            next_offset,
                        },
                    )
                    .collect(),
            })
            .await
            .unwrap();
    }
}

/// Feeds `steps` to `processor` in a fresh store of `backend`, and returns what it left
/// there, with the store (kept until the comparison is done).
async fn run(backend: Backend, processor: &str, steps: &[Step], mode: Mode) -> (Json, FreshStore) {
    let fresh = backend
        .fresh()
        .await
        .unwrap_or_else(|e| panic!("cannot open a fresh {backend} store for `{processor}`: {e}"));
    let store = Arc::clone(fresh.store());
    let handler = handlers::by_name(processor).unwrap();
    let mut offsets: BTreeMap<i32, i64> = BTreeMap::new();
    let mut batch: Vec<Incoming> = Vec::new();
    let mut dead = Vec::new();
    for step in steps {
        match step {
            Step::Event {
                line,
                partition,
                spec,
                value,
            } => {
                assert!(
                    handler.topics().contains(&spec.topic),
                    "line {line}: {processor} does not consume topic {}",
                    spec.topic
                );
                let offset = offsets.entry(*partition).or_insert(0);
                if handler.wants(spec.name) {
                    batch.push(Incoming {
                        topic: spec.topic.to_owned(),
                        partition: *partition,
                        offset: *offset,
                        event_type: spec.name,
                        value: value.clone(),
                    });
                }
                *offset += 1;
                if mode == Mode::OneEventPerBatch {
                    apply(
                        &store,
                        &handler,
                        &std::mem::take(&mut batch),
                        mode,
                        &mut dead,
                    )
                    .await;
                }
            }
            Step::Tick(now_ms) => {
                apply(
                    &store,
                    &handler,
                    &std::mem::take(&mut batch),
                    mode,
                    &mut dead,
                )
                .await;
                if mode == Mode::CrashAfterDerived {
                    let writes = handler.on_timer(&*store, *now_ms).await.unwrap();
                    store
                        .apply(WriteBatch {
                            projection: processor.to_owned(),
                            writes: writes.derived.into(),
                            checkpoints: Vec::new(),
                        })
                        .await
                        .unwrap();
                }
                let twice = mode == Mode::EveryBatchTwice;
                for _ in 0..if twice { 2 } else { 1 } {
                    let writes = handler.on_timer(&*store, *now_ms).await.unwrap();
                    store
                        .apply(WriteBatch {
                            projection: processor.to_owned(),
                            writes,
                            checkpoints: Vec::new(),
                        })
                        .await
                        .unwrap();
                }
            }
        }
    }
    apply(&store, &handler, &batch, mode, &mut dead).await;

    let mut tables = serde_json::Map::new();
    for table in fleuve_projections::tables() {
        let mut rows = Vec::new();
        let mut after: Option<(String, String)> = None;
        loop {
            let page = store
                .scan_table(
                    table,
                    after.as_ref().map(|(p, c)| (p.as_str(), c.as_str())),
                    500,
                )
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            after = page.last().map(|r| (r.pk.clone(), r.ck.clone()));
            for r in page {
                let value: Json = serde_json::from_slice(&r.value)
                    .unwrap_or_else(|_| json!(String::from_utf8_lossy(&r.value)));
                rows.push(json!({"pk": r.pk, "ck": r.ck, "value": value}));
            }
        }
        if !rows.is_empty() {
            tables.insert((*table).to_owned(), Json::Array(rows));
        }
    }
    (json!({"tables": tables, "dead_letters": dead}), fresh)
}

fn cases(processor: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(processor);
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("no golden cases for {processor} in {}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("events.jsonl").is_file())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no golden cases in {}", root.display());
    cases
}

/// Where a run's store is, for a failure message: the keyspace a ScyllaDB run leaves on the
/// cluster (an embedded run's directory is gone by the time the message is read).
fn kept_at(fresh: &FreshStore) -> String {
    match fresh.backend() {
        Backend::Scylla => format!(" (store left in {})", fresh.location()),
        Backend::Embedded => String::new(),
    }
}

/// Runs every golden case of `processor` against `backend`, the four ways.
async fn golden(backend: Backend, processor: &str) {
    if let Some(why) = backend.skip_reason() {
        eprintln!("{why}: golden cases of `{processor}` skipped on the {backend} store");
        return;
    }
    let bless = std::env::var_os("FLEUVE_BLESS").is_some();
    if bless && backend != Backend::Embedded {
        eprintln!(
            "FLEUVE_BLESS rewrites expected.json from the embedded store: golden cases of \
             `{processor}` not compared on the {backend} store"
        );
        return;
    }
    let mut failures = Vec::new();
    for case in cases(processor) {
        let steps = load(&case.join("events.jsonl"));
        let (out, fresh) = run(backend, processor, &steps, Mode::OneBatch).await;
        let expected_path = case.join("expected.json");
        if bless {
            let mut text = serde_json::to_string_pretty(&out).unwrap();
            text.push('\n');
            std::fs::write(&expected_path, text).unwrap();
        }
        let expected: Json = match std::fs::read_to_string(&expected_path) {
            Ok(text) => serde_json::from_str(&text).unwrap(),
            Err(e) => {
                failures.push(format!(
                    "[{backend}] {}: {e}; write it with FLEUVE_BLESS=1",
                    expected_path.display()
                ));
                continue;
            }
        };
        if out != expected {
            failures.push(format!(
                "[{backend}] {}: output differs from expected.json{}:\n{}",
                case.display(),
                kept_at(&fresh),
                serde_json::to_string_pretty(&out).unwrap()
            ));
            continue;
        }
        drop(fresh);
        for (mode, name) in [
            (Mode::OneEventPerBatch, "one event per batch"),
            (Mode::EveryBatchTwice, "every batch applied twice"),
            (
                Mode::CrashAfterDerived,
                "every batch cut short after its derived writes",
            ),
        ] {
            let (other, fresh) = run(backend, processor, &steps, mode).await;
            if other["tables"] != expected["tables"] {
                failures.push(format!(
                    "[{backend}] {} ({name}): tables differ from expected.json{}:\n{}",
                    case.display(),
                    kept_at(&fresh),
                    serde_json::to_string_pretty(&other["tables"]).unwrap()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden run(s) of `{processor}` failed on the {backend} store:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

// Tests `embedded::<processor>` and `scylla::<processor>`.
fleuve_projections::backend_tests!(golden => user_progress, bookmarks, catalog, orders, inventory);

#[test]
fn every_processor_has_golden_cases() {
    // `exports` depends on its partner configuration, which the golden format does not
    // carry: its fold is tested in `handlers/exports/tests.rs`.
    for name in handlers::NAMES
        .iter()
        .filter(|n| **n != handlers::exports::NAME)
    {
        assert!(!cases(name).is_empty());
    }
}
