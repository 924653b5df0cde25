//! The pager against Graph servers that depart from what the documentation leads one to expect:
//! a page cap below `$top` inside one instant, a nextLink on the last page or on every page, a
//! switch back from Graph to the MDE API, a read-back after widening `services` cut short. They
//! drive the real pager against the fake source behind such a server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::alert::time::ApiTime;
use crate::poll::{PollSettings, poll_tenant};
use crate::source::fake::{FakeAlert, FakeSource, OrderBy};
use crate::source::{AlertSource, NextLink, Page, PageRequest, SourceError};
use crate::store::Store;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A Graph-like server in front of the fake world: it caps every page at `cap` elements
/// (whatever `$top` says) and sends `@odata.nextLink` when it truncated, or always when `always_link`.
/// After `limit` calls it fails (so a runaway pager ends the test instead of hanging it).
struct Capped {
    inner: FakeSource,
    cap: usize,
    always_link: bool,
    calls: AtomicU64,
    limit: u64,
}

impl AlertSource for Capped {
    fn name(&self) -> &'static str {
        "graph"
    }
    async fn fetch(&self, r: &PageRequest) -> Result<Page, SourceError> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        if n >= self.limit {
            return Err(SourceError::Malformed {
                api: "capped",
                detail: crate::redact::ServerText::new("call limit reached: the pager ran away"),
            });
        }
        let mut page = self.inner.fetch(r).await?;
        let truncated = page.alerts.len() > self.cap;
        page.alerts.truncate(self.cap);
        page.received = page.alerts.len();
        page.more = truncated || self.always_link;
        Ok(page)
    }
    async fn follow(&self, _link: &NextLink) -> Result<Page, SourceError> {
        unreachable!("no link is ever usable here")
    }
    fn max_skip(&self) -> u32 {
        500
    }
    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

fn ids(store: &Store) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    store
        .for_each_alert(|_, raw| {
            let v: serde_json::Value = serde_json::from_str(raw).unwrap();
            out.insert(v["id"].as_str().unwrap().to_owned());
            Ok(())
        })
        .unwrap();
    out
}

const SETTINGS: PollSettings = PollSettings {
    overlap: Duration::from_secs(600),
    initial_lookback: Duration::from_secs(30 * 86_400),
    page_size: 10,
};

/// Graph caps a page below `$top` (here 3 of 10) and says so with `@odata.nextLink`. When more
/// alerts share one instant *and one creation time* than a page holds, `skip_passes` advances
/// `$skip` by `$top` (10), not by what the page held (3): alerts 3..9 of each step are never asked
/// for. The pass check cannot see it (every pass skips the same ones).
#[test]
fn server_page_cap_below_top_in_one_instant_loses_nothing() {
    let t = ApiTime::now().minus(Duration::from_secs(3600));
    let c = t.minus(Duration::from_secs(60));
    let world: Vec<FakeAlert> = (0..25)
        .map(|i| FakeAlert::new(format!("da{i:03}"), t, Some(c)))
        .collect();
    let source = Capped {
        inner: FakeSource::new(world, OrderBy::Sorted),
        cap: 3,
        always_link: false,
        calls: AtomicU64::new(0),
        limit: 5_000,
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Mutex::new(Store::open(&dir.path().join("s.db")).unwrap()));
    let r = block_on(poll_tenant(&source, &store, "t", SETTINGS));
    let got = ids(&store.lock().unwrap());
    assert_eq!(got.len(), 25, "stored {} of 25 ({r:?}): {got:?}", got.len());
}

/// Graph sends `@odata.nextLink` on its last page too (a link to an empty page). A quiet tenant
/// (nothing new) must still poll successfully, not fail every poll with a protocol error.
#[test]
fn next_link_on_an_empty_last_page_is_not_a_failure() {
    let source = Capped {
        inner: FakeSource::new(Vec::new(), OrderBy::Sorted),
        cap: 1000,
        always_link: true,
        calls: AtomicU64::new(0),
        limit: 200,
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Mutex::new(Store::open(&dir.path().join("s.db")).unwrap()));
    let r = block_on(poll_tenant(&source, &store, "t", SETTINGS));
    assert!(r.is_ok(), "{:?}", r.err().map(|e| e.to_string()));
}

/// The same server with one alert in the window: the pager must end in a few calls, not split
/// time windows down to single ticks (2^60 windows: the poll only ends at its deadline or never).
#[test]
fn next_link_on_every_page_does_not_make_the_pager_run_away() {
    let t = ApiTime::now().minus(Duration::from_secs(3600));
    let source = Capped {
        inner: FakeSource::new(vec![FakeAlert::new("da1", t, Some(t))], OrderBy::Sorted),
        cap: 1000,
        always_link: true,
        calls: AtomicU64::new(0),
        limit: 500,
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Mutex::new(Store::open(&dir.path().join("s.db")).unwrap()));
    let r = block_on(poll_tenant(&source, &store, "t", SETTINGS));
    let calls = source.calls();
    eprintln!(
        "calls={calls} r={:?}",
        r.as_ref().map(|r| r.to_string()).map_err(|e| e.to_string())
    );
    assert!(
        r.is_ok(),
        "every poll fails after {calls} calls: {:?}",
        r.as_ref().err().map(|e| e.to_string())
    );
    assert!(
        calls < 100,
        "{calls} calls for one alert ({:?})",
        r.err().map(|e| e.to_string())
    );
}

/// The fake world under another API's name (`mde` / `graph`).
struct Named(&'static str, FakeSource);

impl AlertSource for Named {
    fn name(&self) -> &'static str {
        self.0
    }
    async fn fetch(&self, r: &PageRequest) -> Result<Page, SourceError> {
        self.1.fetch(r).await
    }
    fn calls(&self) -> u64 {
        self.1.calls()
    }
}

/// MDE → Graph → MDE (a rollback). Graph does not return alerts suppressed by tuning rules or
/// standalone alerts (`docs/defender-api.md` §4.2a); while the tenant read Graph, such an alert `s1` was
/// created. Back on the MDE API the pager re-reads only one overlap before the cursor Graph moved,
/// so `s1` is never stored although the MDE API returns it.
#[test]
fn switching_back_from_graph_reads_what_graph_could_not_see() {
    let now = ApiTime::now();
    let h = |n: u64| now.minus(Duration::from_secs(n * 3600));
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Mutex::new(Store::open(&dir.path().join("s.db")).unwrap()));
    let mde1 = Named(
        "mde",
        FakeSource::new(
            vec![FakeAlert::new("da1", h(5), Some(h(5)))],
            OrderBy::Sorted,
        ),
    );
    block_on(poll_tenant(&mde1, &store, "t", SETTINGS)).unwrap();
    // Graph period: da2 at h(1) is visible to both; s1 (suppressed) at h(2) only to the MDE API.
    let graph = Named(
        "graph",
        FakeSource::new(
            vec![
                FakeAlert::new("da1", h(5), Some(h(5))),
                FakeAlert::new("da2", h(1), Some(h(1))),
            ],
            OrderBy::Sorted,
        ),
    );
    block_on(poll_tenant(&graph, &store, "t", SETTINGS)).unwrap();
    let mde2 = Named(
        "mde",
        FakeSource::new(
            vec![
                FakeAlert::new("da1", h(5), Some(h(5))),
                FakeAlert::new("da2", h(1), Some(h(1))),
                FakeAlert::new("s1", h(2), Some(h(2))),
            ],
            OrderBy::Sorted,
        ),
    );
    block_on(poll_tenant(&mde2, &store, "t", SETTINGS)).unwrap();
    let got = ids(&store.lock().unwrap());
    assert!(
        got.contains("s1"),
        "the MDE-only alert created while on Graph is lost: {got:?}"
    );
}

/// A Graph source with `services` and a call after which it stops answering (a 503 storm, the
/// poll's deadline, a killed process: anything that ends a poll after some committed pages).
struct Scoped {
    inner: FakeSource,
    services: &'static str,
    fail_from: u64,
}

impl AlertSource for Scoped {
    fn name(&self) -> &'static str {
        "graph"
    }
    async fn fetch(&self, r: &PageRequest) -> Result<Page, SourceError> {
        if self.inner.calls() + 1 >= self.fail_from {
            return Err(SourceError::Unavailable {
                api: "graph",
                attempts: 7,
                last: crate::redact::ServerText::new("HTTP 503"),
            });
        }
        self.inner.fetch(r).await
    }
    fn services(&self) -> String {
        self.services.to_owned()
    }
    fn calls(&self) -> u64 {
        self.inner.calls()
    }
}

/// `services` widened from endpoint to `["all"]`: the next poll reads back `initial_lookback` for
/// the new products. If that read-back stops after its first committed page (a failure, the
/// deadline), the cursor row already records `services = all`, so the poll after it no longer
/// sees a widening and starts from the old settled watermark: the rest of the read-back is
/// silently abandoned.
#[test]
fn an_interrupted_read_back_after_widening_services_is_resumed() {
    let now = ApiTime::now();
    let h = |n: u64| now.minus(Duration::from_secs(n * 3600));
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Mutex::new(Store::open(&dir.path().join("s.db")).unwrap()));
    let settings = PollSettings {
        page_size: 2,
        ..SETTINGS
    };
    let endpoint = Scoped {
        inner: FakeSource::new(
            vec![FakeAlert::new("da1", h(1), Some(h(1)))],
            OrderBy::Sorted,
        ),
        services: "microsoftDefenderForEndpoint",
        fail_from: u64::MAX,
    };
    block_on(poll_tenant(&endpoint, &store, "t", settings)).unwrap();
    let world = || {
        let mut w = vec![FakeAlert::new("da1", h(1), Some(h(1)))];
        for (i, at) in [50u64, 48, 46, 44, 42, 40].into_iter().enumerate() {
            w.push(FakeAlert::new(format!("fa{i}"), h(at), Some(h(at))));
        }
        w
    };
    // The widened poll: its first page (and the order check) commit, then the API stops answering.
    let all = Scoped {
        inner: FakeSource::new(world(), OrderBy::Sorted),
        services: "all",
        fail_from: 3,
    };
    let r = block_on(poll_tenant(&all, &store, "t", settings));
    assert!(r.is_err(), "the read-back was interrupted");
    // The next polls, the API healthy again.
    for _ in 0..2 {
        let all = Scoped {
            inner: FakeSource::new(world(), OrderBy::Sorted),
            services: "all",
            fail_from: u64::MAX,
        };
        block_on(poll_tenant(&all, &store, "t", settings)).unwrap();
    }
    let got = ids(&store.lock().unwrap());
    assert_eq!(
        got.len(),
        7,
        "the rest of the read-back is abandoned: {got:?}"
    );
}
