//! `store check`: SQLite's own integrity check, then the store's invariants, each a query that
//! lists what breaks it. A store written only by mde-alerts passes; a failure means a disk, a copy
//! or a hand-made edit went wrong, and the message names the rows.

use serde::Serialize;

use super::{Store, StoreError};
use crate::alert::time::ApiTime;

/// Problems listed per kind; more are counted, not listed.
const LISTED: usize = 20;

/// One kind of problem, with the rows that have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// A stable name: `integrity`, `alert_without_revision`, `revision_of_another_alert`,
    /// `not_latest_revision`, `revision_without_alert`, `cursor_past_newest`.
    pub kind: &'static str,
    /// What is wrong, in words.
    pub what: String,
    /// How many rows (or SQLite messages) have it.
    pub count: u64,
    /// The first few of them.
    pub examples: Vec<String>,
}

/// What `store check` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// Alerts, revisions and cursors looked at.
    pub alerts: u64,
    /// Revisions looked at.
    pub revisions: u64,
    /// Cursors looked at.
    pub cursors: u64,
    /// Everything wrong; empty when the store is sound.
    pub problems: Vec<Problem>,
}

impl CheckReport {
    /// Whether the store is sound.
    pub fn is_sound(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Each invariant: its name, its words, and a query returning one text per offending row.
const INVARIANTS: &[(&str, &str, &str)] = &[
    (
        "alert_without_revision",
        "alert rows point at a revision that does not exist",
        "SELECT a.tenant || '/' || a.id || ' → rev ' || a.rev FROM alerts a \
         WHERE NOT EXISTS (SELECT 1 FROM alert_revisions r WHERE r.rev = a.rev)",
    ),
    (
        "revision_of_another_alert",
        "alert rows point at a revision of another alert",
        "SELECT a.tenant || '/' || a.id || ' → rev ' || a.rev || ' of ' || r.tenant || '/' || r.alert_id \
         FROM alerts a JOIN alert_revisions r ON r.rev = a.rev \
         WHERE r.tenant <> a.tenant OR r.alert_id <> a.id",
    ),
    (
        "not_latest_revision",
        "alert rows are not their alert's latest revision (a newer one is stored, or the row's time or hash differ from its revision's)",
        "SELECT a.tenant || '/' || a.id || ' → rev ' || a.rev FROM alerts a JOIN alert_revisions r ON r.rev = a.rev \
         WHERE r.tenant = a.tenant AND r.alert_id = a.id AND ( \
           r.last_update_time <> a.last_update_time OR r.content_hash <> a.content_hash \
           OR EXISTS (SELECT 1 FROM alert_revisions n WHERE n.tenant = a.tenant AND n.alert_id = a.id \
                      AND n.last_update_time > a.last_update_time))",
    ),
    (
        "revision_without_alert",
        "revisions belong to no alert row",
        "SELECT r.tenant || '/' || r.alert_id || ' rev ' || r.rev FROM alert_revisions r \
         WHERE NOT EXISTS (SELECT 1 FROM alerts a WHERE a.tenant = r.tenant AND a.id = r.alert_id)",
    ),
];

/// Runs the checks. Reads the whole store (SQLite's check does): minutes on a large one.
pub fn check(store: &Store) -> Result<CheckReport, StoreError> {
    let conn = store.connection();
    let run = || -> rusqlite::Result<CheckReport> {
        let count = |sql: &str| {
            conn.query_row(sql, [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
        };
        let mut report = CheckReport {
            alerts: count("SELECT count(*) FROM alerts")?,
            revisions: count("SELECT count(*) FROM alert_revisions")?,
            cursors: count("SELECT count(*) FROM cursors")?,
            problems: Vec::new(),
        };
        let listed = |sql: &str| -> rusqlite::Result<(u64, Vec<String>)> {
            let mut stmt = conn.prepare(sql)?;
            let mut rows = stmt.query([])?;
            let (mut n, mut examples) = (0u64, Vec::new());
            while let Some(row) = rows.next()? {
                n += 1;
                if examples.len() < LISTED {
                    examples.push(row.get::<_, Option<String>>(0)?.unwrap_or_default());
                }
            }
            Ok((n, examples))
        };
        let (n, messages) = listed("PRAGMA integrity_check")?;
        if !(n == 1 && messages.first().is_some_and(|m| m == "ok")) {
            report.problems.push(Problem {
                kind: "integrity",
                what: "SQLite's integrity check failed".into(),
                count: n,
                examples: messages,
            });
        }
        for (kind, what, sql) in INVARIANTS {
            let (n, examples) = listed(sql)?;
            if n > 0 {
                report.problems.push(Problem {
                    kind,
                    what: (*what).into(),
                    count: n,
                    examples,
                });
            }
        }
        // A cursor promises that everything up to it is stored: it may not be past the newest
        // alert the store holds for its tenant.
        let mut stmt = conn.prepare(
            "SELECT c.tenant, c.last_update_time, (SELECT max(a.last_update_time) FROM alerts a WHERE a.tenant = c.tenant) \
             FROM cursors c ORDER BY c.tenant",
        )?;
        let past: Vec<String> = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                ))
            })?
            .filter_map(|row| match row {
                Ok((t, c, newest)) if newest.is_none_or(|n| c > n) => Some(Ok(format!(
                    "{t}: cursor {} but the newest stored alert is {}",
                    ApiTime::from_ticks(c),
                    newest.map_or("none".to_owned(), |n| ApiTime::from_ticks(n).to_string())
                ))),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<rusqlite::Result<_>>()?;
        if !past.is_empty() {
            report.problems.push(Problem {
                kind: "cursor_past_newest",
                what: "cursors are past the newest alert stored for their tenant".into(),
                count: past.len() as u64,
                examples: past.into_iter().take(LISTED).collect(),
            });
        }
        Ok(report)
    };
    run().map_err(|e| store.err(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Alert;

    fn alert(id: &str, t: &str) -> Alert {
        Alert::parse(&format!(
            r#"{{"id":"{id}","lastUpdateTime":"{t}","status":"New"}}"#
        ))
        .unwrap()
    }

    #[test]
    fn a_store_written_by_us_is_sound() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("a.db")).unwrap();
        assert!(check(&s).unwrap().is_sound());
        let t = ApiTime::parse("2024-01-01T00:00:02Z").unwrap();
        let mut w = s.writer().unwrap();
        w.upsert("t", &alert("a", "2024-01-01T00:00:01Z")).unwrap();
        w.upsert("t", &alert("a", "2024-01-01T00:00:02Z")).unwrap();
        w.upsert("t", &alert("b", "2024-01-01T00:00:00Z")).unwrap();
        w.advance_cursor("t", t, t, ("mde", "x")).unwrap();
        w.commit(None, 0).unwrap();
        let r = check(&s).unwrap();
        assert!(r.is_sound(), "{r:?}");
        assert_eq!((r.alerts, r.revisions, r.cursors), (2, 3, 1));
    }
}
