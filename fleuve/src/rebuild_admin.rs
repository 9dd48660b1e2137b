//! `fleuve rebuild`: the client of the processors' admin endpoints
//! ([`fleuve_processors::admin`]) at `--processor-url` (default `http://127.0.0.1:8083`).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use fleuve_processors::admin::{VersionView, VersionsView};
use fleuve_projections::versions::{VersionInfo, VersionState};
use serde::Deserialize;

/// A client of one process's admin endpoints.
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    pub fn new(base: &str) -> Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    async fn send<T: for<'de> Deserialize<'de>>(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<T> {
        let resp = req.send().await.with_context(|| {
            format!(
                "cannot reach the processor's ops endpoint at {} ({what}): is `fleuve run` (or \
                 the projection's `fleuve process`) running? Set --processor-url otherwise",
                self.base
            )
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or(text);
            bail!("{what}: {status}: {message}");
        }
        serde_json::from_str(&text).with_context(|| format!("{what}: unexpected answer: {text}"))
    }

    pub async fn start(
        &self,
        projection: &str,
        as_of_ms: Option<i64>,
        name: Option<&str>,
    ) -> Result<VersionView> {
        let body =
            serde_json::json!({ "projection": projection, "as_of_ms": as_of_ms, "name": name });
        self.send(
            self.http
                .post(format!("{}/admin/builds", self.base))
                .json(&body),
            "starting the build",
        )
        .await
    }

    pub async fn list(&self, projection: &str) -> Result<VersionsView> {
        self.send(
            self.http.get(format!(
                "{}/admin/projections/{projection}/versions",
                self.base
            )),
            "listing the versions",
        )
        .await
    }

    pub async fn get(&self, projection: &str, version: u32) -> Result<VersionView> {
        self.send(
            self.http.get(format!(
                "{}/admin/projections/{projection}/versions/{version}",
                self.base
            )),
            "reading the version",
        )
        .await
    }

    pub async fn drop_version(&self, projection: &str, version: u32) -> Result<VersionView> {
        self.send(
            self.http.delete(format!(
                "{}/admin/projections/{projection}/versions/{version}",
                self.base
            )),
            "dropping the version",
        )
        .await
    }
}

/// Follows a build until it is live (rebuild) or ready (snapshot), with a progress bar on a
/// terminal and a line every few seconds otherwise.
pub async fn follow(client: &Client, projection: &str, version: u32) -> Result<VersionInfo> {
    use std::io::IsTerminal;
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(200));
        Some(bar)
    } else {
        None
    };
    let started = std::time::Instant::now();
    let mut last_line = std::time::Instant::now();
    loop {
        let v = client.get(projection, version).await?;
        let line = match &v.build {
            Some(b) => format!(
                "{projection} v{version}: {} round {}, {} records read, {} to go",
                b.phase, b.round, b.records, b.remaining
            ),
            None => format!("{projection} v{version}: {:?}", v.info.state).to_lowercase(),
        };
        match &bar {
            Some(bar) => bar.set_message(line),
            None if last_line.elapsed() >= Duration::from_secs(5) => {
                eprintln!("{line}");
                last_line = std::time::Instant::now();
            }
            None => {}
        }
        match v.info.state {
            VersionState::Live | VersionState::Ready => {
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
                eprintln!(
                    "{projection} v{version} is {} after {:.1} s ({} records read)",
                    if v.info.state == VersionState::Live {
                        "live: the query API serves it"
                    } else {
                        "ready"
                    },
                    started.elapsed().as_secs_f64(),
                    v.info.records
                );
                return Ok(v.info);
            }
            VersionState::Failed => {
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
                bail!(
                    "the build of {projection} v{version} failed: {}",
                    v.info.error.unwrap_or_default()
                );
            }
            VersionState::Dropped | VersionState::Retired => {
                bail!(
                    "{projection} v{version} was {:?} before it finished",
                    v.info.state
                )
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
