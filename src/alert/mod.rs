//! One alert as it crosses the edge: the verbatim JSON, plus the few fields we index, parsed once.
//!
//! The verbatim bytes are what the store keeps and what JSON exports write, so unknown fields and
//! unknown enum values survive untouched. The content hash is taken over a *canonical* form (keys
//! sorted, no insignificant whitespace) so that the same alert saved pretty-printed in a file and
//! received compact from the API is recognised as the same version.

pub(crate) mod canonical;
pub(crate) mod columns;
pub mod filter;
pub(crate) mod graph;
pub(crate) mod json;
pub mod time;
pub mod vocab;

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::alert::time::ApiTime;

/// A valid alert: it has an `id` and a parseable `lastUpdateTime` (MDE API) or
/// `lastUpdateDateTime` (Graph).
#[derive(Debug, Clone)]
pub struct Alert {
    /// Defender's alert ID (opaque; for endpoint alerts Graph's `id` is the MDE API's `da…` id).
    pub id: String,
    /// Which API's JSON shape `raw` is in.
    pub shape: Shape,
    /// `lastUpdateTime`, the polling cursor's axis.
    pub last_update: ApiTime,
    /// The JSON object exactly as received (valid JSON: it was parsed to build this).
    pub raw: Box<str>,
    /// BLAKE3 of the canonical JSON: equal hashes mean equal content.
    pub hash: [u8; 32],
    /// Columns the store indexes for exports and `status`.
    pub fields: Indexed,
}

/// The indexed columns, in the MDE API's vocabulary whichever API sent the alert (Graph's
/// `inProgress` is indexed as `InProgress`, its `unknown` severity as `UnSpecified`), so that
/// filters, `status` and the report count both alike. Enums stay strings: an unknown value is
/// kept, never rejected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Indexed {
    /// `status` (`New`, `InProgress`, `Resolved`, … or anything newer).
    pub status: Option<String>,
    /// `severity`.
    pub severity: Option<String>,
    /// `category`.
    pub category: Option<String>,
    /// `alertCreationTime` (Graph: `createdDateTime`).
    pub created: Option<ApiTime>,
    /// Graph's `serviceSource` (the Defender product); `None` for the MDE API's alerts, which are
    /// all endpoint alerts.
    pub service: Option<String>,
}

impl Indexed {
    /// The indexed columns of an alert of `shape` whose string fields `text` reads.
    fn of(shape: Shape, text: impl Fn(&str) -> Option<String>, created: Option<ApiTime>) -> Self {
        match shape {
            Shape::Mde => Indexed {
                status: text("status"),
                severity: text("severity"),
                category: text("category"),
                created,
                service: None,
            },
            // One mapping for the index and the exports (`graph::to_mde_shape`), so that a
            // value Graph knows and we do not (`critical`) is spelled alike in both.
            Shape::Graph => Indexed {
                status: text("status").and_then(|s| graph::mde_status(&s)),
                severity: text("severity").and_then(|s| graph::mde_severity(&s)),
                category: text("category"),
                created,
                service: text("serviceSource"),
            },
        }
    }
}

/// The JSON shape of an alert: which API it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// Defender for Endpoint's `/api/alerts` (`lastUpdateTime`, PascalCase enums).
    Mde,
    /// Graph's `security/alerts_v2` (`lastUpdateDateTime`, camelCase enums, typed evidence).
    Graph,
}

impl Shape {
    /// The name the store records with each revision (`mde`, `graph`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Shape::Mde => "mde",
            Shape::Graph => "graph",
        }
    }

    /// The shape of a JSON object: Graph's when it has `lastUpdateDateTime` and no
    /// `lastUpdateTime`.
    fn of(obj: &serde_json::Map<String, serde_json::Value>) -> Shape {
        Shape::of_keys(|k| obj.contains_key(k))
    }

    /// [`Shape::of`] from whatever holds the object's keys (a `Map`, or the members the
    /// one-pass reader found in the text): the one place the rule is written.
    fn of_keys(has: impl Fn(&str) -> bool) -> Shape {
        if has("lastUpdateDateTime") && !has("lastUpdateTime") {
            Shape::Graph
        } else {
            Shape::Mde
        }
    }

    fn last_update_key(self) -> &'static str {
        match self {
            Shape::Mde => "lastUpdateTime",
            Shape::Graph => "lastUpdateDateTime",
        }
    }

    fn created_key(self) -> &'static str {
        match self {
            Shape::Mde => "alertCreationTime",
            Shape::Graph => "createdDateTime",
        }
    }
}

/// Why an element of a page is not a usable alert. Such elements are counted and logged; the rest
/// of the page is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Not a JSON object.
    #[error("not a JSON object")]
    NotAnObject,
    /// No `id` at all (or `null`).
    #[error("no `id`")]
    MissingId,
    /// An `id` that cannot be an alert's key (empty, a fraction, an object, …).
    #[error("`id` is {0}, not a string")]
    BadId(String),
    /// `lastUpdateTime` (Graph: `lastUpdateDateTime`) missing or unreadable.
    #[error("alert {id}: `lastUpdateTime` {problem}")]
    BadTime {
        /// The alert.
        id: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl Alert {
    /// Parses one element of a page (or of an imported file) given as JSON text.
    pub fn parse(raw: &str) -> Result<Alert, Invalid> {
        // A number beyond a double (`1e400`) is read as its text: the alert is kept verbatim
        // anyway, and only the content hash sees that field as text.
        if let Some(a) = Self::parse_canonical(raw) {
            return Ok(a);
        }
        let value: serde_json::Value = json::parse_value(raw).map_err(|_| Invalid::NotAnObject)?;
        Self::from_value(raw, &value)
    }

    /// The fast path of [`Alert::parse`]: the canonical JSON written in one pass over the text
    /// (`canonical`), without a `serde_json::Value`. `Some` only for a valid alert in JSON that
    /// path reads; `None` leaves the text to [`Alert::from_value`] on serde_json's `Value`, which
    /// decides everything else (errors included), so both give the same alert or the same error.
    pub(crate) fn parse_canonical(raw: &str) -> Option<Alert> {
        thread_local! {
            static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        BUF.with_borrow_mut(|buf| {
            let top = canonical::canonicalise(raw, buf)?;
            let id = match top.get("id")? {
                v if v.starts_with('"') => canonical::string_value(v)?.into_owned(),
                v => {
                    let n: serde_json::Number = serde_json::from_str(v).ok()?;
                    (n.is_i64() || n.is_u64()).then(|| n.to_string())?
                }
            };
            if id.is_empty() {
                return None;
            }
            let shape = Shape::of_keys(|k| top.contains(k));
            let last_update = ApiTime::parse_lenient(&top.str(shape.last_update_key())?).ok()?;
            let created = top
                .str(shape.created_key())
                .and_then(|s| ApiTime::parse_lenient(&s).ok());
            let fields = Indexed::of(shape, |k| top.str(k).map(Cow::into_owned), created);
            Some(Alert {
                id,
                shape,
                last_update,
                raw: raw.into(),
                hash: *blake3::hash(buf).as_bytes(),
                fields,
            })
        })
    }

    /// Builds the alert from its text and that text already parsed (the import parses once).
    pub(crate) fn from_value(raw: &str, value: &serde_json::Value) -> Result<Alert, Invalid> {
        let obj = value.as_object().ok_or(Invalid::NotAnObject)?;
        let id = match obj.get("id") {
            Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
            // Defender's IDs are strings, but an integer one is kept under its decimal text (the
            // store keys alerts by that text) rather than dropped: nothing is lost.
            Some(serde_json::Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
            None | Some(serde_json::Value::Null) => return Err(Invalid::MissingId),
            Some(other) => {
                return Err(Invalid::BadId(match other {
                    serde_json::Value::String(_) => "empty".to_owned(),
                    serde_json::Value::Number(n) => format!("a number with a fraction ({n})"),
                    serde_json::Value::Bool(b) => format!("{b}"),
                    serde_json::Value::Array(_) => "an array".to_owned(),
                    _ => "an object".to_owned(),
                }));
            }
        };
        let shape = Shape::of(obj);
        let last_update = match obj.get(shape.last_update_key()) {
            Some(serde_json::Value::String(s)) => {
                ApiTime::parse_lenient(s).map_err(|e| Invalid::BadTime {
                    id: id.clone(),
                    problem: e.to_string(),
                })?
            }
            Some(serde_json::Value::Null) | None => {
                return Err(Invalid::BadTime {
                    id,
                    problem: "is missing".into(),
                });
            }
            Some(other) => {
                return Err(Invalid::BadTime {
                    id,
                    problem: format!("is not a string ({other})"),
                });
            }
        };
        let text = |k: &str| obj.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let created = obj
            .get(shape.created_key())
            .and_then(|v| v.as_str())
            .and_then(|s| ApiTime::parse_lenient(s).ok());
        let fields = Indexed::of(shape, text, created);
        let hash = canonical_hash(value);
        Ok(Alert {
            id,
            shape,
            last_update,
            raw: raw.into(),
            hash,
            fields,
        })
    }
}

/// BLAKE3 of the canonical serialisation (serde_json's map is a BTreeMap: keys come out sorted).
/// The text is built in a reused buffer and hashed in one call: feeding the hasher serde's many
/// small writes costs more than the hashing itself.
fn canonical_hash(value: &serde_json::Value) -> [u8; 32] {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|buf| {
        buf.clear();
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *buf, value);
        *blake3::hash(buf).as_bytes()
    })
}

/// Only the envelope of a page: `{"value": [...], "@odata.nextLink": "..."}`.
#[derive(Deserialize)]
pub(crate) struct Envelope<'a> {
    /// The alerts, unparsed.
    #[serde(borrow)]
    pub(crate) value: Vec<&'a RawValue>,
    /// Present on some responses; see `source::client`. Any JSON value: one that is not a string
    /// (a hostile or broken server) still marks the page as not the last, and is never followed.
    #[serde(rename = "@odata.nextLink", default)]
    pub(crate) next_link: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> &str {
        s
    }

    /// A severity Graph knows and the MDE vocabulary does not was indexed `critical` for Graph
    /// tenants and `Critical` for MDE ones (seen in the demo's `status`).
    #[test]
    fn graph_enums_are_indexed_in_the_mde_vocabulary() {
        let a = Alert::parse(
            r#"{"id":"da1","lastUpdateDateTime":"2026-01-01T00:00:00Z","createdDateTime":"2026-01-01T00:00:00Z","status":"inProgress","severity":"critical","serviceSource":"microsoftDefenderForEndpoint"}"#,
        )
        .unwrap();
        assert_eq!(a.shape, Shape::Graph);
        assert_eq!(a.fields.status.as_deref(), Some("InProgress"));
        assert_eq!(a.fields.severity.as_deref(), Some("Critical"));
        assert_eq!(
            a.fields.service.as_deref(),
            Some("microsoftDefenderForEndpoint")
        );
        assert!(a.fields.created.is_some());
        let u = Alert::parse(r#"{"id":"da2","lastUpdateDateTime":"2026-01-01T00:00:00Z","severity":"unknown","status":"unknownFutureValue"}"#).unwrap();
        assert_eq!(u.fields.severity.as_deref(), Some("UnSpecified"));
        assert_eq!(u.fields.status.as_deref(), Some("UnknownFutureValue"));
    }

    /// The one-pass path gives the alert (hash, fields, shape) that serde_json's `Value` gives,
    /// and leaves every error to it.
    #[test]
    fn the_one_pass_alert_is_the_value_alert() {
        let cases = [
            r#"{"id":"da1","lastUpdateDateTime":"2026-01-01T00:00:00Z","createdDateTime":"2026-01-01T00:00:00Z","status":"inProgress","severity":"critical","serviceSource":"x","evidence":[{"b":1,"a":-0}]}"#,
            r#"{"id":"a\u0031","lastUpdateTime":"2024-01-01T00:00:00Z","lastUpdateDateTime":"x","status":"New","status":"Resolved","severity":null,"category":"\ud83d\ude00"}"#,
            r#"{"id":12345,"lastUpdateTime":"2024-01-01T00:00:00.1234567Z","alertCreationTime":"bad","x":1E+2}"#,
            r#"{"id":"x","lastUpdateTime":"2024-01-01T00:00:00Z","n":18446744073709551616,"m":-9223372036854775809}"#,
        ];
        for text in cases {
            let fast = Alert::parse_canonical(text).expect("the fast path reads it");
            let v = json::parse_value(text).unwrap();
            let slow = Alert::from_value(text, &v).unwrap();
            assert_eq!(fast.hash, slow.hash, "{text}");
            assert_eq!(fast.hash, canonical_hash(&v));
            assert_eq!(
                (&fast.id, fast.shape, fast.last_update, &fast.fields),
                (&slow.id, slow.shape, slow.last_update, &slow.fields),
                "{text}"
            );
        }
        for text in [
            r#"{"id":"","lastUpdateTime":"2024-01-01T00:00:00Z"}"#,
            r#"{"id":1.5,"lastUpdateTime":"2024-01-01T00:00:00Z"}"#,
            r#"{"id":"x","lastUpdateTime":"yesterday"}"#,
            r#"{"id":"x","lastUpdateTime":1}"#,
            r#"{"lastUpdateTime":"2024-01-01T00:00:00Z"}"#,
            r#"{"id":"x","lastUpdateTime":"2024-01-01T00:00:00Z","n":1e400}"#,
        ] {
            assert!(Alert::parse_canonical(text).is_none(), "{text}");
        }
        // The huge number is hashed as its text, as before.
        let huge = r#"{"id":"x","lastUpdateTime":"2024-01-01T00:00:00Z","n":1e400}"#;
        let a = Alert::parse(huge).unwrap();
        assert_eq!(a.hash, canonical_hash(&json::parse_value(huge).unwrap()));
    }

    #[test]
    fn same_content_different_layout_same_hash() {
        let a = Alert::parse(raw(
            r#"{"id":"a1","lastUpdateTime":"2024-01-01T00:00:00Z","x":[1,2]}"#,
        ))
        .unwrap();
        let b = Alert::parse(raw("{\n  \"x\": [1, 2],\n  \"lastUpdateTime\": \"2024-01-01T00:00:00Z\",\n  \"id\": \"a1\"\n}")).unwrap();
        assert_eq!(a.hash, b.hash);
        assert_ne!(a.raw, b.raw, "the verbatim text is kept");
        let c = Alert::parse(raw(
            r#"{"id":"a1","lastUpdateTime":"2024-01-01T00:00:00Z","x":[2,1]}"#,
        ))
        .unwrap();
        assert_ne!(a.hash, c.hash);
    }

    #[test]
    fn invalid_elements_are_classified() {
        assert_eq!(Alert::parse(raw("[1]")).unwrap_err(), Invalid::NotAnObject);
        assert_eq!(
            Alert::parse(raw(r#"{"lastUpdateTime":"2024-01-01T00:00:00Z"}"#)).unwrap_err(),
            Invalid::MissingId
        );
        assert!(matches!(
            Alert::parse(raw(r#"{"id":"x","lastUpdateTime":"yesterday"}"#)).unwrap_err(),
            Invalid::BadTime { .. }
        ));
        assert!(matches!(
            Alert::parse(raw(r#"{"id":"x"}"#)).unwrap_err(),
            Invalid::BadTime { .. }
        ));
    }

    #[test]
    fn an_integer_id_is_kept_as_text_and_other_ids_are_named() {
        let a = Alert::parse(raw(
            r#"{"id":12345,"lastUpdateTime":"2024-01-01T00:00:00Z"}"#,
        ))
        .unwrap();
        assert_eq!(a.id, "12345");
        for (id, says) in [
            (
                "1.5",
                "`id` is a number with a fraction (1.5), not a string",
            ),
            ("\"\"", "`id` is empty, not a string"),
            ("true", "`id` is true, not a string"),
            ("{}", "`id` is an object, not a string"),
        ] {
            let e = Alert::parse(&format!(
                r#"{{"id":{id},"lastUpdateTime":"2024-01-01T00:00:00Z"}}"#
            ))
            .unwrap_err();
            assert_eq!(e.to_string(), says);
        }
    }

    #[test]
    fn unknown_fields_and_enums_are_kept() {
        let a = Alert::parse(raw(r#"{"id":"a","lastUpdateTime":"2024-01-01T00:00:00Z","severity":"Catastrophic","brandNew":{"k":1}}"#)).unwrap();
        assert_eq!(a.fields.severity.as_deref(), Some("Catastrophic"));
        assert!(a.raw.contains("brandNew"));
    }
}
