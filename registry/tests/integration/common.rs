//! Shared helpers: a mock cluster, a started registry, its router served on a free port.
//! Test helpers panic on failure, like the tests that call them.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test stops at the first unexpected error"
)]

use std::future::Future;
use std::time::Duration;

use fleuve_kafka::KafkaConfig;
use fleuve_registry::{Registry, RegistryConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::Value;

pub type Cluster = MockCluster<'static, DefaultProducerContext>;

/// A raw record: optional key, optional value.
pub type RawRecord<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

pub const CT: &str = "application/vnd.schemaregistry.v1+json";

/// A one-broker mock cluster with the registry's topic already created: the mock broker
/// does not answer CreateTopics, so `ensure_topics` must find the topic there.
pub fn cluster() -> Cluster {
    let cluster = bare_cluster();
    cluster
        .create_topic("_schemas", 1, 1)
        .expect("create _schemas");
    cluster
}

/// A mock cluster without any topic.
pub fn bare_cluster() -> Cluster {
    fleuve_service::init_tracing();
    MockCluster::new(1).expect("mock cluster")
}

pub fn kafka(cluster: &Cluster) -> KafkaConfig {
    KafkaConfig::new(cluster.bootstrap_servers())
}

pub async fn start(cluster: &Cluster) -> Registry {
    Registry::start(RegistryConfig::new(kafka(cluster)))
        .await
        .expect("registry starts")
}

/// Serves the registry's router on 127.0.0.1 and returns its base URL.
pub async fn serve(registry: &Registry) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = registry.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

/// `(low, high)` watermarks of the registry's topic, read by an independent client.
pub fn watermarks(cluster: &Cluster) -> (i64, i64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .create()
        .unwrap();
    consumer
        .fetch_watermarks("_schemas", 0, Duration::from_secs(10))
        .unwrap()
}

/// Writes a raw record to the registry's topic, bypassing the registry.
pub async fn write_raw(cluster: &Cluster, key: Option<&[u8]>, value: Option<&[u8]>) -> i64 {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .create()
        .unwrap();
    let mut record = FutureRecord::<[u8], [u8]>::to("_schemas").partition(0);
    if let Some(key) = key {
        record = record.key(key);
    }
    if let Some(value) = value {
        record = record.payload(value);
    }
    producer
        .send(record, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .unwrap()
        .offset
}

/// A thin Confluent REST client.
#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: String) -> Self {
        Self {
            base,
            http: reqwest::Client::new(),
        }
    }

    /// GET; returns status and JSON body (checking the content type).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        decode(response).await
    }

    /// POST a JSON body with the given content type (none when `None`).
    pub async fn post(&self, path: &str, body: &Value, content_type: Option<&str>) -> (u16, Value) {
        self.post_raw(path, body.to_string(), content_type).await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        body: String,
        content_type: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self.http.post(format!("{}{path}", self.base)).body(body);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        decode(request.send().await.unwrap()).await
    }

    /// PUT a JSON body (with the registry's content type).
    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        let request = self
            .http
            .put(format!("{}{path}", self.base))
            .header("content-type", CT)
            .body(body.to_string());
        decode(request.send().await.unwrap()).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        decode(
            self.http
                .delete(format!("{}{path}", self.base))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// POST a registration; returns status and body.
    pub async fn try_register(&self, subject: &str, schema: &str) -> (u16, Value) {
        self.post(
            &format!("/subjects/{}/versions", encode(subject)),
            &serde_json::json!({ "schema": schema }),
            Some(CT),
        )
        .await
    }

    pub async fn register(&self, subject: &str, schema: &str) -> u64 {
        let (status, body) = self
            .post(
                &format!("/subjects/{}/versions", encode(subject)),
                &serde_json::json!({ "schema": schema }),
                Some(CT),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["id"].as_u64().expect("id")
    }

    /// Everything the registry knows, through its API, for comparing replicas: live
    /// subjects and ids (see [`Api::dump_all`] for config and soft-deleted versions).
    pub async fn dump(&self) -> Value {
        let (_, subjects) = self.get("/subjects").await;
        let mut out = serde_json::Map::new();
        let mut ids = Vec::new();
        for subject in subjects.as_array().unwrap() {
            let subject = subject.as_str().unwrap();
            let (_, versions) = self
                .get(&format!("/subjects/{}/versions", encode(subject)))
                .await;
            let mut bodies = Vec::new();
            for v in versions.as_array().unwrap() {
                let (status, body) = self
                    .get(&format!("/subjects/{}/versions/{v}", encode(subject)))
                    .await;
                assert_eq!(status, 200, "{body}");
                ids.push(body["id"].as_u64().unwrap());
                bodies.push(body);
            }
            out.insert(subject.to_owned(), Value::Array(bodies));
        }
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            let (_, schema) = self.get(&format!("/schemas/ids/{id}")).await;
            let (_, usages) = self.get(&format!("/schemas/ids/{id}/versions")).await;
            out.insert(format!("id {id}"), serde_json::json!([schema, usages]));
        }
        Value::Object(out)
    }
}

impl Api {
    /// [`Api::dump`], plus the global and subject levels and the soft-deleted versions.
    pub async fn dump_all(&self) -> Value {
        let mut out = serde_json::Map::new();
        out.insert("live".to_owned(), self.dump().await);
        out.insert("global".to_owned(), self.get("/config").await.1);
        let (_, subjects) = self.get("/subjects?deleted=true").await;
        for subject in subjects.as_array().unwrap() {
            let subject = encode(subject.as_str().unwrap());
            let versions = self
                .get(&format!("/subjects/{subject}/versions?deleted=true"))
                .await;
            let config = self.get(&format!("/config/{subject}")).await;
            out.insert(subject, serde_json::json!([versions, config]));
        }
        Value::Object(out)
    }
}

/// Asserts a Confluent error: status, `error_code`, a part of the message, nothing else.
pub fn assert_error(got: (u16, Value), status: u16, code: u64, message_part: &str) {
    let (got_status, body) = got;
    assert_eq!(got_status, status, "{body}");
    assert_eq!(body["error_code"], code, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(message_part),
        "message {message:?} should contain {message_part:?}"
    );
    assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{body}");
}

pub fn encode(subject: &str) -> String {
    subject.replace('%', "%25").replace('/', "%2F")
}

async fn decode(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let ct = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    if status != 405 {
        assert_eq!(ct.as_deref(), Some(CT), "content type of {text}");
    }
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// Polls `check` until it returns `Some`, at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A record schema `fleuve.test.<name>` with the given fields (JSON array items).
pub fn record(name: &str, fields: &str) -> String {
    format!(r#"{{"type":"record","name":"{name}","namespace":"fleuve.test","fields":[{fields}]}}"#)
}
