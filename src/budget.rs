//! The API budget: Defender allows 100 calls a minute and 1,500 an hour per app and tenant.
//!
//! Spending it like money means *waiting for budget* instead of spending it and being throttled:
//! every API call first takes a slot from a sliding window of both quotas, and sleeps until one is
//! free. The window outlives the process — `poll` usually runs from a timer, one process per run —
//! because the store records every call (see `crate::store::Writer::record_calls`) and a new
//! budget starts from the last hour's calls. Several tools sharing one app can lower the quotas
//! with `[poll] calls_per_minute` and `calls_per_hour`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Defender's documented quotas.
pub(crate) const DEFENDER_PER_MINUTE: u32 = 100;
/// Defender's documented hourly quota.
pub(crate) const DEFENDER_PER_HOUR: u32 = 1_500;
/// Microsoft Graph's quota for alerts: 150 requests per minute per app per tenant.
pub(crate) const GRAPH_PER_MINUTE: u32 = 150;
/// Graph documents no hourly quota for alerts: the minute's, sixty times.
pub(crate) const GRAPH_PER_HOUR: u32 = GRAPH_PER_MINUTE * 60;

/// The windows are this much longer than the API's: a slot is taken when a request is about to
/// leave, but the server counts it when it arrives, and a slow request (a loaded machine, a proxy)
/// arrives later than the next one's — without a margin, the server's window then holds one
/// call more than ours and answers 429 (seen under load in `budget::a_throttled_backfill…`).
const SLACK: Duration = Duration::from_secs(2);
const MINUTE: Duration = Duration::from_secs(60 + SLACK.as_secs());
const HOUR: Duration = Duration::from_secs(3_600 + SLACK.as_secs());

/// Why no slot could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the API budget has no free call before the poll's deadline (next free slot in {}s)", .wait.as_secs())]
pub(crate) struct OverBudget {
    /// How long until the next slot.
    pub(crate) wait: Duration,
}

/// A sliding-window budget of both quotas for one tenant.
#[derive(Debug)]
pub struct Budget {
    per_minute: u32,
    per_hour: u32,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Calls of the last hour, oldest first.
    calls: VecDeque<SystemTime>,
    /// Calls not yet written to the store.
    unsaved: Vec<SystemTime>,
    /// Time spent waiting for budget.
    waited: Duration,
}

impl Budget {
    /// A budget of `per_minute` and `per_hour`, already charged with `history` (calls made by
    /// earlier runs, from the store).
    pub fn new(
        per_minute: u32,
        per_hour: u32,
        history: impl IntoIterator<Item = SystemTime>,
    ) -> Self {
        // Calls stamped in the future (the clock stepped back since) would block the budget until
        // real time caught up: drop those more than a minute ahead.
        let horizon = SystemTime::now() + MINUTE;
        let mut calls: Vec<SystemTime> = history.into_iter().filter(|t| *t <= horizon).collect();
        calls.sort();
        Budget {
            per_minute: per_minute.max(1),
            per_hour: per_hour.max(1),
            state: Mutex::new(State {
                calls: calls.into(),
                ..State::default()
            }),
        }
    }

    /// Charges the budget with `history` as well (calls earlier runs recorded in the store), for a
    /// budget built before the store was open.
    pub(crate) fn remember(&self, history: &[SystemTime]) {
        let horizon = SystemTime::now() + MINUTE;
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut calls: Vec<SystemTime> = s.calls.drain(..).collect();
        calls.extend(history.iter().copied().filter(|t| *t <= horizon));
        calls.sort();
        s.calls = calls.into();
    }

    /// How long until a call may be made at `now` (zero when one may be made now).
    fn wait_at(&self, s: &mut State, now: SystemTime) -> Duration {
        while s
            .calls
            .front()
            .is_some_and(|t| now.duration_since(*t).unwrap_or_default() >= HOUR)
        {
            s.calls.pop_front();
        }
        let mut wait = Duration::ZERO;
        if s.calls.len() >= self.per_hour as usize {
            let oldest = s.calls[s.calls.len() - self.per_hour as usize];
            wait = wait.max(HOUR.saturating_sub(now.duration_since(oldest).unwrap_or_default()));
        }
        let last_minute = s
            .calls
            .iter()
            .rev()
            .take_while(|t| now.duration_since(**t).unwrap_or_default() < MINUTE)
            .count();
        if last_minute >= self.per_minute as usize {
            let idx = s.calls.len() - self.per_minute as usize;
            let oldest = s.calls[idx];
            wait = wait.max(MINUTE.saturating_sub(now.duration_since(oldest).unwrap_or_default()));
        }
        wait
    }

    /// Takes one call slot, sleeping until one is free; fails if that would pass `deadline`.
    pub(crate) async fn acquire(
        &self,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(), OverBudget> {
        let mut logged = false;
        loop {
            let wait = {
                let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let now = SystemTime::now();
                let wait = self.wait_at(&mut s, now);
                if wait.is_zero() {
                    s.calls.push_back(now);
                    s.unsaved.push(now);
                    return Ok(());
                }
                wait
            };
            if deadline.is_some_and(|d| tokio::time::Instant::now() + wait > d) {
                return Err(OverBudget { wait });
            }
            if !logged {
                tracing::info!(
                    wait_secs = wait.as_secs_f64().ceil() as u64,
                    per_minute = self.per_minute,
                    per_hour = self.per_hour,
                    "Waiting for API budget rather than being throttled."
                );
                logged = true;
            }
            // A few milliseconds more, so the oldest call has surely left the window.
            tokio::time::sleep(wait + Duration::from_millis(5)).await;
            self.state.lock().unwrap_or_else(|p| p.into_inner()).waited += wait;
        }
    }

    /// Calls made since the last time this was asked, to be recorded in the store.
    pub(crate) fn take_unsaved(&self) -> Vec<SystemTime> {
        std::mem::take(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()).unsaved)
    }

    /// Total time spent waiting for budget.
    pub(crate) fn waited(&self) -> Duration {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).waited
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(b: &Budget, now: SystemTime) -> Duration {
        let mut s = b.state.lock().unwrap();
        b.wait_at(&mut s, now)
    }

    #[test]
    fn per_minute_window_slides() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let history: Vec<_> = (0..5).map(|i| t0 + Duration::from_secs(i * 10)).collect();
        let b = Budget::new(5, 1_500, history);
        // Five calls at 0,10,…,40 s: the sixth may go when the first is a minute old, plus the
        // slack for requests that reach the server late.
        assert_eq!(
            at(&b, t0 + Duration::from_secs(45)),
            Duration::from_secs(15) + SLACK
        );
        assert_eq!(at(&b, t0 + Duration::from_secs(60)), SLACK);
        assert_eq!(at(&b, t0 + Duration::from_secs(60) + SLACK), Duration::ZERO);
    }

    #[test]
    fn per_hour_window_binds_too() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let history: Vec<_> = (0..20).map(|i| t0 + Duration::from_secs(i * 120)).collect();
        let b = Budget::new(100, 20, history);
        // 20 calls over 38 minutes: the 21st waits until the first is an hour old.
        let now = t0 + Duration::from_secs(40 * 60);
        assert_eq!(at(&b, now), Duration::from_secs(20 * 60) + SLACK);
        // Calls older than an hour (and the slack) no longer count.
        assert_eq!(
            at(&b, t0 + Duration::from_secs(3_600) + SLACK),
            Duration::ZERO
        );
    }

    #[test]
    fn calls_stamped_in_the_future_are_dropped() {
        // A clock that stepped back must not block the budget until it catches up.
        let future = SystemTime::now() + Duration::from_secs(3 * 3_600);
        let b = Budget::new(1, 1, [future]);
        assert_eq!(at(&b, SystemTime::now()), Duration::ZERO);
    }

    #[tokio::test]
    async fn acquire_respects_the_deadline() {
        let now = SystemTime::now();
        let b = Budget::new(2, 100, [now, now]);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        let e = b.acquire(Some(deadline)).await.unwrap_err();
        assert!(e.wait > Duration::from_secs(55));
        let b = Budget::new(2, 100, []);
        b.acquire(None).await.unwrap();
        b.acquire(None).await.unwrap();
        assert_eq!(b.take_unsaved().len(), 2);
        assert!(b.take_unsaved().is_empty());
    }
}
