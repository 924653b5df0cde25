//! Prometheus metrics for node_exporter's textfile collector, and the figures `status` shows.
//!
//! `poll` rewrites `[metrics] textfile` after its run, and the daemon at most every ten seconds
//! while polls finish (`daemon::publish`), atomically — the collector reads it at any moment, so
//! it must never see half a file. Everything comes from the
//! store, so the figures are the same whichever process wrote them.

use std::fmt::Write as _;
use std::path::Path;

use crate::alert::time::ApiTime;
use crate::store::{Outcome, Store, StoreError};

/// One tenant's health figures.
#[derive(Debug, Clone, Default)]
pub(crate) struct TenantFigures {
    /// The tenant.
    pub(crate) tenant: String,
    /// The last poll: (finished, outcome, duration in seconds, API calls, 429s).
    pub(crate) last_poll: Option<LastRun>,
    /// When the last successful (or partial) poll finished.
    pub(crate) last_success: Option<ApiTime>,
    /// Alerts stored, by (severity, status).
    pub(crate) alerts: Vec<crate::store::SeverityStatusCount>,
    /// Polls, calls, 429s, failures and alerts stored since the store was made.
    counters: crate::store::RunCounters,
}

/// A finished poll.
#[derive(Debug, Clone)]
pub(crate) struct LastRun {
    /// When it finished (or started, if it never finished).
    pub(crate) at: ApiTime,
    /// How it ended; `None` while it runs.
    pub(crate) outcome: Option<Outcome>,
    /// Wall time.
    pub(crate) duration_secs: f64,
    /// API calls.
    pub(crate) api_calls: i64,
    /// 429 answers.
    pub(crate) throttled: i64,
    /// The error, if it failed.
    pub(crate) error: Option<String>,
}

/// Reads the figures of `tenant` from the store.
pub(crate) fn tenant_figures(store: &Store, tenant: &str) -> Result<TenantFigures, StoreError> {
    let runs = store.runs(Some(tenant), 200)?;
    let polls: Vec<_> = runs.iter().filter(|r| r.kind == "poll").collect();
    let parse = |t: &str| ApiTime::parse(t).ok();
    let last_poll = polls.first().map(|r| {
        let start = parse(r.last_start());
        let end = r.finished_at.as_deref().and_then(parse);
        LastRun {
            at: end.or(start).unwrap_or(ApiTime::from_ticks(0)),
            outcome: Outcome::parse(&r.outcome),
            duration_secs: match (start, end) {
                (Some(s), Some(e)) => (e.ticks() - s.ticks()) as f64 / 1e7,
                _ => 0.0,
            },
            api_calls: r.api_calls,
            throttled: r.throttled,
            error: r.error.clone(),
        }
    });
    let last_success = polls
        .iter()
        .find(|r| Outcome::parse(&r.outcome).is_some_and(Outcome::succeeded))
        .and_then(|r| r.finished_at.as_deref().and_then(parse));
    Ok(TenantFigures {
        tenant: tenant.to_owned(),
        last_poll,
        last_success,
        alerts: store.alerts_by_severity_status(tenant)?,
        counters: store.run_counters(tenant)?,
    })
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The store's size on disk: the database file and its write-ahead log apart
/// ([`crate::store::retention::sizes_on_disk`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StoreSize {
    /// The database file, bytes.
    database: u64,
    /// The write-ahead log, bytes.
    wal: u64,
}

impl StoreSize {
    /// Reads it (two `stat`s).
    pub(crate) fn of(store: &Store) -> StoreSize {
        let (database, wal) = crate::store::retention::sizes_on_disk(store);
        StoreSize { database, wal }
    }
}

/// The textfile's contents. `token_expiry` holds each tenant's current token expiry (Unix
/// seconds), when the caller knows it.
pub(crate) fn render<'a>(
    figures: impl IntoIterator<Item = &'a TenantFigures>,
    token_expiry: &[(String, i64)],
    size: StoreSize,
) -> String {
    let figures: Vec<&TenantFigures> = figures.into_iter().collect();
    let mut out = String::new();
    let secs = |t: ApiTime| t.ticks() as f64 / 1e7;
    let mut family = |name: &str, help: &str, kind: &str, rows: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    };
    let t = |f: &TenantFigures| format!("tenant=\"{}\"", label(&f.tenant));
    family(
        "mde_alerts_last_success_timestamp_seconds",
        "When the last successful poll finished.",
        "gauge",
        figures
            .iter()
            .copied()
            .filter_map(|f| f.last_success.map(|s| (t(f), secs(s))))
            .collect(),
    );
    family(
        "mde_alerts_last_run_timestamp_seconds",
        "When the last poll finished.",
        "gauge",
        figures
            .iter()
            .copied()
            .filter_map(|f| f.last_poll.as_ref().map(|r| (t(f), secs(r.at))))
            .collect(),
    );
    family(
        "mde_alerts_last_run_success",
        "1 if the last poll succeeded (or stopped at its deadline), else 0.",
        "gauge",
        figures
            .iter()
            .copied()
            .filter_map(|f| {
                f.last_poll.as_ref().map(|r| {
                    let ok = r.outcome.is_some_and(Outcome::succeeded);
                    (t(f), if ok { 1.0 } else { 0.0 })
                })
            })
            .collect(),
    );
    family(
        "mde_alerts_last_run_duration_seconds",
        "Wall time of the last poll.",
        "gauge",
        figures
            .iter()
            .copied()
            .filter_map(|f| f.last_poll.as_ref().map(|r| (t(f), r.duration_secs)))
            .collect(),
    );
    family(
        "mde_alerts_last_run_api_calls",
        "API calls of the last poll, retries included.",
        "gauge",
        figures
            .iter()
            .copied()
            .filter_map(|f| f.last_poll.as_ref().map(|r| (t(f), r.api_calls as f64)))
            .collect(),
    );
    family(
        "mde_alerts_last_run_throttled",
        "429 answers in the last poll.",
        "gauge",
        figures
            .iter()
            .copied()
            .filter_map(|f| f.last_poll.as_ref().map(|r| (t(f), r.throttled as f64)))
            .collect(),
    );
    let by_severity_status: Vec<(String, f64)> = figures
        .iter()
        .copied()
        .flat_map(|f| {
            f.alerts.iter().map(move |((sev, st), n)| {
                (
                    format!(
                        "{},severity=\"{}\",status=\"{}\"",
                        t(f),
                        label(sev),
                        label(st)
                    ),
                    *n as f64,
                )
            })
        })
        .collect();
    family(
        "mde_alerts_stored",
        "Alerts stored, by severity and status.",
        "gauge",
        by_severity_status.clone(),
    );
    // The old name, kept for one release so that dashboards and alert rules can move.
    family(
        "mde_alerts_alerts",
        "Deprecated: the same as mde_alerts_stored, which replaces it; removed in the next release.",
        "gauge",
        by_severity_status,
    );
    type Counter = (
        &'static str,
        &'static str,
        fn(&crate::store::RunCounters) -> i64,
    );
    let counters: [Counter; 6] = [
        ("mde_alerts_polls_total", "Polls finished.", |c| c.polls),
        (
            "mde_alerts_poll_failures_total",
            "Polls that failed or were interrupted.",
            |c| c.failed,
        ),
        (
            "mde_alerts_api_calls_total",
            "API calls made by polls, retries included.",
            |c| c.api_calls,
        ),
        (
            "mde_alerts_throttled_total",
            "429 (throttled) answers polls received.",
            |c| c.throttled,
        ),
        (
            "mde_alerts_stored_new_total",
            "Alerts stored for the first time (polls and imports).",
            |c| c.new,
        ),
        (
            "mde_alerts_stored_updated_total",
            "Stored alerts whose state changed (polls and imports).",
            |c| c.updated,
        ),
    ];
    for (name, help, value) in counters {
        family(
            name,
            help,
            "counter",
            figures
                .iter()
                .copied()
                .map(|f| (t(f), value(&f.counters) as f64))
                .collect(),
        );
    }
    family(
        "mde_alerts_store_size_bytes",
        "The store on disk: the database file and its write-ahead log.",
        "gauge",
        vec![
            ("file=\"database\"".into(), size.database as f64),
            ("file=\"wal\"".into(), size.wal as f64),
        ],
    );
    family(
        "mde_alerts_build_info",
        "The running version of mde-alerts (always 1).",
        "gauge",
        vec![(
            format!("version=\"{}\"", label(env!("CARGO_PKG_VERSION"))),
            1.0,
        )],
    );
    family(
        "mde_alerts_token_expiry_timestamp_seconds",
        "When the current access token expires.",
        "gauge",
        token_expiry
            .iter()
            .map(|(tenant, e)| (format!("tenant=\"{}\"", label(tenant)), *e as f64))
            .collect(),
    );
    out
}

/// Reads the figures of `tenants` and rewrites the textfile. A file that cannot be written is
/// logged, not fatal: the alerts are stored, and the next run tries again.
pub(crate) fn publish(
    path: &Path,
    store: &Store,
    tenants: &[String],
    token_expiry: &[(String, i64)],
) -> Result<(), StoreError> {
    let figures = tenants
        .iter()
        .map(|t| tenant_figures(store, t))
        .collect::<Result<Vec<_>, _>>()?;
    if let Err(e) = write(path, &render(&figures, token_expiry, StoreSize::of(store))) {
        tracing::warn!(error = %e, file = %path.display(), "Cannot write the metrics textfile.");
    }
    Ok(())
}

/// Writes the textfile atomically (mode 0644: node_exporter runs as another user).
pub(crate) fn write(path: &Path, text: &str) -> std::io::Result<()> {
    crate::export::write_atomic(path, 0o644, |f| {
        std::io::Write::write_all(f, text.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let f = TenantFigures {
            tenant: "con\"toso".into(),
            last_poll: Some(LastRun {
                at: ApiTime::from_ticks(17_000_000_000_000_000),
                outcome: Some(Outcome::Ok),
                duration_secs: 1.5,
                api_calls: 3,
                throttled: 0,
                error: None,
            }),
            last_success: Some(ApiTime::from_ticks(17_000_000_000_000_000)),
            alerts: vec![(("High".into(), "New".into()), 4)],
            counters: crate::store::RunCounters {
                polls: 7,
                api_calls: 21,
                ..Default::default()
            },
        };
        let size = StoreSize {
            database: 4096,
            wal: 0,
        };
        let text = render(&[f], &[("con\"toso".into(), 1_700_000_000)], size);
        assert!(text.contains(
            "mde_alerts_last_success_timestamp_seconds{tenant=\"con\\\"toso\"} 1700000000"
        ));
        assert!(text.contains(
            "mde_alerts_alerts{tenant=\"con\\\"toso\",severity=\"High\",status=\"New\"} 4"
        ));
        assert!(text.contains("# TYPE mde_alerts_last_run_success gauge"));
        assert!(text.contains("mde_alerts_last_run_success{tenant=\"con\\\"toso\"} 1"));
        assert!(text.contains(
            "mde_alerts_stored{tenant=\"con\\\"toso\",severity=\"High\",status=\"New\"} 4"
        ));
        assert!(text.contains("# TYPE mde_alerts_polls_total counter"));
        assert!(text.contains("mde_alerts_polls_total{tenant=\"con\\\"toso\"} 7"));
        assert!(text.contains("mde_alerts_api_calls_total{tenant=\"con\\\"toso\"} 21"));
        assert!(text.contains("mde_alerts_store_size_bytes{file=\"database\"} 4096"));
        assert!(text.contains(&format!(
            "mde_alerts_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
        assert!(text.contains("# HELP mde_alerts_alerts Deprecated"));
        check_exposition(&text);
    }

    /// The text exposition format, strictly: every family once, HELP then TYPE before its
    /// samples, counters named `_total`, every sample `name{label="…",…} number` of its family.
    pub(crate) fn check_exposition(text: &str) {
        let name = regex::Regex::new(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$").unwrap();
        let sample = regex::Regex::new(
            r#"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*")*\})? (\S+)$"#,
        )
        .unwrap();
        let mut seen = std::collections::HashSet::new();
        let mut current: Option<(String, String)> = None;
        let mut helped: Option<String> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (n, help) = rest.split_once(' ').expect("HELP has text");
                assert!(name.is_match(n) && !help.is_empty(), "{line}");
                assert!(seen.insert(n.to_owned()), "family {n} twice");
                helped = Some(n.to_owned());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (n, kind) = rest.split_once(' ').expect("TYPE has a kind");
                assert_eq!(
                    helped.as_deref(),
                    Some(n),
                    "TYPE right after its HELP: {line}"
                );
                assert!(matches!(kind, "gauge" | "counter"), "{line}");
                if kind == "counter" {
                    assert!(n.ends_with("_total"), "a counter is named _total: {n}");
                }
                current = Some((n.to_owned(), kind.to_owned()));
            } else {
                let c = sample
                    .captures(line)
                    .unwrap_or_else(|| panic!("not a sample: {line:?}"));
                let (family, _) = current.as_ref().expect("a sample after its TYPE");
                assert_eq!(&c[1], family, "{line}");
                c[3].parse::<f64>()
                    .unwrap_or_else(|_| panic!("not a number: {line}"));
            }
        }
        assert!(text.ends_with('\n'));
    }
}
