//! `NAME-latest.manifest.json`: the file contract a downstream reader checks before it trusts
//! `NAME-latest.*` (the files contract: `docs/design.md` §5, and `docs/exports.md`).
//!
//! One typed struct, written by the export and readable by anyone (tests, a future `status`),
//! so that a field added or renamed is a compile error at both ends rather than a silent drift.
//! Fields are declared in alphabetical order, which is the order the earlier `json!` manifest
//! had (serde_json sorts map keys): files written before and after this change diff cleanly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The manifest of one export run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The CSV/XLSX columns, in order; `null` for the formats without columns.
    pub(crate) columns: Option<Vec<String>>,
    /// Whether the files hold every alert selected. `false` when the store could not give some
    /// back (it is damaged: `unreadable` names them, `store check` says how to repair it).
    /// Manifests written before it existed read as complete.
    #[serde(default = "complete_by_default")]
    pub(crate) complete: bool,
    /// Each configured tenant's poll cursor (canonical API time) when the export ran; `null`
    /// for a tenant never polled.
    pub cursor: BTreeMap<String, Option<String>>,
    /// The timestamped file this manifest describes (the main file).
    pub(crate) file: String,
    /// Every file of the run: the main file, then the evidence file or the report's Markdown.
    pub(crate) files: Vec<ManifestFile>,
    /// The export's filters.
    pub filter: ManifestFilter,
    /// `csv`, `json`, `ndjson`, `xlsx` or `report`.
    pub(crate) format: String,
    /// When the export ran (canonical API time: seven fractional digits, `Z`).
    pub(crate) generated_at: String,
    /// The `-latest` name of the main file.
    pub(crate) latest: String,
    /// Data rows (alerts) in the main file.
    pub rows: u64,
    /// The scope, as the config reads it (`all`, `open`, `window 1day`, `changed`).
    pub(crate) scope: String,
    /// SHA-256 of the main file, lower-case hex.
    pub(crate) sha256: String,
    /// The vocabulary of the alerts in the file: `verbatim` (JSON/NDJSON as each API returned
    /// them, MDE and Graph `alerts_v2` alike) or `mde` (the MDE API's names and values: JSON with
    /// `shape = "mde"`, and always CSV, XLSX and the report). Absent from manifests written
    /// before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) shape: Option<String>,
    /// The tenant of a `{tenant}` export's file set (its files hold only this tenant's
    /// alerts); absent from other exports' manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The alerts left out because their stored text cannot be read (`tenant/id rev N`);
    /// absent when none was.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) unreadable: Vec<String>,
}

fn complete_by_default() -> bool {
    true
}

/// One file of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ManifestFile {
    /// The timestamped file.
    pub(crate) file: String,
    /// Its `-latest` name.
    pub(crate) latest: String,
    /// Data rows in it.
    pub(crate) rows: u64,
    /// Its SHA-256, lower-case hex.
    pub(crate) sha256: String,
}

/// The filters of the export, as configured (empty lists mean "any").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFilter {
    /// `categories`.
    categories: Vec<String>,
    /// `min_severity` as its rank: 0 (`UnSpecified`) to 4 (`High`).
    min_severity: Option<u8>,
    /// `statuses`.
    statuses: Vec<String>,
    /// `tenants`.
    pub tenants: Vec<String>,
}

impl From<&crate::config::Filter> for ManifestFilter {
    fn from(f: &crate::config::Filter) -> Self {
        ManifestFilter {
            categories: f.categories.clone(),
            min_severity: f.min_severity,
            statuses: f.statuses.clone(),
            tenants: f.tenants.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape the earlier `json!` manifest had, key for key (and in the same order), with
    /// `complete` added.
    #[test]
    fn the_file_contract_is_unchanged() {
        let m = Manifest {
            columns: None,
            complete: true,
            cursor: BTreeMap::from([("contoso".to_owned(), None)]),
            file: "a-20260101T000000Z.json".into(),
            files: vec![ManifestFile {
                file: "a-20260101T000000Z.json".into(),
                latest: "a-latest.json".into(),
                rows: 2,
                sha256: "ab".into(),
            }],
            filter: ManifestFilter {
                categories: vec![],
                min_severity: Some(3),
                statuses: vec!["New".into()],
                tenants: vec![],
            },
            format: "json".into(),
            generated_at: "2026-01-01T00:00:00.0000000Z".into(),
            latest: "a-latest.json".into(),
            rows: 2,
            scope: "all".into(),
            sha256: "ab".into(),
            shape: None,
            tenant: None,
            unreadable: Vec::new(),
        };
        let old = serde_json::json!({
            "complete": true,
            "file": "a-20260101T000000Z.json",
            "latest": "a-latest.json",
            "rows": 2,
            "sha256": "ab",
            "generated_at": "2026-01-01T00:00:00.0000000Z",
            "format": "json",
            "columns": null,
            "scope": "all",
            "filter": {"min_severity": 3, "statuses": ["New"], "categories": [], "tenants": []},
            "cursor": {"contoso": null},
            "files": [{"file": "a-20260101T000000Z.json", "latest": "a-latest.json", "rows": 2, "sha256": "ab"}],
        });
        assert_eq!(
            serde_json::to_string_pretty(&m).unwrap(),
            serde_json::to_string_pretty(&old).unwrap()
        );
        let mut older = old.clone();
        older.as_object_mut().unwrap().remove("complete");
        let back: Manifest = serde_json::from_value(older).unwrap();
        assert_eq!(
            back, m,
            "a manifest without `shape` or `complete` still reads, as complete"
        );
        let with = Manifest {
            shape: Some("mde".into()),
            ..m
        };
        let text = serde_json::to_string_pretty(&with).unwrap();
        assert!(text.contains("\"shape\": \"mde\""), "{text}");
        assert_eq!(serde_json::from_str::<Manifest>(&text).unwrap(), with);
        let of_tenant = Manifest {
            tenant: Some("contoso".into()),
            ..with
        };
        let text = serde_json::to_string_pretty(&of_tenant).unwrap();
        assert!(text.contains("\"tenant\": \"contoso\""), "{text}");
        assert_eq!(serde_json::from_str::<Manifest>(&text).unwrap(), of_tenant);
    }
}
