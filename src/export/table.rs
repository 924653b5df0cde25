//! Alerts as rows of cells, for CSV and XLSX: which columns exist, and how nested values are
//! flattened so that a spreadsheet shows something a person can read.
//!
//! - arrays are joined with `; ` (`mitreTechniques`, `domains`);
//! - `relatedUser` reads `DOMAIN\user`, `loggedOnUsers` `DOMAIN\user; DOMAIN\user2`;
//! - `comments` reads `2 comments; last: "…" (analyst@contoso.com, 2024-…)`;
//! - `evidence` is its item count (the items themselves go to `NAME-evidence` files);
//! - any other object is compact JSON; nulls are empty;
//! - `…Time` columns are normalised to seven fractional digits (UTC), so that sorting the text
//!   sorts time, and become real date cells in XLSX;
//! - numbers and booleans stay numbers and booleans.
//!
//! A column is any property name (fields Microsoft adds later and old-schema fields such as
//! `alertUser` included), or a dotted path into one: `relatedUser.userName`, `evidence.0.sha1`
//! (object keys and array indexes). A name that exists as a top-level key wins over a path, so a
//! property with a dot in its name (`@odata.type`) still works. A path's value is flattened by the
//! rules above, read by its last segment (`comments.0.createdTime` is a time).
//!
//! Only the requested columns are parsed out of each alert; the rest (evidence above all, the bulk
//! of an alert) is skipped without building a JSON tree.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::alert::graph::MDE_EVIDENCE_KEYS;
use crate::alert::time::ApiTime;
use crate::config::TimeFormat;

// The column catalogue is domain vocabulary, shared with the config's validation.
pub use crate::alert::columns::{DEFAULT_COLUMNS, KNOWN_COLUMNS};

/// The columns of `NAME-evidence` files: the alert and its tenant, then every documented evidence
/// property, in the order of [`MDE_EVIDENCE_KEYS`].
pub(crate) const EVIDENCE_COLUMNS: &[&str] = &{
    let mut out = [""; 2 + MDE_EVIDENCE_KEYS.len()];
    out[0] = "alertId";
    out[1] = "tenant";
    let mut i = 0;
    while i < MDE_EVIDENCE_KEYS.len() {
        out[2 + i] = MDE_EVIDENCE_KEYS[i];
        i += 1;
    }
    out
};

/// One cell, before it is written as CSV text or an XLSX cell: the one cell type of every
/// tabular format, so CSV and XLSX cannot disagree on what a value is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell<'a> {
    /// Nothing (null or absent).
    Empty,
    /// Text from the alert: attacker-influenced, guarded in CSV.
    Text(Cow<'a, str>),
    /// A number or boolean, written as is.
    Number(Cow<'a, str>),
    /// An instant.
    Time(ApiTime),
}

impl Cell<'_> {
    /// The cell with its text owned, to hand to another thread (the XLSX writer).
    pub(crate) fn into_owned(self) -> Cell<'static> {
        match self {
            Cell::Empty => Cell::Empty,
            Cell::Text(t) => Cell::Text(Cow::Owned(t.into_owned())),
            Cell::Number(n) => Cell::Number(Cow::Owned(n.into_owned())),
            Cell::Time(t) => Cell::Time(t),
        }
    }

    /// The CSV text of the cell, guarded against formula injection when `guard` is set, its
    /// time written as `times` says.
    pub(crate) fn csv_text(&self, guard: bool, times: TimeFormat) -> Cow<'_, str> {
        match self {
            Cell::Empty => Cow::Borrowed(""),
            Cell::Text(t) if guard => formula_guard(Cow::Borrowed(t.as_ref())),
            Cell::Text(t) | Cell::Number(t) => Cow::Borrowed(t.as_ref()),
            Cell::Time(t) => Cow::Owned(match times {
                TimeFormat::Iso => t.to_api_string(),
                TimeFormat::Excel => excel_time(*t),
            }),
        }
    }
}

/// `2026-11-16 19:43:38`: an instant in UTC as Excel and LibreOffice read a date and time from
/// text, cut (never rounded) to the second, as the XLSX cells show it.
fn excel_time(t: ApiTime) -> String {
    t.to_chrono().format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Whether `column` holds instants: its last segment ends in `Time` (`alertCreationTime`,
/// `comments.0.createdTime`), the rule the cells follow.
fn is_time_column(column: &str) -> bool {
    column
        .rsplit('.')
        .next()
        .is_some_and(|l| l.ends_with("Time"))
}

/// The header of `column` where its times carry no zone of their own (an XLSX date cell, an
/// `excel` CSV time): `alertCreationTime (UTC)`, so nobody reads them as local time.
pub(crate) fn utc_header(column: &str) -> Cow<'_, str> {
    if is_time_column(column) {
        Cow::Owned(format!("{column} (UTC)"))
    } else {
        Cow::Borrowed(column)
    }
}

/// OWASP's CSV-injection rule: text a spreadsheet would run as a formula (starting with `=`, `+`,
/// `-`, `@`, tab, CR, LF or their full-width forms) gets a leading `'`; the text itself is kept.
pub fn formula_guard(s: Cow<'_, str>) -> Cow<'_, str> {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r' | '\n' | '＝' | '＋' | '－' | '＠') => {
            Cow::Owned(format!("'{s}"))
        }
        _ => s,
    }
}

/// Picks the values of `names` out of one alert object without building the whole tree.
struct Pick<'n> {
    names: &'n [&'n str],
}

impl<'de> DeserializeSeed<'de> for Pick<'_> {
    type Value = Vec<Option<&'de RawValue>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        struct V<'n>(&'n [&'n str]);
        impl<'de> Visitor<'de> for V<'_> {
            type Value = Vec<Option<&'de RawValue>>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an alert object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Self::Value, M::Error> {
                let mut out = vec![None; self.0.len()];
                while let Some(k) = m.next_key::<Cow<'de, str>>()? {
                    match self.0.iter().position(|c| *c == k) {
                        Some(i) => out[i] = Some(m.next_value::<&'de RawValue>()?),
                        None => {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(V(self.names))
    }
}

/// The values of `names` in `raw` (absent ones `None`).
pub(crate) fn pick<'a>(
    raw: &'a str,
    names: &[&str],
) -> Result<Vec<Option<&'a RawValue>>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(raw);
    Pick { names }.deserialize(&mut de)
}

/// One alert's row for `columns` (property names or dotted paths, see the module docs).
pub(crate) fn alert_row<'a>(
    tenant: &'a str,
    raw: &'a str,
    columns: &[&str],
) -> Result<Vec<Cell<'a>>, serde_json::Error> {
    // The top-level keys to pick: every column as it is, then the head of every dotted one.
    let mut names: Vec<&str> = columns.to_vec();
    names.extend(
        columns
            .iter()
            .filter_map(|c| c.split_once('.').map(|(head, _)| head)),
    );
    let values = pick(raw, &names)?;
    Ok(columns
        .iter()
        .enumerate()
        .map(|(i, c)| match (*c, values[i]) {
            ("tenant", _) => Cell::Text(Cow::Borrowed(tenant)),
            (c, Some(v)) => cell(c, v),
            (c, None) => match c.split_once('.') {
                // `pick` fills the first position of a repeated name.
                Some((head, rest)) => names
                    .iter()
                    .position(|n| *n == head)
                    .and_then(|j| values[j])
                    .map_or(Cell::Empty, |v| nested(rest, v)),
                None => Cell::Empty,
            },
        })
        .collect())
}

/// The cell at the dotted `path` inside the JSON value `v` (object keys, array indexes).
fn nested(path: &str, v: &RawValue) -> Cell<'static> {
    let Ok(mut value) = serde_json::from_str::<Value>(v.get()) else {
        return Cell::Empty;
    };
    for seg in path.split('.') {
        let next = match &mut value {
            Value::Object(o) => o.remove(seg),
            Value::Array(items) => seg
                .parse::<usize>()
                .ok()
                .filter(|i| *i < items.len())
                .map(|i| items.swap_remove(i)),
            _ => None,
        };
        match next {
            Some(n) => value = n,
            None => return Cell::Empty,
        }
    }
    let last = path.rsplit('.').next().unwrap_or(path);
    match value {
        Value::Null => Cell::Empty,
        Value::String(s) => match ApiTime::parse(&s) {
            Ok(t) if last.ends_with("Time") => Cell::Time(t),
            _ => Cell::Text(Cow::Owned(s)),
        },
        Value::Number(n) => Cell::Number(Cow::Owned(n.to_string())),
        Value::Bool(b) => Cell::Number(Cow::Owned(b.to_string())),
        other => Cell::Text(Cow::Owned(flatten(last, &other))),
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn user(domain: Option<&Value>, name: Option<&Value>) -> String {
    let d = domain.map(text_of).unwrap_or_default();
    let n = name.map(text_of).unwrap_or_default();
    if d.is_empty() { n } else { format!("{d}\\{n}") }
}

/// One cell from one JSON value of column `column`.
fn cell<'a>(column: &str, v: &'a RawValue) -> Cell<'a> {
    let text = v.get();
    match text.as_bytes().first() {
        Some(b'n') => Cell::Empty,
        Some(b'"') => {
            let s: Cow<'a, str> = serde_json::from_str(text).unwrap_or(Cow::Borrowed(""));
            if column.ends_with("Time")
                && let Ok(t) = ApiTime::parse(&s)
            {
                return Cell::Time(t);
            }
            Cell::Text(s)
        }
        Some(b'[' | b'{') => {
            let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            Cell::Text(Cow::Owned(flatten(column, &value)))
        }
        _ => Cell::Number(Cow::Borrowed(text)),
    }
}

/// Nested values as one readable string.
fn flatten(column: &str, v: &Value) -> String {
    match (column, v) {
        ("relatedUser", Value::Object(o)) => user(o.get("domainName"), o.get("userName")),
        ("loggedOnUsers", Value::Array(items)) => items
            .iter()
            .map(|i| user(i.get("domainName"), i.get("accountName")))
            .collect::<Vec<_>>()
            .join("; "),
        ("comments", Value::Array(items)) => match items.last() {
            None => String::new(),
            Some(last) => {
                let when = last
                    .get("createdTime")
                    .and_then(|t| t.as_str())
                    .and_then(|t| ApiTime::parse(t).ok())
                    .map(|t| t.to_api_string())
                    .unwrap_or_default();
                format!(
                    "{} comment{}; last: \"{}\" ({}, {})",
                    items.len(),
                    if items.len() == 1 { "" } else { "s" },
                    last.get("comment").map(text_of).unwrap_or_default(),
                    last.get("createdBy").map(text_of).unwrap_or_default(),
                    when
                )
            }
        },
        ("evidence", Value::Array(items)) => items.len().to_string(),
        (_, Value::Array(items)) => items.iter().map(text_of).collect::<Vec<_>>().join("; "),
        (_, other) => other.to_string(),
    }
}

/// The evidence items of one alert as rows of [`EVIDENCE_COLUMNS`].
pub(crate) fn evidence_rows<'a>(
    tenant: &'a str,
    raw: &'a str,
) -> Result<Vec<Vec<Cell<'a>>>, serde_json::Error> {
    let values = pick(raw, &["id", "evidence"])?;
    let id: Cow<'a, str> = match values[0] {
        Some(v) => serde_json::from_str(v.get()).unwrap_or(Cow::Borrowed("")),
        None => Cow::Borrowed(""),
    };
    let Some(ev) = values[1] else {
        return Ok(Vec::new());
    };
    let items: Vec<&'a RawValue> = serde_json::from_str(ev.get()).unwrap_or_default();
    // The documented columns, then `@odata.type`: a Graph evidence item of a type without an MDE
    // counterpart is kept verbatim, and its row names that type where `entityType` would be.
    let names: Vec<&str> = EVIDENCE_COLUMNS[2..]
        .iter()
        .copied()
        .chain(["@odata.type"])
        .collect();
    let columns = &names[..names.len() - 1];
    items
        .into_iter()
        .map(|item| {
            let mut vals = pick(item.get(), &names)?;
            let odata_type = vals.pop().flatten();
            let mut row = vec![Cell::Text(id.clone()), Cell::Text(Cow::Borrowed(tenant))];
            row.extend(columns.iter().zip(vals).map(|(c, v)| match v {
                None => Cell::Empty,
                Some(v) => cell(c, v),
            }));
            if row[2] == Cell::Empty
                && let Some(t) = odata_type
            {
                row[2] = cell("entityType", t);
            }
            Ok(row)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn guard_neutralises_formulas() {
        for bad in [
            "=1+2",
            "+1",
            "-1",
            "@SUM(A1)",
            "\tx",
            "\rx",
            "\nx",
            "＝1",
            "=1+2\";=1+2",
        ] {
            let g = formula_guard(Cow::Borrowed(bad));
            assert!(g.starts_with('\''), "{bad:?}");
            assert!(g.ends_with(bad));
        }
        assert_eq!(formula_guard(Cow::Borrowed("plain")), "plain");
    }

    proptest! {
        #[test]
        fn no_guarded_cell_starts_executable(s in ".*") {
            let g = formula_guard(Cow::Owned(s.clone()));
            let first = g.chars().next();
            prop_assert!(!matches!(first, Some('=' | '+' | '-' | '@' | '\t' | '\r' | '\n' | '＝' | '＋' | '－' | '＠')));
            prop_assert!(g.contains(s.as_str()));
        }
    }

    #[test]
    fn nested_values_are_flattened_for_people() {
        let raw = r#"{"id":"=cmd","mitreTechniques":["T1","T2"],"relatedUser":{"userName":"alice","domainName":"CONTOSO"},
            "loggedOnUsers":[{"accountName":"bob","domainName":"CONTOSO"},{"accountName":"eve","domainName":null}],
            "comments":[{"comment":"first","createdBy":"a@x","createdTime":"2024-01-01T00:00:00Z"},{"comment":"-second","createdBy":"b@x","createdTime":"2024-01-02T00:00:00.5Z"}],
            "evidence":[{},{}],"incidentId":-5,"lastUpdateTime":"2024-01-01T00:00:01.2Z","title":"x\"y, z\nw","futureObj":{"b":1,"a":2}}"#;
        let cols = [
            "id",
            "mitreTechniques",
            "relatedUser",
            "loggedOnUsers",
            "comments",
            "evidence",
            "incidentId",
            "lastUpdateTime",
            "title",
            "severity",
            "tenant",
        ];
        let row = alert_row("t1", raw, &cols).unwrap();
        let get = |c: &str| {
            row[cols.iter().position(|x| *x == c).unwrap()]
                .csv_text(true, TimeFormat::Iso)
                .into_owned()
        };
        assert_eq!(get("id"), "'=cmd");
        assert_eq!(get("mitreTechniques"), "T1; T2");
        assert_eq!(get("relatedUser"), "CONTOSO\\alice");
        assert_eq!(get("loggedOnUsers"), "CONTOSO\\bob; eve");
        assert_eq!(
            get("comments"),
            "2 comments; last: \"-second\" (b@x, 2024-01-02T00:00:00.5000000Z)"
        );
        assert_eq!(get("evidence"), "2");
        assert_eq!(get("incidentId"), "-5", "numbers stay numbers");
        assert_eq!(get("lastUpdateTime"), "2024-01-01T00:00:01.2000000Z");
        assert_eq!(get("title"), "x\"y, z\nw");
        assert_eq!(get("severity"), "");
        assert_eq!(get("tenant"), "t1");
        assert_eq!(
            row[7],
            Cell::Time(ApiTime::parse("2024-01-01T00:00:01.2Z").unwrap())
        );
    }

    #[test]
    fn any_property_and_dotted_paths_are_columns() {
        let raw = r##"{"alertUser":"CONTOSO\\bob","future":{"x":[1,2]},"@odata.type":"#a",
            "relatedUser":{"userName":"alice","domainName":"CONTOSO"},
            "evidence":[{"sha1":"ab","when":{"createdTime":"2024-01-01T00:00:00Z"}},{"sha1":"=cd"}],
            "comments":[{"createdTime":"2024-01-02T00:00:00Z"}]}"##;
        let cols = [
            "alertUser",
            "future",
            "future.x",
            "future.x.1",
            "@odata.type",
            "relatedUser.userName",
            "relatedUser",
            "evidence.1.sha1",
            "evidence.9.sha1",
            "evidence.0.missing",
            "comments.0.createdTime",
            "nothere.at.all",
        ];
        let row = alert_row("t", raw, &cols).unwrap();
        let text: Vec<String> = row
            .iter()
            .map(|c| c.csv_text(true, TimeFormat::Iso).into_owned())
            .collect();
        assert_eq!(
            text,
            [
                "CONTOSO\\bob",
                r#"{"x":[1,2]}"#,
                "1; 2",
                "2",
                "#a",
                "alice",
                "CONTOSO\\alice",
                "'=cd",
                "",
                "",
                "2024-01-02T00:00:00.0000000Z",
                ""
            ]
        );
        assert!(matches!(row[10], Cell::Time(_)));
        assert!(matches!(row[3], Cell::Number(_)));
    }

    #[test]
    fn evidence_rows_are_keyed_by_alert() {
        let raw = r#"{"id":"a1","evidence":[{"entityType":"File","sha1":"ab","fileName":"=x.exe"},{"entityType":"User","accountName":"bob","future":1}]}"#;
        let rows = evidence_rows("t", raw).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][0].csv_text(true, TimeFormat::Iso), "a1");
        assert_eq!(rows[0][2].csv_text(true, TimeFormat::Iso), "File");
        let file_name = EVIDENCE_COLUMNS
            .iter()
            .position(|c| *c == "fileName")
            .unwrap();
        assert_eq!(
            rows[0][file_name].csv_text(true, TimeFormat::Iso),
            "'=x.exe"
        );
        assert!(evidence_rows("t", r#"{"id":"a2"}"#).unwrap().is_empty());
    }

    /// A Graph evidence item of a type without an MDE counterpart is kept verbatim by the
    /// mapping; its row names the type.
    #[test]
    fn an_evidence_item_without_entity_type_is_named_by_its_odata_type() {
        let raw = r##"{"id":"a1","evidence":[{"@odata.type":"#microsoft.graph.security.kubernetesPodEvidence","name":"p"},{"entityType":"File","@odata.type":"#x"}]}"##;
        let rows = evidence_rows("t", raw).unwrap();
        assert_eq!(
            rows[0][2].csv_text(true, TimeFormat::Iso),
            "#microsoft.graph.security.kubernetesPodEvidence"
        );
        assert_eq!(rows[1][2].csv_text(true, TimeFormat::Iso), "File");
        assert_eq!(rows[0].len(), EVIDENCE_COLUMNS.len());
    }
}
