//! Retrying a transient failure with exponential backoff, until it succeeds, fails for good,
//! or the service shuts down.
//!
//! ```
//! # async fn demo() {
//! use std::time::Duration;
//! use fleuve_service::retry::{retry, Backoff, Stopped};
//! use tokio_util::sync::CancellationToken;
//!
//! let shutdown = CancellationToken::new();
//! let mut calls = 0;
//! let answer: Result<u32, Stopped<String>> = retry(
//!     Backoff::new(Duration::from_millis(1), Duration::from_millis(10)),
//!     &shutdown,
//!     || {
//!         calls += 1;
//!         let result = if calls < 3 { Err("busy".to_owned()) } else { Ok(42) };
//!         async move { result }
//!     },
//!     |e: &String| e == "busy",
//!     |e, pause| eprintln!("{e}; retrying in {pause:?}"),
//! )
//! .await;
//! assert_eq!(answer, Ok(42));
//! # }
//! ```

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Pauses between attempts: `initial`, doubled after each failure up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// The first pause is `initial`, the longest `max` (at least `initial`).
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            next: initial,
        }
    }

    /// The pause before the next attempt; the one after it is twice as long, up to the max.
    pub fn next_pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        pause
    }

    /// Back to the first pause, after a success.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

impl Default for Backoff {
    /// 50 ms, doubling up to 5 s.
    fn default() -> Self {
        Self::new(Duration::from_millis(50), Duration::from_secs(5))
    }
}

/// Why [`retry`] gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped<E> {
    /// The operation failed with an error that a retry will not fix.
    Permanent(E),
    /// Shutdown was asked while waiting to retry.
    Shutdown,
}

/// Runs `op` until it succeeds. A failure that `is_transient` is reported to `on_retry`
/// with the pause that follows, then retried after that pause; any other failure stops the
/// retries ([`Stopped::Permanent`]), and so does `shutdown` during a pause
/// ([`Stopped::Shutdown`]).
pub async fn retry<T, E, F, Fut>(
    mut backoff: Backoff,
    shutdown: &CancellationToken,
    mut op: F,
    is_transient: impl Fn(&E) -> bool,
    mut on_retry: impl FnMut(&E, Duration),
) -> Result<T, Stopped<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(e) if !is_transient(&e) => return Err(Stopped::Permanent(e)),
            Err(e) => {
                let pause = backoff.next_pause();
                on_retry(&e, pause);
                tokio::select! {
                    () = shutdown.cancelled() => return Err(Stopped::Shutdown),
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_max_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(50), Duration::from_millis(300));
        let pauses: Vec<u128> = (0..5).map(|_| b.next_pause().as_millis()).collect();
        assert_eq!(pauses, [50, 100, 200, 300, 300]);
        b.reset();
        assert_eq!(b.next_pause(), Duration::from_millis(50));
    }

    #[tokio::test]
    async fn a_permanent_failure_stops_at_once_and_shutdown_stops_the_pauses() {
        let shutdown = CancellationToken::new();
        let mut retried = Vec::new();
        let result: Result<(), _> = retry(
            Backoff::new(Duration::from_millis(1), Duration::from_millis(2)),
            &shutdown,
            || async { Err::<(), _>("broken") },
            |_| false,
            |e, _| retried.push(*e),
        )
        .await;
        assert_eq!(result, Err(Stopped::Permanent("broken")));
        assert!(retried.is_empty());

        shutdown.cancel();
        let mut pauses = Vec::new();
        let result: Result<(), _> = retry(
            Backoff::new(Duration::from_secs(60), Duration::from_secs(60)),
            &shutdown,
            || async { Err::<(), _>("busy") },
            |_| true,
            |_, pause| pauses.push(pause),
        )
        .await;
        assert_eq!(result, Err(Stopped::Shutdown));
        assert_eq!(
            pauses,
            [Duration::from_secs(60)],
            "one attempt, then the pause"
        );
    }
}
