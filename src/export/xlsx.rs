//! The spreadsheet export: an `.xlsx` workbook that an analyst opens in Excel every morning.
//!
//! Why a module of its own, and why it looks like this:
//!
//! - **Two sheets.** "Alerts" has one row per alert, a bold and frozen header row, an autofilter
//!   over the header and every data row, and column widths taken from the content (capped, so a
//!   long description does not make a column a screen wide). "Summary" is a matrix of counts:
//!   severities down, statuses across, with row and column totals.
//! - **Real cell types.** A [`Cell::Time`] becomes a real Excel date-time (through
//!   `rust_xlsxwriter`'s own [`ExcelDateTime`], with a `yyyy-mm-dd hh:mm:ss` number format) so
//!   that sorting and filtering by date work. Instants Excel cannot show (before 1900-03-01,
//!   where Excel's phantom 1900-02-29 makes serials ambiguous, or after 9999-12-31) are written
//!   as text in the same layout. Times are in
//!   **UTC** and are shown to the whole second (truncated, never rounded up into the next
//!   second, minute or day); Excel has no time zones, so the header of a time column says
//!   UTC (`alertCreationTime (UTC)`). A [`Cell::Number`] is a number (NaN and the infinities, which Excel cannot store, and
//!   anything that does not parse as one are written as text). A [`Cell::Text`] is always written
//!   as a string, never as a formula, so an alert title such as `=1+2` or `=HYPERLINK(...)` is
//!   shown, not run. The cells are [`table`]'s, the same ones the CSV writes.
//! - **Excel's limits are checked, not discovered in Excel.** A text longer than Excel's 32,767
//!   characters per cell is cut at a character boundary and ends with `…`. More rows than
//!   Excel's 1,048,576 (header included) is an error that says so, and nothing is saved: a
//!   spreadsheet that silently lacks alerts would be worse than none.
//! - **Memory stays flat.** `rust_xlsxwriter`'s "constant memory" mode keeps one row in memory
//!   and streams the others, as XML with inline strings, to an unnamed temporary file in
//!   [`std::env::temp_dir`] (`TMPDIR`), which is zipped into `out` at the end. A million-row
//!   export therefore needs that much free disk in the temporary directory (roughly 1–2 KB a
//!   row), not that much RAM.
//! - **No panics.** `rust_xlsxwriter` panics (rather than returning an error) if writing its
//!   temporary file fails, for example on a full disk; those panics are caught here and turned
//!   into an [`XlsxError`]. A panic in the caller's own `rows` iterator is not caught.
//!   `rust_xlsxwriter`'s own errors are kept as the [source](std::error::Error::source).
//!
//! The workbook is only complete once [`write_xlsx`] returns `Ok`; on an error `out` may hold a
//! partial file, which the caller (writing to a temporary file that it renames on success)
//! discards.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Seek, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};

use rust_xlsxwriter::{ColNum, ExcelDateTime, Format, RowNum, Workbook, Worksheet};

use super::error::{json_io, store_io};
use super::rows::{self, Want};
use super::table::{self, Cell};
use crate::alert::time::ApiTime;
use crate::alert::vocab::{Severity, Status};
use crate::config::ExportConfig;
use crate::store::{Selection, Store};

/// Why the file could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
enum XlsxError {
    /// The export has no columns.
    #[error("cannot write the spreadsheet: there are no columns")]
    NoColumns,
    /// More columns than a sheet holds.
    #[error(
        "cannot write the spreadsheet: {0} columns are more than Excel's limit of {EXCEL_MAX_COLUMNS}"
    )]
    TooManyColumns(usize),
    /// More rows than a sheet holds.
    #[error(
        "cannot write the spreadsheet: more than {max} alerts: Excel's limit is {} rows a sheet, header included; export fewer alerts (a narrower filter or time range) or use CSV",
        max + 1
    )]
    TooManyRows {
        /// Data rows allowed.
        max: u64,
    },
    /// A row that does not match the header.
    #[error("cannot write the spreadsheet: data row {row} has {cells} cells for {columns} columns")]
    RowLength {
        /// The data row (1-based).
        row: u64,
        /// Its cells.
        cells: usize,
        /// The header's columns.
        columns: usize,
    },
    /// The Summary sheet would not fit.
    #[error(
        "cannot write the spreadsheet: {severities} severities × {statuses} statuses do not fit a sheet"
    )]
    SummaryTooBig {
        /// Distinct severities.
        severities: usize,
        /// Distinct statuses.
        statuses: usize,
    },
    /// `rust_xlsxwriter` refused something.
    #[error("cannot write the spreadsheet: {doing}: {source}")]
    Library {
        /// What was being done.
        doing: String,
        /// The library's error.
        #[source]
        source: rust_xlsxwriter::XlsxError,
    },
    /// `rust_xlsxwriter` panicked (it does when its temporary file cannot be written).
    #[error(
        "cannot write the spreadsheet: the xlsx writer failed (is the temporary directory full?): {0}"
    )]
    Panicked(String),
}

/// Counts for the Summary sheet: (severity, status) -> count; severities/statuses are free strings.
type Counts = BTreeMap<(String, String), u64>;

/// The name of the sheet with one row per alert.
const ALERTS_SHEET: &str = "Alerts";
/// The name of the sheet with the counts.
const SUMMARY_SHEET: &str = "Summary";
/// Excel's rows per sheet, the header row included.
const EXCEL_MAX_ROWS: u64 = 1_048_576;
/// Excel's columns per sheet.
const EXCEL_MAX_COLUMNS: usize = 16_384;
/// Excel's characters per cell, counted in UTF-16 code units as Excel does.
const EXCEL_MAX_CELL_CHARS: usize = 32_767;
/// What ends a text cut at [`EXCEL_MAX_CELL_CHARS`]; one UTF-16 code unit.
const ELLIPSIS: char = '…';
/// The number format of [`Cell::Time`] cells.
const TIME_FORMAT: &str = "yyyy-mm-dd hh:mm:ss";
/// The same layout for chrono, for instants Excel cannot show as dates.
const TIME_TEXT_FORMAT: &str = "%Y-%m-%d %H:%M:%S";
/// Characters that `TIME_FORMAT` shows.
const TIME_WIDTH: usize = 19;
/// The widest a column is made, in Excel's width units (about one digit each).
const MAX_COLUMN_WIDTH: usize = 60;
/// The narrowest a column is made.
const MIN_COLUMN_WIDTH: usize = 6;
/// Room for the autofilter's drop-down button in a header cell.
const FILTER_BUTTON_WIDTH: usize = 3;
/// [`ApiTime`]'s ticks (100 ns) per second.
const TICKS_PER_SECOND: i64 = 10_000_000;
/// Unix seconds of 1900-03-01T00:00:00Z, the first instant written as a date.
const FIRST_EXCEL_SECOND: i64 = -2_203_891_200;
/// Unix seconds of 9999-12-31T23:59:59Z, the last instant Excel shows.
const LAST_EXCEL_SECOND: i64 = 253_402_300_799;
/// An upper bound of the bytes of XML one cell adds besides its text (`<c r="XFD1048576" s="1"
/// t="inlineStr"><is><t xml:space="preserve">…</t></is></c>` and the row's share of `<row>`).
const CELL_XML_OVERHEAD: u64 = 80;
/// The most XML bytes one byte of text can become (a control character becomes `_x001F_`).
const TEXT_XML_EXPANSION: u64 = 7;
/// Above this estimate of the sheet's XML, the zip gets ZIP64 records: a plain zip entry cannot
/// exceed 4 GiB. Below it the file stays a plain zip, which every reader can open.
const ZIP64_THRESHOLD: u64 = 0xF000_0000;
/// Deflate level: 3 is what Excel itself uses, and about a third faster than the default 6 for a
/// file a few per cent larger.
const ZIP_COMPRESSION_LEVEL: u8 = 3;

/// Streams `rows` (each exactly `columns.len()` cells) into an .xlsx written to `out`.
/// Returns the number of data rows.
///
/// The workbook has the sheet "Alerts" (header `columns`, then `rows`) and the sheet "Summary"
/// (`counts` as a severity × status matrix with totals); see the [module docs](self) for the
/// details. Rows are written as they come, so memory does not grow with their number; the
/// workbook is zipped into `out` once the last row is read. `out` needs no seeking.
///
/// # Errors
///
/// An [`XlsxError`] when `columns` is empty or wider than Excel's 16,384 columns, when a row
/// has a different number of cells than `columns`, when there are more rows than Excel's
/// 1,048,576 (header included), or when the temporary file or `out` cannot be written. On an
/// error `out` may hold a partial file, to be discarded.
fn write_xlsx<W: Write + Seek + Send>(
    out: W,
    columns: &[&str],
    rows: impl Iterator<Item = Vec<Cell<'static>>>,
    counts: &Counts,
) -> Result<u64, XlsxError> {
    let limits = Limits {
        max_data_rows: EXCEL_MAX_ROWS - 1,
        zip64_threshold: ZIP64_THRESHOLD,
    };
    write_with_limits(out, columns, rows, counts, &limits)
}

/// The limits [`write_xlsx`] enforces; smaller in the tests, so the limit paths can be reached.
struct Limits {
    /// Data rows allowed below the header.
    max_data_rows: u64,
    /// Estimated sheet XML bytes above which ZIP64 is turned on.
    zip64_threshold: u64,
}

/// [`write_xlsx`] with its limits as a parameter.
fn write_with_limits<W: Write + Send>(
    out: W,
    columns: &[&str],
    rows: impl Iterator<Item = Vec<Cell<'static>>>,
    counts: &Counts,
    limits: &Limits,
) -> Result<u64, XlsxError> {
    if columns.is_empty() {
        return Err(XlsxError::NoColumns);
    }
    if columns.len() > EXCEL_MAX_COLUMNS {
        return Err(XlsxError::TooManyColumns(columns.len()));
    }
    let bold = Format::new().set_bold();
    let time_format = Format::new().set_num_format(TIME_FORMAT);

    let mut workbook = Workbook::new();
    workbook.set_zip_compression_level(ZIP_COMPRESSION_LEVEL);

    let mut alerts = AlertsSheet::new(columns);
    {
        let sheet = guard(|| workbook.add_worksheet_with_constant_memory())?
            .map_err(|e| lib_error("cannot create the Alerts sheet", e))?;
        guard(|| alerts.start(sheet, columns, &bold))??;
        for row in rows {
            // The caller's iterator runs outside `guard`: its panics are its own.
            guard(|| alerts.write_row(sheet, row, &time_format, limits))??;
        }
        guard(|| alerts.finish(sheet))??;
    }
    {
        let sheet = workbook.add_worksheet();
        guard(|| write_summary(sheet, counts, &bold))??;
    }
    if alerts.estimated_xml_bytes > limits.zip64_threshold {
        workbook.use_zip_large_file(true);
    }
    guard(|| workbook.save_to_writer(out))?.map_err(|e| lib_error("cannot save", e))?;
    Ok(alerts.data_rows)
}

/// Runs `f`, turning a panic inside `rust_xlsxwriter` into an error.
fn guard<T>(f: impl FnOnce() -> T) -> Result<T, XlsxError> {
    // AssertUnwindSafe: after a panic the workbook is dropped, never used again.
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        XlsxError::Panicked(message)
    })
}

/// An error of `rust_xlsxwriter`, with what was being done.
fn lib_error(doing: &str, source: rust_xlsxwriter::XlsxError) -> XlsxError {
    XlsxError::Library {
        doing: doing.to_owned(),
        source,
    }
}

/// The state of the "Alerts" sheet while rows stream in.
struct AlertsSheet {
    /// Data rows written so far.
    data_rows: u64,
    /// The widest content seen per column, in characters, capped at [`MAX_COLUMN_WIDTH`].
    widths: Vec<usize>,
    /// An upper bound of the sheet's XML bytes so far, to decide on ZIP64.
    estimated_xml_bytes: u64,
}

impl AlertsSheet {
    /// A sheet for `columns`, their widths at least their headers'.
    fn new(columns: &[&str]) -> Self {
        let widths = columns
            .iter()
            .map(|c| display_width(&super::table::utc_header(c)) + FILTER_BUTTON_WIDTH)
            .collect();
        AlertsSheet {
            data_rows: 0,
            widths,
            estimated_xml_bytes: 0,
        }
    }

    /// Writes the header row, frozen so it stays in view.
    fn start(
        &mut self,
        sheet: &mut Worksheet,
        columns: &[&str],
        bold: &Format,
    ) -> Result<(), XlsxError> {
        let fail = |e| lib_error("cannot write the header", e);
        sheet.set_name(ALERTS_SHEET).map_err(fail)?;
        for (col, name) in (0..).zip(columns) {
            // A date cell has no zone: the header says the times are UTC.
            let text = excel_text(super::table::utc_header(name).into_owned());
            estimate(&mut self.estimated_xml_bytes, text.len());
            sheet
                .write_string_with_format(0, col, text, bold)
                .map_err(fail)?;
        }
        sheet.set_freeze_panes(1, 0).map_err(fail)?;
        Ok(())
    }

    /// Writes one data row below the ones before.
    fn write_row(
        &mut self,
        sheet: &mut Worksheet,
        row: Vec<Cell<'_>>,
        time_format: &Format,
        limits: &Limits,
    ) -> Result<(), XlsxError> {
        let number = self.data_rows + 1;
        if self.data_rows >= limits.max_data_rows {
            return Err(XlsxError::TooManyRows {
                max: limits.max_data_rows,
            });
        }
        if row.len() != self.widths.len() {
            return Err(XlsxError::RowLength {
                row: number,
                cells: row.len(),
                columns: self.widths.len(),
            });
        }
        // `max_data_rows` is below Excel's row limit, so the row number fits Excel's `u32`.
        let excel_row = RowNum::try_from(number).map_err(|_| XlsxError::TooManyRows {
            max: limits.max_data_rows,
        })?;
        let fail = |e| lib_error(&format!("cannot write data row {number}"), e);
        for ((col, cell), width) in (0..).zip(row).zip(self.widths.iter_mut()) {
            let col: ColNum = col;
            let (shown, text_bytes) = match cell {
                Cell::Empty => (0, 0),
                Cell::Text(text) => {
                    let text = excel_text(text.into_owned());
                    let (shown, bytes) = (wider_than(&text, *width), text.len());
                    sheet.write_string(excel_row, col, text).map_err(fail)?;
                    (shown, bytes)
                }
                Cell::Number(text) => match text.parse::<f64>() {
                    Ok(value) if value.is_finite() => {
                        sheet.write_number(excel_row, col, value).map_err(fail)?;
                        (number_width(value), 0)
                    }
                    Ok(value) => {
                        let text = if value.is_nan() {
                            "NaN"
                        } else if value > 0.0 {
                            "Infinity"
                        } else {
                            "-Infinity"
                        };
                        sheet.write_string(excel_row, col, text).map_err(fail)?;
                        (text.len(), text.len())
                    }
                    // Not a number Rust reads (JSON numbers always are): kept as text.
                    Err(_) => {
                        let text = excel_text(text.into_owned());
                        let (shown, bytes) = (wider_than(&text, *width), text.len());
                        sheet.write_string(excel_row, col, text).map_err(fail)?;
                        (shown, bytes)
                    }
                },
                Cell::Time(time) => match excel_datetime(time) {
                    Some(datetime) => {
                        sheet
                            .write_datetime_with_format(excel_row, col, &datetime, time_format)
                            .map_err(fail)?;
                        (TIME_WIDTH, 0)
                    }
                    None => {
                        let text = time.to_chrono().format(TIME_TEXT_FORMAT).to_string();
                        let shown = text.chars().count();
                        let bytes = text.len();
                        sheet.write_string(excel_row, col, text).map_err(fail)?;
                        (shown, bytes)
                    }
                },
            };
            *width = (*width).max(shown.min(MAX_COLUMN_WIDTH));
            estimate(&mut self.estimated_xml_bytes, text_bytes);
        }
        self.data_rows = number;
        Ok(())
    }

    /// Sets the autofilter over all rows and the column widths.
    fn finish(&self, sheet: &mut Worksheet) -> Result<(), XlsxError> {
        let fail = |e| lib_error("cannot finish the Alerts sheet", e);
        // Both fit: rows were checked against the row limit, columns against the column limit.
        let last_row = RowNum::try_from(self.data_rows).map_err(|_| XlsxError::TooManyRows {
            max: self.data_rows,
        })?;
        let last_col = ColNum::try_from(self.widths.len().saturating_sub(1))
            .map_err(|_| XlsxError::TooManyColumns(self.widths.len()))?;
        sheet.autofilter(0, 0, last_row, last_col).map_err(fail)?;
        for (col, width) in (0..).zip(&self.widths) {
            let width = (*width + 1).clamp(MIN_COLUMN_WIDTH, MAX_COLUMN_WIDTH);
            sheet
                .set_column_width(col, cell_width(width))
                .map_err(fail)?;
        }
        Ok(())
    }
}

/// Adds a cell of `text_bytes` bytes of text to the sheet's XML size `estimate`.
fn estimate(estimate: &mut u64, text_bytes: usize) {
    let text = u64::try_from(text_bytes).unwrap_or(u64::MAX);
    *estimate = estimate
        .saturating_add(CELL_XML_OVERHEAD)
        .saturating_add(text.saturating_mul(TEXT_XML_EXPANSION));
}

/// Writes the "Summary" sheet: severities down, statuses across, totals on the right and below.
fn write_summary(sheet: &mut Worksheet, counts: &Counts, bold: &Format) -> Result<(), XlsxError> {
    let fail = |e| lib_error("cannot write the Summary sheet", e);
    sheet.set_name(SUMMARY_SHEET).map_err(fail)?;

    let severities = by_severity(counts.keys().map(|(severity, _)| severity));
    let statuses = by_status(counts.keys().map(|(_, status)| status));
    if statuses.len() + 2 > EXCEL_MAX_COLUMNS
        || u64::try_from(severities.len() + 2).unwrap_or(u64::MAX) > EXCEL_MAX_ROWS
    {
        return Err(XlsxError::SummaryTooBig {
            severities: severities.len(),
            statuses: statuses.len(),
        });
    }
    // Both fit Excel's row and column numbers: checked just above.
    let total_row = RowNum::try_from(severities.len() + 1).unwrap_or(RowNum::MAX);
    let total_col = ColNum::try_from(statuses.len() + 1).unwrap_or(ColNum::MAX);

    let mut first_width = "Severity".len();
    sheet
        .write_string_with_format(0, 0, "Severity", bold)
        .map_err(fail)?;
    for (col, status) in (1..).zip(&statuses) {
        sheet
            .write_string_with_format(0, col, excel_text((*status).clone()), bold)
            .map_err(fail)?;
        let width = (display_width(status) + 2).clamp(10, MAX_COLUMN_WIDTH);
        sheet
            .set_column_width(col, cell_width(width))
            .map_err(fail)?;
    }
    sheet
        .write_string_with_format(0, total_col, "Total", bold)
        .map_err(fail)?;
    sheet
        .set_column_width(total_col, cell_width(10))
        .map_err(fail)?;

    let mut column_totals = vec![0_u64; statuses.len()];
    let mut grand_total = 0_u64;
    for (row, severity) in (1..).zip(&severities) {
        first_width = first_width.max(display_width(severity));
        sheet
            .write_string_with_format(row, 0, excel_text((*severity).clone()), bold)
            .map_err(fail)?;
        let mut row_total = 0_u64;
        for ((col, status), column_total) in (1..).zip(&statuses).zip(&mut column_totals) {
            let count = counts
                .get(&((*severity).clone(), (*status).clone()))
                .copied()
                .unwrap_or(0);
            row_total = row_total.saturating_add(count);
            *column_total = column_total.saturating_add(count);
            sheet.write_number(row, col, as_f64(count)).map_err(fail)?;
        }
        grand_total = grand_total.saturating_add(row_total);
        sheet
            .write_number_with_format(row, total_col, as_f64(row_total), bold)
            .map_err(fail)?;
    }

    sheet
        .write_string_with_format(total_row, 0, "Total", bold)
        .map_err(fail)?;
    for (col, total) in (1..).zip(&column_totals) {
        sheet
            .write_number_with_format(total_row, col, as_f64(*total), bold)
            .map_err(fail)?;
    }
    sheet
        .write_number_with_format(total_row, total_col, as_f64(grand_total), bold)
        .map_err(fail)?;
    let first_width = (first_width + 2).clamp(10, MAX_COLUMN_WIDTH);
    sheet
        .set_column_width(0, cell_width(first_width))
        .map_err(fail)?;
    Ok(())
}

/// The distinct severities, most severe first in the one order of
/// [`Severity`](crate::alert::vocab::Severity) (unknown values above `High`), ties exactly.
fn by_severity<'a>(values: impl Iterator<Item = &'a String>) -> Vec<&'a String> {
    let mut distinct: Vec<&String> = values.collect();
    distinct.sort_by_cached_key(|value| {
        (
            std::cmp::Reverse(Severity::parse(value)),
            value.to_lowercase(),
            (*value).clone(),
        )
    });
    distinct.dedup();
    distinct
}

/// The distinct statuses: Defender's in their life's order
/// ([`Status::order`](crate::alert::vocab::Status::order)), then the others alphabetically
/// (without case, then exactly).
fn by_status<'a>(values: impl Iterator<Item = &'a String>) -> Vec<&'a String> {
    let mut distinct: Vec<&String> = values.collect();
    distinct.sort_by_cached_key(|value| {
        (
            Status::parse(value).order(),
            value.to_lowercase(),
            (*value).clone(),
        )
    });
    distinct.dedup();
    distinct
}

/// `text` as Excel can hold it: cut to 32,767 UTF-16 code units, the last being `…`.
fn excel_text(text: String) -> String {
    // A UTF-8 byte count is never below the UTF-16 count: short strings need no look.
    if text.len() <= EXCEL_MAX_CELL_CHARS {
        return text;
    }
    let mut units = 0;
    let mut end = 0;
    for (index, ch) in text.char_indices() {
        units += ch.len_utf16();
        if units > EXCEL_MAX_CELL_CHARS {
            break;
        }
        end = index + ch.len_utf8();
    }
    if end == text.len() {
        return text;
    }
    // Cut so that the ellipsis fits too.
    let mut units: usize = text[..end].chars().map(char::len_utf16).sum();
    let mut cut = text[..end].char_indices().rev();
    while units + ELLIPSIS.len_utf16() > EXCEL_MAX_CELL_CHARS {
        match cut.next() {
            Some((index, ch)) => {
                end = index;
                units -= ch.len_utf16();
            }
            None => break,
        }
    }
    let mut cut_text = String::with_capacity(end + ELLIPSIS.len_utf8());
    cut_text.push_str(&text[..end]);
    cut_text.push(ELLIPSIS);
    cut_text
}

/// The characters of `text` that set its column's width: its longest line, capped.
fn display_width(text: &str) -> usize {
    text.lines()
        .map(|line| line.chars().take(MAX_COLUMN_WIDTH).count())
        .max()
        .unwrap_or(0)
        .min(MAX_COLUMN_WIDTH)
}

/// [`display_width`] of `text` if it may be wider than `current`, else 0; cheap for most cells.
fn wider_than(text: &str, current: usize) -> usize {
    // Characters never outnumber bytes.
    if text.len() <= current {
        0
    } else {
        display_width(text)
    }
}

/// About how many characters Excel's General format shows for `value`.
fn number_width(value: f64) -> usize {
    if value.fract() == 0.0 && value.abs() < 1e11 {
        // An integer of at most 11 digits: the digits, and a minus sign.
        let mut digits = 1;
        let mut rest = value.abs();
        while rest >= 10.0 {
            rest /= 10.0;
            digits += 1;
        }
        digits + usize::from(value < 0.0)
    } else {
        // General shows at most 11 characters of a fraction or a large number.
        11
    }
}

/// `time` as an Excel date-time, truncated to the whole second, when Excel can show it.
fn excel_datetime(time: ApiTime) -> Option<ExcelDateTime> {
    let seconds = time.ticks().div_euclid(TICKS_PER_SECOND);
    if !(FIRST_EXCEL_SECOND..=LAST_EXCEL_SECOND).contains(&seconds) {
        return None;
    }
    ExcelDateTime::from_timestamp(seconds).ok()
}

/// A count as an Excel number; exact up to 2^53.
#[allow(clippy::cast_precision_loss)]
fn as_f64(count: u64) -> f64 {
    count as f64
}

/// A width in characters as `set_column_width` takes it; widths are small, so exact.
#[allow(clippy::cast_precision_loss)]
fn cell_width(width: usize) -> f64 {
    width as f64
}

/// Streams the selected alerts into an XLSX workbook: rows go to the writer on its own thread
/// through a bounded channel, so memory stays flat.
pub(crate) fn export_xlsx(
    store: &Store,
    e: &ExportConfig,
    sel: &Selection,
    file: &mut File,
) -> io::Result<u64> {
    let mut counts = Counts::new();
    rows::for_each(store, sel, Want::Mde, |row| {
        let r = &row.mde;
        // One spelling per severity and status, so that `high` and `High` are one row.
        let status = r.status.map_or_else(
            || "(none)".to_owned(),
            |s| Status::parse(s).as_str().to_owned(),
        );
        *counts
            .entry((Severity::of(r.severity).as_str().to_owned(), status))
            .or_default() += 1;
        Ok(())
    })
    .map_err(store_io)?;
    let columns: Vec<&str> = e.columns.iter().map(String::as_str).collect();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Cell<'static>>>(1024);
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| write_xlsx(&mut *file, &columns, rx.into_iter(), &counts));
        let fed = rows::for_each(store, sel, Want::Mde, |row| {
            let r = &row.mde;
            let row = table::alert_row(r.tenant, r.raw, &columns).map_err(json_io)?;
            let cells = row.into_iter().map(Cell::into_owned).collect();
            tx.send(cells)
                .map_err(|_| io::Error::other("the spreadsheet writer stopped"))
        });
        drop(tx);
        let written = writer.join().expect("xlsx writer panicked");
        fed.map_err(store_io)?;
        written.map_err(io::Error::other)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::{Cursor, Read};

    use calamine::{Data, Reader, Xlsx};
    use chrono::{TimeZone, Utc};

    const COLUMNS: &[&str] = &["AlertId", "Title", "Created (UTC)", "Score", "Notes"];

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> ApiTime {
        ApiTime::from_chrono(
            Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
                .single()
                .expect("valid test time"),
        )
    }

    /// The serial the library writes for `time` (what Excel stores).
    fn excel_serial(time: &ApiTime) -> Option<f64> {
        excel_datetime(*time).map(|d| d.to_excel())
    }

    fn sample_rows() -> Vec<Vec<Cell<'static>>> {
        vec![
            vec![
                Cell::Text("da637551227677560813_-961444813".into()),
                Cell::Text("=1+2".into()),
                Cell::Time(at(2024, 5, 1, 9, 13, 22)),
                Cell::Number("42.5".into()),
                Cell::Empty,
            ],
            vec![
                Cell::Text("da2".into()),
                Cell::Text("Suspicious PowerShell command line".into()),
                Cell::Time(at(1970, 1, 1, 0, 0, 0)),
                Cell::Number("-3.0".into()),
                Cell::Text("line one\nline two & <three>\u{1}_x0041_".into()),
            ],
        ]
    }

    fn sample_counts() -> Counts {
        let mut counts = Counts::new();
        for (severity, status, n) in [
            ("Low", "New", 2),
            ("High", "Resolved", 5),
            ("High", "New", 1),
            ("Weird", "Other", 7),
            ("Informational", "InProgress", 3),
            ("Medium", "Closed", 4),
            ("Alpha", "New", 1),
        ] {
            counts.insert((severity.to_owned(), status.to_owned()), n);
        }
        counts
    }

    /// Writes a workbook to memory.
    fn write(rows: Vec<Vec<Cell<'static>>>, counts: &Counts) -> (Result<u64, XlsxError>, Vec<u8>) {
        let mut buffer = Cursor::new(Vec::new());
        let result = write_xlsx(&mut buffer, COLUMNS, rows.into_iter(), counts);
        (result, buffer.into_inner())
    }

    fn workbook(bytes: &[u8]) -> Xlsx<Cursor<&[u8]>> {
        Xlsx::new(Cursor::new(bytes)).expect("calamine opens the workbook")
    }

    fn part(bytes: &[u8], name: &str) -> String {
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).expect("a zip");
        let mut file = archive.by_name(name).expect("the part exists");
        let mut xml = String::new();
        file.read_to_string(&mut xml).expect("utf-8 xml");
        xml
    }

    fn text(data: &Data) -> String {
        match data {
            Data::String(s) => s.clone(),
            other => panic!("expected a string, got {other:?}"),
        }
    }

    fn number(data: &Data) -> f64 {
        match data {
            Data::Float(f) => *f,
            Data::Int(i) => *i as f64,
            other => panic!("expected a number, got {other:?}"),
        }
    }

    /// A date cell has no zone: the header of a time column (any `…Time`, a dotted path's last
    /// segment included) says UTC; other headers stay the API's names.
    #[test]
    fn the_header_of_a_time_column_says_utc() {
        let columns = ["id", "alertCreationTime", "comments.0.createdTime", "title"];
        let mut buffer = Cursor::new(Vec::new());
        write_xlsx(&mut buffer, &columns, std::iter::empty(), &Counts::new()).expect("written");
        let bytes = buffer.into_inner();
        let range = workbook(&bytes)
            .worksheet_range("Alerts")
            .expect("Alerts sheet");
        let header: Vec<String> = (0..4)
            .map(|c| text(range.get((0, c)).expect("header cell")))
            .collect();
        assert_eq!(
            header,
            [
                "id",
                "alertCreationTime (UTC)",
                "comments.0.createdTime (UTC)",
                "title"
            ]
        );
    }

    #[test]
    fn alerts_sheet_reads_back_with_types() {
        let (result, bytes) = write(sample_rows(), &sample_counts());
        assert_eq!(result.expect("written"), 2);
        let mut book = workbook(&bytes);
        assert_eq!(book.sheet_names(), vec!["Alerts", "Summary"]);
        let range = book.worksheet_range("Alerts").expect("Alerts sheet");
        assert_eq!(range.get_size(), (3, 5));
        let header: Vec<String> = (0..5)
            .map(|c| text(range.get((0, c)).expect("header cell")))
            .collect();
        assert_eq!(header, COLUMNS);

        // Text that looks like a formula is a string, and no formula exists anywhere.
        assert_eq!(text(range.get((1, 1)).expect("cell")), "=1+2");
        let formulas = book.worksheet_formula("Alerts").expect("formulas");
        assert!(formulas.used_cells().all(|(_, _, f)| f.is_empty()));

        // Dates are numbers with a date style.
        match range.get((1, 2)).expect("cell") {
            Data::DateTime(dt) => {
                assert!(dt.is_datetime());
                let expected = 45_413.0 + (9.0 * 3600.0 + 13.0 * 60.0 + 22.0) / 86_400.0;
                assert!((dt.as_f64() - expected).abs() < 1e-9, "{}", dt.as_f64());
            }
            other => panic!("expected a date-time, got {other:?}"),
        }
        match range.get((2, 2)).expect("cell") {
            Data::DateTime(dt) => assert_eq!(dt.as_f64(), 25_569.0),
            other => panic!("expected a date-time, got {other:?}"),
        }

        assert_eq!(number(range.get((1, 3)).expect("cell")), 42.5);
        assert_eq!(number(range.get((2, 3)).expect("cell")), -3.0);
        assert!(matches!(range.get((1, 4)), None | Some(Data::Empty)));
        assert_eq!(
            text(range.get((2, 4)).expect("cell")),
            "line one\nline two & <three>\u{1}_x0041_"
        );
    }

    #[test]
    fn sheet_xml_has_frozen_header_autofilter_widths_and_no_formula() {
        let (result, bytes) = write(sample_rows(), &Counts::new());
        result.expect("written");
        let xml = part(&bytes, "xl/worksheets/sheet1.xml");
        assert!(
            xml.contains(
                r#"<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>"#
            ),
            "{xml}"
        );
        assert!(xml.contains(r#"<autoFilter ref="A1:E3"/>"#), "{xml}");
        assert!(!xml.contains("<f>"), "{xml}");
        assert!(xml.contains("<cols>"), "{xml}");
        // The id column fits the id; the time column fits the date.
        assert!(
            xml.contains(r#"<col min="1" max="1" width="32.7109375" customWidth="1"/>"#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<col min="3" max="3" width="20.7109375" customWidth="1"/>"#),
            "{xml}"
        );
        // The filter range is also the hidden defined name Excel expects.
        let workbook_xml = part(&bytes, "xl/workbook.xml");
        assert!(
            workbook_xml.contains("_xlnm._FilterDatabase"),
            "{workbook_xml}"
        );
        // The header is bold.
        let styles = part(&bytes, "xl/styles.xml");
        assert!(styles.contains("<b/>"), "{styles}");
        assert!(
            styles.contains(r#"formatCode="yyyy-mm-dd hh:mm:ss""#),
            "{styles}"
        );
    }

    #[test]
    fn summary_orders_by_severity_and_totals() {
        let (result, bytes) = write(Vec::new(), &sample_counts());
        result.expect("written");
        let mut book = workbook(&bytes);
        let range = book.worksheet_range("Summary").expect("Summary sheet");
        let row = |r: u32| -> Vec<String> {
            (0..range.width() as u32)
                .map(|c| match range.get_value((r, c)) {
                    Some(Data::String(s)) => s.clone(),
                    Some(Data::Float(f)) => format!("{f}"),
                    Some(Data::Int(i)) => format!("{i}"),
                    other => format!("{other:?}"),
                })
                .collect()
        };
        assert_eq!(
            row(0),
            [
                "Severity",
                "New",
                "InProgress",
                "Resolved",
                "Closed",
                "Other",
                "Total"
            ]
        );
        // Unknown severities rank above High, alphabetically among themselves.
        assert_eq!(row(1), ["Alpha", "1", "0", "0", "0", "0", "1"]);
        assert_eq!(row(2), ["Weird", "0", "0", "0", "0", "7", "7"]);
        assert_eq!(row(3), ["High", "1", "0", "5", "0", "0", "6"]);
        assert_eq!(row(4), ["Medium", "0", "0", "0", "4", "0", "4"]);
        assert_eq!(row(5), ["Low", "2", "0", "0", "0", "0", "2"]);
        assert_eq!(row(6), ["Informational", "0", "3", "0", "0", "0", "3"]);
        assert_eq!(row(7), ["Total", "4", "3", "5", "4", "7", "23"]);
        assert_eq!(range.height(), 8);
    }

    #[test]
    fn empty_input_gives_headers_only() {
        let (result, bytes) = write(Vec::new(), &Counts::new());
        assert_eq!(result.expect("written"), 0);
        let mut book = workbook(&bytes);
        let range = book.worksheet_range("Alerts").expect("Alerts sheet");
        assert_eq!(range.get_size(), (1, 5));
        assert_eq!(text(range.get((0, 4)).expect("header")), "Notes");
        let xml = part(&bytes, "xl/worksheets/sheet1.xml");
        assert!(xml.contains(r#"<autoFilter ref="A1:E1"/>"#), "{xml}");
        let summary = book.worksheet_range("Summary").expect("Summary sheet");
        assert_eq!(
            summary.get_value((1, 0)),
            Some(&Data::String("Total".into()))
        );
        assert_eq!(number(summary.get_value((1, 1)).expect("grand total")), 0.0);
    }

    #[test]
    fn too_many_rows_is_an_error_and_nothing_is_saved() {
        let limits = Limits {
            max_data_rows: 3,
            zip64_threshold: ZIP64_THRESHOLD,
        };
        let rows = (0..10).map(|i| vec![Cell::Number(i.to_string().into()); COLUMNS.len()]);
        let mut buffer = Cursor::new(Vec::new());
        let error = write_with_limits(&mut buffer, COLUMNS, rows, &Counts::new(), &limits)
            .expect_err("over the limit");
        assert!(error.to_string().contains("more than 3 alerts"), "{error}");
        assert!(error.to_string().contains("4 rows a sheet"), "{error}");
        assert!(buffer.into_inner().is_empty());

        // Exactly at the limit is fine.
        let rows = (0..3).map(|i| vec![Cell::Number(i.to_string().into()); COLUMNS.len()]);
        let mut buffer = Cursor::new(Vec::new());
        let written = write_with_limits(&mut buffer, COLUMNS, rows, &Counts::new(), &limits);
        assert_eq!(written.expect("at the limit"), 3);
    }

    #[test]
    fn the_real_row_limit_is_excels() {
        // The last data row `write_xlsx` allows is the last row the library (and Excel) takes.
        let last = RowNum::try_from(EXCEL_MAX_ROWS - 1).expect("fits");
        let mut workbook = Workbook::new();
        let sheet = workbook.add_worksheet();
        assert!(sheet.write_number(last, 0, 1.0).is_ok());
        assert!(sheet.write_number(last + 1, 0, 1.0).is_err());
    }

    #[test]
    fn zip64_when_the_sheet_may_exceed_4_gib_still_reads_back() {
        let limits = Limits {
            max_data_rows: EXCEL_MAX_ROWS - 1,
            zip64_threshold: 0,
        };
        let mut buffer = Cursor::new(Vec::new());
        let written = write_with_limits(
            &mut buffer,
            COLUMNS,
            sample_rows().into_iter(),
            &sample_counts(),
            &limits,
        );
        assert_eq!(written.expect("written"), 2);
        let bytes = buffer.into_inner();
        let mut book = workbook(&bytes);
        let range = book.worksheet_range("Alerts").expect("Alerts sheet");
        assert_eq!(text(range.get((2, 0)).expect("cell")), "da2");
    }

    #[test]
    fn a_panic_in_the_writer_becomes_an_error() {
        let caught = guard(|| -> u8 { panic!("Failed to write XML") });
        let error = caught.expect_err("caught");
        assert!(error.to_string().contains("Failed to write XML"), "{error}");
        assert_eq!(guard(|| 7).expect("no panic"), 7);
    }

    #[test]
    fn wrong_row_length_is_an_error() {
        let rows = vec![vec![Cell::Empty; COLUMNS.len()], vec![Cell::Empty; 2]];
        let (result, _) = write(rows, &Counts::new());
        let error = result.expect_err("short row");
        assert!(
            error
                .to_string()
                .contains("data row 2 has 2 cells for 5 columns"),
            "{error}"
        );
    }

    #[test]
    fn bad_columns_are_errors() {
        let mut buffer = Cursor::new(Vec::new());
        let none = write_xlsx(&mut buffer, &[], std::iter::empty(), &Counts::new());
        assert!(none.is_err());
        let many = vec!["c"; EXCEL_MAX_COLUMNS + 1];
        let too_wide = write_xlsx(&mut buffer, &many, std::iter::empty(), &Counts::new());
        assert!(
            too_wide
                .expect_err("too wide")
                .to_string()
                .contains("16384")
        );
    }

    #[test]
    fn long_text_is_cut_at_a_char_boundary_with_an_ellipsis() {
        // 'é' is 2 bytes, 1 UTF-16 unit; '😀' is 4 bytes, 2 units.
        let long = "é".repeat(40_000);
        let cut = excel_text(long);
        assert_eq!(
            cut.chars().map(char::len_utf16).sum::<usize>(),
            EXCEL_MAX_CELL_CHARS
        );
        assert!(cut.ends_with('…'));

        let emoji = "😀".repeat(20_000);
        let cut = excel_text(emoji);
        let units: usize = cut.chars().map(char::len_utf16).sum();
        assert!((EXCEL_MAX_CELL_CHARS - 2..=EXCEL_MAX_CELL_CHARS).contains(&units));
        assert!(cut.ends_with("😀…"));

        // Long in bytes but within the limit in characters: untouched.
        let fits = "é".repeat(EXCEL_MAX_CELL_CHARS);
        assert_eq!(excel_text(fits.clone()), fits);
        let over = "a".repeat(EXCEL_MAX_CELL_CHARS + 1);
        assert_eq!(excel_text(over).chars().count(), EXCEL_MAX_CELL_CHARS);

        // And the library accepts it.
        let rows = vec![vec![
            Cell::Text("x".repeat(100_000).into()),
            Cell::Text("😀".repeat(40_000).into()),
            Cell::Empty,
            Cell::Empty,
            Cell::Empty,
        ]];
        let (result, bytes) = write(rows, &Counts::new());
        result.expect("written");
        let mut book = workbook(&bytes);
        let range = book.worksheet_range("Alerts").expect("Alerts sheet");
        let first = text(range.get((1, 0)).expect("cell"));
        assert_eq!(first.chars().count(), EXCEL_MAX_CELL_CHARS);
        assert!(first.ends_with('…'));
    }

    #[test]
    fn odd_numbers_and_times_do_not_fail() {
        let rows = vec![
            vec![
                Cell::Number("NaN".into()),
                Cell::Number("inf".into()),
                Cell::Time(at(1800, 1, 1, 0, 0, 0)),
                Cell::Number("-inf".into()),
                Cell::Time(ApiTime::from_ticks(i64::MAX)),
            ],
            vec![
                Cell::Number("1e300".into()),
                Cell::Number("-0.0".into()),
                Cell::Time(at(9999, 12, 31, 23, 59, 59)),
                Cell::Time(ApiTime::from_ticks(i64::MIN)),
                Cell::Time(at(1900, 3, 1, 0, 0, 0)),
            ],
        ];
        let (result, bytes) = write(rows, &Counts::new());
        assert_eq!(result.expect("written"), 2);
        let mut book = workbook(&bytes);
        let range = book.worksheet_range("Alerts").expect("Alerts sheet");
        assert_eq!(text(range.get((1, 0)).expect("cell")), "NaN");
        assert_eq!(text(range.get((1, 1)).expect("cell")), "Infinity");
        assert_eq!(text(range.get((1, 3)).expect("cell")), "-Infinity");
        assert_eq!(
            text(range.get((1, 2)).expect("cell")),
            "1800-01-01 00:00:00"
        );
        match range.get((2, 4)).expect("cell") {
            Data::DateTime(dt) => assert_eq!(dt.as_f64(), 61.0),
            other => panic!("expected a date-time, got {other:?}"),
        }
        match range.get((2, 2)).expect("cell") {
            Data::DateTime(dt) => assert!((dt.as_f64() - 2_958_465.999_988_4).abs() < 1e-6),
            other => panic!("expected a date-time, got {other:?}"),
        }
    }

    #[test]
    fn times_are_truncated_to_the_second() {
        let late = at(2024, 12, 31, 23, 59, 59).plus(std::time::Duration::from_millis(999));
        let serial = excel_serial(&late).expect("in range");
        assert!(serial < 45_658.0, "{serial}");
        assert_eq!(excel_serial(&at(2024, 1, 1, 0, 0, 0)), Some(45_292.0));
    }

    #[test]
    fn column_widths_follow_content_within_caps() {
        let mut sheet = AlertsSheet::new(&["Id", "Title"]);
        assert_eq!(sheet.widths, [5, 8]);
        let time = Format::new();
        let limits = Limits {
            max_data_rows: 10,
            zip64_threshold: ZIP64_THRESHOLD,
        };
        let mut workbook = Workbook::new();
        let ws = workbook.add_worksheet();
        let row = vec![
            Cell::Text("x".repeat(500).into()),
            Cell::Number("-12345.0".into()),
        ];
        sheet.write_row(ws, row, &time, &limits).expect("row");
        assert_eq!(sheet.widths, [MAX_COLUMN_WIDTH, 8]);
        assert_eq!(number_width(0.5), 11);
        assert_eq!(number_width(7.0), 1);
        assert_eq!(display_width("ab\nabcd"), 4);
    }

    #[test]
    fn ordering_ignores_case_for_known_values() {
        let values: Vec<String> = ["zeta", "low", "High", "Beta", "beta", "High"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let sorted: Vec<&String> = by_severity(values.iter());
        // Unknown severities rank above High (alphabetically among themselves).
        assert_eq!(sorted, ["Beta", "beta", "zeta", "High", "low"]);
        let statuses: Vec<String> = ["Later", "resolved", "New"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(by_status(statuses.iter()), ["New", "resolved", "Later"]);
    }
}
