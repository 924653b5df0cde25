//! `store check`: SQLite's own integrity check, the store's invariants (each a query that lists
//! what breaks it), then every stored revision read back against its content hash. A store
//! written only by mde-alerts passes; a failure means a disk, a copy or a hand-made edit went
//! wrong, and the message names the rows.
//!
//! The hash is the key of deduplication: a revision whose text no longer hashes to it (altered,
//! or cut so that it is no longer JSON) passes SQLite's check and every invariant, yet is not
//! what was stored, and an export cannot read it. The revisions are read one at a time, in
//! `rev` order, so the check's memory does not grow with the store.
//!
//! What a check (or an export that met an unreadable row) found is also left beside the store
//! as a mark ([`mark_corrupt`]), so that `status` says the store is unhealthy until a check
//! passes again (`corruption_mark`).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Store, StoreError};
use crate::alert::Alert;
use crate::alert::time::ApiTime;

/// Problems listed per kind; more are counted, not listed.
const LISTED: usize = 20;

/// One kind of problem, with the rows that have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// A stable name: `integrity`, `alert_without_revision`, `revision_of_another_alert`,
    /// `not_latest_revision`, `revision_without_alert`, `cursor_past_newest`,
    /// `revision_not_json` (a revision's text is not an alert's JSON any more: cut or
    /// overwritten), `revision_hash_mismatch` (it is JSON, but not the content it was stored
    /// with).
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
    /// The alerts (`tenant/id`) whose current revision, the one every export reads, is
    /// damaged: the first few of them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub damaged_alerts: Vec<String>,
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
            damaged_alerts: Vec::new(),
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
        verify_revisions(conn, &mut report)?;
        Ok(report)
    };
    run().map_err(|e| store.err(e))
}

/// Reads every revision back and compares it with the content hash it was stored under (see
/// the module docs), one row at a time.
fn verify_revisions(conn: &rusqlite::Connection, report: &mut CheckReport) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(
        "SELECT r.rev, r.tenant, r.alert_id, r.content_hash, r.raw, \
                EXISTS (SELECT 1 FROM alerts a WHERE a.rev = r.rev) \
         FROM alert_revisions r ORDER BY r.rev",
    )?;
    let mut rows = stmt.query([])?;
    let mut not_json = Problem {
        kind: "revision_not_json",
        what: "revisions whose text is no longer an alert's JSON (cut short or overwritten): \
               exports skip them"
            .into(),
        count: 0,
        examples: Vec::new(),
    };
    let mut mismatch = Problem {
        kind: "revision_hash_mismatch",
        what: "revisions whose text is JSON but not the content they were stored with (their \
               content hash differs): altered after they were written"
            .into(),
        count: 0,
        examples: Vec::new(),
    };
    while let Some(row) = rows.next()? {
        let rev: i64 = row.get(0)?;
        let tenant = row.get_ref(1)?.as_str().unwrap_or("?").to_owned();
        let id = row.get_ref(2)?.as_str().unwrap_or("?").to_owned();
        let stored_hash = row.get_ref(3)?.as_blob().ok().map(<[u8]>::to_vec);
        let current: bool = row.get(5)?;
        // Text SQLite holds as a blob, or that is not UTF-8, cannot be an alert's JSON either.
        let parsed = row
            .get_ref(4)?
            .as_str()
            .ok()
            .map(Alert::parse)
            .and_then(Result::ok);
        let problem = match parsed {
            None => &mut not_json,
            Some(a) if stored_hash.as_deref() != Some(&a.hash[..]) || a.id != id => &mut mismatch,
            Some(_) => continue,
        };
        problem.count += 1;
        let name = format!("{tenant}/{id}");
        if problem.examples.len() < LISTED {
            problem.examples.push(format!(
                "{name} rev {rev}{}",
                if current {
                    " (its current revision: exports read this one)"
                } else {
                    " (an earlier revision)"
                }
            ));
        }
        if current && report.damaged_alerts.len() < LISTED {
            report.damaged_alerts.push(name);
        }
    }
    for p in [not_json, mismatch] {
        if p.count > 0 {
            report.problems.push(p);
        }
    }
    Ok(())
}

/// The mark beside the store at `db` that says it is known to be damaged.
fn mark_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".damaged");
    PathBuf::from(p)
}

/// Leaves `what` beside the store as the mark `status` reads: the store holds rows that cannot
/// be read, until `store check` passes. Best effort: a reader that may not write the store's
/// directory (an admin's ad-hoc export) still reports the damage itself; the error is returned
/// for the caller to log.
pub fn mark_corrupt(db: &Path, what: &str) -> std::io::Result<()> {
    std::fs::write(mark_path(db), format!("{what}\n"))
}

/// What the mark says, when the store at `db` is marked damaged.
pub(crate) fn corruption_mark(db: &Path) -> Option<String> {
    std::fs::read_to_string(mark_path(db))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Removes the mark (a check passed).
pub fn clear_mark(db: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(mark_path(db)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
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

    /// A revision altered after it was written (still JSON, another content) and one cut short
    /// (no longer JSON) pass SQLite's check and every invariant; only reading them back against
    /// their hash finds them, and each is named with its tenant, alert and revision.
    #[test]
    fn altered_and_cut_revisions_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("a.db")).unwrap();
        let mut w = s.writer().unwrap();
        w.upsert("t", &alert("a", "2024-01-01T00:00:01Z")).unwrap();
        w.upsert("t", &alert("a", "2024-01-01T00:00:02Z")).unwrap();
        w.upsert("t", &alert("b", "2024-01-01T00:00:00Z")).unwrap();
        w.upsert("t", &alert("c", "2024-01-01T00:00:00Z")).unwrap();
        w.commit(None, 0).unwrap();
        let c = s.connection();
        let rev = |id: &str| -> i64 {
            c.query_row("SELECT rev FROM alerts WHERE id = ?1", [id], |r| r.get(0))
                .unwrap()
        };
        let (a, b) = (rev("a"), rev("b"));
        c.execute(
            "UPDATE alert_revisions SET raw = replace(raw, 'New', 'Resolved') WHERE rev = ?1",
            [a],
        )
        .unwrap();
        c.execute(
            "UPDATE alert_revisions SET raw = substr(raw, 1, 10) WHERE rev = ?1",
            [b],
        )
        .unwrap();
        let r = check(&s).unwrap();
        assert!(!r.is_sound());
        let kinds: Vec<_> = r.problems.iter().map(|p| (p.kind, p.count)).collect();
        assert_eq!(
            kinds,
            [("revision_not_json", 1), ("revision_hash_mismatch", 1)],
            "{r:?}"
        );
        let all = format!("{r:?}");
        assert!(
            all.contains(&format!("t/a rev {a} (its current revision")),
            "{all}"
        );
        assert!(
            all.contains(&format!("t/b rev {b} (its current revision")),
            "{all}"
        );
        assert_eq!(r.damaged_alerts, ["t/a", "t/b"]);
    }

    #[test]
    fn the_mark_is_left_read_and_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a.db");
        assert_eq!(corruption_mark(&db), None);
        mark_corrupt(&db, "t/a rev 3 cannot be read").unwrap();
        assert_eq!(
            corruption_mark(&db).as_deref(),
            Some("t/a rev 3 cannot be read")
        );
        clear_mark(&db).unwrap();
        clear_mark(&db).unwrap();
        assert_eq!(corruption_mark(&db), None);
    }
}
