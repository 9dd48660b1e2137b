//! Publishes a few playback-progress events with the Rust library and prints where they
//! landed. With the platform running (`make run`):
//!
//! ```sh
//! cargo run -p fleuve-producers --example publish
//! ```
//!
//! `FLEUVE_BROKERS` and `FLEUVE_REGISTRY_URL` override the local defaults.

#![expect(clippy::print_stdout, reason = "an example prints what it did")]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fleuve_kafka::KafkaConfig;
use fleuve_producers::{Publisher, PublisherConfig};
use fleuve_schemas::PlaybackProgressed;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let brokers = std::env::var("FLEUVE_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let registry =
        std::env::var("FLEUVE_REGISTRY_URL").unwrap_or_else(|_| "http://127.0.0.1:8081".into());
    let kafka = KafkaConfig::new(brokers)
        .with_client_id("example-player-backend")
        // Anything librdkafka accepts passes through, e.g. for a secured cluster:
        // .set("security.protocol", "SASL_SSL").set("sasl.mechanism", "SCRAM-SHA-512")
        .with_delivery_timeout(Duration::from_secs(10));
    let publisher = Publisher::new(PublisherConfig::new(
        kafka,
        registry,
        "example-player-backend",
    ))?;

    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    let events: Vec<PlaybackProgressed> = (0..3)
        .map(|i| PlaybackProgressed {
            event_id: uuid::Uuid::new_v4().to_string(),
            occurred_at: now + i,
            producer: "example-player-backend".into(),
            correlation_id: Some("example-session-1".into()),
            user_id: "u-example".into(),
            content_id: "c-example".into(),
            position_ms: 60_000 * (i + 1),
            duration_ms: 1_800_000,
            device: "web".into(),
        })
        .collect();

    // One event, then a batch: every event is checked before anything is produced.
    let first = publisher.publish(&events[0]).await?;
    println!(
        "{} → {:?} (token {})",
        first.event_id,
        first.position,
        first.position.token()
    );
    for result in publisher.publish_batch(&events[1..]).await? {
        let published = result?;
        println!("{} → {:?}", published.event_id, published.position);
    }
    publisher.flush(Duration::from_secs(5)).await;
    Ok(())
}
