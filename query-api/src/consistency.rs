//! Read-your-writes: `X-Fleuve-Position` tokens, and the wait until the projection a route
//! reads has passed them.
//!
//! A producer gets a position token for every event it publishes (`{topic, partition,
//! offset}`, see [`fleuve_kafka::Position`]) and hands it to the front. A read carrying one
//! or more tokens is held until the checkpoint of the route's projection on each token's
//! partition is past the token's offset (the projection has applied that event and
//! everything before it on that partition), polling the store's checkpoints with a short
//! back-off, for at most [`crate::QueryConfig::position_wait`]. If the deadline passes first,
//! the answer is `503` with code `position_not_reached`, `Retry-After: 1` and
//! `X-Fleuve-Consistency: behind`: never stale data in silence.
//!
//! The read models a route reads are those the route table declares for it
//! (`crate::table`). A token whose topic none of them reads is satisfied at once: nothing
//! written there can change that read (a bookmark's position does not delay an order read).
//!
//! The wait belongs to the handlers, not to a middleware: each one takes the request's
//! tokens and waits on them only once the bearer token is verified, the caller is known to
//! be allowed to read the route ([`crate::access`]) and the other inputs are checked, right
//! before it reads the store. A caller that may not read a route is thus refused at once
//! (401, 403), never held for the wait nor told where the projection stands.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, StatusCode};
use fleuve_kafka::Position;
use fleuve_projections::{ReadModel, Store};
use fleuve_service::ApiError;
use tokio::time::Instant;

pub use crate::failure::CONSISTENCY_HEADER;
use crate::failure::{store_error, Behind, Failure};
use crate::state::{AppState, Reading};
use crate::table::Declared;

/// The request header carrying position tokens (several headers, or comma-separated).
pub const POSITION_HEADER: &str = "x-fleuve-position";
/// Most position tokens one request may carry.
pub const MAX_POSITIONS: usize = 32;

/// Longest pause between two looks at the checkpoints.
const MAX_POLL: Duration = Duration::from_millis(20);

fn invalid(message: String) -> ApiError {
    ApiError::bad_request("invalid_position", message).with_field("X-Fleuve-Position")
}

/// The positions a request carries, at most one per partition (the highest offset).
pub(crate) fn positions(headers: &HeaderMap) -> Result<Vec<Position>, ApiError> {
    let mut highest: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let mut count = 0;
    for value in headers.get_all(HeaderName::from_static(POSITION_HEADER)) {
        let value = value.to_str().map_err(|_| {
            invalid("X-Fleuve-Position must be ASCII position tokens, comma-separated".into())
        })?;
        for (i, token) in value.split(',').map(str::trim).enumerate() {
            if token.is_empty() {
                continue;
            }
            count += 1;
            if count > MAX_POSITIONS {
                return Err(invalid(format!(
                    "at most {MAX_POSITIONS} position tokens per request; send the latest \
                     token of each partition only"
                )));
            }
            let p: Position = token.parse().map_err(|e| {
                invalid(format!(
                    "token {} of X-Fleuve-Position is not a token returned by ingest ({e})",
                    i + 1
                ))
            })?;
            let at = highest.entry((p.topic, p.partition)).or_insert(p.offset);
            *at = (*at).max(p.offset);
        }
    }
    Ok(highest
        .into_iter()
        .map(|((topic, partition), offset)| Position::new(topic, partition, offset))
        .collect())
}

/// The `X-Fleuve-Position` tokens of a request, with the read models its route reads (as
/// the route table declares them) and the store it reads them in.
///
/// Extracting it reads the header and nothing else, and never fails: a token that is not
/// one ingest issued is refused (400 `invalid_position`) by [`Positions::check`], which a
/// handler calls after the access rule and its other inputs, so that a caller learns first
/// whether it may read the route at all.
#[derive(Debug)]
pub(crate) struct Positions {
    reads: &'static [&'static ReadModel],
    tokens: Result<Vec<Position>, ApiError>,
    /// Where the checkpoints are read; only when there are tokens.
    store: Option<Arc<dyn Store>>,
    within: Duration,
}

impl FromRequestParts<AppState> for Positions {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        let reads = Declared::of(parts).map_or(&[][..], |d| d.route.reads);
        let tokens = positions(&parts.headers);
        let store = match &tokens {
            Ok(tokens) if !tokens.is_empty() => Some(Reading::of(parts, state).store),
            _ => None,
        };
        Ok(Self {
            reads,
            tokens,
            store,
            within: state.config.position_wait,
        })
    }
}

impl Positions {
    /// The tokens the route's read models must pass: 400 `invalid_position` for a token
    /// ingest did not issue; those on topics none of them reads are dropped.
    pub(crate) fn check(self) -> Result<Pending, ApiError> {
        let tokens = self.tokens?;
        let mut waits = Vec::new();
        for token in tokens {
            for model in self.reads.iter().filter(|m| m.reads_topic(&token.topic)) {
                waits.push((model.name, token.clone()));
            }
        }
        Ok(Pending {
            waits,
            store: self.store,
            within: self.within,
        })
    }

    /// [`check`](Self::check), then [`Pending::wait`]. Call it once the caller may read the
    /// route and the other inputs are checked, right before reading the store.
    pub(crate) async fn wait(self) -> Result<(), Failure> {
        self.check()?.wait().await
    }
}

/// The positions a read must wait for (see [`Positions::check`]).
#[derive(Debug)]
pub(crate) struct Pending {
    /// Each token with a read model that reads its topic.
    waits: Vec<(&'static str, Position)>,
    store: Option<Arc<dyn Store>>,
    within: Duration,
}

impl Pending {
    /// Whether the read has nothing to wait for.
    pub(crate) fn is_empty(&self) -> bool {
        self.waits.is_empty()
    }

    /// Holds the read until the read models have passed every position: `503
    /// position_not_reached` (with `X-Fleuve-Consistency: behind`) past
    /// [`crate::QueryConfig::position_wait`]; a store error as on any read.
    pub(crate) async fn wait(self) -> Result<(), Failure> {
        match self.store {
            Some(store) if !self.waits.is_empty() => wait(&*store, self.within, self.waits).await,
            _ => Ok(()),
        }
    }
}

/// Polls the checkpoints until every position is passed, or `within` is over.
async fn wait(
    store: &dyn Store,
    within: Duration,
    mut pending: Vec<(&'static str, Position)>,
) -> Result<(), Failure> {
    let deadline = Instant::now() + within;
    let mut pause = fleuve_service::retry::Backoff::new(Duration::from_millis(1), MAX_POLL);
    loop {
        let mut still = Vec::with_capacity(pending.len());
        let mut behind = None;
        for (projection, p) in pending {
            let next = store
                .checkpoint(projection, &p.topic, p.partition)
                .await
                .map_err(store_error)?;
            if next.is_some_and(|n| n > p.offset) {
                continue;
            }
            behind.get_or_insert((projection, p.topic.clone(), p.partition, p.offset, next));
            still.push((projection, p));
        }
        let Some((projection, topic, partition, offset, next)) = behind else {
            return Ok(());
        };
        pending = still;
        let now = Instant::now();
        if now >= deadline {
            tracing::info!(
                projection,
                topic,
                partition,
                offset,
                checkpoint = ?next,
                "read did not reach its position in time"
            );
            let applied = match next {
                Some(n) => format!("it has applied up to offset {}", n - 1),
                None => "it has applied nothing from that partition yet".to_owned(),
            };
            return Err(Behind(
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "position_not_reached",
                    format!(
                        "the {projection} projection has not reached {topic}/{partition} offset \
                     {offset} within {} ms ({applied}); retry with the same X-Fleuve-Position",
                        within.as_millis()
                    ),
                )
                .with_retry_after(1),
            )
            .into());
        }
        tokio::time::sleep(pause.next_pause().min(deadline - now)).await;
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn positions_keep_the_highest_offset_per_partition() {
        let mut headers = HeaderMap::new();
        let a = Position::new("orders", 1, 10).token();
        let b = Position::new("orders", 1, 12).token();
        let c = Position::new("catalog", 0, 3).token();
        headers.append(
            POSITION_HEADER,
            HeaderValue::from_str(&format!("{a}, {b}")).unwrap(),
        );
        headers.append(POSITION_HEADER, HeaderValue::from_str(&c).unwrap());
        let got = positions(&headers).unwrap();
        assert_eq!(
            got,
            vec![
                Position::new("catalog", 0, 3),
                Position::new("orders", 1, 12)
            ]
        );
    }

    #[test]
    fn bad_tokens_name_the_header_and_which_token() {
        let mut headers = HeaderMap::new();
        let good = Position::new("orders", 1, 10).token();
        headers.insert(
            POSITION_HEADER,
            HeaderValue::from_str(&format!("{good},nope")).unwrap(),
        );
        let e = positions(&headers).unwrap_err();
        assert_eq!(e.code, "invalid_position");
        assert_eq!(e.field.as_deref(), Some("X-Fleuve-Position"));
        assert!(e.message.contains("token 2"), "{}", e.message);

        let many = vec![good; MAX_POSITIONS + 1].join(",");
        headers.insert(POSITION_HEADER, HeaderValue::from_str(&many).unwrap());
        let e = positions(&headers).unwrap_err();
        assert!(e.message.contains("at most 32"), "{}", e.message);
    }
}
