//! An in-memory [`AlertSource`] that answers [`PageRequest`]s exactly as the API's filter, order,
//! `$top` and `$skip` say, over a world the test changes between calls: the pager's test double.
//!
//! It is small and has no dependencies, so it is part of the library (not `cfg(test)`) and the
//! integration tests use it too. Its hazards are the ones that matter to the pager: alerts that
//! move while pages are read, alerts that become visible late, many alerts at one instant, odd
//! creation times, and `$orderby` refused or ignored.

use std::sync::Mutex;

use super::{AlertSource, Bound, Created, Page, PageRequest, SourceError};
use crate::alert::Alert;
use crate::alert::time::ApiTime;

/// One alert of the fake world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeAlert {
    /// Its id.
    pub id: String,
    /// `lastUpdateTime`.
    pub updated: ApiTime,
    /// `alertCreationTime` (`None`: null).
    pub created: Option<ApiTime>,
    /// Bumped on every change, so versions differ in content.
    pub version: u32,
    /// Calls to come before it is visible (late ingestion); 0 = visible.
    pub hidden_for: u32,
}

impl FakeAlert {
    /// A visible alert.
    pub fn new(id: impl Into<String>, updated: ApiTime, created: Option<ApiTime>) -> Self {
        FakeAlert {
            id: id.into(),
            updated,
            created,
            version: 0,
            hidden_for: 0,
        }
    }

    /// Its JSON, as the API would send it.
    pub fn json(&self) -> String {
        serde_json::json!({
            "id": self.id,
            "lastUpdateTime": self.updated.to_api_string(),
            "alertCreationTime": self.created.map(|c| c.to_api_string()),
            "status": if self.version % 3 == 2 { "Resolved" } else { "New" },
            "title": format!("alert {} v{}", self.id, self.version),
        })
        .to_string()
    }
}

/// How the fake treats `$orderby`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrderBy {
    /// Honoured.
    #[default]
    Sorted,
    /// Answered with 400.
    Refused,
    /// Accepted, but pages come in reverse id order.
    Ignored,
    /// Accepted, but pages come in creation order: often close to update order, so pages look
    /// sorted while an alert updated later waits behind newer ones.
    ByCreation,
}

/// What a test may do to the world before each call.
pub type Mutator = Box<dyn FnMut(u64, &mut Vec<FakeAlert>) + Send>;

/// The fake source.
pub struct FakeSource {
    state: Mutex<State>,
    order: OrderBy,
    /// How far the server's clock is behind this machine's (its `Date` header), if it sends one.
    server_behind: Option<std::time::Duration>,
}

struct State {
    alerts: Vec<FakeAlert>,
    calls: u64,
    mutate: Option<Mutator>,
}

impl std::fmt::Debug for FakeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeSource")
            .field("order", &self.order)
            .finish_non_exhaustive()
    }
}

impl FakeSource {
    /// A world of `alerts`.
    pub fn new(alerts: Vec<FakeAlert>, order: OrderBy) -> Self {
        FakeSource {
            state: Mutex::new(State {
                alerts,
                calls: 0,
                mutate: None,
            }),
            order,
            server_behind: None,
        }
    }

    /// The server sends a `Date` this far behind this machine's clock.
    pub fn with_server_clock_behind(mut self, by: std::time::Duration) -> Self {
        self.server_behind = Some(by);
        self
    }

    /// Calls `f(call number, world)` before every call from now on (`None` stops it).
    pub fn set_mutator(&self, f: Option<Mutator>) {
        self.lock().mutate = f;
    }

    /// Changes the world now.
    pub fn with_world<T>(&self, f: impl FnOnce(&mut Vec<FakeAlert>) -> T) -> T {
        f(&mut self.lock().alerts)
    }

    /// Every alert's latest version, visible or not: what a perfect client ends up with.
    pub fn truth(&self) -> Vec<FakeAlert> {
        self.lock().alerts.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn matches(a: &FakeAlert, r: &PageRequest) -> bool {
    let t = a.updated;
    let bound = match r.bound {
        Bound::AtOrAfter(b) => t >= b,
        Bound::After(b) => t > b,
        Bound::Exactly(b) => t == b,
    };
    let created = match (r.created, a.created) {
        (None, _) => true,
        (Some(Created::Missing), c) => c.is_none(),
        (Some(Created::Within(_, _)), None) => false,
        (Some(Created::Within(lo, hi)), Some(c)) => {
            lo.is_none_or(|lo| c >= lo) && hi.is_none_or(|hi| c < hi)
        }
    };
    bound && created && r.before.is_none_or(|b| t < b) && a.hidden_for == 0
}

impl AlertSource for FakeSource {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn fetch(&self, r: &PageRequest) -> Result<Page, SourceError> {
        let mut guard = self.lock();
        let s = &mut *guard;
        s.calls += 1;
        for a in &mut s.alerts {
            a.hidden_for = a.hidden_for.saturating_sub(1);
        }
        if let Some(m) = s.mutate.as_mut() {
            m(s.calls, &mut s.alerts);
        }
        if r.ordered && self.order == OrderBy::Refused {
            return Err(SourceError::Refused {
                api: "fake",
                status: 400,
                code: crate::redact::ServerText::new("InvalidOrderBy"),
                message: crate::redact::ServerText::new("$orderby is not supported"),
                hint: String::new(),
            });
        }
        let mut hits: Vec<&FakeAlert> = s.alerts.iter().filter(|a| matches(a, r)).collect();
        if r.ordered && self.order == OrderBy::Sorted {
            hits.sort_by(|a, b| a.updated.cmp(&b.updated).then(a.id.cmp(&b.id)));
        } else if self.order == OrderBy::ByCreation {
            hits.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        } else {
            // An order that is stable for `$skip` but unrelated to time.
            hits.sort_by(|a, b| b.id.cmp(&a.id));
        }
        let alerts: Vec<Alert> = hits
            .into_iter()
            .skip(r.skip as usize)
            .take(r.top as usize)
            .map(|a| Alert::parse(&a.json()).expect("the fake's JSON is valid"))
            .collect();
        Ok(Page {
            next: None,
            next_text: None,
            received: alerts.len(),
            alerts,
            rejected: Vec::new(),
            more: false,
            served_at: self.server_behind.map(|b| ApiTime::now().minus(b)),
        })
    }

    fn calls(&self) -> u64 {
        self.lock().calls
    }
}
