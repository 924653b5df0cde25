//! `compare`: what a tenant would gain and lose by switching from the MDE API to Graph, seen before
//! the switch.
//!
//! Microsoft documents that `alerts_v2` leaves out alerts suppressed by tuning rules and standalone
//! alerts not promoted to an incident, and Graph returns other Defender products' alerts the MDE
//! API never did. An admin should see both lists for their own tenant, not read about them. So
//! both APIs are read over the same window, each with the same lossless pager a poll uses, into
//! throw-away stores in a temporary directory (the real store is not touched), and the two are
//! compared by alert id: for endpoint alerts Graph's `id` is the MDE API's `da…` id.
//!
//! Alerts that change while the two reads run can show up as "different" or, at the window's
//! lower edge, on one side only; the report says so rather than pretend the two reads were
//! simultaneous.
//!
//! The throw-away stores hold a tenant's alerts: their directory is readable by its owner alone
//! ([`work_dir`]), and the caller removes it on every exit, signals included. The reads have a
//! deadline: an API that never ends its paging (a `nextLink` that loops) would otherwise keep
//! the command waiting for budget for ever.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::config::{Config, SourceKind, TenantConfig};
use crate::env::Environment;
use crate::error::Error;
use crate::poll::{PollSettings, poll_tenant};
use crate::source::AlertSource;
use crate::store::{Outcome, Store};

/// How long a comparison may take when the caller sets no limit.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// One API's side of a comparison.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Side {
    /// Alerts it returned over the window.
    pub alerts: u64,
    /// API calls the read cost.
    pub api_calls: u64,
    /// Why it could not be read (a missing permission, an API that is off), when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An alert only one API returned.
#[derive(Debug, Clone, Serialize)]
pub struct Only {
    /// Its id.
    pub id: String,
    /// Its status, in the MDE vocabulary.
    pub status: Option<String>,
    /// What detected it (`detectionSource`), as the API wrote it.
    pub detection_source: Option<String>,
    /// Graph's `serviceSource` (the Defender product), for alerts only Graph returned.
    pub service_source: Option<String>,
    /// Its title.
    pub title: Option<String>,
}

/// An alert both returned, with a different status or severity.
#[derive(Debug, Clone, Serialize)]
pub struct Different {
    /// Its id.
    pub id: String,
    /// Status per the MDE API / Graph (MDE vocabulary).
    pub status: (Option<String>, Option<String>),
    /// Severity per the MDE API / Graph (MDE vocabulary).
    pub severity: (Option<String>, Option<String>),
}

/// One tenant's comparison.
#[derive(Debug, Clone, Serialize)]
pub struct TenantComparison {
    /// The tenant's name.
    pub name: String,
    /// What the MDE API returned.
    pub mde: Side,
    /// What Graph returned.
    pub graph: Side,
    /// Alerts only the MDE API returned.
    pub only_in_mde: Vec<Only>,
    /// Alerts only Graph returned.
    pub only_in_graph: Vec<Only>,
    /// Alerts whose status or severity differ.
    pub different: Vec<Different>,
}

impl TenantComparison {
    /// Both APIs were read.
    pub fn complete(&self) -> bool {
        self.mde.error.is_none() && self.graph.error.is_none()
    }

    /// The `--json` form scripts read: ids only, so the form stays stable as alerts grow fields.
    pub fn to_json(&self) -> serde_json::Value {
        let ids = |v: &[Only]| v.iter().map(|o| o.id.clone()).collect::<Vec<_>>();
        serde_json::json!({
            "name": self.name,
            "mde": self.mde,
            "graph": self.graph,
            "only_in_mde": ids(&self.only_in_mde),
            "only_in_graph": ids(&self.only_in_graph),
            "different": self.different.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
            "details": {
                "only_in_mde": self.only_in_mde,
                "only_in_graph": self.only_in_graph,
                "different": self.different,
            },
        })
    }
}

/// What one side's temporary store holds, by id.
type Seen = BTreeMap<String, (Option<String>, Option<String>, String)>;

/// A new private directory for the throw-away stores: mode 0700 whatever the umask, in
/// `$TMPDIR`; removed when dropped.
pub fn work_dir() -> Result<tempfile::TempDir, Error> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix(".mde-alerts-compare-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .map_err(Error::io(
            "cannot make a private temporary directory for the comparison (set TMPDIR to a writable directory)",
        ))
}

/// Compares each tenant (or `only`) over the last `since`, within [`DEFAULT_TIMEOUT`], in a
/// [`work_dir`] of its own.
pub(crate) async fn compare(
    config: &Config,
    only: Option<&str>,
    since: Duration,
) -> Result<Vec<TenantComparison>, Error> {
    let dir = work_dir()?;
    compare_in(config, only, since, DEFAULT_TIMEOUT, dir.path()).await
}

/// Compares each tenant (or `only`) over the last `since`, keeping the throw-away stores in
/// `dir` (the caller's to remove) and giving up on the reads `timeout` after the start: a side
/// not read by then is reported as not read, with the calls it made.
pub async fn compare_in(
    config: &Config,
    only: Option<&str>,
    since: Duration,
    timeout: Duration,
    dir: &std::path::Path,
) -> Result<Vec<TenantComparison>, Error> {
    let tenants: Vec<&Arc<TenantConfig>> = match only {
        Some(name) => vec![config.tenant(name)?],
        None => config.tenants.iter().collect(),
    };
    let env = Environment::new(config)?;
    let now = tokio::time::Instant::now();
    let deadline = crate::http::later(now, timeout).unwrap_or(now + DEFAULT_TIMEOUT);
    let reading = Reading { since, deadline };
    let mut out = Vec::new();
    for (i, t) in tenants.into_iter().enumerate() {
        let at = |s: SourceKind| dir.join(format!("tenant{i}-{}.db", s.as_str()));
        let (mde, mde_seen) = read_side(
            &env,
            config,
            t,
            SourceKind::Mde,
            reading,
            &at(SourceKind::Mde),
        )
        .await?;
        let (graph, graph_seen) = read_side(
            &env,
            config,
            t,
            SourceKind::Graph,
            reading,
            &at(SourceKind::Graph),
        )
        .await?;
        out.push(diff(&t.name, mde, &mde_seen, graph, &graph_seen));
    }
    Ok(out)
}

/// The window both sides read, and when they must be done.
#[derive(Debug, Clone, Copy)]
struct Reading {
    since: Duration,
    deadline: tokio::time::Instant,
}

/// How long past the deadline a read may take to end on its own (its current call, the commit
/// of the page in hand) before it is abandoned.
const DEADLINE_GRACE: Duration = Duration::from_secs(30);

/// Reads one API over the window into a temporary store, and what it holds.
async fn read_side(
    env: &Environment,
    config: &Config,
    t: &TenantConfig,
    source: SourceKind,
    reading: Reading,
    path: &std::path::Path,
) -> Result<(Side, Seen), Error> {
    // Pinned to `source`; the budget is shared with a running service: start from the calls it
    // recorded.
    let tenant = env.tenant(&t.reading(source), recent_calls(config, &t.name))?;
    let store = Arc::new(Mutex::new(Store::open(path)?));
    let settings = PollSettings {
        initial_lookback: reading.since,
        ..env.poll_settings(source)
    };
    let api = env
        .source(&tenant, source, Some(reading.deadline))
        .expect("a tenant pinned to an API has its lane");
    let polled = tokio::time::timeout_at(
        reading
            .deadline
            .checked_add(DEADLINE_GRACE)
            .unwrap_or(reading.deadline),
        poll_tenant(&api, &store, &t.name, settings),
    )
    .await;
    // The calls made, whatever the outcome: a side that failed cost calls too.
    let mut side = Side {
        api_calls: api.calls(),
        ..Side::default()
    };
    let stopped = "it did not finish before the comparison's deadline (--timeout): only part of the window was read, so nothing is compared (an API whose paging never ends does this)";
    match polled {
        Ok(Ok(r)) if matches!(r.outcome, Outcome::Partial | Outcome::Stalled) => {
            side.error = Some(stopped.to_owned());
            return Ok((side, Seen::new()));
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            side.error = Some(e.to_string());
            return Ok((side, Seen::new()));
        }
        Err(_) => {
            side.error = Some(stopped.to_owned());
            return Ok((side, Seen::new()));
        }
    }
    let s = store.lock().unwrap_or_else(|p| p.into_inner());
    let seen = read_seen(&s)?;
    side.alerts = seen.len() as u64;
    Ok((side, seen))
}

fn recent_calls(config: &Config, tenant: &str) -> Vec<std::time::SystemTime> {
    Store::open_read_only(&config.store.path)
        .and_then(|s| s.recent_calls(tenant))
        .unwrap_or_default()
}

fn read_seen(s: &Store) -> Result<Seen, Error> {
    let read_back = |source| Error::ReadBack {
        path: s.path().to_path_buf(),
        source,
    };
    let mut seen = Seen::new();
    let mut stmt = s
        .connection()
        .prepare("SELECT a.id, a.status, a.severity, r.raw FROM alerts a JOIN alert_revisions r ON r.rev = a.rev")
        .map_err(read_back)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .map_err(read_back)?;
    for row in rows {
        let (id, status, severity, raw) = row.map_err(read_back)?;
        seen.insert(id, (status, severity, raw));
    }
    Ok(seen)
}

fn only(id: &str, status: &Option<String>, raw: &str) -> Only {
    let v: serde_json::Value = serde_json::from_str(raw).unwrap_or_default();
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    Only {
        id: id.to_owned(),
        status: status.clone(),
        detection_source: text("detectionSource"),
        service_source: text("serviceSource"),
        title: text("title"),
    }
}

fn diff(name: &str, mde: Side, m: &Seen, graph: Side, g: &Seen) -> TenantComparison {
    let mut c = TenantComparison {
        name: name.to_owned(),
        mde,
        graph,
        only_in_mde: Vec::new(),
        only_in_graph: Vec::new(),
        different: Vec::new(),
    };
    // A side that could not be read has nothing to compare.
    if !c.complete() {
        return c;
    }
    for (id, (status, severity, raw)) in m {
        match g.get(id) {
            None => c.only_in_mde.push(only(id, status, raw)),
            Some((gs, gv, _)) => {
                let same = |a: &Option<String>, b: &Option<String>| {
                    a.as_deref().map(str::to_ascii_lowercase)
                        == b.as_deref().map(str::to_ascii_lowercase)
                };
                if !same(status, gs) || !same(severity, gv) {
                    c.different.push(Different {
                        id: id.clone(),
                        status: (status.clone(), gs.clone()),
                        severity: (severity.clone(), gv.clone()),
                    });
                }
            }
        }
    }
    for (id, (status, _, raw)) in g {
        if !m.contains_key(id) {
            c.only_in_graph.push(only(id, status, raw));
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(rows: &[(&str, &str, &str, &str)]) -> Seen {
        rows.iter()
            .map(|(id, st, sev, raw)| {
                (
                    id.to_string(),
                    (Some(st.to_string()), Some(sev.to_string()), raw.to_string()),
                )
            })
            .collect()
    }

    #[test]
    fn the_diff_names_what_each_side_alone_has_and_what_differs() {
        let m = seen(&[
            (
                "da1",
                "New",
                "High",
                r#"{"detectionSource":"WindowsDefenderAv"}"#,
            ),
            (
                "da2",
                "Resolved",
                "Low",
                r#"{"detectionSource":"CustomDetection","title":"tuned"}"#,
            ),
            ("da3", "InProgress", "Medium", "{}"),
        ]);
        let g = seen(&[
            ("da1", "New", "High", "{}"),
            ("da3", "Resolved", "Medium", "{}"),
            (
                "fa9",
                "New",
                "Low",
                r#"{"serviceSource":"microsoftDefenderForOffice365"}"#,
            ),
        ]);
        let c = diff("t", Side::default(), &m, Side::default(), &g);
        assert_eq!(c.only_in_mde.len(), 1);
        assert_eq!(c.only_in_mde[0].id, "da2");
        assert_eq!(
            c.only_in_mde[0].detection_source.as_deref(),
            Some("CustomDetection")
        );
        assert_eq!(
            c.only_in_graph[0].service_source.as_deref(),
            Some("microsoftDefenderForOffice365")
        );
        assert_eq!(c.different.len(), 1);
        assert_eq!(c.different[0].id, "da3");
        let j = c.to_json();
        assert_eq!(j["only_in_mde"], serde_json::json!(["da2"]));
        assert_eq!(j["only_in_graph"], serde_json::json!(["fa9"]));
        assert_eq!(j["different"], serde_json::json!(["da3"]));
        assert_eq!(j["mde"]["alerts"], 0);
    }

    #[test]
    fn a_side_that_failed_compares_nothing() {
        let m = seen(&[("da1", "New", "High", "{}")]);
        let g = Seen::new();
        let failed = Side {
            error: Some("403".into()),
            ..Side::default()
        };
        let c = diff("t", Side::default(), &m, failed, &g);
        assert!(!c.complete());
        assert!(
            c.only_in_mde.is_empty(),
            "not 'only in MDE': Graph was not read"
        );
    }
}
