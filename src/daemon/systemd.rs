//! What the loop tells the outside: systemd's notify socket (READY, STATUS, WATCHDOG, STOPPING,
//! RELOADING), and an optional observer that sees the same notices plus the scheduling events
//! (what an in-process test watches instead of the log).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sd_notify::NotifyState;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

use super::Event;
use super::jobs::Figures;
use crate::poll_job::JobError;
use crate::store::Outcome;

/// systemd's watchdog period for our pings: half of `WATCHDOG_USEC`, as systemd advises.
pub(crate) fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}

/// Where notices and events go.
#[derive(Debug, Clone)]
pub(crate) struct Outlet {
    /// Send to systemd (silent outside it: no `NOTIFY_SOCKET`).
    pub(crate) systemd: bool,
    /// The observer, if any.
    pub(crate) events: Option<UnboundedSender<Event>>,
}

impl Outlet {
    /// Tells systemd (and the observer) `state`.
    pub(crate) fn notify(&self, state: NotifyState<'_>) {
        if self.systemd
            && let Err(e) = sd_notify::notify(std::slice::from_ref(&state))
        {
            tracing::debug!(error = %e, "sd_notify failed.");
        }
        self.event(Event::Notify(state.to_string()));
    }

    /// Tells the observer, if there is one.
    pub(crate) fn event(&self, event: Event) {
        if let Some(tx) = &self.events {
            // An observer that went away no longer wants to know.
            let _ = tx.send(event);
        }
    }
}

/// The watchdog's cadence: a ping is due every `period`, the first at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Watchdog {
    period: Duration,
    next: Instant,
}

impl Watchdog {
    pub(crate) fn new(period: Duration, now: Instant) -> Watchdog {
        Watchdog { period, next: now }
    }

    /// When the next ping is due.
    pub(crate) fn next(&self) -> Instant {
        self.next
    }

    /// Whether a ping (or the decision not to send it) is due at `now`; if so, the next one is a
    /// period later.
    pub(crate) fn due(&mut self, now: Instant) -> bool {
        if now < self.next {
            return false;
        }
        self.next = now + self.period;
        true
    }
}

/// STATUS= once running.
pub(crate) fn started(first: DateTime<Utc>) -> String {
    format!("started; first poll {}", first.format("%H:%M:%S"))
}

/// STATUS= after a poll: "last poll of t1 12:05:01 ok: 3 new, 5 updated; next 12:10:00".
pub(crate) fn after_poll(
    tenant: &str,
    now: DateTime<Utc>,
    result: Result<&Figures, &JobError>,
    next: DateTime<Utc>,
) -> String {
    let (now, next) = (now.format("%H:%M:%S"), next.format("%H:%M:%S"));
    match result {
        Ok(f) => format!(
            "last poll of {tenant} {now} ok: {} new, {} updated{}; next {next}",
            f.new,
            f.updated,
            match f.outcome {
                Outcome::Partial => " (partial)",
                Outcome::Stalled => " (stalled: no progress)",
                _ => "",
            }
        ),
        Err(e) => format!(
            "last poll of {tenant} {now} FAILED: {}; next {next}",
            e.to_string().chars().take(160).collect::<String>()
        ),
    }
}

/// STATUS= after a failed export.
pub(crate) fn export_failed(name: &str, error: &str) -> String {
    format!(
        "export {name} FAILED: {}",
        error.chars().take(160).collect::<String>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn status_lines() {
        let at = Utc.with_ymd_and_hms(2026, 1, 15, 12, 5, 1).unwrap();
        let next = Utc.with_ymd_and_hms(2026, 1, 15, 12, 10, 0).unwrap();
        assert_eq!(started(next), "started; first poll 12:10:00");
        assert_eq!(
            after_poll(
                "t1",
                at,
                Ok(&Figures {
                    new: 3,
                    updated: 5,
                    ..Figures::default()
                }),
                next
            ),
            "last poll of t1 12:05:01 ok: 3 new, 5 updated; next 12:10:00"
        );
        let partial = Figures {
            outcome: Outcome::Partial,
            ..Figures::default()
        };
        assert_eq!(
            after_poll("t1", at, Ok(&partial), next),
            "last poll of t1 12:05:01 ok: 0 new, 0 updated (partial); next 12:10:00"
        );
        let long = JobError::Poll(crate::poll::PollError::Panicked("é".repeat(500)));
        let failed = after_poll("t1", at, Err(&long), next);
        let said = failed
            .strip_prefix("last poll of t1 12:05:01 FAILED: ")
            .and_then(|f| f.strip_suffix("; next 12:10:00"))
            .unwrap();
        assert_eq!(said.chars().count(), 160, "cut by characters: {failed}");
        assert!(said.ends_with('é'), "{failed}");
        assert!(failed.ends_with("; next 12:10:00"));
        assert_eq!(
            export_failed("x", "disk full"),
            "export x FAILED: disk full"
        );
    }

    #[test]
    fn the_watchdog_is_due_at_once_then_every_period() {
        let t = Instant::now();
        let mut w = Watchdog::new(Duration::from_secs(10), t);
        assert!(w.due(t));
        assert!(!w.due(t + Duration::from_secs(9)));
        assert_eq!(w.next(), t + Duration::from_secs(10));
        assert!(w.due(t + Duration::from_secs(12)));
        assert_eq!(
            w.next(),
            t + Duration::from_secs(22),
            "a period after the late ping"
        );
    }

    #[test]
    fn the_observer_sees_what_systemd_would() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let out = Outlet {
            systemd: false,
            events: Some(tx),
        };
        out.notify(NotifyState::Ready);
        out.notify(NotifyState::Status("started"));
        assert_eq!(rx.try_recv().unwrap(), Event::Notify("READY=1".into()));
        assert_eq!(
            rx.try_recv().unwrap(),
            Event::Notify("STATUS=started".into())
        );
    }
}
