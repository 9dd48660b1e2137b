//! Test support shared by the crates' tests (a dev-dependency only).
//!
//! [`Kafka::start`] gives an in-process librdkafka `MockCluster` holding the platform's
//! topics (the mock broker does not answer CreateTopics, so they are created through the
//! mock's own API) and our schema registry running on it, served on a free local port.
//! [`Kafka::read_all`] reads a topic back with an independent consumer.
//!
//! Helpers panic on failure, like the tests that call them.
#![expect(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a test stops at the first unexpected error"
)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fleuve_kafka::{topics, KafkaConfig};
use fleuve_registry::{Registry, RegistryConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Partitions of event topics in tests.
pub const PARTITIONS: i32 = 3;

/// A mock Kafka cluster with the platform's topics and a running registry.
pub struct Kafka {
    pub cluster: MockCluster<'static, DefaultProducerContext>,
    pub registry: Registry,
    /// Base URL of the registry's HTTP API.
    pub registry_url: String,
}

impl std::fmt::Debug for Kafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kafka")
            .field("bootstrap", &self.cluster.bootstrap_servers())
            .field("registry_url", &self.registry_url)
            .finish()
    }
}

/// One record read back from a topic.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: HashMap<String, String>,
}

impl Kafka {
    pub async fn start() -> Self {
        fleuve_service::init_tracing();
        let cluster = MockCluster::new(1).expect("mock cluster");
        for t in topics::platform_topics(PARTITIONS) {
            cluster
                .create_topic(&t.name, t.partitions, 1)
                .expect("create topic");
        }
        let registry = Registry::start(RegistryConfig::new(KafkaConfig::new(
            cluster.bootstrap_servers(),
        )))
        .await
        .expect("registry starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = registry.router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            cluster,
            registry,
            registry_url: format!("http://{addr}"),
        }
    }

    /// Client settings for this cluster.
    pub fn config(&self) -> KafkaConfig {
        KafkaConfig::new(self.cluster.bootstrap_servers())
    }

    /// Creates another topic.
    pub fn create_topic(&self, name: &str, partitions: i32) {
        self.cluster
            .create_topic(name, partitions, 1)
            .expect("create topic");
    }

    /// Every record of `topic` now, read from the beginning by an independent consumer.
    pub fn read_all(&self, topic: &str) -> Vec<Record> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.cluster.bootstrap_servers())
            .set("group.id", "testkit-reader")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        let mut remaining = 0;
        for p in metadata.topics()[0].partitions() {
            let (low, high) = consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .unwrap();
            remaining += high - low;
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let mut records = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while remaining > 0 {
            assert!(Instant::now() < deadline, "could not read {topic} back");
            let Some(m) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let m = m.unwrap();
            remaining -= 1;
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            let value = h.value.map(String::from_utf8_lossy).unwrap_or_default();
                            (h.key.to_owned(), value.into_owned())
                        })
                        .collect()
                })
                .unwrap_or_default();
            records.push(Record {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                payload: m.payload().map(<[u8]>::to_vec),
                headers,
            });
        }
        records
    }
}

/// The repository's virtualenv Python (`FLEUVE_PYTHON`, else `.venv/bin/python`, which
/// `make venv` creates); panics with what to run when there is none.
pub fn python() -> String {
    let python = std::env::var("FLEUVE_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python").into());
    assert!(
        std::path::Path::new(&python).exists(),
        "no Python with openapi-spec-validator at `{python}`: run `make venv` (or point \
         FLEUVE_PYTHON at the repo's virtualenv python), or run the tests with `make test`"
    );
    python
}

/// Runs `producers/tests/validate_openapi.py` on `input` (`{"document": …, "cases": […]}`):
/// it validates the OpenAPI document, then each case against its schema. Panics with the
/// script's output when it fails.
pub fn validate_openapi(input: &serde_json::Value) {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let python = python();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../producers/tests/validate_openapi.py"
    );
    let mut child = Command::new(&python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not run {python}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "validate_openapi.py failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
