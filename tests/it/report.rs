//! The nightly report read from a store, one row at a time (no summary of every alert
//! is kept): the rows reach it whole, in any tenant, with their JSON escapes read.

use mde_alerts::alert::Alert;
use mde_alerts::config::{ExportConfig, ExportFormat};
use mde_alerts::export::{export_file, selection_for};
use mde_alerts::store::Store;
use serde_json::json;

/// Open High alert `i`, created at `created` (all of them at the same second: the table then
/// orders them by tenant, then ID).
fn high(created: &str, i: usize) -> Alert {
    let v = json!({
        "id": format!("da{i:02}"),
        "title": format!("Encoded \"quote\" {i:02}"),
        "severity": "High", "status": "New", "category": "Malware",
        "computerDnsName": format!("WS{}.contoso.com", i % 3),
        "alertCreationTime": created, "lastUpdateTime": created, "resolvedTime": null,
    });
    Alert::parse(&v.to_string()).unwrap()
}

#[test]
fn the_report_from_a_store_counts_every_row_and_keeps_the_newest_high_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("alerts.db")).unwrap();
    let created = (chrono::Utc::now() - chrono::TimeDelta::hours(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut w = store.writer().unwrap();
    // Fed fabrikam first and IDs descending: the order of the rows must not matter.
    for tenant in ["fabrikam", "contoso"] {
        for i in (0..15).rev() {
            w.upsert(tenant, &high(&created, i)).unwrap();
        }
    }
    w.commit(None, 0).unwrap();

    let e = ExportConfig::ad_hoc(ExportFormat::Report);
    let tenants = ["contoso".to_owned(), "fabrikam".to_owned()];
    let sel = selection_for(&store, &e, &tenants).unwrap();
    let path = dir.path().join("report.md");
    export_file(&store, &e, &sel, &path).unwrap();
    let md = std::fs::read_to_string(&path).unwrap();

    assert!(md.contains("alerts on record: 30"), "{md}");
    assert!(md.contains("tenants: contoso, fabrikam"), "{md}");
    assert!(
        md.contains("| Open High and above | 30 | High 30 |"),
        "{md}"
    );
    assert!(
        md.contains("The 20 newest of 30 open alerts of High severity and above."),
        "{md}"
    );
    let rows: Vec<&str> = md.lines().filter(|l| l.contains("| da")).collect();
    assert_eq!(rows.len(), 20, "{md}");
    // contoso's 15 by ID, then fabrikam's first 5; titles read through their JSON escapes.
    for (n, row) in rows.iter().enumerate() {
        let (tenant, i) = if n < 15 {
            ("contoso", n)
        } else {
            ("fabrikam", n - 15)
        };
        assert!(
            row.contains(&format!("| Encoded \"quote\" {i:02} |"))
                && row.contains(&format!("| da{i:02} |"))
                && row.contains(&format!("| {tenant} |")),
            "row {n}: {row}"
        );
    }
    // Device names are counted in lower case: 30 alerts over three devices.
    assert!(md.contains("| 1 | ws0.contoso.com | 10 |"), "{md}");
}
