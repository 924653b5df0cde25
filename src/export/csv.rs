//! CSV: what a spreadsheet opens. UTF-8 with a BOM and CRLF line ends when configured (Excel
//! wants both), a header of API property names, one row per alert (or per evidence item), cells
//! flattened and formula-guarded by [`table`]. A Graph alert is read in the MDE
//! shape (`rows`), so the header and the values are the same whichever API fed it.

use std::io::{self, Write};

use super::error::{json_io, store_io};
use super::rows::{self, Want};
use super::table::{self, Cell};
use crate::config::{ExportConfig, TimeFormat};
use crate::store::{Selection, Store};

/// Which table a CSV holds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sheet {
    /// One row per alert, the configured columns.
    Alerts,
    /// One row per evidence item, [`table::EVIDENCE_COLUMNS`].
    Evidence,
}

/// Streams the selected alerts as CSV into `w`; returns the data rows written.
pub(crate) fn write_csv(
    store: &Store,
    e: &ExportConfig,
    sel: &Selection,
    w: &mut (dyn Write + Send),
    sheet: Sheet,
) -> io::Result<u64> {
    if e.bom {
        w.write_all("\u{feff}".as_bytes())?;
    }
    let mut csv = csv::WriterBuilder::new()
        .terminator(if e.crlf {
            csv::Terminator::CRLF
        } else {
            csv::Terminator::Any(b'\n')
        })
        .from_writer(w);
    let columns: Vec<&str> = e.columns.iter().map(String::as_str).collect();
    let header: &[&str] = match sheet {
        Sheet::Alerts => &columns,
        Sheet::Evidence => table::EVIDENCE_COLUMNS,
    };
    // ISO times say `Z` in every cell; excel times carry no zone, so their header says it.
    match e.time_format {
        TimeFormat::Iso => csv.write_record(header).map_err(csv_io)?,
        TimeFormat::Excel => csv
            .write_record(header.iter().map(|c| table::utc_header(c).into_owned()))
            .map_err(csv_io)?,
    }
    let mut n = 0u64;
    rows::for_each(store, sel, Want::Mde, |row| {
        let r = &row.mde;
        let rows = match sheet {
            Sheet::Alerts => {
                vec![table::alert_row(r.tenant, r.raw, &columns).map_err(json_io)?]
            }
            Sheet::Evidence => table::evidence_rows(r.tenant, r.raw).map_err(json_io)?,
        };
        // Field by field, each cell's text borrowed: no String per cell.
        for row in rows {
            for c in &row {
                let text = Cell::csv_text(c, e.formula_guard, e.time_format);
                csv.write_field(text.as_bytes()).map_err(csv_io)?;
            }
            csv.write_record(None::<&[u8]>).map_err(csv_io)?;
            n += 1;
        }
        Ok(())
    })
    .map_err(store_io)?;
    csv.flush()?;
    Ok(n)
}

/// The io::Error inside a csv error (the only kind a writer of strings can meet), or the error
/// itself as the source of a new one.
fn csv_io(e: csv::Error) -> io::Error {
    if !e.is_io_error() {
        return io::Error::other(e);
    }
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}
