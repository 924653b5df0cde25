//! The rows every export reads: the store's rows, with a Graph `alerts_v2` alert seen in the MDE
//! API's shape ([`crate::alert::graph`]), so that columns, evidence rows, the report, the XLSX
//! summary, `scope = "open"` and every filter speak one vocabulary whichever API fed a row.
//!
//! MDE rows cost two substring searches and nothing else: no parse (the CSV and XLSX writers
//! still parse each row once, for its cells). Only Graph rows are parsed and mapped; their
//! filters are applied to the mapped values, not to what the store indexed.
//!
//! # Two threads
//!
//! Reading the store and turning rows into cells cost about the same (an export of 100,000
//! alerts: SQLite and the kernel copying pages on one side, JSON and CSV on the other). The
//! store is read on the calling thread (the connection stays where it is) and the rows go in
//! small batches through a bounded channel to a scoped thread that maps, filters and hands them
//! to the consumer, so both cores work and memory stays flat: at most [`BATCHES_IN_FLIGHT`]
//! batches of [`BATCH`] rows exist at a time, recycled rather than reallocated.

use std::io;
use std::sync::mpsc;

use serde_json::Value;

use crate::alert::graph::mde_shape_of_text;
use crate::alert::time::ApiTime;
use crate::store::{AlertRow, ForEachError, Selection, Store};

/// Rows per batch handed from the store's thread to the consumer's.
const BATCH: usize = 256;
/// Batches that exist at once (in the channel, being filled, being consumed): the memory bound.
const BATCHES_IN_FLIGHT: usize = 4;

/// One alert as an export reads it.
pub(crate) struct Row<'a> {
    /// The row in the MDE vocabulary: `raw` is the stored text for an MDE alert, the mapped JSON
    /// for a Graph one (empty when [`Want::Stored`] made it unnecessary); status, severity and
    /// category are read from the same.
    pub(crate) mde: AlertRow<'a>,
    /// The alert's JSON exactly as stored (the verbatim exports write this).
    pub(crate) stored: &'a str,
}

/// What the consumer reads of each row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// The MDE shape (`Row::mde.raw`): tables, the report, JSON with `shape = "mde"`.
    Mde,
    /// Only the stored text (`Row::stored`): verbatim JSON. Graph rows are still mapped when a
    /// filter needs their values.
    Stored,
}

/// Calls `f` with each alert `sel` picks, in the store's order, reading Graph alerts through the
/// MDE mapping; returns the rows handed to `f`. `f` runs on a thread of its own while this one
/// reads the store (see the [module docs](self)); its first error ends the export.
pub(crate) fn for_each(
    store: &Store,
    sel: &Selection,
    want: Want,
    mut f: impl FnMut(&Row<'_>) -> io::Result<()> + Send,
) -> Result<u64, ForEachError> {
    let filter = &sel.filter;
    let filters_vocab = sel.open_only
        || filter.min_severity.is_some()
        || !filter.statuses.is_empty()
        || !filter.categories.is_empty();
    // Nothing reads the MDE shape: no need to even look for Graph rows.
    let verbatim = want == Want::Stored && !filters_vocab;
    let (full_tx, full_rx) = mpsc::sync_channel::<Batch>(BATCHES_IN_FLIGHT);
    let (empty_tx, empty_rx) = mpsc::channel::<Batch>();
    for _ in 0..BATCHES_IN_FLIGHT - 1 {
        let _ = empty_tx.send(Batch::default());
    }
    std::thread::scope(|scope| {
        let consumer = scope.spawn(move || -> io::Result<(u64, Vec<Unreadable>)> {
            let mut n = 0;
            let mut skipped = Vec::new();
            for mut batch in full_rx {
                for row in &batch.rows[..batch.len] {
                    let r = row.borrowed();
                    let written = if verbatim {
                        // No vocabulary filter: the stored values decide as well as mapped ones.
                        if sel.accepts(&r) {
                            f(&Row {
                                mde: r,
                                stored: r.raw,
                            })
                            .map(|()| 1)
                        } else {
                            Ok(0)
                        }
                    } else {
                        mapped(sel, want, &r, &mut f)
                    };
                    // One row the consumer cannot read costs that row, not the export.
                    match written {
                        Ok(k) => n += k,
                        Err(e) => match e.downcast::<RowNotJson>() {
                            Ok(why) => skipped.push(Unreadable {
                                tenant: r.tenant.to_owned(),
                                id: r.id.to_owned(),
                                rev: r.rev,
                                why: why.0,
                            }),
                            Err(e) => return Err(e),
                        },
                    }
                }
                batch.len = 0;
                // The reader may have finished: then nobody needs the batch back.
                let _ = empty_tx.send(batch);
            }
            Ok((n, skipped))
        });
        // A send fails only when the consumer stopped, on an error it returns below.
        let send = |b: Batch| {
            full_tx
                .send(b)
                .map_err(|_| io::Error::other(CONSUMER_STOPPED))
        };
        let mut batch = Batch::default();
        let read = store.for_each_row(sel, |r| {
            batch.push(r);
            if batch.len == BATCH {
                let next = empty_rx.recv().unwrap_or_default();
                send(std::mem::replace(&mut batch, next))?;
            }
            Ok(())
        });
        let read = read.and_then(|_| {
            if batch.len > 0 {
                send(batch).map_err(ForEachError::Io)?;
            }
            Ok(())
        });
        drop(full_tx);
        let consumed = match consumer.join() {
            Ok(c) => c,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        // The consumer's own error first: the reader only stopped because of it.
        match (consumed, read) {
            (Err(e), _) => Err(ForEachError::Io(e)),
            (Ok(_), Err(e)) => Err(e),
            (Ok((n, skipped)), Ok(())) => {
                record(skipped);
                Ok(n)
            }
        }
    })
}

/// A stored alert whose text the export could not read (the store is corrupt): the export
/// writes every other row and names this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unreadable {
    /// Its tenant.
    tenant: String,
    /// Its id.
    id: String,
    /// The revision that could not be read.
    rev: i64,
    /// What the reader said.
    pub(crate) why: String,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} rev {}", self.tenant, self.id, self.rev)
    }
}

/// The error a consumer returns for a row whose stored text is not JSON (see
/// [`super::error::json_io`]): [`for_each`] skips the row and records it.
#[derive(Debug, thiserror::Error)]
#[error("a stored alert is not JSON (the store is corrupt): {0}")]
pub(crate) struct RowNotJson(pub(crate) String);

thread_local! {
    /// The rows skipped since [`collecting`] began on this thread, when it did.
    static SKIPPED: std::cell::RefCell<Option<Vec<Unreadable>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `work` and returns, beside its result, the rows [`for_each`] skipped on this thread
/// meanwhile. The formats speak `io::Write`/`io::Result` through their crates (csv, XLSX, the
/// templates), so the skipped rows travel beside those signatures rather than through them.
pub(crate) fn collecting<T>(work: impl FnOnce() -> T) -> (T, Vec<Unreadable>) {
    let outer = SKIPPED.with_borrow_mut(|s| s.replace(Vec::new()));
    let out = work();
    let mine = SKIPPED.with_borrow_mut(|s| std::mem::replace(s, outer).unwrap_or_default());
    (out, mine)
}

/// Adds `skipped` to what [`collecting`] gathers on this thread (nothing when none is running:
/// the caller then learns of them only by the missing rows, so every export path collects).
fn record(skipped: Vec<Unreadable>) {
    if skipped.is_empty() {
        return;
    }
    SKIPPED.with_borrow_mut(|s| match s {
        Some(all) => all.extend(skipped),
        None => {
            for u in &skipped {
                tracing::error!(alert = %u, why = %u.why, "A stored alert cannot be read (the store is corrupt); it was left out. Run `mde-alerts store check`.");
            }
        }
    });
}

/// Why the reader stopped when the consumer had failed (never shown: the consumer's error is).
const CONSUMER_STOPPED: &str = "the export's writer stopped";

/// One store row, owned, so that it can cross to the consumer's thread.
struct OwnedRow {
    tenant: String,
    raw: String,
    id: String,
    rev: i64,
    status: Option<String>,
    severity: Option<String>,
    category: Option<String>,
    last_update: ApiTime,
}

impl Default for OwnedRow {
    fn default() -> Self {
        OwnedRow {
            tenant: String::new(),
            raw: String::new(),
            id: String::new(),
            rev: 0,
            status: None,
            severity: None,
            category: None,
            last_update: ApiTime::from_ticks(0),
        }
    }
}

impl OwnedRow {
    /// Copies `r` in, reusing the strings' buffers.
    fn set(&mut self, r: &AlertRow<'_>) {
        fn put(to: &mut Option<String>, from: Option<&str>) {
            match (to.as_mut(), from) {
                (Some(t), Some(f)) => {
                    t.clear();
                    t.push_str(f);
                }
                (_, f) => *to = f.map(str::to_owned),
            }
        }
        self.tenant.clear();
        self.tenant.push_str(r.tenant);
        self.raw.clear();
        self.raw.push_str(r.raw);
        self.id.clear();
        self.id.push_str(r.id);
        self.rev = r.rev;
        put(&mut self.status, r.status);
        put(&mut self.severity, r.severity);
        put(&mut self.category, r.category);
        self.last_update = r.last_update;
    }

    fn borrowed(&self) -> AlertRow<'_> {
        AlertRow {
            tenant: &self.tenant,
            raw: &self.raw,
            id: &self.id,
            rev: self.rev,
            status: self.status.as_deref(),
            severity: self.severity.as_deref(),
            category: self.category.as_deref(),
            last_update: self.last_update,
        }
    }
}

/// Up to [`BATCH`] rows; `rows[len..]` are spare slots kept for their buffers.
#[derive(Default)]
struct Batch {
    rows: Vec<OwnedRow>,
    len: usize,
}

impl Batch {
    fn push(&mut self, r: &AlertRow<'_>) {
        if self.len == self.rows.len() {
            self.rows.push(OwnedRow::default());
        }
        self.rows[self.len].set(r);
        self.len += 1;
    }
}

/// Hands `r` to `f` in the MDE shape if `sel` accepts it there; returns 1 if it did, else 0.
/// This is the one place the list filters are applied: the store only narrows by what it can
/// decide from its indexed columns whatever API fed a row (times, revision, tenant).
fn mapped(
    sel: &Selection,
    want: Want,
    r: &AlertRow<'_>,
    f: &mut impl FnMut(&Row<'_>) -> io::Result<()>,
) -> io::Result<u64> {
    let Some(mapped) = mde_shape_of_text(r.raw) else {
        if !sel.accepts(r) {
            return Ok(0);
        }
        f(&Row {
            mde: *r,
            stored: r.raw,
        })?;
        return Ok(1);
    };
    let text = |k: &str| mapped.get(k).and_then(Value::as_str);
    let mut mde = AlertRow {
        status: text("status"),
        severity: text("severity"),
        category: text("category"),
        raw: "",
        ..*r
    };
    if !sel.accepts(&mde) {
        return Ok(0);
    }
    let json = match want {
        Want::Mde => mapped.to_string(),
        Want::Stored => String::new(),
    };
    mde.raw = &json;
    f(&Row { mde, stored: r.raw })?;
    Ok(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store of `n` alerts of one tenant, each updated a second after the previous one, so
    /// that the store's order is the order of their IDs.
    fn store_of(dir: &std::path::Path, n: usize) -> Store {
        let mut store = Store::open(&dir.join("s.db")).unwrap();
        let mut w = store.writer().unwrap();
        for i in 0..n {
            let a = crate::alert::Alert::parse(&format!(
                r#"{{"id":"a{i:05}","lastUpdateTime":"2026-01-01T{:02}:{:02}:{:02}Z","status":"New"}}"#,
                i / 3600,
                i / 60 % 60,
                i % 60
            ))
            .unwrap();
            w.upsert("t", &a).unwrap();
        }
        w.commit(None, 0).unwrap();
        store
    }

    /// Many more rows than batches in flight: every row arrives once, in the store's order, and
    /// the count is right (the batches are recycled, so a row left over from an earlier batch
    /// would show here).
    #[test]
    fn every_row_arrives_once_in_order_across_batches() {
        let dir = tempfile::tempdir().unwrap();
        let n = BATCH * BATCHES_IN_FLIGHT * 3 + 17;
        let store = store_of(dir.path(), n);
        for want in [Want::Mde, Want::Stored] {
            let mut seen = Vec::new();
            let count = for_each(&store, &Selection::default(), want, |r| {
                assert_eq!(r.mde.tenant, "t");
                assert_eq!(r.mde.status, Some("New"));
                let id: serde_json::Value = serde_json::from_str(r.stored).unwrap();
                seen.push(id["id"].as_str().unwrap().to_owned());
                Ok(())
            })
            .unwrap();
            assert_eq!(count, n as u64);
            let expected: Vec<String> = (0..n).map(|i| format!("a{i:05}")).collect();
            assert_eq!(seen, expected);
        }
    }

    /// The consumer's error ends the export: it is the error returned (not the reader's "stopped"),
    /// and the consumer is not called again after it.
    #[test]
    fn the_consumers_error_ends_the_read_and_is_the_one_returned() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_of(dir.path(), BATCH * BATCHES_IN_FLIGHT * 4);
        let mut calls = 0;
        let err = for_each(&store, &Selection::default(), Want::Mde, |_| {
            calls += 1;
            if calls == BATCH + 3 {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
            }
            Ok(())
        })
        .unwrap_err();
        match err {
            ForEachError::Io(e) => {
                assert_eq!(e.kind(), io::ErrorKind::StorageFull);
                assert_eq!(e.to_string(), "disk full");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(calls, BATCH + 3);
    }

    /// A panic in the consumer reaches the caller as that panic, not as a hang or a lost error.
    #[test]
    fn a_panic_in_the_consumer_reaches_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_of(dir.path(), BATCH * 2);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = for_each(&store, &Selection::default(), Want::Mde, |_| {
                panic!("consumer bug")
            });
        }))
        .unwrap_err();
        assert_eq!(caught.downcast_ref::<&str>(), Some(&"consumer bug"));
    }
}
