//! The column catalogue: the documented alert properties a CSV or XLSX column may name, the
//! default columns, and the check of a configured column name. It is vocabulary, not export
//! machinery: the config validates `columns` against it, the export writes them.

/// The documented columns: the alert's API property names, and `tenant` (the store's name of the
/// tenant the alert came from). Any other property or path is allowed too; these only feed the
/// "did you mean" hint for a name that looks like a typo of one of them.
pub const KNOWN_COLUMNS: &[&str] = &[
    "tenant",
    "id",
    "title",
    "description",
    "severity",
    "status",
    "classification",
    "determination",
    "category",
    "detectionSource",
    "detectorId",
    "threatName",
    "threatFamilyName",
    "investigationState",
    "assignedTo",
    "alertCreationTime",
    "firstEventTime",
    "lastEventTime",
    "lastUpdateTime",
    "resolvedTime",
    "incidentId",
    "investigationId",
    "machineId",
    "computerDnsName",
    "rbacGroupName",
    "aadTenantId",
    "mitreTechniques",
    "relatedUser",
    "loggedOnUsers",
    "comments",
    "evidence",
    "domains",
    // Graph alerts_v2 only (kept under their own names when a Graph alert is exported).
    "serviceSource",
    "productName",
    "providerAlertId",
    "alertWebUrl",
    "incidentWebUrl",
    "recommendedActions",
    "actorDisplayName",
    "systemTags",
    "categories",
    "alertPolicyId",
    "customDetails",
    "additionalData",
];

/// Graph alerts_v2 names of MDE properties: exports read a Graph alert in the MDE shape
/// (`alert::graph`), so a column must use the MDE name.
const GRAPH_RENAMED: &[(&str, &str)] = &[
    ("createdDateTime", "alertCreationTime"),
    ("lastUpdateDateTime", "lastUpdateTime"),
    ("resolvedDateTime", "resolvedTime"),
    ("firstActivityDateTime", "firstEventTime"),
    ("lastActivityDateTime", "lastEventTime"),
    ("threatDisplayName", "threatName"),
    ("tenantId", "aadTenantId"),
];

/// The default columns, in a stable order: what an analyst scans first, then the rest.
pub const DEFAULT_COLUMNS: &[&str] = &[
    "id",
    "title",
    "severity",
    "status",
    "category",
    "detectionSource",
    "computerDnsName",
    "relatedUser",
    "assignedTo",
    "classification",
    "determination",
    "alertCreationTime",
    "lastUpdateTime",
    "resolvedTime",
    "firstEventTime",
    "lastEventTime",
    "incidentId",
    "investigationId",
    "threatName",
    "threatFamilyName",
    "mitreTechniques",
    "comments",
    "investigationState",
    "machineId",
    "rbacGroupName",
    "tenant",
    "description",
];

/// Checks a configured column name: `Err(problem)` when it cannot be a property path at all,
/// `Ok(Some(warning))` when it is not a documented column but close to one (a likely typo, kept
/// all the same: it may be a field this version does not know), `Ok(None)` otherwise.
pub(crate) fn check_column(column: &str) -> Result<Option<String>, String> {
    if column.is_empty() {
        return Err("an empty column name".into());
    }
    if let Some(bad) = column.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "column {column:?} contains {bad:?}; property names have no spaces or control characters"
        ));
    }
    if KNOWN_COLUMNS.contains(&column) || top_level_known(column) {
        return Ok(None);
    }
    if column.split('.').any(str::is_empty) {
        return Err(format!(
            "column {column:?} has an empty path segment (write \"a.b\", not \"a..b\" or \".a\")"
        ));
    }
    let head = column.split('.').next().unwrap_or(column);
    if KNOWN_COLUMNS.contains(&head) {
        return Ok(None);
    }
    if let Some((_, mde)) = GRAPH_RENAMED.iter().find(|(g, _)| *g == head) {
        return Ok(Some(format!(
            "column {column:?} is Graph alerts_v2's name for `{mde}`; exports read every alert in the MDE API's shape, so use `{mde}` (kept, but it stays empty)"
        )));
    }
    let lower = head.to_lowercase();
    let best = KNOWN_COLUMNS
        .iter()
        .map(|k| (strsim::damerau_levenshtein(&lower, &k.to_lowercase()), *k))
        .min();
    Ok(match best {
        Some((d, k)) if d <= 2 => Some(format!(
            "column {column:?} is not a documented alert property; did you mean `{k}`? (kept: it is exported if alerts have it)"
        )),
        _ => None,
    })
}

/// A dotted name whose first segment is documented (`relatedUser.userName`).
fn top_level_known(column: &str) -> bool {
    column.split_once('.').is_some_and(|(head, rest)| {
        KNOWN_COLUMNS.contains(&head) && !rest.split('.').any(str::is_empty)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_warn_on_typos_and_fail_only_when_impossible() {
        assert_eq!(check_column("title"), Ok(None));
        assert_eq!(check_column("alertUser"), Ok(None));
        assert_eq!(check_column("relatedUser.userName"), Ok(None));
        assert_eq!(check_column("brandNewField"), Ok(None));
        assert!(check_column("titel").unwrap().unwrap().contains("`title`"));
        assert!(
            check_column("Severity")
                .unwrap()
                .unwrap()
                .contains("`severity`")
        );
        assert_eq!(check_column("serviceSource"), Ok(None));
        assert!(
            check_column("serviceSorce")
                .unwrap()
                .unwrap()
                .contains("`serviceSource`")
        );
        assert!(
            check_column("lastUpdateDateTime")
                .unwrap()
                .unwrap()
                .contains("`lastUpdateTime`")
        );
        for c in DEFAULT_COLUMNS {
            assert!(KNOWN_COLUMNS.contains(c), "{c}");
        }
        assert!(check_column("").is_err());
        assert!(check_column("a..b").is_err());
        assert!(check_column("my column").is_err());
    }
}
