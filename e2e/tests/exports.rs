//! Partner exports end to end, on Tansu: `fleuve run` with a partners file; catalogue
//! events through ingest (rights for several partners and territories, an unpublish, a
//! delete, a window that opens and one that closes during the test, rights withdrawn by a
//! re-upsert); then a partner written with Python `confluent-kafka` (`e2e/python/partner.py`,
//! `AvroDeserializer` against our registry) reads its topic `export.<partner>.catalog` from the
//! beginning and must end with exactly the set the catalog projection (the query API) says
//! it may publish. A partner added on restart gets the full current set.
#![expect(
    clippy::unwrap_used,
    reason = "a test stops at the first unexpected error"
)]

use fleuve_schemas::clock::now_ms;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use fleuve_e2e::{Broker, Platform, Ports};
use serde_json::{json, Value};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn python() -> Result<PathBuf> {
    let p = std::env::var("FLEUVE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".venv/bin/python"));
    if p.exists() {
        Ok(p)
    } else {
        bail!(
            "{} is missing: run `make venv` (make test does) to install the Python client",
            p.display()
        )
    }
}

/// The configured partners: id → territories.
type Config = Vec<(&'static str, &'static [&'static str])>;

fn write_partners(path: &Path, partners: &Config) -> Result<()> {
    let mut text = String::new();
    for (id, territories) in partners {
        text.push_str(&format!(
            "[[partner]]\nid = {id:?}\nterritories = {:?}\n\n",
            territories
        ));
    }
    std::fs::write(path, text)?;
    Ok(())
}

/// content id → territories the partner may publish it in.
type Set = BTreeMap<String, Vec<String>>;

async fn post(
    http: &reqwest::Client,
    platform: &Platform,
    event_type: &str,
    body: Value,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = http
            .post(format!("{}/v1/events/{event_type}", platform.ingest))
            .bearer_auth(fleuve_e2e::token("cms", &["events:write"]))
            .json(&body)
            .send()
            .await?;
        if r.status() == 202 {
            return Ok(());
        }
        let status = r.status();
        let text = r.text().await?;
        if status.is_client_error() || Instant::now() > deadline {
            bail!("ingest refused {event_type} {body}: {status} {text}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn upsert(id: &str, from: i64, until: Option<i64>, rights: Value) -> Value {
    json!({
        "content_id": id,
        "kind": "CLIP",
        "title": format!("title of {id}"),
        "tags": [],
        "duration_ms": 60_000,
        "available_from": from,
        "available_until": until,
        "rights": rights,
    })
}

/// What the catalog projection says `partner` may publish now, read from the query API as
/// an admin: every content of `ids` publishable now with a right for the partner in one of
/// its configured territories.
async fn expected(
    http: &reqwest::Client,
    platform: &Platform,
    ids: &[&str],
    partner: &str,
    territories: &[&str],
) -> Result<Set> {
    let r: Value = http
        .post(format!("{}/v1/catalog/contents:batchGet", platform.query))
        .bearer_auth(fleuve_e2e::token("ops", &["admin"]))
        .json(&json!({ "ids": ids }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut set = Set::new();
    for item in r["items"].as_array().context("items")? {
        let mut allowed: Vec<String> = item["rights"]
            .as_array()
            .context("rights (admin view)")?
            .iter()
            .filter(|r| r["partner"] == partner)
            .flat_map(|r| r["territories"].as_array().cloned().unwrap_or_default())
            .filter_map(|t| t.as_str().map(str::to_owned))
            .filter(|t| territories.contains(&t.as_str()))
            .collect();
        allowed.sort();
        allowed.dedup();
        if !allowed.is_empty() {
            set.insert(item["content_id"].as_str().unwrap().to_owned(), allowed);
        }
    }
    Ok(set)
}

/// The Python partner's output for `partner`.
fn partner_reads(broker: &Broker, platform: &Platform, partner: &str) -> Result<Value> {
    let out = Command::new(python()?)
        .arg(repo_root().join("e2e/python/partner.py"))
        .args(["--bootstrap", &broker.bootstrap()])
        .args(["--registry", &platform.registry])
        .args(["--partner", partner])
        .output()
        .context("running the Python partner")?;
    if !out.status.success() {
        bail!(
            "python partner {partner} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn as_set(read: &Value) -> Set {
    read["items"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let t = v["territories"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_owned())
                .collect();
            (k.clone(), t)
        })
        .collect()
}

/// Runs the Python partner until what it reads equals what the catalog projection allows
/// (the exports processor and its relay run asynchronously), up to 30 s; its last reading.
async fn converge(
    http: &reqwest::Client,
    broker: &Broker,
    platform: &Platform,
    ids: &[&str],
    partner: &str,
    territories: &[&str],
) -> Result<(Value, Set)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let want = expected(http, platform, ids, partner, territories).await?;
        let read = partner_reads(broker, platform, partner);
        if let Ok(read) = &read {
            if as_set(read) == want {
                return Ok((read.clone(), want));
            }
        }
        if Instant::now() > deadline {
            bail!(
                "partner {partner} reads {read:?}\nbut the catalog allows {want:?}\nlog:\n{}",
                platform.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Whether the partner's log shows `id` exported, then a tombstone, last.
fn left_after_being_exported(read: &Value, id: &str) -> bool {
    let entries: Vec<bool> = read["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e[0] == id)
        .map(|e| e[1].as_bool().unwrap())
        .collect();
    entries.first() == Some(&true) && entries.last() == Some(&false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partners_read_exactly_what_they_may_publish() -> Result<()> {
    let started = Instant::now();
    python()?;
    let broker = Broker::start()?;
    let data = tempfile::tempdir()?;
    let partners_file = data.path().join("exports.toml");
    let mut config: Config = vec![("isp-a", &["FR", "BE"]), ("isp-b", &["DE", "AT"])];
    write_partners(&partners_file, &config)?;
    let ports = Ports::free()?;
    let env = [("FLEUVE_EXPORTS_PARTNERS", partners_file.to_str().unwrap())];
    let platform = Platform::start_with_env(&broker, data.path(), ports, &env)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;

    let t0 = now_ms();
    let hour = 3_600_000;
    let closes_at = t0 + 8_000;
    let opens_at = t0 + 4_000;
    let r = |p: &str, t: &[&str]| json!({"partner": p, "territories": t});
    let contents = [
        ("a1", t0 - hour, None, json!([r("isp-a", &["FR"])])),
        (
            "a2",
            t0 - hour,
            None,
            json!([
                r("isp-a", &["BE", "IT"]),
                r("isp-b", &["DE"]),
                r("isp-c", &["FR"])
            ]),
        ),
        // A right outside isp-a's territories; isp-c's is in its own.
        (
            "a3",
            t0 - hour,
            None,
            json!([r("isp-a", &["IT"]), r("isp-c", &["FR"])]),
        ),
        (
            "u1",
            t0 - hour,
            None,
            json!([r("isp-a", &["FR"]), r("isp-c", &["FR"])]),
        ),
        ("d1", t0 - hour, None, json!([r("isp-b", &["DE"])])),
        (
            "w1",
            t0 - hour,
            Some(closes_at),
            json!([
                r("isp-a", &["FR"]),
                r("isp-b", &["AT"]),
                r("isp-c", &["FR"])
            ]),
        ),
        (
            "r1",
            t0 - hour,
            None,
            json!([r("isp-a", &["FR"]), r("isp-b", &["DE"])]),
        ),
        (
            "f1",
            opens_at,
            None,
            json!([r("isp-a", &["BE"]), r("isp-c", &["FR"])]),
        ),
    ];
    let ids: Vec<&str> = contents.iter().map(|c| c.0).collect();
    for (id, from, until, rights) in &contents {
        post(
            &http,
            &platform,
            "ContentUpserted",
            upsert(id, *from, *until, rights.clone()),
        )
        .await?;
    }
    post(
        &http,
        &platform,
        "ContentUnpublished",
        json!({"content_id": "u1", "reason": "editorial"}),
    )
    .await?;
    post(
        &http,
        &platform,
        "ContentDeleted",
        json!({"content_id": "d1"}),
    )
    .await?;
    // Rights withdrawn from isp-a by a re-upsert.
    post(
        &http,
        &platform,
        "ContentUpserted",
        upsert("r1", t0 - hour, None, json!([r("isp-b", &["DE"])])),
    )
    .await?;

    // Before the window closes, w1 is exported (and f1 is not yet).
    let (early, _) = converge(&http, &broker, &platform, &ids, "isp-a", config[0].1).await?;
    let early_now = now_ms();
    if early_now < closes_at {
        assert!(as_set(&early).contains_key("w1"), "{early}");
    }
    // Let the window of w1 close (and f1's open) during the test.
    let wait = closes_at + 1_500 - now_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(u64::try_from(wait)?)).await;
    }
    let (a, a_set) = converge(&http, &broker, &platform, &ids, "isp-a", config[0].1).await?;
    let (b, b_set) = converge(&http, &broker, &platform, &ids, "isp-b", config[1].1).await?;
    let strs = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        a_set,
        Set::from([
            ("a1".into(), strs(&["FR"])),
            ("a2".into(), strs(&["BE"])),
            ("f1".into(), strs(&["BE"])),
        ])
    );
    assert_eq!(
        b_set,
        Set::from([("a2".into(), strs(&["DE"])), ("r1".into(), strs(&["DE"]))])
    );
    eprintln!(
        "isp-a read {} (early: {}ms before the window closed)\nisp-b read {}",
        a["log"],
        closes_at - early_now,
        b["log"]
    );
    if early_now < closes_at {
        assert!(left_after_being_exported(&a, "w1"), "window closed: {a}");
        assert!(left_after_being_exported(&b, "w1"), "window closed: {b}");
    }
    assert!(left_after_being_exported(&a, "u1"), "unpublished: {a}");
    assert!(left_after_being_exported(&a, "r1"), "rights withdrawn: {a}");
    assert!(left_after_being_exported(&b, "d1"), "deleted: {b}");
    let item = &a["items"]["a1"];
    assert_eq!(item["title"], "title of a1");
    assert_eq!(item["kind"], "CLIP");
    assert_eq!(item["duration_ms"], 60_000);
    let registered: Value = http
        .get(format!("{}/subjects", platform.registry))
        .send()
        .await?
        .json()
        .await?;
    for subject in ["export.isp-a.catalog-value", "export.isp-b.catalog-value"] {
        assert!(
            registered.as_array().unwrap().contains(&json!(subject)),
            "{registered}"
        );
    }

    // A partner added on restart gets the full current set, then changes.
    assert!(platform.stop()?, "fleuve run stopped cleanly");
    config.push(("isp-c", &["FR"]));
    write_partners(&partners_file, &config)?;
    let platform = Platform::start_with_env(&broker, data.path(), ports, &env)?;
    let (c, c_set) = converge(&http, &broker, &platform, &ids, "isp-c", config[2].1).await?;
    assert_eq!(
        c_set,
        Set::from([
            ("a2".into(), strs(&["FR"])),
            ("a3".into(), strs(&["FR"])),
            ("f1".into(), strs(&["FR"])),
        ])
    );
    assert_eq!(c["tombstones"], 0, "seeded with the current set only: {c}");
    post(
        &http,
        &platform,
        "ContentDeleted",
        json!({"content_id": "a3"}),
    )
    .await?;
    let (c, c_set) = converge(&http, &broker, &platform, &ids, "isp-c", config[2].1).await?;
    assert!(!c_set.contains_key("a3"));
    assert!(left_after_being_exported(&c, "a3"));
    // The partners already seeded got nothing new from the restart.
    let (a_again, _) = converge(&http, &broker, &platform, &ids, "isp-a", config[0].1).await?;
    assert_eq!(a_again["records"], a["records"], "{a_again}");
    assert!(platform.stop()?);
    eprintln!("exports e2e took {:?}", started.elapsed());
    Ok(())
}
