//! JSON and NDJSON: by default each alert exactly as the API last returned it (unknown fields
//! kept), copied from the store's text without parsing, except that NDJSON needs each alert on
//! one line. With `shape = "mde"` (`--shape mde`) every alert is written in the MDE API's shape
//! instead: MDE alerts as stored, Graph `alerts_v2` alerts mapped ([`crate::alert::graph`]), so
//! that scripts written against `/api/alerts` output keep working after a tenant moves to Graph.

use std::borrow::Cow;
use std::io::{self, Write};

use super::error::{json_io, store_io};
use super::rows::{self, Row, Want};
use crate::config::ExportShape;
use crate::store::{Selection, Store};

/// What of a row the shape writes.
fn want(shape: ExportShape) -> Want {
    match shape {
        ExportShape::Verbatim => Want::Stored,
        ExportShape::Mde => Want::Mde,
    }
}

/// The row's text in `shape`, once it is seen to be JSON: the text is copied without being
/// parsed, and one stored row that is not JSON (a damaged store) would make the whole file
/// unreadable; it is skipped and named instead ([`rows::for_each`]).
fn text<'r>(row: &'r Row<'_>, shape: ExportShape) -> io::Result<&'r str> {
    let t = match shape {
        ExportShape::Verbatim => row.stored,
        ExportShape::Mde => row.mde.raw,
    };
    serde_json::from_str::<serde::de::IgnoredAny>(t).map_err(json_io)?;
    Ok(t)
}

/// A JSON array of the selected alerts, one per line; returns the alerts written.
pub(crate) fn write_json(
    store: &Store,
    sel: &Selection,
    shape: ExportShape,
    w: &mut (dyn Write + Send),
) -> io::Result<u64> {
    w.write_all(b"[")?;
    let mut first = true;
    let n = rows::for_each(store, sel, want(shape), |r| {
        let t = text(r, shape)?;
        w.write_all(if first { b"\n" } else { b",\n" })?;
        first = false;
        w.write_all(t.as_bytes())
    })
    .map_err(store_io)?;
    w.write_all(b"\n]\n")?;
    Ok(n)
}

/// One alert object a line; returns the alerts written.
pub(crate) fn write_ndjson(
    store: &Store,
    sel: &Selection,
    shape: ExportShape,
    w: &mut (dyn Write + Send),
) -> io::Result<u64> {
    rows::for_each(store, sel, want(shape), |r| {
        w.write_all(one_line(text(r, shape)?).as_bytes())?;
        w.write_all(b"\n")
    })
    .map_err(store_io)
}

/// The alert on one line: stored JSON from a pretty-printed import may span lines.
fn one_line(raw: &str) -> Cow<'_, str> {
    if !raw.contains('\n') && !raw.contains('\r') {
        return Cow::Borrowed(raw);
    }
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(v) => Cow::Owned(v.to_string()),
        Err(_) => Cow::Owned(raw.replace(['\n', '\r'], " ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_flattens_pretty_json() {
        assert_eq!(one_line("{\n \"a\": 1\n}"), r#"{"a":1}"#);
        assert_eq!(one_line(r#"{"a":1}"#), r#"{"a":1}"#);
    }
}
