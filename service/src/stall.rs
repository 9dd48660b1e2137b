//! Stall detection: is a projection that lags still applying records?
//!
//! A projection that lags but applies records is *behind*; one that lags and has applied
//! nothing for a while is *stalled*: a consumer that holds no partition, a group that never
//! formed, a store that blocks. Lag alone cannot tell them apart (a small lag can be a
//! stall, a large one healthy catching up), so the processors and the query API feed a
//! [`StallWatch`] with periodic observations of the lag and of how far the projection has
//! applied (the sum of its checkpoints), and fail readiness on [`Stall::stalled`].
//!
//! ```
//! use std::time::{Duration, Instant};
//! use fleuve_service::stall::StallWatch;
//!
//! let mut watch = StallWatch::new(Duration::from_secs(30));
//! let t0 = Instant::now();
//! assert!(!watch.observe(t0, 500, 1_000).stalled);
//! // 40 s later, still 500 records behind and nothing applied: stalled.
//! let later = watch.observe(t0 + Duration::from_secs(40), 500, 1_000);
//! assert!(later.stalled);
//! assert_eq!(later.idle, Duration::from_secs(40));
//! ```

use std::time::{Duration, Instant};

/// Follows one projection's lag and applied position over time.
#[derive(Debug, Clone)]
pub struct StallWatch {
    bound: Duration,
    /// The applied position seen last.
    applied: Option<i64>,
    /// Since when the projection has lagged without applying anything (`None`: not lagging).
    idle_since: Option<Instant>,
}

/// What one observation concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    /// Records behind, as observed.
    pub lag: i64,
    /// How long the projection has lagged without applying a record (zero when it does not
    /// lag, or applied something since the previous observation).
    pub idle: Duration,
    /// `idle` has reached the bound.
    pub stalled: bool,
}

impl StallWatch {
    /// A watch that calls a projection stalled once it has lagged for `bound` without
    /// applying a record.
    pub fn new(bound: Duration) -> Self {
        Self {
            bound,
            applied: None,
            idle_since: None,
        }
    }

    /// The stall bound.
    pub fn bound(&self) -> Duration {
        self.bound
    }

    /// Records an observation made at `now`: `lag` records behind the end of the log, and
    /// `applied` a position that grows with every applied record (the sum of the
    /// checkpoints' next offsets).
    pub fn observe(&mut self, now: Instant, lag: i64, applied: i64) -> Stall {
        let progressed = self.applied.is_some_and(|before| applied > before);
        self.applied = Some(self.applied.map_or(applied, |before| before.max(applied)));
        if lag <= 0 {
            self.idle_since = None;
        } else if progressed || self.idle_since.is_none() {
            self.idle_since = Some(now);
        }
        let idle = self
            .idle_since
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        Stall {
            lag: lag.max(0),
            idle,
            stalled: lag > 0 && idle >= self.bound,
        }
    }

    /// An observation that could not be made (the store or the brokers did not answer):
    /// nothing was seen to be applied, so an idle stretch goes on.
    pub fn unobserved(&self, now: Instant) -> Option<Stall> {
        let since = self.idle_since?;
        let idle = now.saturating_duration_since(since);
        Some(Stall {
            lag: 1,
            idle,
            stalled: idle >= self.bound,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUND: Duration = Duration::from_secs(10);

    fn at(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    #[test]
    fn caught_up_is_never_stalled() {
        let mut w = StallWatch::new(BOUND);
        let t0 = Instant::now();
        for s in 0..100 {
            let o = w.observe(at(t0, s), 0, 7);
            assert_eq!((o.idle, o.stalled), (Duration::ZERO, false));
        }
    }

    #[test]
    fn lagging_without_progress_stalls_after_the_bound() {
        let mut w = StallWatch::new(BOUND);
        let t0 = Instant::now();
        assert!(!w.observe(t0, 3, 100).stalled);
        let o = w.observe(at(t0, 9), 3, 100);
        assert_eq!((o.idle, o.stalled), (Duration::from_secs(9), false));
        let o = w.observe(at(t0, 10), 3, 100);
        assert_eq!((o.idle, o.stalled, o.lag), (BOUND, true, 3));
    }

    #[test]
    fn progress_resets_the_clock_even_when_lag_grows() {
        let mut w = StallWatch::new(BOUND);
        let t0 = Instant::now();
        w.observe(t0, 100, 0);
        // Behind and falling further behind, but applying: not stalled.
        for s in 1..60 {
            let o = w.observe(
                at(t0, s * 5),
                100 + i64::try_from(s).unwrap() * 10,
                10 * i64::try_from(s).unwrap(),
            );
            assert!(!o.stalled, "{s}");
            assert_eq!(o.idle, Duration::ZERO);
        }
    }

    #[test]
    fn recovery_clears_the_stall() {
        let mut w = StallWatch::new(BOUND);
        let t0 = Instant::now();
        w.observe(t0, 5, 0);
        assert!(w.observe(at(t0, 11), 5, 0).stalled);
        assert!(!w.observe(at(t0, 12), 2, 3).stalled);
        assert!(!w.observe(at(t0, 13), 0, 5).stalled);
        // A new stretch of lag starts its own clock.
        assert!(!w.observe(at(t0, 100), 1, 5).stalled);
        assert!(w.observe(at(t0, 110), 1, 5).stalled);
    }

    #[test]
    fn an_applied_position_going_back_is_no_progress() {
        // A store restored from an older copy: what counts is applying past the best seen.
        let mut w = StallWatch::new(BOUND);
        let t0 = Instant::now();
        w.observe(t0, 5, 50);
        w.observe(at(t0, 5), 5, 40);
        assert!(w.observe(at(t0, 10), 5, 45).stalled);
        assert!(!w.observe(at(t0, 11), 5, 51).stalled);
    }

    #[test]
    fn missed_observations_keep_an_idle_stretch_going() {
        let mut w = StallWatch::new(BOUND);
        let t0 = Instant::now();
        assert_eq!(w.unobserved(t0), None);
        w.observe(t0, 5, 0);
        assert!(!w.unobserved(at(t0, 5)).unwrap().stalled);
        assert!(w.unobserved(at(t0, 10)).unwrap().stalled);
    }
}
