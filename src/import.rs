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
//! a time, nor report byte offsets, which is why this scanner exists.
//!
//! All files of one import go into **one transaction**: a file with a syntax error is reported with
//! its byte offset, and nothing of the import is kept. Elements that are valid JSON but not valid
//! alerts (no `id`, unreadable `lastUpdateTime`) are counted and logged, as in a poll. The dedup
//! rule is the poll's: the newest version of each alert wins whatever the order in the files.
//! Importing never moves the poll cursor: a file says nothing about what the API has that it lacks.
//!
//! Parsing (JSON and hashing) and SQLite writing run on two threads joined by a bounded channel, so
//! memory stays flat and both cores are used.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use crate::alert::{Alert, Invalid};
use crate::store::{Counts, Outcome, Store, StoreError};

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
    /// The file is not valid JSON / NDJSON.
    #[error("{file}: malformed at byte {offset}: {detail}; nothing was imported")]
    Malformed {
        /// The file.
        file: PathBuf,
        /// Byte offset of the problem (of the element's start, for errors inside an element).
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// The store failed; the transaction was rolled back.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportReport {
    /// Upsert outcomes.
    pub counts: Counts,
    /// Elements read.
    pub elements: u64,
}

/// A failure while scanning.
#[derive(Debug)]
enum ScanError {
    Io(io::Error),
    Syntax { offset: u64, detail: String },
    Stop,
}

impl From<io::Error> for ScanError {
    fn from(e: io::Error) -> Self {
        ScanError::Io(e)
    }
}

const CHUNK: usize = 1 << 20;

/// What the scanner calls with each element: its byte offset and its bytes.
type OnElement<'a> = dyn FnMut(u64, &[u8]) -> Result<(), ScanError> + 'a;

/// A byte cursor over a reader that keeps only what is needed: from the start of the element being
/// captured (the mark), or from the current position.
struct Scanner<R> {
    r: R,
    buf: Vec<u8>,
    pos: usize,
    /// Absolute offset of `buf[0]`.
    base: u64,
    mark: Option<usize>,
    eof: bool,
}

impl<R: Read> Scanner<R> {
    fn new(r: R) -> Self {
        Scanner {
            r,
            buf: Vec::with_capacity(CHUNK),
            pos: 0,
            base: 0,
            mark: None,
            eof: false,
        }
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn syntax<T>(&self, detail: impl Into<String>) -> Result<T, ScanError> {
        Err(ScanError::Syntax {
            offset: self.offset(),
            detail: detail.into(),
        })
    }

    /// Makes sure `buf[pos]` exists; false at end of input.
    fn fill(&mut self) -> Result<bool, ScanError> {
        if self.pos < self.buf.len() {
            return Ok(true);
        }
        if self.eof {
            return Ok(false);
        }
        let keep = self.mark.unwrap_or(self.pos);
        self.buf.drain(..keep);
        self.base += keep as u64;
        self.pos -= keep;
        if let Some(m) = self.mark.as_mut() {
            *m -= keep;
        }
        let old = self.buf.len();
        self.buf.resize(old + CHUNK, 0);
        let n = loop {
            match self.r.read(&mut self.buf[old..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                self.buf.truncate(old);
                return Err(e.into());
            }
        };
        self.buf.truncate(old + n);
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn peek(&mut self) -> Result<Option<u8>, ScanError> {
        Ok(if self.fill()? {
            Some(self.buf[self.pos])
        } else {
            None
        })
    }

    /// The next byte that is not JSON whitespace, not consumed.
    fn peek_token(&mut self) -> Result<Option<u8>, ScanError> {
        loop {
            match self.peek()? {
                Some(b' ' | b'\t' | b'\n' | b'\r') => self.pos += 1,
                other => return Ok(other),
            }
        }
    }

    fn expect(&mut self, what: u8) -> Result<(), ScanError> {
        match self.peek_token()? {
            Some(b) if b == what => {
                self.pos += 1;
                Ok(())
            }
            Some(b) => self.syntax(format!(
                "expected `{}`, found `{}`",
                what as char, b as char
            )),
            None => self.syntax(format!(
                "expected `{}`, found the end of the file",
                what as char
            )),
        }
    }

    /// Skips a string; `pos` is at its opening quote.
    fn skip_string(&mut self) -> Result<(), ScanError> {
        let start = self.offset();
        self.pos += 1;
        loop {
            if !self.fill()? {
                return Err(ScanError::Syntax {
                    offset: start,
                    detail: "a string that never ends (the file is cut short?)".into(),
                });
            }
            match memchr::memchr2(b'"', b'\\', &self.buf[self.pos..]) {
                None => self.pos = self.buf.len(),
                Some(i) => {
                    self.pos += i;
                    if self.buf[self.pos] == b'"' {
                        self.pos += 1;
                        return Ok(());
                    }
                    // a backslash: skip it and the escaped byte
                    self.pos += 1;
                    if !self.fill()? {
                        continue;
                    }
                    self.pos += 1;
                }
            }
        }
    }

    /// Reads a (short) string such as an object key, unescaped.
    fn read_key(&mut self) -> Result<String, ScanError> {
        let start = self.pos;
        let had_mark = self.mark;
        if had_mark.is_none() {
            self.mark = Some(start);
        }
        let mark_before = self.mark.unwrap_or(start);
        let offset_in_mark = start - mark_before;
        self.skip_string()?;
        let m = self.mark.unwrap_or(0);
        let raw = &self.buf[m + offset_in_mark..self.pos];
        let key: Result<String, _> = serde_json::from_slice(raw);
        if had_mark.is_none() {
            self.mark = None;
        }
        key.or_else(|e| self.syntax(format!("bad object key: {e}")))
    }

    /// Skips one JSON value of any kind, tracking nesting; `pos` is at its first byte.
    fn skip_value(&mut self) -> Result<(), ScanError> {
        match self.peek_token()? {
            None => self.syntax("expected a value, found the end of the file"),
            Some(b'"') => self.skip_string(),
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                loop {
                    let Some(b) = self.peek()? else {
                        return self.syntax("the file ends inside an object or array (cut short?)");
                    };
                    match b {
                        b'"' => {
                            self.skip_string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.pos += 1;
                                return Ok(());
                            }
                        }
                        _ => {}
                    }
                    self.pos += 1;
                }
            }
            Some(b'}' | b']' | b',' | b':') => self.syntax("expected a value"),
            Some(_) => {
                // a scalar: up to the next delimiter
                while let Some(b) = self.peek()? {
                    if matches!(b, b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.pos += 1;
                }
                Ok(())
            }
        }
    }

    /// Captures one value and hands its bytes to `f`.
    fn element(&mut self, f: &mut OnElement<'_>) -> Result<(), ScanError> {
        self.peek_token()?;
        let start_offset = self.offset();
        self.mark = Some(self.pos);
        self.skip_value()?;
        let m = self.mark.take().unwrap_or(0);
        let (buf, pos) = (&self.buf, self.pos);
        f(start_offset, &buf[m..pos])
    }

    /// The elements of an array; `pos` is at `[`.
    fn array(&mut self, f: &mut OnElement<'_>) -> Result<(), ScanError> {
        self.expect(b'[')?;
        if self.peek_token()? == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.element(f)?;
            match self.peek_token()? {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b) => {
                    return self.syntax(format!("expected `,` or `]`, found `{}`", b as char));
                }
                None => return self.syntax("the file ends inside an array (cut short?)"),
            }
        }
    }

    /// A top-level object: a response envelope (its `value` array is streamed) or one alert.
    fn object(&mut self, f: &mut OnElement<'_>) -> Result<(), ScanError> {
        let start_offset = self.offset();
        self.mark = Some(self.pos);
        self.expect(b'{')?;
        let mut envelope = false;
        if self.peek_token()? == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                match self.peek_token()? {
                    Some(b'"') => {}
                    Some(b) => {
                        return self.syntax(format!("expected a key, found `{}`", b as char));
                    }
                    None => return self.syntax("the file ends inside an object (cut short?)"),
                }
                let key = self.read_key()?;
                self.expect(b':')?;
                if key == "value" && self.peek_token()? == Some(b'[') {
                    envelope = true;
                    self.mark = None;
                    self.array(f)?;
                } else {
                    self.skip_value()?;
                }
                match self.peek_token()? {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    Some(b) => {
                        return self.syntax(format!("expected `,` or `}}`, found `{}`", b as char));
                    }
                    None => return self.syntax("the file ends inside an object (cut short?)"),
                }
            }
        }
        if envelope {
            return Ok(());
        }
        let m = self.mark.take().unwrap_or(0);
        let (buf, pos) = (&self.buf, self.pos);
        f(start_offset, &buf[m..pos])
    }

    /// Every alert in the input, in order.
    fn run(&mut self, f: &mut OnElement<'_>) -> Result<(), ScanError> {
        loop {
            match self.peek_token()? {
                None => return Ok(()),
                Some(b'[') => self.array(f)?,
                Some(b'{') => self.object(f)?,
                Some(b) => {
                    return self.syntax(format!(
                        "expected `{{` or `[`, found `{}`: not a saved API response, a JSON array or NDJSON",
                        b as char
                    ));
                }
            }
        }
    }
}

/// Calls `f` with each element (its byte offset and bytes) of a JSON/NDJSON stream.
fn scan(r: impl Read, f: &mut OnElement<'_>) -> Result<(), ScanError> {
    Scanner::new(r).run(f)
}

/// What the parser thread sends the writer thread.
type Batch = Vec<Result<Alert, (u64, Invalid)>>;
const BATCH: usize = 512;

/// Imports `files` for `tenant` in one transaction.
pub fn import(
    store: &mut Store,
    tenant: &str,
    files: &[PathBuf],
) -> Result<ImportReport, ImportError> {
    let run = store.begin_run(tenant, "import")?;
    let result = import_inner(store, tenant, files, run);
    let (outcome, err) = match &result {
        Ok(_) => (Outcome::Ok, None),
        Err(e) => (Outcome::Failed, Some(e.to_string())),
    };
    // Recording the outcome is best effort when the store itself failed.
    let finished = store.finish_run(run, outcome, Default::default(), err.as_deref());
    let report = result?;
    finished?;
    Ok(report)
}

fn import_inner(
    store: &mut Store,
    tenant: &str,
    files: &[PathBuf],
    run: crate::store::RunId,
) -> Result<ImportReport, ImportError> {
    let mut writer = store.writer()?;
    let mut elements = 0u64;
    for file in files {
        let f = File::open(file).map_err(|source| ImportError::Io {
            file: file.clone(),
            source,
        })?;
        let (tx, rx) = mpsc::sync_channel::<Batch>(8);
        let parse_result = std::thread::scope(|scope| {
            let rx = rx; // owned here, so that it can be dropped before the join below
            let parser = scope.spawn(move || parse_file(f, tx));
            let mut store_err = None;
            'batches: for batch in rx.iter() {
                for item in batch {
                    elements += 1;
                    match item {
                        Ok(a) => {
                            if let Err(e) = writer.upsert(tenant, &a) {
                                store_err = Some(e);
                                break 'batches;
                            }
                        }
                        Err((offset, why)) => {
                            writer.add_invalid(1);
                            tracing::warn!(file = %file.display(), offset, error = %why, "Skipped an element that is not a valid alert.");
                        }
                    }
                }
            }
            // With the receiver gone, a parser blocked on a full channel gets an error and stops.
            drop(rx);
            let parsed = parser.join().expect("parser thread panicked");
            (parsed, store_err)
        });
        match parse_result {
            (_, Some(e)) => return Err(e.into()),
            (Err(ScanError::Io(source)), None) => {
                return Err(ImportError::Io {
                    file: file.clone(),
                    source,
                });
            }
            (Err(ScanError::Syntax { offset, detail }), None) => {
                return Err(ImportError::Malformed {
                    file: file.clone(),
                    offset,
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
    Ok(ImportReport { counts, elements })
}

/// The parser thread: scan, parse and hash, send in batches.
fn parse_file(f: File, tx: mpsc::SyncSender<Batch>) -> Result<(), ScanError> {
    let mut batch: Batch = Vec::with_capacity(BATCH);
    let mut on_element = |offset: u64, bytes: &[u8]| -> Result<(), ScanError> {
        let text = std::str::from_utf8(bytes).map_err(|e| ScanError::Syntax {
            offset: offset + e.valid_up_to() as u64,
            detail: "not valid UTF-8".into(),
        })?;
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ScanError::Syntax {
                offset,
                detail: format!("in the element starting here: {e}"),
            })?;
        batch.push(Alert::from_value(text, &value).map_err(|why| (offset, why)));
        if batch.len() >= BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            tx.send(full).map_err(|_| ScanError::Stop)?;
        }
        Ok(())
    };
    scan(io::BufReader::with_capacity(0, f), &mut on_element)?;
    if !batch.is_empty() {
        tx.send(batch).map_err(|_| ScanError::Stop)?;
    }
    Ok(())
}

/// Elements of a JSON/NDJSON text, for tests and tools: `(offset, text)`.
pub fn split(text: &str) -> Result<Vec<(u64, String)>, (u64, String)> {
    let mut out = Vec::new();
    let mut f = |o: u64, b: &[u8]| -> Result<(), ScanError> {
        out.push((o, String::from_utf8_lossy(b).into_owned()));
        Ok(())
    };
    match scan(text.as_bytes(), &mut f) {
        Ok(()) => Ok(out),
        Err(ScanError::Syntax { offset, detail }) => Err((offset, detail)),
        Err(e) => Err((0, format!("{e:?}"))),
    }
}

/// The path as given, for messages.
pub fn display(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<String> {
        split(s).unwrap().into_iter().map(|(_, t)| t).collect()
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
        // two saved responses back to back
        assert_eq!(
            texts(r#"{"value":[{"id":"a"}]}{"value":[]} {"value":[{"id":"c"}]}"#).len(),
            2
        );
        assert!(texts("[]").is_empty());
        assert!(texts("  \n").is_empty());
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
    fn malformed_inputs_report_offsets() {
        for (bad, at_least) in [
            ("[{\"id\":\"a\"} {\"id\":\"b\"}]", 11),
            ("{\"value\":[{\"id\":\"a\"}", 20),
            ("[{\"id\":\"a", 2),
            ("hello", 0),
            ("{\"value\":[{\"id\":\"a\"}],}", 21),
        ] {
            let (offset, detail) = split(bad).unwrap_err();
            assert!(offset as usize >= at_least, "{bad}: {offset} {detail}");
            assert!(offset as usize <= bad.len(), "{bad}: {offset}");
        }
    }

    #[test]
    fn chunk_boundaries_do_not_matter() {
        // A reader that returns one byte at a time exercises every refill path.
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
        let s = r#"{"@odata.context":"x","value":[{"id":"a\\\"","n":[1,2,{"x":"}"}]},{"id":"b"}]}"#;
        let mut got = Vec::new();
        scan(OneByte(s.as_bytes()), &mut |_, b| {
            got.push(String::from_utf8(b.to_vec()).unwrap());
            Ok(())
        })
        .unwrap();
        assert_eq!(got, texts(s));
        assert_eq!(got.len(), 2);
    }
}
