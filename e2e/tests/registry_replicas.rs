//! Two `fleuve registry` processes on one `_schemas` topic of a real broker answer
//! identically, whichever of them took a registration; a registry started afterwards
//! reloads everything from the topic.
#![expect(
    clippy::unwrap_used,
    reason = "a test stops at the first unexpected error"
)]

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use fleuve_e2e::{Broker, RegistryProcess};
use serde_json::{json, Value};

fn schema(name: &str, extra_field: bool) -> String {
    let mut fields = vec![json!({"name": "id", "type": "string"})];
    if extra_field {
        fields.push(json!({"name": "note", "type": ["null", "string"], "default": null}));
    }
    json!({"type": "record", "name": name, "namespace": "fleuve.test", "fields": fields})
        .to_string()
}

async fn register(http: &reqwest::Client, base: &str, subject: &str, schema: &str) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = http
            .post(format!("{base}/subjects/{subject}/versions"))
            .json(&json!({ "schema": schema }))
            .send()
            .await?;
        if r.status() == 200 {
            return Ok(r.json::<Value>().await?["id"].as_u64().unwrap());
        }
        if Instant::now() > deadline {
            bail!(
                "{base} refused a registration: {} {}",
                r.status(),
                r.text().await?
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Everything a client can read: subjects, their versions, and every id.
async fn dump(http: &reqwest::Client, base: &str) -> Result<Value> {
    let subjects: Vec<String> = http
        .get(format!("{base}/subjects"))
        .send()
        .await?
        .json()
        .await?;
    let mut out = serde_json::Map::new();
    for s in &subjects {
        let versions: Vec<u64> = http
            .get(format!("{base}/subjects/{s}/versions"))
            .send()
            .await?
            .json()
            .await?;
        let mut vs = Vec::new();
        for v in versions {
            let body: Value = http
                .get(format!("{base}/subjects/{s}/versions/{v}"))
                .send()
                .await?
                .json()
                .await?;
            let by_id: Value = http
                .get(format!("{base}/schemas/ids/{}", body["id"]))
                .send()
                .await?
                .json()
                .await?;
            vs.push(json!({"version": body, "by_id": by_id}));
        }
        out.insert(s.clone(), Value::Array(vs));
    }
    Ok(Value::Object(out))
}

/// Waits until `base` serves `expected` (a replica folds the log asynchronously).
async fn converge(http: &reqwest::Client, base: &str, expected: &Value) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = dump(http, base).await?;
        if &got == expected {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{base} serves\n{got}\ninstead of\n{expected}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_processes_agree_and_reload() -> Result<()> {
    let broker = Broker::start()?;
    let logs = tempfile::tempdir()?;
    let a = RegistryProcess::start(&broker, logs.path())?;
    let b = RegistryProcess::start(&broker, logs.path())?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;

    let id_a = register(&http, &a.url, "t-fleuve.test.A", &schema("A", false)).await?;
    let id_b = register(&http, &b.url, "t-fleuve.test.B", &schema("B", false)).await?;
    assert_ne!(id_a, id_b);
    // The same schema through the other replica: same id, no new version.
    assert_eq!(
        register(&http, &b.url, "t-fleuve.test.A", &schema("A", false)).await?,
        id_a
    );
    let v2 = register(&http, &a.url, "t-fleuve.test.B", &schema("B", true)).await?;
    assert!(v2 > id_b);

    let expected = dump(&http, &a.url).await?;
    assert_eq!(expected["t-fleuve.test.B"].as_array().unwrap().len(), 2);
    converge(&http, &b.url, &expected).await?;

    drop(a);
    drop(b);
    let c = RegistryProcess::start(&broker, logs.path())?;
    converge(&http, &c.url, &expected).await?;
    Ok(())
}
