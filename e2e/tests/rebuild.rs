//! `fleuve rebuild` on Tansu with `fleuve run`: a projection rebuilt from the start of the
//! log while reads and writes go on. No read fails and no value ever goes backwards during
//! the switch; afterwards the query API serves the new version, which holds the latest
//! values. A snapshot as of an instant between two waves of writes serves exactly the first
//! wave under `?snapshot=<name>`, and a snapshot as of now equals the live projection row by
//! row. The versions in use cannot be dropped; the retired one can.

#![expect(
    clippy::unwrap_used,
    reason = "a test stops at the first unexpected error"
)]

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use fleuve_e2e::{fleuve_binary, token, wait_ready, Broker, Platform, Ports};
use serde_json::{json, Value};

const USERS: usize = 20;
const CONTENTS: usize = 5;

async fn post_progress(
    http: &reqwest::Client,
    ingest: &str,
    user: &str,
    content: &str,
    position_ms: i64,
) -> Result<String> {
    let r = http
        .post(format!("{ingest}/v1/events/PlaybackProgressed"))
        .bearer_auth(token("rebuild-test", &["events:write"]))
        .json(
            &json!({"user_id": user, "content_id": content, "position_ms": position_ms,
                      "duration_ms": 900_000_000, "device": "web"}),
        )
        .send()
        .await?;
    let status = r.status();
    let reply: Value = r.json().await?;
    ensure!(status == 202, "publish refused: {status} {reply}");
    Ok(reply["position"].as_str().unwrap().to_owned())
}

/// Publishes one wave: every (user, content) at `base + i`.
async fn wave(http: &reqwest::Client, ingest: &str, base: i64) -> Result<Vec<String>> {
    let mut positions = Vec::new();
    for u in 0..USERS {
        for c in 0..CONTENTS {
            let p = base + i64::try_from(u * CONTENTS + c).unwrap();
            positions
                .push(post_progress(http, ingest, &format!("u-{u}"), &format!("c-{c}"), p).await?);
        }
    }
    Ok(positions)
}

async fn read(
    http: &reqwest::Client,
    query: &str,
    user: &str,
    content: &str,
    extra: &str,
    position: Option<&str>,
) -> Result<(u16, Value)> {
    let mut req = http
        .get(format!("{query}/v1/users/{user}/progress/{content}{extra}"))
        .bearer_auth(token(user, &["user"]));
    if let Some(p) = position {
        req = req.header("X-Fleuve-Position", p);
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await?))
}

/// A user's progress rows (`extra`: more query parameters, `&snapshot=…`).
async fn list(
    http: &reqwest::Client,
    query: &str,
    user: &str,
    extra: &str,
) -> Result<(u16, Value)> {
    let r = http
        .get(format!("{query}/v1/users/{user}/progress?limit=100{extra}"))
        .bearer_auth(token(user, &["user"]))
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await?))
}

fn fleuve(args: &[&str]) -> Result<std::process::Output> {
    Command::new(fleuve_binary()?)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .context("running fleuve")
}

fn text(o: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_switches_without_a_failed_or_backward_read() -> Result<()> {
    let broker = Broker::start()?;
    let data = tempfile::tempdir()?;
    let platform = Platform::start(&broker, data.path(), Ports::free()?)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    wait_ready(&http, &platform.ingest, Duration::from_secs(60)).await?;
    wait_ready(&http, &platform.query, Duration::from_secs(60)).await?;
    let processor_url = platform.processor.clone();

    // Wave A, read back; then an instant for the snapshot; then wave B.
    let positions = wave(&http, &platform.ingest, 1_000).await?;
    let last = positions.last().unwrap().clone();
    let (status, body) = read(&http, &platform.query, "u-0", "c-0", "", Some(&last)).await?;
    ensure!(status == 200, "wave A not visible: {status} {body}");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let between = time::OffsetDateTime::now_utc();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let positions = wave(&http, &platform.ingest, 100_000).await?;
    let last_b = positions.last().unwrap().clone();
    let (status, _) = read(&http, &platform.query, "u-0", "c-0", "", Some(&last_b)).await?;
    ensure!(status == 200);

    // Load: readers on every key checking that no value goes backwards, and a writer that
    // keeps moving one key forward during the whole rebuild.
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for r in 0..4 {
        let (http, query, stop, reads) = (
            http.clone(),
            platform.query.clone(),
            Arc::clone(&stop),
            Arc::clone(&reads),
        );
        readers.push(tokio::spawn(async move {
            let mut seen: HashMap<(usize, usize), i64> = HashMap::new();
            let mut i = r;
            while !stop.load(Ordering::Relaxed) {
                let (u, c) = (i % (USERS + 1), (i / (USERS + 1)) % CONTENTS);
                i += 7;
                let (user, content) = if u == USERS {
                    ("u-live".to_owned(), "c-live".to_owned())
                } else {
                    (format!("u-{u}"), format!("c-{c}"))
                };
                let (status, body) = read(&http, &query, &user, &content, "", None).await?;
                if status == 404 && u == USERS {
                    continue; // the live key before its first write is applied
                }
                ensure!(
                    status == 200,
                    "read {user}/{content} failed: {status} {body}"
                );
                let p = body["position_ms"].as_i64().context("position_ms")?;
                let before = seen.insert((u, c), p).unwrap_or(i64::MIN);
                ensure!(
                    p >= before,
                    "{user}/{content} went backwards: {before} then {p}"
                );
                reads.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    let writer = {
        let (http, ingest, stop) = (http.clone(), platform.ingest.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut p = 0;
            while !stop.load(Ordering::Relaxed) {
                p += 1;
                post_progress(&http, &ingest, "u-live", "c-live", p).await?;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            anyhow::Ok(p)
        })
    };

    let started = Instant::now();
    let out = tokio::task::spawn_blocking({
        let url = processor_url.clone();
        move || fleuve(&["rebuild", "user_progress", "--processor-url", &url])
    })
    .await??;
    ensure!(
        out.status.success(),
        "rebuild failed: {}\nplatform log:\n{}",
        text(&out),
        platform.log()
    );
    let took = started.elapsed();
    // Reads go on a moment against the new version.
    let reads_at_switch = reads.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await??;
    }
    let last_live = writer.await??;
    let total_reads = reads.load(Ordering::Relaxed);
    ensure!(
        reads_at_switch > 50,
        "too few reads during the rebuild: {reads_at_switch}"
    );
    ensure!(total_reads > reads_at_switch, "no read after the switch");
    eprintln!("rebuild took {took:?}; {total_reads} reads, none failed or went backwards");

    let out = fleuve(&[
        "rebuild",
        "list",
        "user_progress",
        "--processor-url",
        &processor_url,
    ])?;
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    ensure!(out.status.success(), "list failed: {}", text(&out));
    ensure!(
        listing.contains("reads v2, the processor writes v2"),
        "the query API should read v2: {listing}"
    );
    ensure!(
        listing.contains("retired") && listing.contains("live"),
        "{listing}"
    );

    // The new version holds the latest values, and keeps up with new writes.
    let (status, body) = read(&http, &platform.query, "u-3", "c-2", "", None).await?;
    ensure!(
        status == 200 && body["position_ms"] == json!(100_000 + 3 * 5 + 2),
        "{status} {body}"
    );
    let position =
        post_progress(&http, &platform.ingest, "u-live", "c-live", last_live + 1).await?;
    let (status, body) = read(
        &http,
        &platform.query,
        "u-live",
        "c-live",
        "",
        Some(&position),
    )
    .await?;
    ensure!(
        status == 200 && body["position_ms"] == json!(last_live + 1),
        "after the switch: {status} {body}"
    );

    // A snapshot between the waves serves wave A.
    let as_of = between
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let out = tokio::task::spawn_blocking({
        let url = processor_url.clone();
        move || {
            fleuve(&[
                "rebuild",
                "user_progress",
                "--as-of",
                &as_of,
                "--name",
                "wave-a",
                "--processor-url",
                &url,
            ])
        }
    })
    .await??;
    ensure!(out.status.success(), "snapshot failed: {}", text(&out));
    let (status, body) = read(
        &http,
        &platform.query,
        "u-3",
        "c-2",
        "?snapshot=wave-a",
        None,
    )
    .await?;
    ensure!(
        status == 200 && body["position_ms"] == json!(1_000 + 3 * 5 + 2),
        "snapshot: {status} {body}"
    );
    // The whole snapshot is wave A: every key at its wave-A position, nothing written after.
    for u in 0..USERS {
        let user = format!("u-{u}");
        let (status, body) = list(&http, &platform.query, &user, "&snapshot=wave-a").await?;
        ensure!(status == 200, "snapshot list of {user}: {status} {body}");
        let got: Vec<(String, i64)> = body["items"]
            .as_array()
            .context("items")?
            .iter()
            .map(|i| {
                (
                    i["content_id"].as_str().unwrap_or_default().to_owned(),
                    i["position_ms"].as_i64().unwrap_or_default(),
                )
            })
            .collect();
        let want: Vec<(String, i64)> = (0..CONTENTS)
            .map(|c| {
                (
                    format!("c-{c}"),
                    1_000 + i64::try_from(u * CONTENTS + c).unwrap(),
                )
            })
            .collect();
        ensure!(
            got == want,
            "snapshot wave-a of {user}: {got:?}, wave A wrote {want:?}"
        );
    }
    let (status, body) = read(
        &http,
        &platform.query,
        "u-live",
        "c-live",
        "?snapshot=wave-a",
        None,
    )
    .await?;
    ensure!(
        status == 404,
        "a key first written after the instant is in the snapshot: {status} {body}"
    );
    let (status, body) = read(&http, &platform.query, "u-3", "c-2", "", None).await?;
    ensure!(
        status == 200 && body["position_ms"] == json!(100_000 + 3 * 5 + 2),
        "live after the snapshot: {status} {body}"
    );

    // A snapshot as of now is the live projection, row by row (every partition ended before
    // the instant: Tansu answers offsets-for-times with offset 0 there, which, trusted,
    // would have built it from no record at all).
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let out = tokio::task::spawn_blocking({
        let url = processor_url.clone();
        move || {
            fleuve(&[
                "rebuild",
                "user_progress",
                "--as-of",
                &now,
                "--name",
                "now",
                "--processor-url",
                &url,
            ])
        }
    })
    .await??;
    ensure!(
        out.status.success(),
        "snapshot as of now failed: {}",
        text(&out)
    );
    let users = (0..USERS)
        .map(|u| format!("u-{u}"))
        .chain(std::iter::once("u-live".to_owned()));
    let mut rows = 0;
    for user in users {
        let (status, live) = list(&http, &platform.query, &user, "").await?;
        let (snap_status, snap) = list(&http, &platform.query, &user, "&snapshot=now").await?;
        ensure!(
            status == 200 && snap_status == 200,
            "{user}: live {status} {live}, snapshot {snap_status} {snap}"
        );
        ensure!(
            live == snap,
            "{user}: the snapshot as of now differs from the live projection:\nlive:     \
             {live}\nsnapshot: {snap}"
        );
        rows += live["items"].as_array().map_or(0, Vec::len);
    }
    ensure!(
        rows == USERS * CONTENTS + 1,
        "{rows} rows compared, the projection has {}",
        USERS * CONTENTS + 1
    );
    let (status, body) = read(&http, &platform.query, "u-3", "c-2", "?snapshot=nope", None).await?;
    ensure!(
        status == 404 && body.to_string().contains("wave-a"),
        "unknown snapshot: {status} {body}"
    );

    // Clean-up: the live version cannot be dropped, the retired one can.
    let out = fleuve(&[
        "rebuild",
        "drop",
        "user_progress",
        "2",
        "--processor-url",
        &processor_url,
    ])?;
    ensure!(
        !out.status.success() && text(&out).contains("in use"),
        "dropping the live version: {}",
        text(&out)
    );
    let out = fleuve(&[
        "rebuild",
        "drop",
        "user_progress",
        "1",
        "--processor-url",
        &processor_url,
    ])?;
    ensure!(out.status.success(), "dropping v1: {}", text(&out));
    let (status, body) = read(&http, &platform.query, "u-3", "c-2", "", None).await?;
    ensure!(
        status == 200 && body["position_ms"] == json!(100_000 + 3 * 5 + 2),
        "after the drop: {status} {body}"
    );

    // Bad input gets a clear error and changes nothing.
    let out = fleuve(&["rebuild", "playlists", "--processor-url", &processor_url])?;
    ensure!(
        !out.status.success() && text(&out).contains("unknown projection"),
        "{}",
        text(&out)
    );
    let out = fleuve(&[
        "rebuild",
        "user_progress",
        "--as-of",
        "yesterday-ish",
        "--processor-url",
        &processor_url,
    ])?;
    ensure!(
        !out.status.success() && text(&out).contains("not a time"),
        "{}",
        text(&out)
    );
    let out = fleuve(&[
        "rebuild",
        "user_progress",
        "--as-of",
        "2999-01-01",
        "--processor-url",
        &processor_url,
    ])?;
    ensure!(
        !out.status.success() && text(&out).contains("past instant"),
        "{}",
        text(&out)
    );
    let out = fleuve(&[
        "rebuild",
        "list",
        "user_progress",
        "--processor-url",
        "http://127.0.0.1:9",
    ])?;
    ensure!(
        !out.status.success() && text(&out).contains("cannot reach"),
        "{}",
        text(&out)
    );

    ensure!(platform.stop()?, "fleuve run did not stop cleanly");
    Ok(())
}
