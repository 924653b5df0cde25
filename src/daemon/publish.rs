//! What the service publishes for other programs — the state file `status` reads and
//! node_exporter's metrics textfile — written on a timer, not after every job.
//!
//! **Why:** both files describe every tenant, so writing them after each poll would make a
//! poll's cost grow with the number of tenants: at 1,000 tenants on a one-minute schedule the
//! daemon spent 85 % of a core rewriting the state file. So a change only marks them dirty; the
//! state file is written at most once per [`STATE_EVERY`] and the metrics at most once per
//! [`METRICS_EVERY`], each buffered and atomic. The metrics keep each tenant's figures and
//! recompute only those of tenants polled since the last write, so a poll costs a few queries of
//! its own tenant, whatever the number of tenants.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use crate::metrics::TenantFigures;
use crate::store::Store;

/// The state file is rewritten at most this often (`status` shows when it was written).
const STATE_EVERY: Duration = Duration::from_secs(1);
/// The metrics textfile is rewritten at most this often, and never more often than twenty times
/// its last write took (so it costs at most 5 % of the loop however many tenants it lists):
/// node_exporter reads it when scraped, usually every 15 to 60 s, so a fresher file is never
/// read. Every second, a quiet service of 200 tenants rewrote it sixty times a minute: ten
/// megabytes a minute, most of what it wrote.
const METRICS_EVERY: Duration = Duration::from_secs(15);
/// The metrics' share of the loop's time: a write that took `t` waits `t × 20` for the next.
const METRICS_SHARE: u32 = 20;

/// A file written on a timer: dirty marks, and the last write.
#[derive(Debug, Default)]
struct Throttle {
    dirty: bool,
    last: Option<Instant>,
}

impl Throttle {
    /// When the file should be written next, if it is dirty.
    fn due_at(&self, every: Duration) -> Option<Instant> {
        self.dirty.then(|| match self.last {
            Some(last) => last + every,
            None => Instant::now(),
        })
    }

    fn is_due(&self, now: Instant, every: Duration) -> bool {
        self.dirty && self.last.is_none_or(|last| last + every <= now)
    }

    fn written(&mut self, now: Instant) {
        self.dirty = false;
        self.last = Some(now);
    }
}

/// The metrics textfile's cache: each tenant's figures, and which need reading again.
#[derive(Debug)]
struct Metrics {
    path: PathBuf,
    figures: BTreeMap<String, TenantFigures>,
    stale: BTreeSet<String>,
    throttle: Throttle,
    /// How long the last write took (reading the stale figures, rendering, writing).
    cost: Duration,
}

impl Metrics {
    fn every(&self) -> Duration {
        METRICS_EVERY.max(self.cost.saturating_mul(METRICS_SHARE))
    }
}

/// The state file's and the metrics' timers and caches, owned by the service's loop.
#[derive(Debug)]
pub(super) struct Publisher {
    state: Throttle,
    metrics: Option<Metrics>,
}

impl Publisher {
    /// For a config: `metrics` is its textfile, if any; every tenant's figures are read for the
    /// first write.
    pub(super) fn new(metrics: Option<PathBuf>, tenants: &[String]) -> Publisher {
        let mut p = Publisher {
            state: Throttle {
                dirty: true,
                last: None,
            },
            metrics: None,
        };
        p.reconfigure(metrics, tenants);
        p
    }

    /// After a reload: the textfile may have moved, tenants come and go. Figures of tenants
    /// still configured are kept.
    pub(super) fn reconfigure(&mut self, metrics: Option<PathBuf>, tenants: &[String]) {
        self.state.dirty = true;
        let old = self.metrics.take();
        self.metrics = metrics.map(|path| {
            // Figures and the timer carry over when the textfile stays. A new textfile is
            // written first when a poll finishes (as before the timer: after each run), then at
            // most once per `every()`.
            let (mut figures, throttle, cost) = match old {
                Some(m) if m.path == path => (
                    m.figures,
                    Throttle {
                        dirty: true,
                        last: m.throttle.last,
                    },
                    m.cost,
                ),
                _ => (BTreeMap::new(), Throttle::default(), Duration::ZERO),
            };
            let keep: BTreeSet<&str> = tenants.iter().map(String::as_str).collect();
            figures.retain(|t, _| keep.contains(t.as_str()));
            let stale = tenants
                .iter()
                .filter(|t| !figures.contains_key(*t))
                .cloned()
                .collect();
            Metrics {
                path,
                figures,
                stale,
                throttle,
                cost,
            }
        });
    }

    /// Something the state file shows changed (a job started or finished, a tick, a reload).
    pub(super) fn state_changed(&mut self) {
        self.state.dirty = true;
    }

    /// `tenant`'s poll finished: its figures are read again before the next metrics write.
    pub(super) fn polled(&mut self, tenant: &str) {
        self.state.dirty = true;
        if let Some(m) = &mut self.metrics {
            m.stale.insert(tenant.to_owned());
            m.throttle.dirty = true;
        }
    }

    /// When the loop should wake to write something, if anything is dirty.
    pub(super) fn next_due(&self) -> Option<Instant> {
        let state = self.state.due_at(STATE_EVERY);
        let metrics = self
            .metrics
            .as_ref()
            .and_then(|m| m.throttle.due_at(m.every()));
        match (state, metrics) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Writes the state file if it is dirty and due (`state` builds it only then), and the
    /// metrics likewise. A failure is logged; the service goes on.
    pub(super) fn publish(
        &mut self,
        now: Instant,
        state: impl FnOnce() -> Option<(super::DaemonState, PathBuf)>,
        store: &std::sync::Mutex<Store>,
        token_expiry: impl FnOnce() -> Vec<(String, i64)>,
    ) {
        if self.state.is_due(now, STATE_EVERY) {
            if let Some((s, store_path)) = state()
                && let Err(super::state::StateError::Write { path, source }) = s.write(&store_path)
            {
                tracing::warn!(error = %source, file = %path.display(), "Cannot write the daemon state file.");
            }
            self.state.written(now);
        }
        if let Some(m) = &mut self.metrics
            && m.throttle.is_due(now, m.every())
        {
            // Never block the loop behind a long export or commit: the next wake tries again.
            let Ok(s) = store.try_lock() else {
                tracing::debug!("The store is busy; the metrics are written a little later.");
                m.throttle.last = Some(now);
                return;
            };
            m.write(s, &token_expiry(), now);
        }
    }

    /// Writes the metrics now if any figure changed since the last write (at shutdown).
    pub(super) fn flush_metrics(
        &mut self,
        store: &std::sync::Mutex<Store>,
        token_expiry: Vec<(String, i64)>,
    ) {
        if let Some(m) = &mut self.metrics
            && m.throttle.dirty
        {
            let s = store.lock().unwrap_or_else(|p| p.into_inner());
            m.write(s, &token_expiry, Instant::now());
        }
    }
}

impl Metrics {
    /// Reads the stale figures with `store` (released before rendering), then rewrites the
    /// textfile and notes when, and what it cost.
    fn write(
        &mut self,
        store: std::sync::MutexGuard<'_, Store>,
        token_expiry: &[(String, i64)],
        now: Instant,
    ) {
        let started = std::time::Instant::now();
        self.refresh(&store);
        let size = crate::metrics::StoreSize::of(&store);
        drop(store);
        let text = crate::metrics::render(self.figures.values(), token_expiry, size);
        if let Err(e) = crate::metrics::write(&self.path, &text) {
            tracing::warn!(error = %e, file = %self.path.display(), "Cannot write the metrics textfile.");
        }
        self.cost = started.elapsed();
        self.throttle.written(now);
    }

    /// Reads again the figures of the tenants polled since the last write.
    fn refresh(&mut self, store: &Store) {
        for tenant in std::mem::take(&mut self.stale) {
            match crate::metrics::tenant_figures(store, &tenant) {
                Ok(f) => {
                    self.figures.insert(tenant, f);
                }
                Err(e) => {
                    tracing::warn!(tenant = %tenant, error = %e, "Cannot read the figures for the metrics.");
                    self.stale.insert(tenant);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, std::sync::Mutex<Store>) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.db")).unwrap();
        (dir, std::sync::Mutex::new(s))
    }

    /// Many changes within a second cost one write of the state file.
    #[tokio::test(start_paused = true)]
    async fn the_state_file_is_written_at_most_once_a_second() {
        let (_dir, store) = store();
        let mut p = Publisher::new(None, &[]);
        let mut writes = 0;
        let t0 = Instant::now();
        for ms in (0..3_000).step_by(10) {
            let now = t0 + Duration::from_millis(ms);
            p.state_changed();
            if p.next_due().is_some_and(|at| at <= now) {
                p.publish(
                    now,
                    || {
                        writes += 1;
                        None
                    },
                    &store,
                    Vec::new,
                );
            }
        }
        assert_eq!(writes, 3, "300 changes over 3 s: one write per second");
        assert!(p.next_due().is_some(), "the last change is still to write");
        p.publish(t0 + Duration::from_secs(4), || None, &store, Vec::new);
        assert_eq!(p.next_due(), None, "nothing left to write");
    }

    /// A poll re-reads its own tenant's figures only; the textfile holds every tenant.
    #[tokio::test(start_paused = true)]
    async fn metrics_read_only_the_tenants_polled_since_the_last_write() {
        let (dir, store) = store();
        let path = dir.path().join("m.prom");
        let tenants: Vec<String> = (0..50).map(|i| format!("t{i}")).collect();
        for t in ["t0", "t49", "new"] {
            store.lock().unwrap().begin_run(t, "poll").unwrap();
        }
        let mut p = Publisher::new(Some(path.clone()), &tenants);
        let t0 = Instant::now();
        p.publish(t0, || None, &store, Vec::new);
        assert!(!path.exists(), "nothing to say before a poll finishes");
        p.polled("t0");
        p.publish(t0, || None, &store, Vec::new);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("tenant=\"t0\"") && text.contains("tenant=\"t49\""));
        let m = p.metrics.as_ref().unwrap();
        assert!(m.stale.is_empty() && m.figures.len() == 50);

        p.polled("t7");
        assert_eq!(p.metrics.as_ref().unwrap().stale.len(), 1);
        // Not before METRICS_EVERY has passed since the last write.
        let soon = t0 + METRICS_EVERY - Duration::from_millis(100);
        p.publish(soon, || None, &store, Vec::new);
        assert_eq!(p.metrics.as_ref().unwrap().stale.len(), 1, "throttled");
        p.publish(t0 + METRICS_EVERY * 10, || None, &store, Vec::new);
        assert!(p.metrics.as_ref().unwrap().stale.is_empty());

        // A reload that drops a tenant drops its series; a new one is read.
        let mut fewer: Vec<String> = tenants[1..].to_vec();
        fewer.push("new".into());
        p.reconfigure(Some(path.clone()), &fewer);
        assert_eq!(
            p.metrics.as_ref().unwrap().stale.iter().collect::<Vec<_>>(),
            ["new"]
        );
        p.publish(t0 + METRICS_EVERY * 30, || None, &store, Vec::new);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("tenant=\"t0\"") && text.contains("tenant=\"new\""));
    }
}
