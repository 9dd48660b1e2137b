use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::{ClientConfig, ClientContext};
use serde::{Deserialize, Serialize};

/// Typed Kafka client settings shared by producers, consumers and admin clients.
///
/// Anything not modelled here (TLS, SASL, tuning) goes through [`KafkaConfig::set`], which
/// is passed verbatim to librdkafka.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list of brokers.
    pub bootstrap_servers: String,
    /// Client id reported to the brokers (shows up in broker logs and quotas).
    pub client_id: String,
    /// How long a produce may wait for the broker's acknowledgement before it fails.
    #[serde(with = "millis")]
    pub delivery_timeout: Duration,
    /// Raw librdkafka properties, applied last.
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

impl KafkaConfig {
    /// Settings for the given bootstrap servers with Fleuve's defaults.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            client_id: "fleuve".to_owned(),
            delivery_timeout: Duration::from_secs(10),
            extra: BTreeMap::new(),
        }
    }

    /// Sets the client id.
    pub fn with_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = client_id.into();
        self
    }

    /// Sets the delivery timeout of produces.
    pub fn with_delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery_timeout = timeout;
        self
    }

    /// Adds a raw librdkafka property (for example `security.protocol=SASL_SSL`).
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }

    /// The base librdkafka configuration: servers, client id and the passthrough properties.
    pub fn client_config(&self) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", &self.client_id);
        for (k, v) in &self.extra {
            cfg.set(k, v);
        }
        cfg
    }

    /// A consumer of assigned partitions (`assign`, never `subscribe`): it never joins
    /// `group` (librdkafka wants a `group.id` for `assign` all the same), commits and stores
    /// no offset, and reports the end of each partition. `settings` are its own, then the
    /// raw passthrough settings apply last. Its librdkafka logs and errors go to `debug`:
    /// its caller reports what fails.
    pub fn assigned_reader(
        &self,
        group: &str,
        settings: &[(&str, &str)],
    ) -> Result<BaseConsumer<QuietContext>, rdkafka::error::KafkaError> {
        let mut cfg = self.client_config();
        cfg.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true");
        for (k, v) in settings {
            cfg.set(*k, *v);
        }
        for (k, v) in &self.extra {
            cfg.set(k, v);
        }
        cfg.create_with_context(QuietContext)
    }

    /// Configuration of an idempotent producer: `acks=all`, `enable.idempotence=true`, and
    /// the delivery timeout as `message.timeout.ms`.
    pub fn producer_config(&self) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", &self.client_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", "lz4")
            .set("linger.ms", "5")
            .set(
                "message.timeout.ms",
                self.delivery_timeout.as_millis().to_string(),
            );
        for (k, v) in &self.extra {
            cfg.set(k, v);
        }
        cfg
    }

    /// Configuration of an at-least-once group consumer: no auto offset store (offsets are
    /// stored by the caller after its work is done), periodic auto commit of stored offsets,
    /// reading from the earliest offset when the group has none.
    pub fn consumer_config(&self, group_id: &str) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", &self.client_id)
            .set("group.id", group_id)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            // Brokers that do not answer a fetch as soon as data arrives (Tansu) hold it for
            // this long: keep it short so projections stay fresh (p99 freshness at 5,000
            // events/s on Tansu: 113 ms with 50, 62 ms with 25; `make bench`). Kafka answers
            // as soon as data arrives; an idle consumer then sends 40 fetches/s per broker.
            .set("fetch.wait.max.ms", "25")
            // librdkafka (2.4+) waits this long before fetching again for a partition whose
            // local queue was full: 1 s by default, which leaves a consumer slower than its
            // broker idle most of each second (a replay read 160k events/s with the default,
            // 460k with 10 ms, on the MockCluster; `make bench`).
            .set("fetch.queue.backoff.ms", "10")
            .set("isolation.level", "read_committed");
        for (k, v) in &self.extra {
            cfg.set(k, v);
        }
        cfg
    }
}

/// The client context of [`KafkaConfig::assigned_reader`]: librdkafka's logs and errors at
/// `debug` level.
#[derive(Debug, Clone, Copy, Default)]
pub struct QuietContext;

impl ClientContext for QuietContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        tracing::debug!(?level, fac, message, "librdkafka");
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::debug!(error = %error, reason, "Kafka client error");
    }
}

impl ConsumerContext for QuietContext {}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passthrough_overrides_defaults_last() {
        let cfg = KafkaConfig::new("b:9092")
            .set("acks", "1")
            .set("security.protocol", "SASL_SSL")
            .producer_config();
        assert_eq!(cfg.get("acks"), Some("1"));
        assert_eq!(cfg.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(cfg.get("enable.idempotence"), Some("true"));
    }

    #[test]
    fn consumer_never_stores_offsets_by_itself() {
        let cfg = KafkaConfig::new("b:9092").consumer_config("g");
        assert_eq!(cfg.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(cfg.get("group.id"), Some("g"));
    }
}
