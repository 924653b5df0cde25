//! Text encodings of imported files: UTF-8 (with or without a BOM) and UTF-16 LE/BE, transcoded
//! to UTF-8 while streaming.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use super::*;

/// The file's text as UTF-8: a UTF-8 byte-order mark is skipped, UTF-16 (with a mark, or
/// recognised by the zero bytes of its first character, as RFC 4627 describes) is transcoded
/// while it is read.
pub(super) fn decoded(mut f: File, file: &Path) -> Result<Box<dyn Read + Send>, ImportError> {
    let mut head = [0u8; 4];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(ImportError::Io {
                    file: file.to_path_buf(),
                    source,
                });
            }
        }
    }
    let head = &head[..n];
    let rest = |skip: usize| io::Cursor::new(head[skip..].to_vec()).chain(f);
    Ok(match head {
        [0, 0, 0xFE, 0xFF] | [0xFF, 0xFE, 0, 0] | [0, 0, 0, _] | [_, 0, 0, 0] => {
            return Err(ImportError::Malformed {
                file: file.to_path_buf(),
                line: 1,
                column: 1,
                offset: 0,
                context: "before the first element".into(),
                detail: "the file is UTF-32, which is not read; convert it to UTF-8, e.g. \
                         `iconv -f UTF-32 -t UTF-8 FILE > FILE.utf8.json`"
                    .into(),
            });
        }
        [0xEF, 0xBB, 0xBF, ..] => Box::new(rest(3)),
        [0xFF, 0xFE, ..] => Box::new(Utf16::new(rest(2), encoding_rs::UTF_16LE)),
        [0xFE, 0xFF, ..] => Box::new(Utf16::new(rest(2), encoding_rs::UTF_16BE)),
        // JSON text has no NUL byte: a zero in the first character is UTF-16 without a mark.
        [a, 0, ..] if *a != 0 => Box::new(Utf16::new(rest(0), encoding_rs::UTF_16LE)),
        [0, a, ..] if *a != 0 => Box::new(Utf16::new(rest(0), encoding_rs::UTF_16BE)),
        _ => Box::new(rest(0)),
    })
}

/// A reader that transcodes UTF-16 to UTF-8 as it goes (encoding_rs). Malformed UTF-16 (an
/// unpaired surrogate, an odd number of bytes) is an error, not a replacement character: the
/// import would otherwise store altered alerts.
pub(super) struct Utf16<R> {
    pub(super) inner: R,
    pub(super) decoder: encoding_rs::Decoder,
    pub(super) input: Box<[u8]>,
    pub(super) in_range: (usize, usize),
    pub(super) output: Box<[u8]>,
    pub(super) out_range: (usize, usize),
    /// Bytes of the input decoded so far (after the byte-order mark).
    pub(super) consumed: u64,
    pub(super) eof: bool,
    pub(super) done: bool,
}

impl<R: Read> Utf16<R> {
    fn new(inner: R, encoding: &'static encoding_rs::Encoding) -> Self {
        Utf16 {
            inner,
            decoder: encoding.new_decoder_without_bom_handling(),
            input: vec![0; 64 * 1024].into_boxed_slice(),
            in_range: (0, 0),
            output: vec![0; 128 * 1024].into_boxed_slice(),
            out_range: (0, 0),
            consumed: 0,
            eof: false,
            done: false,
        }
    }
}

impl<R: Read> Read for Utf16<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let (s, e) = self.out_range;
            if s < e {
                let n = (e - s).min(buf.len());
                buf[..n].copy_from_slice(&self.output[s..s + n]);
                self.out_range.0 += n;
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            if self.in_range.0 == self.in_range.1 && !self.eof {
                let n = loop {
                    match self.inner.read(&mut self.input) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        other => break other?,
                    }
                };
                self.in_range = (0, n);
                self.eof = n == 0;
            }
            let (s, e) = self.in_range;
            let (result, read, written) = self.decoder.decode_to_utf8_without_replacement(
                &self.input[s..e],
                &mut self.output,
                self.eof,
            );
            self.in_range.0 += read;
            self.consumed += read as u64;
            self.out_range = (0, written);
            match result {
                encoding_rs::DecoderResult::InputEmpty => self.done = self.eof,
                encoding_rs::DecoderResult::OutputFull => {}
                encoding_rs::DecoderResult::Malformed(bad, after) => {
                    let at = self
                        .consumed
                        .saturating_sub(u64::from(bad) + u64::from(after));
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "the file is not valid UTF-16 (an unpaired surrogate or a cut-off \
                             character about {at} bytes into the text); re-save it as UTF-8"
                        ),
                    ));
                }
            }
        }
    }
}
