//! How the query API serves: [`QueryConfig`] (limits, authentication, waits) and the lag
//! bounds of `/readyz` ([`LagConfig`]).

use std::time::Duration;

use fleuve_kafka::KafkaConfig;
use fleuve_service::auth::Authenticator;

/// How the query API serves: limits, authentication.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// Page size when the request has no `limit`.
    pub default_limit: usize,
    /// Largest `limit` accepted.
    pub max_limit: usize,
    /// Bearer-token check (same keys as ingest). `None`: every route is open (a
    /// single-machine set-up; the binary logs a warning).
    pub auth: Option<Authenticator>,
    /// Longest a read waits for its `X-Fleuve-Position` tokens (see [`crate::consistency`]).
    pub position_wait: Duration,
    /// Longest a request may take, read-your-writes wait included; then `503 timeout`.
    pub request_timeout: Duration,
    /// Largest request body accepted (`413 payload_too_large` above).
    pub max_body_bytes: usize,
    /// Most ids one `POST /v1/catalog/contents:batchGet` may ask for (`400 batch_too_large`
    /// above). Raise [`max_body_bytes`](Self::max_body_bytes) with it: an id takes up to
    /// about 400 bytes of JSON (128 bytes of UTF-8, `\uXXXX`-escaped).
    pub max_batch_ids: usize,
    /// `/readyz` also requires every projection's lag to stay under a bound (needs Kafka).
    pub lag: Option<LagConfig>,
}

/// The lag bounds of `/readyz`: every projection the API reads must be at most
/// `max_events` records behind the end of its topics, and must not be *stalled* (lagging
/// with nothing applied for `stall_after`, whatever the lag).
#[derive(Debug, Clone)]
pub struct LagConfig {
    /// The brokers the processors read from.
    pub kafka: KafkaConfig,
    /// Most records a projection may be behind (all partitions summed) while ready; 0 for
    /// no bound.
    pub max_events: i64,
    /// How long a projection may lag without applying a record while ready; `None` for no
    /// stall check.
    pub stall_after: Option<Duration>,
    /// How often the lag is measured.
    pub every: Duration,
}

impl LagConfig {
    /// A bound of `max_events` (0: none) and a stall bound of 30 s, measured every 5 s.
    pub fn new(kafka: KafkaConfig, max_events: i64) -> Self {
        Self {
            kafka,
            max_events,
            stall_after: Some(Duration::from_secs(30)),
            every: Duration::from_secs(5),
        }
    }

    /// Sets the stall bound (`None`: stalls are not checked). The lag is then measured at
    /// least four times per bound.
    pub fn with_stall_after(mut self, stall_after: Option<Duration>) -> Self {
        self.stall_after = stall_after;
        if let Some(bound) = stall_after {
            self.every = self.every.min(bound / 4).max(Duration::from_millis(100));
        }
        self
    }
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            default_limit: 20,
            max_limit: 100,
            auth: None,
            position_wait: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            max_body_bytes: 64 << 10,
            max_batch_ids: 100,
            lag: None,
        }
    }
}
