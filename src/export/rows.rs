//! The rows every export reads: the store's rows, with a Graph `alerts_v2` alert seen in the MDE
//! API's shape ([`crate::alert::graph`]), so that columns, evidence rows, the report, the XLSX
//! summary, `scope = "open"` and every filter speak one vocabulary whichever API fed a row.
//!
//! MDE rows cost two substring searches and nothing else: no parse (the CSV and XLSX writers
//! still parse each row once, for its cells). Only Graph rows are parsed and mapped; their
//! filters are applied to the mapped values, not to what the store indexed.

use std::io;

use serde_json::Value;

use crate::alert::filter::Filter;
use crate::alert::graph::mde_shape_of_text;
use crate::store::{AlertRow, ForEachError, Selection, Store};

/// One alert as an export reads it.
pub(crate) struct Row<'a> {
    /// The row in the MDE vocabulary: `raw` is the stored text for an MDE alert, the mapped JSON
    /// for a Graph one (empty when [`Want::Stored`] made it unnecessary); status, severity and
    /// category are read from the same.
    pub mde: AlertRow<'a>,
    /// The alert's JSON exactly as stored (the verbatim exports write this).
    pub stored: &'a str,
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
/// MDE mapping; returns the rows handed to `f`.
pub(crate) fn for_each(
    store: &Store,
    sel: &Selection,
    want: Want,
    mut f: impl FnMut(&Row<'_>) -> io::Result<()>,
) -> Result<u64, ForEachError> {
    let filter = &sel.filter;
    let filters_vocab = sel.open_only
        || filter.min_severity.is_some()
        || !filter.statuses.is_empty()
        || !filter.categories.is_empty();
    if want == Want::Stored && !filters_vocab {
        // Nothing reads the MDE shape: no need to even look for Graph rows.
        return store.for_each_row(sel, |r| {
            f(&Row {
                mde: *r,
                stored: r.raw,
            })
        });
    }
    // The store applies the vocabulary filters to what it indexed; here they are applied to the
    // MDE shape instead, so the store gets them only where that is the same thing: `open_only`
    // narrows on `Resolved`, which every Graph `resolved` is.
    let loose = Selection {
        filter: Filter {
            min_severity: None,
            statuses: Vec::new(),
            categories: Vec::new(),
            tenants: filter.tenants.clone(),
        },
        ..sel.clone()
    };
    let mut n = 0;
    store.for_each_row(&loose, |r| {
        let Some(mapped) = mde_shape_of_text(r.raw) else {
            if sel.accepts(r) {
                n += 1;
                f(&Row {
                    mde: *r,
                    stored: r.raw,
                })?;
            }
            return Ok(());
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
            return Ok(());
        }
        let json = match want {
            Want::Mde => mapped.to_string(),
            Want::Stored => String::new(),
        };
        mde.raw = &json;
        n += 1;
        f(&Row { mde, stored: r.raw })
    })?;
    Ok(n)
}
