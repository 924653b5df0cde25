//! `import FILE…`: saved API responses, JSON arrays or NDJSON into the store, streaming.
//!
//! A backfill file can be hundreds of megabytes, so it is never read whole: a small structural
//! scanner (below) walks the bytes, finds where each alert starts and ends, and hands that slice to
//! serde_json. One scanner reads every accepted shape, because each is a sequence of top-level JSON
//! values separated by whitespace:
//!
//! - `{"@odata.context": …, "value": [alert, …]}` — a saved response (several may follow each other);
//! - `[alert, …]` — a JSON array;
//! - `alert\nalert\n…` — NDJSON.
//!
//! serde_json's own streaming API cannot yield the elements of an array nested in an object one at
//! a time, nor report positions in the whole file, which is why this scanner exists.
//!
//! A top-level object is a saved response only when it has a `value` array and otherwise only
//! `@odata.*` keys; one with `id` or `lastUpdateTime` is an alert (which may well have a `value`
//! field of its own). Anything else is an error with its position: an object is never dropped
//! without a word.
//!
//! Files are UTF-8, with or without a byte-order mark, or UTF-16 (what Windows PowerShell 5.1's
//! `Out-File` and `>` write), which is transcoded while streaming. Numbers beyond the range of a
//! double (`1e400`) are kept verbatim in the stored text; only the content hash sees them as text.
//!
//! All files of one import go into **one transaction**: a file with a syntax error is reported as
//! `file:line:column` with the element's index, and nothing of the import is kept. Elements that
//! are valid JSON but not valid alerts (no `id`, unreadable `lastUpdateTime`) are counted and
//! logged, as in a poll. The dedup rule is the poll's: the newest version of each alert wins
//! whatever the order in the files; two different versions with the *same* `lastUpdateTime` cannot
//! be ordered, so the one read last wins, both stay in the history, and a warning names the alert.
//! Importing never moves the poll cursor: a file says nothing about what the API has that it lacks.
//!
//! Parsing (JSON and hashing) and SQLite writing run on two threads joined by a bounded channel, so
//! memory stays flat and both cores are used.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::mpsc;

use std::sync::atomic::{AtomicBool, Ordering};

use crate::alert::{Alert, Invalid};
use crate::store::{Counts, Outcome, Store, StoreError, Upsert};

mod decode;
mod scanner;

use decode::*;
use scanner::*;

/// Why an import failed; nothing of it was kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The file could not be read.
    #[error("cannot read {file}: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The file is not valid JSON / NDJSON, or holds a value that is neither an alert nor a saved
    /// API response.
    #[error("{}:{line}:{column}: {detail} ({context}); nothing was imported", file.display())]
    Malformed {
        /// The file.
        file: PathBuf,
        /// The line of the problem, from 1.
        line: u64,
        /// The column of the problem, from 1, in characters.
        column: u64,
        /// The byte offset of the problem in the file's UTF-8 text (after any transcoding).
        offset: u64,
        /// Which element: "in element 3", "after element 3", "before the first element".
        context: String,
        /// What is wrong, and the fix when there is one.
        detail: String,
    },
    /// The store failed; the transaction was rolled back.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A signal stopped the import; the transaction was rolled back.
    #[error(
        "stopped by a signal after {elements} elements; nothing was imported (an import is one transaction)"
    )]
    Interrupted {
        /// Elements read before the signal.
        elements: u64,
    },
}

impl ImportError {
    /// What the admin can do about it, when the error knows.
    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            ImportError::Store(e) => e.hint(),
            _ => None,
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportReport {
    /// Upsert outcomes.
    pub counts: Counts,
    /// Elements read.
    pub elements: u64,
    /// Versions that replaced a different version with the same `lastUpdateTime` (both are kept
    /// in the history; each was warned about).
    pub same_time: u64,
}

/// A place in a file's text: line and column from 1 (the column in characters, as editors count
/// them), and the byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    /// The line, from 1.
    line: u64,
    /// The column, from 1, in characters.
    column: u64,
    /// Bytes before this place.
    offset: u64,
}

impl Position {
    const START: Position = Position {
        line: 1,
        column: 1,
        offset: 0,
    };

    /// Moves this position over `bytes` (which start at it).
    fn advance(&mut self, bytes: &[u8]) {
        self.offset += bytes.len() as u64;
        match memchr::memrchr(b'\n', bytes) {
            Some(last) => {
                self.line += memchr::memchr_iter(b'\n', bytes).count() as u64;
                self.column = 1 + chars(&bytes[last + 1..]);
            }
            None => self.column += chars(bytes),
        }
    }
}

/// One element for the writer thread: its index, and the alert or why it is not one (with where).
type Item = (u64, Result<Alert, (Position, Invalid)>);
/// What the parser thread sends the writer thread.
type Batch = Vec<Item>;
const BATCH: usize = 512;
/// The import connection's page cache, in KiB (see `import_inner`).
const IMPORT_CACHE_KIB: u32 = 32 * 1024;
/// Same-time conflicts warned about one by one; the rest are only counted.
const SAME_TIME_WARNINGS: u64 = 20;

/// Imports `files` for `tenant` in one transaction.
pub fn import(
    store: &mut Store,
    tenant: &str,
    files: &[PathBuf],
) -> Result<ImportReport, ImportError> {
    import_until(store, tenant, files, &AtomicBool::new(false))
}

/// [`import`], stopping (and rolling back) when `stop` is set: Ctrl-C on a long import ends it
/// with its run recorded as `interrupted`, not left "running".
pub fn import_until(
    store: &mut Store,
    tenant: &str,
    files: &[PathBuf],
    stop: &AtomicBool,
) -> Result<ImportReport, ImportError> {
    let run = store.begin_run(tenant, "import")?;
    let result = import_inner(store, tenant, files, run, stop);
    let (outcome, err, fix) = match &result {
        Ok(_) => (Outcome::Ok, None, None),
        Err(e @ ImportError::Interrupted { .. }) => {
            (Outcome::Interrupted, Some(e.to_string()), e.hint())
        }
        Err(e) => (Outcome::Failed, Some(e.to_string()), e.hint()),
    };
    // Recording the outcome is best effort when the store itself failed.
    let finished = store.finish_run(
        run,
        outcome,
        Default::default(),
        err.as_deref(),
        fix.as_deref(),
    );
    let report = result?;
    finished?;
    Ok(report)
}

fn import_inner(
    store: &mut Store,
    tenant: &str,
    files: &[PathBuf],
    run: crate::store::RunId,
    stop: &AtomicBool,
) -> Result<ImportReport, ImportError> {
    // The import's own page cache, whatever the store's default (the service keeps a small one):
    // one transaction of all the files, whose dirty pages spill to the WAL when the cache is
    // full. Measured on 100,000 alerts (16 KiB pages): 8 to 128 MiB import alike, within
    // noise, so 32 MiB, which keeps peak memory flat and well under 150 MiB.
    store.set_cache(IMPORT_CACHE_KIB)?;
    let mut writer = store.writer()?;
    let mut elements = 0u64;
    let mut same_time = 0u64;
    for file in files {
        let f = File::open(file).map_err(|source| ImportError::Io {
            file: file.clone(),
            source,
        })?;
        // A device (`/dev/zero`) never ends and a directory has no text: only regular files, and
        // FIFOs (`import <(curl …)`), which end when their writer does.
        let meta = f.metadata().map_err(|source| ImportError::Io {
            file: file.clone(),
            source,
        })?;
        if !meta.is_file() && !std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()) {
            return Err(ImportError::Io {
                file: file.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "it is not a regular file (a device or a directory); nothing was imported",
                ),
            });
        }
        if meta.is_file() && meta.len() == 0 {
            tracing::warn!(file = %file.display(), "The file is empty (a failed download?); it holds no alerts.");
        }
        let reader = decoded(f, file)?;
        let (tx, rx) = mpsc::sync_channel::<Batch>(8);
        let parse_result = std::thread::scope(|scope| {
            let rx = rx; // owned here, so that it can be dropped before the join below
            let parser = scope.spawn(move || parse_file(reader, tx));
            let mut store_err = None;
            let mut interrupted = false;
            'batches: for batch in rx.iter() {
                if stop.load(Ordering::Relaxed) {
                    interrupted = true;
                    break 'batches;
                }
                for (index, item) in batch {
                    elements += 1;
                    match item {
                        Ok(a) => {
                            let before = writer.same_time_changes();
                            match writer.upsert(tenant, &a) {
                                Ok(Upsert::Updated) if writer.same_time_changes() > before => {
                                    same_time += 1;
                                    if same_time <= SAME_TIME_WARNINGS {
                                        tracing::warn!(
                                            file = %file.display(),
                                            element = index,
                                            alert = %a.id,
                                            last_update_time = %a.last_update.to_api_string(),
                                            "Alert {} has two different versions with the same lastUpdateTime {}: the one read last (element {index} of {}) is now its current state; both are kept in its history.",
                                            a.id,
                                            a.last_update.to_api_string(),
                                            file.display()
                                        );
                                    } else if same_time == SAME_TIME_WARNINGS + 1 {
                                        tracing::warn!(
                                            "More alerts have two versions with the same lastUpdateTime; they are counted, not listed."
                                        );
                                    }
                                }
                                Ok(_) => {}
                                Err(e) => {
                                    store_err = Some(e);
                                    break 'batches;
                                }
                            }
                        }
                        Err((at, why)) => {
                            writer.add_invalid(1);
                            tracing::warn!(
                                file = %file.display(),
                                line = at.line,
                                column = at.column,
                                element = index,
                                error = %why,
                                "{}:{}:{}: element {index} is not a valid alert ({why}); skipped and counted as invalid.",
                                file.display(),
                                at.line,
                                at.column
                            );
                        }
                    }
                }
            }
            // With the receiver gone, a parser blocked on a full channel gets an error and stops.
            drop(rx);
            let parsed = parser.join().expect("parser thread panicked");
            (parsed, store_err, interrupted)
        });
        let parse_result = match parse_result {
            (_, _, true) => return Err(ImportError::Interrupted { elements }),
            (parsed, store_err, false) => (parsed, store_err),
        };
        match parse_result {
            (_, Some(e)) => return Err(e.into()),
            (Err(ScanError::Io(source)), None) => {
                return Err(ImportError::Io {
                    file: file.clone(),
                    source,
                });
            }
            (
                Err(ScanError::Syntax {
                    at,
                    context,
                    detail,
                }),
                None,
            ) => {
                return Err(ImportError::Malformed {
                    file: file.clone(),
                    line: at.line,
                    column: at.column,
                    offset: at.offset,
                    context,
                    detail,
                });
            }
            (Err(ScanError::Stop), None) => {
                return Err(ImportError::Io {
                    file: file.clone(),
                    source: io::Error::other("the import stopped before the end of the file"),
                });
            }
            (Ok(()), None) => {}
        }
    }
    let counts = writer.commit(Some(run), 0)?;
    Ok(ImportReport {
        counts,
        elements,
        same_time,
    })
}

/// Parses one element: its text, its JSON, then the alert (or why it is none).
fn parse_element(el: &mut Element<'_>) -> Result<Item, ScanError> {
    let bytes = el.bytes;
    let text = std::str::from_utf8(bytes).map_err(|e| {
        el.error(
            e.valid_up_to(),
            "not valid UTF-8 (save the file as UTF-8 or UTF-16)".into(),
        )
    })?;
    // Most alerts take the one-pass path; anything it leaves (errors included) is read as before.
    if let Some(alert) = Alert::parse_canonical(text) {
        return Ok((el.index, Ok(alert)));
    }
    let value = parse_value(text).map_err(|e| {
        let i = byte_index(bytes, e.line(), e.column());
        el.error(i, serde_message(&e))
    })?;
    let alert = Alert::from_value(text, &value).map_err(|why| (el.position(0), why));
    Ok((el.index, alert))
}

/// The parser thread: scan, parse and hash, send in batches.
fn parse_file(reader: Box<dyn Read + Send>, tx: mpsc::SyncSender<Batch>) -> Result<(), ScanError> {
    let mut batch: Batch = Vec::with_capacity(BATCH);
    let mut on_element = |mut el: Element<'_>| -> Result<(), ScanError> {
        batch.push(parse_element(&mut el)?);
        if batch.len() >= BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            tx.send(full).map_err(|_| ScanError::Stop)?;
        }
        Ok(())
    };
    scan(reader, &mut on_element)?;
    if !batch.is_empty() {
        tx.send(batch).map_err(|_| ScanError::Stop)?;
    }
    Ok(())
}

/// Elements of a JSON/NDJSON text, for the tests: `(offset, text)`, or where and why the text is
/// malformed.
#[cfg(test)]
fn split(text: &str) -> Result<Vec<(u64, String)>, (Position, String)> {
    let mut out = Vec::new();
    let mut f = |el: Element<'_>| -> Result<(), ScanError> {
        out.push((el.offset, String::from_utf8_lossy(el.bytes).into_owned()));
        Ok(())
    };
    match scan(text.as_bytes(), &mut f) {
        Ok(()) => Ok(out),
        Err(ScanError::Syntax { at, detail, .. }) => Err((at, detail)),
        Err(e) => Err((Position::START, format!("{e:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::json::quote_huge_numbers;
    use proptest::prelude::*;

    fn texts(s: &str) -> Vec<String> {
        split(s).unwrap().into_iter().map(|(_, t)| t).collect()
    }

    /// A reader that returns one byte at a time: every refill path, and text dropped after every
    /// byte.
    struct OneByte<'a>(&'a [u8]);
    impl Read for OneByte<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    /// The position of `offset` in `text`, the slow way.
    fn naive(text: &[u8], offset: u64) -> Position {
        let mut p = Position::START;
        p.advance(&text[..offset as usize]);
        p
    }

    /// Scans and parses as the import does; the elements' indexes, or the error.
    fn scan_parse(r: impl Read) -> Result<Vec<u64>, ScanError> {
        scan_parse_chunked(r, CHUNK)
    }

    /// The same, asking the reader for `chunk` bytes at a time: with [`OneByte`] and a small
    /// chunk, text is dropped and refilled all the time.
    fn scan_parse_chunked(r: impl Read, chunk: usize) -> Result<Vec<u64>, ScanError> {
        let mut seen = Vec::new();
        Scanner::new(r, chunk).run(&mut |mut el: Element<'_>| {
            let (index, _) = parse_element(&mut el)?;
            seen.push(index);
            Ok(())
        })?;
        Ok(seen)
    }

    /// The import sets its own page cache, so a smaller default for the service's connection
    /// (the daemon's memory) does not slow a backfill down.
    #[test]
    fn the_import_sets_its_own_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("a.db")).unwrap();
        store
            .connection()
            .execute_batch("PRAGMA cache_size = -512")
            .unwrap();
        let file = dir.path().join("f.json");
        std::fs::write(
            &file,
            r#"[{"id":"a","lastUpdateTime":"2024-01-01T00:00:00Z"}]"#,
        )
        .unwrap();
        let r = import(&mut store, "t", &[file]).unwrap();
        assert_eq!(r.counts.new, 1);
        let kib: i64 = store
            .connection()
            .query_row("PRAGMA cache_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kib, -i64::from(IMPORT_CACHE_KIB));
    }

    #[test]
    fn reads_envelope_array_and_ndjson() {
        let env = r#"{"@odata.context":"x","value":[{"id":"a","v":[1,{"b":"]}"}]},{"id":"b"}]}"#;
        assert_eq!(
            texts(env),
            vec![r#"{"id":"a","v":[1,{"b":"]}"}]}"#, r#"{"id":"b"}"#]
        );
        assert_eq!(
            texts("[ {\"id\":\"a\"} , {\"id\":\"b\\\"}\"} ]"),
            vec![r#"{"id":"a"}"#, r#"{"id":"b\"}"}"#]
        );
        assert_eq!(
            texts("{\"id\":\"a\"}\n{\"id\":\"b\"}\n"),
            vec![r#"{"id":"a"}"#, r#"{"id":"b"}"#]
        );
        // two saved responses back to back, one with a next link after its value
        assert_eq!(
            texts(
                r#"{"value":[{"id":"a"}],"@odata.nextLink":"n"}{"value":[]} {"value":[{"id":"c"}]}"#
            )
            .len(),
            2
        );
        assert!(texts("[]").is_empty());
        assert!(texts("  \n").is_empty());
    }

    /// An alert with a `value` array of its own is an alert, not a saved response: taken for one,
    /// it would vanish.
    #[test]
    fn an_alert_with_a_value_array_is_an_alert() {
        for alert in [
            r#"{"id":"a","value":[1,2],"lastUpdateTime":"2024-01-01T00:00:00Z"}"#,
            r#"{"lastUpdateTime":"2024-01-01T00:00:00Z","value":[{"id":"x"}],"id":"a"}"#,
            r##"{"@odata.type":"#alert","id":"a","value":[]}"##,
            r#"{"value":"text","id":"a"}"#,
        ] {
            assert_eq!(texts(alert), vec![alert.to_owned()], "{alert}");
            assert_eq!(texts(&format!("{alert}\n{alert}")).len(), 2, "{alert}");
        }
    }

    /// Anything that is neither an alert nor a response is an error with its
    /// position, never dropped.
    #[test]
    fn objects_that_are_neither_are_errors_with_positions() {
        for (text, offset, says) in [
            ("{\"id\":\"a\"}\n{\"name\":\"x\"}", 11, "\"name\""),
            ("{}", 0, "no keys"),
            ("{\"@odata.context\":\"x\"}", 0, "no keys"),
            ("{\"@odata.context\":\"x\",\"value\":null}", 0, "\"value\""),
            (
                "{\"error\":{\"code\":\"Unauthorized\"}}",
                0,
                "error response",
            ),
            ("{\"foo\":1,\"value\":[{\"id\":\"a\"}]}", 0, "\"foo\""),
            // A response's array is streamed; a key after it that a response lacks is an error.
            (
                "{\"value\":[{\"id\":\"a\"}],\n \"id\":\"b\"}",
                24,
                "put its `id` before",
            ),
        ] {
            let (at, detail) = split(text).unwrap_err();
            assert_eq!(at.offset, offset, "{text}: {detail}");
            assert_eq!(at, naive(text.as_bytes(), offset), "{text}");
            assert!(detail.contains(says), "{text}: {detail}");
        }
    }

    #[test]
    fn offsets_point_at_elements() {
        let s = "[\n  {\"id\":\"a\"},\n  {\"id\":\"b\"}\n]";
        let out = split(s).unwrap();
        assert_eq!(out[0].0, 4);
        assert_eq!(
            &s[out[1].0 as usize..out[1].0 as usize + 10],
            "{\"id\":\"b\"}"
        );
    }

    #[test]
    fn malformed_inputs_report_positions() {
        for (bad, at_least) in [
            ("[{\"id\":\"a\"} {\"id\":\"b\"}]", 11),
            ("{\"value\":[{\"id\":\"a\"}", 20),
            ("[{\"id\":\"a", 2),
            ("hello", 0),
            ("{\"value\":[{\"id\":\"a\"}],}", 21),
        ] {
            let (at, detail) = split(bad).unwrap_err();
            assert!(at.offset as usize >= at_least, "{bad}: {at:?} {detail}");
            assert!(at.offset as usize <= bad.len(), "{bad}: {at:?}");
            assert_eq!(at, naive(bad.as_bytes(), at.offset), "{bad}");
        }
    }

    /// Line and column (in characters), not a byte offset, and the element: what an editor finds.
    #[test]
    fn errors_give_line_column_and_element() {
        let text = "{\"id\":\"ä\",\"lastUpdateTime\":\"2024-01-01T00:00:00Z\"}\n\
                    {\"id\":\"b\",\"lastUpdateTime\":\"2024-01-01T00:00:00Z\"}\n\
                    {\"id\":\"ö\", \"x\": [1, 2,, 3]}\n";
        for chunked in [false, true] {
            let r = if chunked {
                scan_parse_chunked(OneByte(text.as_bytes()), 3)
            } else {
                scan_parse(text.as_bytes())
            };
            let Err(ScanError::Syntax {
                at,
                context,
                detail,
            }) = r
            else {
                panic!("{r:?}")
            };
            assert_eq!((at.line, at.column), (3, 23), "{detail}");
            assert_eq!(context, "in element 3");
            assert!(!detail.contains("at line"), "{detail}");
        }
        let bad_utf8 = b"{\"id\":\"a\"}\n{\"id\":\"b\xff\"}";
        let Err(ScanError::Syntax { at, context, .. }) = scan_parse(&bad_utf8[..]) else {
            panic!()
        };
        assert_eq!(
            (at.line, at.column, context.as_str()),
            (2, 9, "in element 2")
        );
    }

    #[test]
    fn chunk_boundaries_do_not_matter() {
        let s = r#"{"@odata.context":"x","value":[{"id":"a\\\"","n":[1,2,{"x":"}"}]},{"id":"b"}]}"#;
        let mut got = Vec::new();
        Scanner::new(OneByte(s.as_bytes()), 4)
            .run(&mut |el: Element<'_>| {
                got.push(String::from_utf8(el.bytes.to_vec()).unwrap());
                Ok(())
            })
            .unwrap();
        assert_eq!(got, texts(s));
        assert_eq!(got.len(), 2);
    }

    /// A number beyond a double is not an error: the alert is read and its text kept as sent.
    #[test]
    fn huge_numbers_do_not_fail_the_alert() {
        let text = r#"{"id":"a","lastUpdateTime":"2024-01-01T00:00:00Z","n":1e400,"m":-2E+999,"s":"1e400","k":[12,1.5e3]}"#;
        assert!(serde_json::from_str::<serde_json::Value>(text).is_err());
        let v = parse_value(text).unwrap();
        assert_eq!(v["n"], "1e400");
        assert_eq!(v["m"], "-2E+999");
        assert_eq!(v["k"][1], 1500.0);
        let a = Alert::from_value(text, &v).unwrap();
        assert!(a.raw.contains("\"n\":1e400"));
        assert_eq!(quote_huge_numbers(r#"{"a":"1e400","b":1}"#), None);
        // Still an error when the problem is not a number.
        assert!(parse_value(r#"{"a":1e400,}"#).is_err());
    }

    fn decode(bytes: &[u8]) -> Result<String, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        std::fs::write(&path, bytes).unwrap();
        let mut r = decoded(File::open(&path).unwrap(), &path).map_err(|e| e.to_string())?;
        let mut out = String::new();
        r.read_to_string(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    /// Windows PowerShell writes UTF-8 with a BOM and UTF-16.
    #[test]
    fn bom_and_utf16_are_read() {
        let text = "[{\"id\":\"ä€😀\"}]\r\n";
        let utf16 = |be: bool, bom: bool| {
            let mut out: Vec<u8> = Vec::new();
            let units = bom
                .then_some(0xFEFFu16)
                .into_iter()
                .chain(text.encode_utf16());
            for u in units {
                out.extend(if be { u.to_be_bytes() } else { u.to_le_bytes() });
            }
            out
        };
        let mut bom8 = b"\xEF\xBB\xBF".to_vec();
        bom8.extend(text.as_bytes());
        for bytes in [
            text.as_bytes().to_vec(),
            bom8,
            utf16(false, true),
            utf16(true, true),
            utf16(false, false),
            utf16(true, false),
        ] {
            assert_eq!(decode(&bytes).unwrap(), text, "{bytes:?}");
        }
        // Tiny and empty files.
        assert_eq!(decode(b"[]").unwrap(), "[]");
        assert_eq!(decode(b"").unwrap(), "");
        // Broken UTF-16 is an error, not replacement characters.
        let mut broken = utf16(false, true);
        broken.extend([0x00, 0xD8, b'x', 0]); // an unpaired high surrogate
        assert!(decode(&broken).unwrap_err().contains("not valid UTF-16"));
        let e = decode(&[0xFF, 0xFE, 0, 0, b'[', 0, 0, 0]).unwrap_err();
        assert!(e.contains("UTF-32"), "{e}");
    }

    /// A few valid inputs, for the mutation fuzzer.
    const SEEDS: &[&str] = &[
        "{\"@odata.context\":\"x\",\"value\":[{\"id\":\"a\",\"lastUpdateTime\":\"2024-01-01T00:00:00Z\",\"e\":[{\"k\":\"]}\\\"\"}]},{\"id\":\"b\",\"lastUpdateTime\":\"2024-01-02T00:00:00.1234567Z\"}]}",
        "[\n  {\"id\": \"a\", \"lastUpdateTime\": \"2024-01-01T00:00:00Z\", \"n\": 1e400},\n  {\"id\": \"b\", \"value\": [1]}\n]",
        "{\"id\":\"a\",\"lastUpdateTime\":\"2024-01-01T00:00:00Z\",\"t\":\"ä\"}\n{\"id\":\"b\",\"lastUpdateTime\":\"x\"}\n",
    ];

    /// Checks a scan's outcome: no panic got here; an error carries a true position.
    fn check(input: &[u8], r: Result<Vec<u64>, ScanError>) -> Result<(), TestCaseError> {
        match r {
            Ok(indexes) => {
                let want: Vec<u64> = (1..=indexes.len() as u64).collect();
                prop_assert_eq!(indexes, want);
            }
            Err(ScanError::Syntax { at, context, .. }) => {
                prop_assert!(at.offset <= input.len() as u64);
                prop_assert_eq!(at, naive(input, at.offset));
                prop_assert!(context.contains("element"));
            }
            Err(e) => prop_assert!(false, "{e:?}"),
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// The import scanner on arbitrary bytes: no panic, and every error has its position.
        #[test]
        fn fuzz_scanner_arbitrary_bytes(input in proptest::collection::vec(any::<u8>(), 0..300)) {
            check(&input, scan_parse_chunked(&input[..], 64))?;
            check(&input, scan_parse_chunked(OneByte(&input), 5))?;
        }

        /// The import scanner on valid inputs with a few bytes changed, dropped or added.
        #[test]
        fn fuzz_scanner_mutated_inputs(
            seed in 0..SEEDS.len(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 1..6),
        ) {
            let mut input = SEEDS[seed].as_bytes().to_vec();
            for (at, kind, byte) in edits {
                let i = at.index(input.len() + 1);
                match kind {
                    0 if i < input.len() => input[i] = byte,
                    1 if i < input.len() => { input.remove(i); }
                    _ => input.insert(i, *b"{}[],:\"\\ \n0e-".get(byte as usize % 14).unwrap_or(&byte)),
                }
            }
            check(&input, scan_parse_chunked(&input[..], 64))?;
            check(&input, scan_parse_chunked(OneByte(&input), 5))?;
        }
    }
}
