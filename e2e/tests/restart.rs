//! `fleuve run` killed with SIGKILL three times while a producer streams 30,000 mixed events
//! straight into Kafka (Tansu), and restarted each time at once on the same ports and data,
//! as Kubernetes or an operator would. Each restart must resume processing within
//! [`RESUME_WITHIN`] (the times are printed): the embedded store's processors own their
//! partitions, so there is no consumer group for the broker to get wrong. Once caught up,
//! every stock and progress row read through the query API must equal what the events
//! imply.
#![expect(
    clippy::unwrap_used,
    reason = "a test stops at the first unexpected error"
)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use fleuve_e2e::{scrape, token, Broker, Platform, Ports};
use fleuve_kafka::KafkaConfig;
use fleuve_producers::{Publisher, PublisherConfig};
use fleuve_schemas::{PlaybackProgressed, StockAdjusted, StockAdjustmentReason, StockReserved};

const EVENTS: usize = 30_000;
const BATCH: usize = 500;
const USERS: usize = 150;
const CONTENTS: usize = 20;
const SKUS: usize = 100;
/// Kill points: events published when each SIGKILL lands.
const KILL_AFTER: [usize; 3] = [6_000, 15_000, 24_000];
const RESUME_WITHIN: Duration = Duration::from_secs(60);
const BASE_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

/// What the events imply.
#[derive(Debug, Default)]
struct Model {
    /// (user, content) → last position.
    progress: BTreeMap<(String, String), i64>,
    /// sku → (available, reserved).
    stock: BTreeMap<String, (i64, i64)>,
}

/// A well-spread key index for event `seq` (Fibonacci hashing), below `n`.
fn spread(seq: usize, salt: u64, n: usize) -> usize {
    let h = (seq as u64 ^ salt).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
    usize::try_from(h).unwrap() % n
}

fn event_id(seq: usize) -> String {
    format!("00000000-0000-4000-9000-{seq:012x}")
}

/// Batch `b` of the stream: playback progress and stock movements, mixed, each valid for
/// the rules (stock never negative), applied to the model as it is generated.
fn batch(
    b: usize,
    model: &mut Model,
) -> (
    Vec<PlaybackProgressed>,
    Vec<StockAdjusted>,
    Vec<StockReserved>,
) {
    let (mut progress, mut adjusted, mut reserved) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..BATCH {
        let seq = b * BATCH + i;
        let at = BASE_MS + i64::try_from(seq).unwrap();
        match seq % 4 {
            0 | 1 => {
                let user = format!("u-{}", spread(seq, 1, USERS));
                let content = format!("c-{}", spread(seq, 2, CONTENTS));
                let position = i64::try_from(seq).unwrap() * 10;
                model
                    .progress
                    .insert((user.clone(), content.clone()), position);
                progress.push(PlaybackProgressed {
                    event_id: event_id(seq),
                    occurred_at: at,
                    producer: "restart-test".into(),
                    correlation_id: None,
                    user_id: user,
                    content_id: content,
                    position_ms: position,
                    duration_ms: 10_000_000,
                    device: "tv".into(),
                });
            }
            2 => {
                let sku = format!("sku-{}", spread(seq, 3, SKUS));
                let (available, _) = model.stock.entry(sku.clone()).or_default();
                // Mostly receipts; a damage write-off when there is stock to lose.
                let delta = if *available >= 3 && seq.is_multiple_of(5) {
                    -2
                } else {
                    5
                };
                *available += i64::from(delta);
                adjusted.push(StockAdjusted {
                    event_id: event_id(seq),
                    occurred_at: at,
                    producer: "restart-test".into(),
                    correlation_id: None,
                    sku,
                    delta,
                    reason: if delta > 0 {
                        StockAdjustmentReason::Received
                    } else {
                        StockAdjustmentReason::Damaged
                    },
                });
            }
            _ => {
                let sku = format!("sku-{}", spread(seq, 3, SKUS));
                // Only a sku with stock to reserve (a sku never adjusted has no row).
                let Some(entry) = model.stock.get_mut(&sku).filter(|e| e.0 >= 1) else {
                    continue;
                };
                entry.0 -= 1;
                entry.1 += 1;
                reserved.push(StockReserved {
                    event_id: event_id(seq),
                    occurred_at: at,
                    producer: "restart-test".into(),
                    correlation_id: None,
                    sku,
                    order_id: format!("o-{seq}"),
                    quantity: 1,
                });
            }
        }
    }
    (progress, adjusted, reserved)
}

async fn send<E: fleuve_schemas::Event>(publisher: &Publisher, events: &[E]) -> Result<()> {
    for result in publisher.publish_batch(events).await? {
        result.context("publishing")?;
    }
    Ok(())
}

/// Waits until the restarted platform's processors consume again; returns how long it took.
async fn resumed(
    http: &reqwest::Client,
    platform: &Platform,
    restarted: Instant,
) -> Result<Duration> {
    loop {
        if let Ok(m) = scrape(http, &format!("{}/metrics", platform.processor)).await {
            if m.sum("fleuve_processor_events_consumed_total", &[]) > 0.0 {
                return Ok(restarted.elapsed());
            }
        }
        if restarted.elapsed() > RESUME_WITHIN {
            bail!(
                "the restarted platform consumed nothing within {RESUME_WITHIN:?}; its log:\n{}",
                platform.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleuve_run_killed_three_times_mid_stream_resumes_at_once_and_counts_exactly() -> Result<()>
{
    let broker = Broker::start()?;
    let data = tempfile::Builder::new()
        .prefix("fleuve-restart-")
        .tempdir()?;
    let ports = Ports::free()?;
    let mut platform = Platform::start(&broker, data.path(), ports)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    fleuve_e2e::wait_ready(&http, &platform.processor, Duration::from_secs(60)).await?;

    // The generator runs ahead: the model is complete once the stream is generated.
    let mut model = Model::default();
    let batches: Vec<_> = (0..EVENTS / BATCH).map(|b| batch(b, &mut model)).collect();
    let publisher = Publisher::new(PublisherConfig::new(
        KafkaConfig::new(broker.bootstrap())
            .with_client_id("restart-test")
            .with_delivery_timeout(Duration::from_secs(60)),
        &platform.registry,
        "restart-test",
    ))?;
    // The schemas are registered (and their ids cached by the publisher) before the first
    // kill takes the registry of `fleuve run` down with it.
    let published = Arc::new(AtomicUsize::new(0));
    let producer = {
        let published = Arc::clone(&published);
        tokio::spawn(async move {
            for (progress, adjusted, reserved) in batches {
                send(&publisher, &progress).await?;
                send(&publisher, &adjusted).await?;
                send(&publisher, &reserved).await?;
                published.fetch_add(BATCH, Ordering::SeqCst);
            }
            publisher.flush(Duration::from_secs(30)).await;
            Ok::<_, anyhow::Error>(())
        })
    };

    let mut resumes = Vec::new();
    for (kill, after) in KILL_AFTER.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(180);
        while published.load(Ordering::SeqCst) < *after {
            ensure!(
                !producer.is_finished(),
                "the producer stopped early: {:?}",
                producer.await
            );
            ensure!(
                Instant::now() < deadline,
                "the producer did not reach {after} events"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let at_kill = published.load(Ordering::SeqCst);
        platform.kill()?;
        let restarted = Instant::now();
        platform = Platform::start(&broker, data.path(), ports)?;
        let took = resumed(&http, &platform, restarted).await?;
        eprintln!(
            "kill {} with {at_kill} events published: processing resumed {:.1} s after the restart",
            kill + 1,
            took.as_secs_f64()
        );
        resumes.push(took);
    }
    producer.await??;
    eprintln!(
        "all {EVENTS} events published; restarts resumed after {:?}",
        resumes
            .iter()
            .map(|d| format!("{:.1} s", d.as_secs_f64()))
            .collect::<Vec<_>>()
    );

    // Caught up: every row the query API serves equals the model.
    let admin = token("restart-test", &["admin"]);
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut differences;
    loop {
        differences = Vec::new();
        for (sku, (available, reserved)) in &model.stock {
            let got: serde_json::Value = http
                .get(format!("{}/v1/inventory/{sku}", platform.query))
                .bearer_auth(&admin)
                .send()
                .await?
                .json()
                .await?;
            if got["available"] != *available || got["reserved"] != *reserved {
                differences.push(format!("{sku}: expected {available}/{reserved}, got {got}"));
            }
        }
        for ((user, content), position) in &model.progress {
            let got: serde_json::Value = http
                .get(format!(
                    "{}/v1/users/{user}/progress/{content}",
                    platform.query
                ))
                .bearer_auth(token(user, &["user"]))
                .send()
                .await?
                .json()
                .await?;
            if got["position_ms"] != *position {
                differences.push(format!("{user}/{content}: expected {position}, got {got}"));
            }
            if differences.len() > 20 {
                break;
            }
        }
        if differences.is_empty() {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "rows still differ from the events 180 s after the stream ended:\n{}\nlog:\n{}",
            differences.join("\n"),
            platform.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "{} stock rows and {} progress rows equal what the events imply",
        model.stock.len(),
        model.progress.len()
    );
    ensure!(platform.stop()?, "fleuve run did not stop cleanly");
    Ok(())
}
