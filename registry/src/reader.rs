//! The background reader: folds every record of the `_schemas` partition into the state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::Message;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metrics::metrics;
use crate::record;
use crate::state::{Applied, State};

/// Offset value of the `folded` channel before any record was read.
pub(crate) const NOTHING_FOLDED: i64 = -1;

/// librdkafka context of the reader's consumer: reaching the end of the partition is
/// reported through the error callback too, which rdkafka's default context logs at ERROR
/// level on every fetch; here it is not an error.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ReaderContext;

impl ClientContext for ReaderContext {
    fn error(&self, error: KafkaError, reason: &str) {
        match error {
            KafkaError::PartitionEOF(_)
            | KafkaError::Global(rdkafka::types::RDKafkaErrorCode::PartitionEOF) => {
                tracing::trace!(reason, "end of the schemas partition");
            }
            error => tracing::warn!(%error, reason, "Kafka client error in the schemas reader"),
        }
    }
}

impl ConsumerContext for ReaderContext {}

/// The reader's consumer.
pub(crate) type ReaderConsumer = StreamConsumer<ReaderContext>;

pub(crate) struct Reader {
    /// Assigned to partition 0 of `topic` from the beginning.
    pub consumer: ReaderConsumer,
    pub topic: String,
    pub state: Arc<RwLock<State>>,
    /// Offset of the last record folded (or skipped as unreadable).
    pub folded: watch::Sender<i64>,
    pub caught_up: watch::Sender<bool>,
    pub alive: Arc<AtomicBool>,
    /// The high watermark when the reader started; `None` when the log was empty.
    pub end_at_start: Option<i64>,
    pub cancel: CancellationToken,
}

/// Clears the `alive` flag however the reader task ends (return or panic).
struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Reader {
    pub(crate) async fn run(self) {
        let _alive = AliveGuard(self.alive.clone());
        if self.end_at_start.is_none() {
            self.caught_up.send_replace(true);
        }
        loop {
            let next = tokio::select! {
                biased;
                () = self.cancel.cancelled() => break,
                next = self.consumer.recv() => next,
            };
            match next {
                Ok(msg) => {
                    let offset = msg.offset();
                    self.fold(msg.partition(), offset, msg.key(), msg.payload());
                    self.folded.send_replace(offset);
                    if self.end_at_start.is_some_and(|end| offset + 1 >= end) {
                        self.mark_caught_up();
                    }
                }
                // The end of the partition (also past trailing control records or gaps).
                Err(KafkaError::PartitionEOF(_)) => self.mark_caught_up(),
                Err(error) => {
                    tracing::warn!(topic = %self.topic, %error, "error reading the schemas topic; retrying");
                    tokio::select! {
                        () = self.cancel.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        }
        tracing::info!(topic = %self.topic, "schemas reader stopped");
    }

    fn mark_caught_up(&self) {
        if !*self.caught_up.borrow() {
            tracing::info!(topic = %self.topic, offset = *self.folded.borrow(), "schema registry caught up with its log");
            self.caught_up.send_replace(true);
        }
    }

    fn fold(&self, partition: i32, offset: i64, key: Option<&[u8]>, value: Option<&[u8]>) {
        let topic = self.topic.as_str();
        let record = match record::decode(key, value) {
            Ok(record) => record,
            Err(reason) => {
                tracing::warn!(topic, partition, offset, %reason, "skipping a record of the schemas topic");
                return;
            }
        };
        let applied = {
            let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
            let applied = state.apply(offset, record);
            metrics()
                .schemas
                .set(i64::try_from(state.schema_count()).unwrap_or(i64::MAX));
            applied
        };
        match applied {
            Applied::Registered {
                subject,
                version,
                id,
            } => tracing::debug!(
                topic,
                partition,
                offset,
                subject,
                version,
                id,
                "schema registered"
            ),
            Applied::AlreadyRegistered {
                subject,
                version,
                id,
            } => tracing::debug!(
                topic,
                partition,
                offset,
                subject,
                version,
                id,
                "duplicate registration ignored"
            ),
            Applied::IdOutOfRange => tracing::error!(
                topic,
                partition,
                offset,
                "skipping a registration: its offset is beyond the largest schema id (2^31-1)"
            ),
            Applied::Incompatible { subject, reasons } => tracing::info!(
                topic,
                partition,
                offset,
                subject,
                reasons = reasons.join("; "),
                "incompatible registration ignored"
            ),
            Applied::Config { subject, level } => tracing::info!(
                topic,
                partition,
                offset,
                subject = subject.as_deref().unwrap_or("(global)"),
                level = level.map_or("(removed)", |l| l.as_str()),
                "compatibility level set"
            ),
            Applied::Deleted {
                subject,
                versions,
                permanent,
            } => tracing::info!(
                topic,
                partition,
                offset,
                subject,
                ?versions,
                permanent,
                "versions deleted"
            ),
            Applied::Refused { subject, refusal } => tracing::debug!(
                topic,
                partition,
                offset,
                subject,
                ?refusal,
                "delete refused by the state"
            ),
        }
    }
}
