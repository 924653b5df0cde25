//! The filters a person gives on the command line: `export --out` and `report` take `--tenant`,
//! `--min-severity`, `--status`, `--category`, `--since` and `--until`, with the meaning of a
//! configured export's keys, each checked against what the store holds.

use std::collections::BTreeSet;
use std::path::Path;

use crate::support::*;
use mde_alerts::alert::time::ApiTime;
use mde_alerts::store::Store;
use serde_json::Value;

/// One stored alert as the filters see it.
struct Stored {
    tenant: String,
    id: String,
    severity: String,
    status: String,
    category: String,
    updated: ApiTime,
}

fn all(store: &Path) -> Vec<Stored> {
    let store = Store::open_read_only(store).unwrap();
    let mut out = Vec::new();
    store
        .for_each_alert(|tenant, raw| {
            let v: Value = serde_json::from_str(raw).unwrap();
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
            out.push(Stored {
                tenant: tenant.to_owned(),
                id: s("id"),
                severity: s("severity"),
                status: s("status"),
                category: s("category"),
                updated: ApiTime::parse(&s("lastUpdateTime")).unwrap(),
            });
            Ok(())
        })
        .unwrap();
    out
}

/// The IDs in a CSV written to standard output (BOM, header, rows), and its header.
fn csv_ids(bytes: &[u8]) -> (Vec<String>, BTreeSet<String>) {
    let body = bytes.strip_prefix("\u{feff}".as_bytes()).expect("a BOM");
    let mut r = csv::Reader::from_reader(body);
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
    let id = header.iter().position(|h| h == "id").unwrap();
    let ids = r.records().map(|x| x.unwrap()[id].to_owned()).collect();
    (header, ids)
}

/// The most frequent value of `key` among `alerts`.
fn most_common(alerts: &[Stored], key: impl Fn(&Stored) -> &str) -> String {
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for a in alerts {
        *counts.entry(key(a)).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .unwrap()
        .0
        .to_owned()
}

fn rank(s: &str) -> u8 {
    match s {
        "Informational" => 1,
        "Low" => 2,
        "Medium" => 3,
        "High" => 4,
        "UnSpecified" | "" => 0,
        _ => 5,
    }
}

/// Three tenants polled: the filters' cases, each with the flags and which stored alerts they
/// must select. Every case selects some alerts and leaves some out, so none passes vacuously.
async fn cases() -> (Env, Vec<(Vec<String>, BTreeSet<String>)>) {
    let env = Env::many_tenants(60, 3, 24, Opts::default()).await;
    let out = run(&env, &["poll", "--no-export"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let alerts = all(&env.store_path());
    let mut times: Vec<ApiTime> = alerts.iter().map(|a| a.updated).collect();
    times.sort();
    let middle = times[times.len() / 2];
    let third = times[times.len() / 3];
    let category = most_common(&alerts, |a| &a.category);
    let status = most_common(&alerts, |a| &a.status);
    let instant = |t: ApiTime| t.to_api_string();
    type Pick = Box<dyn Fn(&Stored) -> bool>;
    let spec: Vec<(Vec<String>, Pick)> = vec![
        (
            vec![
                "--tenant".into(),
                "sim-0000".into(),
                "--tenant".into(),
                "sim-0002".into(),
            ],
            Box::new(|a: &Stored| a.tenant == "sim-0000" || a.tenant == "sim-0002"),
        ),
        (
            vec!["--min-severity".into(), "medium".into()],
            Box::new(|a: &Stored| rank(&a.severity) >= 3),
        ),
        (
            vec![
                "--status".into(),
                format!("{},Nonexistent", status.to_lowercase()),
            ],
            Box::new(move |a: &Stored| a.status == status),
        ),
        (
            vec!["--category".into(), category.clone()],
            Box::new(move |a: &Stored| a.category == category),
        ),
        (
            vec!["--since".into(), instant(middle)],
            Box::new(move |a: &Stored| a.updated >= middle),
        ),
        (
            vec!["--until".into(), instant(third)],
            Box::new(move |a: &Stored| a.updated <= third),
        ),
        (
            vec![
                "--tenant".into(),
                "sim-0001".into(),
                "--min-severity".into(),
                "low".into(),
                "--since".into(),
                instant(third),
                "--until".into(),
                "0s".into(),
            ],
            Box::new(move |a: &Stored| {
                a.tenant == "sim-0001" && rank(&a.severity) >= 2 && a.updated >= third
            }),
        ),
    ];
    let cases = spec
        .into_iter()
        .map(|(flags, pick)| {
            let ids: BTreeSet<String> = alerts
                .iter()
                .filter(|a| pick(a))
                .map(|a| a.id.clone())
                .collect();
            assert!(
                !ids.is_empty() && ids.len() < alerts.len(),
                "{flags:?} selects {} of {}",
                ids.len(),
                alerts.len()
            );
            (flags, ids)
        })
        .collect();
    (env, cases)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_filters_select_what_the_config_keys_select() {
    let (env, cases) = cases().await;
    for (flags, expected) in cases {
        // `--out -` without `--format`: CSV.
        let mut args = vec!["export", "--out", "-"];
        args.extend(flags.iter().map(String::as_str));
        let out = run(&env, &args).await;
        assert!(out.status.success(), "{flags:?}: {}", text(&out));
        let (header, ids) = csv_ids(&out.stdout);
        assert_eq!(header[0], "id", "{flags:?}");
        assert_eq!(ids, expected, "{flags:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_filters_count_only_the_selected_alerts() {
    let (env, cases) = cases().await;
    let md = env.path().join("r.md");
    for (flags, expected) in cases {
        let mut args = vec!["report", "--window", "7d", "--out", md.to_str().unwrap()];
        args.extend(flags.iter().map(String::as_str));
        let out = run(&env, &args).await;
        assert!(out.status.success(), "{flags:?}: {}", text(&out));
        let text = std::fs::read_to_string(&md).unwrap();
        assert!(
            text.contains(&format!("alerts on record: {}", expected.len())),
            "{flags:?}: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_tenant_is_a_usage_error_naming_the_configured_ones() {
    let env = Env::many_tenants(5, 2, 25, Opts::default()).await;
    assert!(run(&env, &["poll", "--no-export"]).await.status.success());
    let md = env.path().join("r.md");
    for args in [
        vec!["export", "--out", "-", "--tenant", "sim-0009"],
        vec![
            "report",
            "--out",
            md.to_str().unwrap(),
            "--tenant",
            "sim-0009",
        ],
    ] {
        let out = run(&env, &args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--tenant \"sim-0009\" is not a configured tenant")
                && err.contains("sim-0000, sim-0001"),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: nothing written");
    }
    assert!(!md.exists());
    // A configured export keeps its own filters: the flags are for an ad-hoc file.
    let out = run(&env, &["export", "--tenant", "sim-0000"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excel_times_are_utc_seconds_said_in_the_header_and_iso_stays_the_default() {
    let env = Env::many_tenants(5, 1, 26, Opts::default()).await;
    assert!(run(&env, &["poll", "--no-export"]).await.status.success());
    let read = |bytes: &[u8]| {
        let body = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap();
        let mut r = csv::Reader::from_reader(body);
        let header: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
        let rows: Vec<Vec<String>> = r
            .records()
            .map(|x| x.unwrap().iter().map(str::to_owned).collect())
            .collect();
        (header, rows)
    };
    let iso = run(&env, &["export", "--out", "-"]).await;
    let excel = run(&env, &["export", "--out", "-", "--time-format", "excel"]).await;
    assert!(excel.status.success(), "{}", text(&excel));
    let (ih, irows) = read(&iso.stdout);
    let (eh, erows) = read(&excel.stdout);
    let at = ih.iter().position(|h| h == "lastUpdateTime").unwrap();
    assert_eq!(eh[at], "lastUpdateTime (UTC)");
    assert_eq!(eh[0], "id", "other headers stay the API's names");
    for (i, e) in irows.iter().zip(&erows) {
        let t = ApiTime::parse(&i[at]).unwrap();
        assert!(i[at].ends_with('Z') && i[at].contains('T'), "{}", i[at]);
        assert_eq!(e[at], t.to_chrono().format("%Y-%m-%d %H:%M:%S").to_string());
    }
    let out = run(
        &env,
        &[
            "export",
            "--out",
            "-",
            "--format",
            "json",
            "--time-format",
            "excel",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
