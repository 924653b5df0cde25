//! The structural JSON scanner: finds each element of a saved response, a JSON array or NDJSON
//! with its position, streaming, without building the whole document.

use std::io::{self, Read};

use super::*;

/// UTF-8 characters in `b`: the bytes that are not continuation bytes.
pub(super) fn chars(b: &[u8]) -> u64 {
    b.iter().filter(|&&c| (c as i8) >= -0x40).count() as u64
}

/// A failure while scanning.
#[derive(Debug)]
pub(super) enum ScanError {
    Io(io::Error),
    Syntax {
        at: Position,
        context: String,
        detail: String,
    },
    Stop,
}

impl From<io::Error> for ScanError {
    fn from(e: io::Error) -> Self {
        ScanError::Io(e)
    }
}

pub(super) const CHUNK: usize = 1 << 20;

/// Finds positions in the scanner's buffer, moving forward only: the text before the last place
/// found may be gone.
pub(super) struct Locator<'a> {
    pub(super) buf: &'a [u8],
    pub(super) base: u64,
    pub(super) at: &'a mut Position,
}

impl Locator<'_> {
    /// The position of byte `offset`; `offset` must not be before the last one asked for (if it
    /// is, that one is returned).
    fn find(&mut self, offset: u64) -> Position {
        if offset > self.at.offset {
            let from = (self.at.offset - self.base) as usize;
            let to = ((offset - self.base) as usize).min(self.buf.len());
            if to > from {
                self.at.advance(&self.buf[from..to]);
            }
        }
        *self.at
    }
}

/// One element, as the scanner hands it over.
pub(super) struct Element<'a> {
    /// Its byte offset.
    pub(super) offset: u64,
    /// Its index in the file, from 1.
    pub(super) index: u64,
    /// Its text.
    pub(super) bytes: &'a [u8],
    pub(super) loc: Locator<'a>,
}

impl Element<'_> {
    /// The position of the byte `i` of the element.
    pub(super) fn position(&mut self, i: usize) -> Position {
        self.loc.find(self.offset + i as u64)
    }

    pub(super) fn error(&mut self, i: usize, detail: String) -> ScanError {
        ScanError::Syntax {
            at: self.position(i),
            context: format!("in element {}", self.index),
            detail,
        }
    }
}

/// What the scanner calls with each element.
pub(super) type OnElement<'a> = dyn FnMut(Element<'_>) -> Result<(), ScanError> + 'a;

/// A byte cursor over a reader that keeps only what is needed: from the start of the element being
/// captured (the mark), or from the current position.
pub(super) struct Scanner<R> {
    pub(super) r: R,
    /// The bytes read, `buf[..end]`; the rest is room for the next read, kept from one read to
    /// the next so that it is not zero-filled again for each chunk.
    pub(super) buf: Vec<u8>,
    pub(super) end: usize,
    pub(super) pos: usize,
    /// Absolute offset of `buf[0]`.
    pub(super) base: u64,
    pub(super) mark: Option<usize>,
    pub(super) eof: bool,
    /// Bytes asked of the reader at a time.
    pub(super) chunk: usize,
    /// The last position worked out; never before `base` (it is moved up before text is dropped).
    pub(super) at: Position,
    /// Elements started so far.
    pub(super) elements: u64,
    /// Whether the scanner is inside element number `elements`.
    pub(super) inside: bool,
}

impl<R: Read> Scanner<R> {
    pub(super) fn new(r: R, chunk: usize) -> Self {
        Scanner {
            r,
            buf: Vec::new(),
            end: 0,
            pos: 0,
            base: 0,
            mark: None,
            eof: false,
            chunk,
            at: Position::START,
            elements: 0,
            inside: false,
        }
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn position(&mut self, offset: u64) -> Position {
        Locator {
            buf: &self.buf[..self.end],
            base: self.base,
            at: &mut self.at,
        }
        .find(offset)
    }

    fn context(&self) -> String {
        match (self.inside, self.elements) {
            (true, n) => format!("in element {n}"),
            (false, 0) => "before the first element".into(),
            (false, n) => format!("after element {n}"),
        }
    }

    fn syntax_at<T>(&mut self, offset: u64, detail: impl Into<String>) -> Result<T, ScanError> {
        Err(ScanError::Syntax {
            at: self.position(offset),
            context: self.context(),
            detail: detail.into(),
        })
    }

    fn syntax<T>(&mut self, detail: impl Into<String>) -> Result<T, ScanError> {
        let offset = self.offset();
        self.syntax_at(offset, detail)
    }

    /// Makes sure `buf[pos]` exists; false at end of input.
    fn fill(&mut self) -> Result<bool, ScanError> {
        if self.pos < self.end {
            return Ok(true);
        }
        if self.eof {
            return Ok(false);
        }
        let keep = self.mark.unwrap_or(self.pos);
        // Count the lines of what is dropped, so that later positions are still right.
        self.position(self.base + keep as u64);
        // Only the kept part moves (an element's start, at most one element).
        self.buf.copy_within(keep..self.end, 0);
        self.end -= keep;
        self.base += keep as u64;
        self.pos -= keep;
        if let Some(m) = self.mark.as_mut() {
            *m -= keep;
        }
        let old = self.end;
        if self.buf.len() < old + self.chunk {
            self.buf.resize(old + self.chunk, 0);
        }
        let n = loop {
            match self.r.read(&mut self.buf[old..old + self.chunk]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        self.end = old + n;
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
            Some(b) => self.syntax(format!("expected `{}`, found `{}`", what as char, shown(b))),
            None => self.syntax(format!(
                "expected `{}`, found the end of the file",
                what as char
            )),
        }
    }

    /// Skips a string; `pos` is at its opening quote.
    fn skip_string(&mut self) -> Result<(), ScanError> {
        let start = self.offset();
        // Without a mark the start may be dropped before the end is found: place it now (this
        // happens only for the few strings outside elements).
        let start_at = self.mark.is_none().then(|| self.position(start));
        self.pos += 1;
        loop {
            if !self.fill()? {
                let at = start_at.unwrap_or_else(|| self.position(start));
                return Err(ScanError::Syntax {
                    at,
                    context: self.context(),
                    detail: "a string that never ends (the file is cut short?)".into(),
                });
            }
            match memchr::memchr2(b'"', b'\\', &self.buf[self.pos..self.end]) {
                None => self.pos = self.end,
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
        let start_offset = self.offset();
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
        let result = match key {
            Ok(k) => Ok(k),
            Err(e) => self.syntax_at(
                start_offset,
                format!("bad object key: {}", serde_message(&e)),
            ),
        };
        if had_mark.is_none() {
            self.mark = None;
        }
        result
    }

    /// Skips one JSON value of any kind, tracking nesting; `pos` is at its first byte.
    fn skip_value(&mut self) -> Result<(), ScanError> {
        match self.peek_token()? {
            None => self.syntax("expected a value, found the end of the file"),
            Some(b'"') => self.skip_string(),
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                loop {
                    if !self.fill()? {
                        return self.syntax("the file ends inside an object or array (cut short?)");
                    }
                    // The buffered bytes are walked in a plain loop, not a call per byte; a
                    // string is left to `skip_string`, which jumps to its end with memchr.
                    let mut i = self.pos;
                    let bytes = &self.buf[..self.end];
                    while i < bytes.len() {
                        match bytes[i] {
                            b'"' => break,
                            b'{' | b'[' => depth += 1,
                            b'}' | b']' => {
                                depth -= 1;
                                if depth == 0 {
                                    self.pos = i + 1;
                                    return Ok(());
                                }
                            }
                            _ => {}
                        }
                        i += 1;
                    }
                    self.pos = i;
                    if i < self.end {
                        self.skip_string()?;
                    }
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

    /// Hands the element `buf[m..pos]`, which starts at `offset`, to `f`.
    fn emit(&mut self, offset: u64, m: usize, f: &mut OnElement<'_>) -> Result<(), ScanError> {
        let el = Element {
            offset,
            index: self.elements,
            bytes: &self.buf[m..self.pos],
            loc: Locator {
                buf: &self.buf[..self.end],
                base: self.base,
                at: &mut self.at,
            },
        };
        f(el)
    }

    /// Captures one value and hands its bytes to `f`.
    fn element(&mut self, f: &mut OnElement<'_>) -> Result<(), ScanError> {
        self.peek_token()?;
        let start_offset = self.offset();
        self.mark = Some(self.pos);
        self.elements += 1;
        self.inside = true;
        self.skip_value()?;
        self.inside = false;
        let m = self.mark.take().unwrap_or(0);
        self.emit(start_offset, m, f)
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
                    return self.syntax(format!("expected `,` or `]`, found `{}`", shown(b)));
                }
                None => return self.syntax("the file ends inside an array (cut short?)"),
            }
        }
    }

    /// A top-level object: a saved response (its `value` array is streamed) or one alert.
    ///
    /// A response has a `value` array and otherwise only `@odata.*` keys. The array is streamed
    /// as soon as it is met after nothing but `@odata.*` keys, since it may be hundreds of
    /// megabytes; a key after it that a response does not have is then an error (the import is one
    /// transaction, so the elements already read are not kept). An object with `id` or
    /// `lastUpdateTime` is an alert, whatever else it has; any other object is an error.
    fn object(&mut self, f: &mut OnElement<'_>) -> Result<(), ScanError> {
        let start_offset = self.offset();
        self.mark = Some(self.pos);
        self.elements += 1;
        self.inside = true;
        self.expect(b'{')?;
        let mut streamed = false;
        let mut alert = false;
        let mut others: Vec<String> = Vec::new();
        if self.peek_token()? == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                match self.peek_token()? {
                    Some(b'"') => {}
                    Some(b) => {
                        return self.syntax(format!("expected a key, found `{}`", shown(b)));
                    }
                    None => return self.syntax("the file ends inside an object (cut short?)"),
                }
                let key_offset = self.offset();
                // After a streamed array nothing is marked: place the key before it is dropped.
                let key_at = streamed.then(|| self.position(key_offset));
                let key = self.read_key()?;
                self.expect(b':')?;
                let odata = key.starts_with("@odata.");
                if key == "value" && !alert && others.is_empty() && !streamed {
                    if self.peek_token()? == Some(b'[') {
                        // A saved response: its elements are the alerts.
                        streamed = true;
                        self.mark = None;
                        self.elements -= 1;
                        self.inside = false;
                        self.array(f)?;
                    } else {
                        others.push(key);
                        self.skip_value()?;
                    }
                } else if streamed && !odata {
                    return Err(ScanError::Syntax {
                        at: key_at.unwrap_or(Position::START),
                        context: self.context(),
                        detail: format!(
                            "this object's `value` array was read as the alerts of a saved API response, \
                             but the object also has the key {key:?}, which a response does not have; \
                             if each such object is one alert, put its `id` before `value` \
                             (e.g. `jq -c '{{id}} + .' FILE > fixed.ndjson`)"
                        ),
                    });
                } else {
                    if key == "id" || key == "lastUpdateTime" {
                        alert = true;
                    } else if !odata {
                        others.push(key);
                    }
                    self.skip_value()?;
                }
                match self.peek_token()? {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    Some(b) => {
                        return self.syntax(format!("expected `,` or `}}`, found `{}`", shown(b)));
                    }
                    None => return self.syntax("the file ends inside an object (cut short?)"),
                }
            }
        }
        if streamed {
            return Ok(());
        }
        self.inside = false;
        if !alert {
            self.inside = true;
            let keys = if others.is_empty() {
                "it has no keys but `@odata.*` ones".to_owned()
            } else {
                let shown: Vec<String> = others.iter().take(5).map(|k| format!("{k:?}")).collect();
                format!(
                    "its keys: {}{}",
                    shown.join(", "),
                    if others.len() > 5 { ", …" } else { "" }
                )
            };
            let hint = if others.iter().any(|k| k == "error") {
                "; it looks like a saved error response: save a successful one"
            } else {
                ""
            };
            return self.syntax_at(
                start_offset,
                format!(
                    "an object that is neither an alert (no `id` or `lastUpdateTime`) nor a saved \
                     API response (`{{\"value\": [alerts…]}}`); {keys}{hint}"
                ),
            );
        }
        let m = self.mark.take().unwrap_or(0);
        self.emit(start_offset, m, f)
    }

    /// Every alert in the input, in order.
    pub(super) fn run(&mut self, f: &mut OnElement<'_>) -> Result<(), ScanError> {
        loop {
            match self.peek_token()? {
                None => return Ok(()),
                Some(b'[') => self.array(f)?,
                Some(b'{') => self.object(f)?,
                Some(b) => {
                    return self.syntax(format!(
                        "expected `{{` or `[`, found `{}`: not a saved API response, a JSON array or NDJSON",
                        shown(b)
                    ));
                }
            }
        }
    }
}

/// A byte as a message shows it: ASCII as itself, anything else as its hex value (a lone byte of
/// a multi-byte character is no character).
pub(super) fn shown(b: u8) -> String {
    if b.is_ascii_graphic() {
        (b as char).to_string()
    } else {
        format!("byte 0x{b:02X}")
    }
}

/// serde_json's message without its " at line L column C", which is relative to the element.
pub(super) fn serde_message(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// The byte index in `text` of serde_json's (line, column) (both from 1, column in bytes).
pub(super) fn byte_index(text: &[u8], line: usize, column: usize) -> usize {
    if line == 0 {
        return 0;
    }
    let line_start = if line == 1 {
        0
    } else {
        memchr::memchr_iter(b'\n', text)
            .nth(line - 2)
            .map_or(text.len(), |i| i + 1)
    };
    (line_start + column.saturating_sub(1)).min(text.len())
}

/// Calls `f` with each element of a JSON/NDJSON stream.
pub(super) fn scan(r: impl Read, f: &mut OnElement<'_>) -> Result<(), ScanError> {
    Scanner::new(r, CHUNK).run(f)
}

pub(super) use crate::alert::json::parse_value;
