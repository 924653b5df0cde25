//! Snapshot files that spreadsheets, scripts and people can trust: exact round trips, scopes and
//! filters, atomic `-latest` files under a reader in a loop, retention, and bad configs.

use std::path::{Path, PathBuf};

use crate::support::*;
use mde_alerts::config::raw::{EvidenceMode, MinSeverity, RawExport, ScopeKind};
use mde_alerts::config::{Config, ExportFormat};
use mde_alerts::store::Store;
use mde_sim::Hazards;

/// A config with one tenant (the simulator's) and the given export blocks.
async fn env_with_exports(alerts: usize, exports: Vec<RawExport>) -> Env {
    let env = Env::new(sim_config(alerts, 51, Hazards::default()), Opts::default()).await;
    env.edit_config(|c| c.exports = exports);
    env
}

/// A CSV export called `name` into `out`.
fn csv(name: &str) -> RawExport {
    config::export(name, ExportFormat::Csv, "out")
}

fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let bytes = std::fs::read(path).unwrap();
    let body = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(&bytes);
    let mut r = csv::Reader::from_reader(body);
    let headers = r.headers().unwrap().iter().map(str::to_owned).collect();
    let rows = r
        .records()
        .map(|x| x.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (headers, rows)
}

fn col(headers: &[String], name: &str) -> usize {
    headers
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name}"))
}

fn timestamped(dir: &Path, stem: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let f = p.file_name().unwrap().to_string_lossy().into_owned();
            f.starts_with(&format!("{stem}-2")) && f.ends_with(&format!(".{ext}"))
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tricky_text_round_trips_exactly_through_a_real_csv_reader() {
    let env = env_with_exports(
        0,
        vec![RawExport {
            columns: Some(
                ["id", "title", "description", "relatedUser", "incidentId"]
                    .map(String::from)
                    .to_vec(),
            ),
            ..csv("a")
        }],
    )
    .await;
    let titles = [
        "Ünïcødé — 日本語 🚨 \u{200b}",
        "quotes \"inside\" and 'single'",
        "commas, many, commas",
        "line one\nline two\r\nline three",
        "=HYPERLINK(\"http://x\",\"y\")",
        "-2+3",
        "@SUM(A1)",
        "\ttabbed",
        "＝fullwidth",
    ];
    let lines: Vec<String> = titles
        .iter()
        .enumerate()
        .map(|(i, t)| {
            serde_json::json!({
                "id": format!("a{i}"), "lastUpdateTime": format!("2024-01-01T00:00:0{i}Z"), "title": t,
                "description": t, "incidentId": -(i as i64), "relatedUser": {"userName": "u", "domainName": "D"},
                "brandNewField": {"kept": true},
            })
            .to_string()
        })
        .collect();
    let file = env.path().join("in.ndjson");
    std::fs::write(&file, lines.join("\n")).unwrap();
    assert!(
        run(&env, &["import", file.to_str().unwrap()])
            .await
            .status
            .success()
    );
    let out = run(&env, &["export"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let (h, rows) = read_csv(&env.path().join("out/a-latest.csv"));
    assert_eq!(
        h,
        ["id", "title", "description", "relatedUser", "incidentId"]
    );
    assert_eq!(rows.len(), titles.len());
    for (i, t) in titles.iter().enumerate() {
        let row = rows.iter().find(|r| r[0] == format!("a{i}")).unwrap();
        let dangerous = t.starts_with(['=', '+', '-', '@', '\t', '＝']);
        let want = if dangerous {
            format!("'{t}")
        } else {
            (*t).to_owned()
        };
        assert_eq!(row[col(&h, "title")], want, "title {i}");
        assert_eq!(row[col(&h, "relatedUser")], "D\\u");
        assert_eq!(
            row[col(&h, "incidentId")],
            format!("{}", -(i as i64)),
            "numbers stay numbers"
        );
    }
    let raw = std::fs::read(env.path().join("out/a-latest.csv")).unwrap();
    assert!(raw.starts_with("\u{feff}".as_bytes()), "BOM");
    assert!(raw.windows(2).any(|w| w == b"\r\n"), "CRLF");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_export_equals_the_stored_api_objects() {
    let env = env_with_exports(
        200,
        vec![
            config::export("j", ExportFormat::Json, "out"),
            config::export("n", ExportFormat::Ndjson, "out"),
        ],
    )
    .await;
    let out = run(&env, &["poll"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let stored = stored(&env.store_path());
    let json: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(env.path().join("out/j-latest.json")).unwrap())
            .unwrap();
    assert_eq!(json.len(), stored.len());
    for a in &json {
        assert_eq!(&stored[a["id"].as_str().unwrap()].1, a);
    }
    assert!(
        json.iter().any(|a| a.get("futureInsight").is_some()),
        "unknown fields kept"
    );
    let nd = std::fs::read_to_string(env.path().join("out/n-latest.ndjson")).unwrap();
    assert_eq!(nd.lines().count(), stored.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_and_filters_select_the_right_alerts() {
    let env = env_with_exports(
        300,
        vec![
            RawExport {
                scope: Some(ScopeKind::Open),
                ..csv("open")
            },
            RawExport {
                min_severity: Some(MinSeverity::High),
                statuses: Some(vec!["New".into(), "InProgress".into()]),
                ..csv("high")
            },
            RawExport {
                scope: Some(ScopeKind::Window),
                window: Some(config::duration("2d")),
                ..csv("recent")
            },
            RawExport {
                scope: Some(ScopeKind::Changed),
                ..config::export("changed", ExportFormat::Json, "out")
            },
        ],
    )
    .await;
    assert!(run(&env, &["poll"]).await.status.success());
    let stored = stored(&env.store_path());
    let count =
        |f: &dyn Fn(&serde_json::Value) -> bool| stored.values().filter(|(_, v)| f(v)).count();
    let rows = |name: &str| {
        read_csv(&env.path().join(format!("out/{name}-latest.csv")))
            .1
            .len()
    };
    assert_eq!(rows("open"), count(&|v| v["status"] != "Resolved"));
    let rank = |s: &str| match s {
        "Informational" => 1,
        "Low" => 2,
        "Medium" => 3,
        "High" => 4,
        "UnSpecified" => 0,
        _ => 5,
    };
    assert_eq!(
        rows("high"),
        count(&|v| rank(v["severity"].as_str().unwrap()) >= 4
            && matches!(v["status"].as_str(), Some("New" | "InProgress")))
    );
    let since =
        mde_alerts::alert::time::ApiTime::now().minus(std::time::Duration::from_secs(2 * 86_400));
    assert_eq!(
        rows("recent"),
        stored.values().filter(|(t, _)| *t >= since).count()
    );
    let changed = |env: &Env| -> usize {
        serde_json::from_slice::<Vec<serde_json::Value>>(
            &std::fs::read(env.path().join("out/changed-latest.json")).unwrap(),
        )
        .unwrap()
        .len()
    };
    assert_eq!(changed(&env), 300, "the first changed file has everything");
    env.sim.update_random(7);
    env.sim.create(3);
    assert!(run(&env, &["poll"]).await.status.success());
    assert_eq!(changed(&env), 10, "the next one only what changed since");
    assert!(run(&env, &["poll"]).await.status.success());
    assert_eq!(changed(&env), 0, "and then nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_retention_manifest_evidence_and_no_temp_files() {
    let env = env_with_exports(
        60,
        vec![RawExport {
            keep: Some(3),
            evidence: Some(EvidenceMode::Separate),
            file_mode: Some("0644".into()),
            ..csv("a")
        }],
    )
    .await;
    env.edit_config(|c| c.poll.expand_evidence = Some(true));
    assert!(run(&env, &["poll"]).await.status.success());
    for _ in 0..5 {
        let out = run(&env, &["export"]).await;
        assert!(out.status.success(), "{}", self::text(&out));
    }
    let dir = env.path().join("out");
    assert_eq!(timestamped(&dir, "a", "csv").len(), 3, "keep = 3");
    assert_eq!(timestamped(&dir, "a-evidence", "csv").len(), 3);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("a-latest.manifest.json")).unwrap())
            .unwrap();
    use sha2::Digest;
    for f in manifest["files"].as_array().unwrap() {
        let bytes = std::fs::read(dir.join(f["latest"].as_str().unwrap())).unwrap();
        let hex: String = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(f["sha256"], hex.as_str());
    }
    assert_eq!(manifest["scope"], "all");
    assert!(manifest["cursor"]["t1"].is_string());
    let (h, ev) = read_csv(&dir.join("a-evidence-latest.csv"));
    let items: usize = stored(&env.store_path())
        .values()
        .map(|(_, v)| v["evidence"].as_array().unwrap().len())
        .sum();
    assert_eq!(ev.len(), items);
    assert_eq!(h[0], "alertId");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("a-latest.csv"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o644);
    assert!(temp_files(&dir).is_empty(), "no temp files remain");
}

/// A reader that reads `NAME-latest.*` in a loop while exports repeat never sees a partial or
/// missing file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_see_a_partial_or_missing_latest_file() {
    let env = env_with_exports(
        400,
        vec![csv("a"), config::export("j", ExportFormat::Json, "out")],
    )
    .await;
    assert!(run(&env, &["poll"]).await.status.success());
    let dir = env.path().join("out");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (dir, stop) = (dir.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (_, rows) = read_csv(&dir.join("a-latest.csv"));
                assert_eq!(rows.len(), 400, "a partial CSV");
                let json: Vec<serde_json::Value> = serde_json::from_slice(
                    &std::fs::read(dir.join("j-latest.json")).expect("missing JSON"),
                )
                .expect("a partial JSON");
                assert_eq!(json.len(), 400);
                let m: serde_json::Value = serde_json::from_slice(
                    &std::fs::read(dir.join("a-latest.manifest.json")).unwrap(),
                )
                .expect("a partial manifest");
                assert_eq!(m["rows"], 400);
                reads += 1;
            }
            reads
        })
    };
    let config = env.config();
    for _ in 0..25 {
        mde_alerts::configured_exports::run(&config, None).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.join().expect("the reader saw a torn file");
    assert!(reads > 5, "only {reads} reads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_mid_export_leaves_the_previous_latest_intact() {
    let env = env_with_exports(200, vec![csv("a")]).await;
    assert!(run(&env, &["poll"]).await.status.success());
    let latest = env.path().join("out/a-latest.csv");
    let before = std::fs::read(&latest).unwrap();
    let size = before.len() as u64;
    assert!(
        size > 48 << 10,
        "the file must outgrow the limit below: {size} bytes"
    );
    // The export fails half-way through writing the file: a file-size limit fails the write
    // past 40 KiB as a full disk does (SIGXFSZ ignored, so the write fails instead of killing).
    // (A damaged stored row no longer fails an export: it costs that row alone.)
    let out = tokio::process::Command::new("bash")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 40; exec \"$0\" --config \"$1\" export")
        .arg(bin())
        .arg(&env.config_path)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("File too large"), "{}", text(&out));
    assert_eq!(
        std::fs::read(&latest).unwrap(),
        before,
        "the previous -latest file is intact"
    );
    assert!(
        temp_files(&env.path().join("out")).is_empty(),
        "no temp file left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_export_configs_exit_78_naming_the_key() {
    let env = env_with_exports(10, Vec::new()).await;
    let base = std::fs::read_to_string(&env.config_path).unwrap();
    let cases = [
        (
            "[[exports]]\nname = \"a\"\nformat = \"csv\"\ndir = \"/etc/passwd/exports\"\n",
            "exports[0].dir",
            &["export"][..],
        ),
        (
            "[[exports]]\nname = \"a\"\nformat = \"csv\"\ndir = \"out\"\ncolumns = [\"id\", \"my title\"]\n",
            "exports[0].columns",
            &["config", "check"],
        ),
        (
            "[[exports]]\nname = \"a\"\nformat = \"csv\"\ndir = \"out\"\nscope = \"window\"\nwindow = \"a while\"\n",
            "exports[0].window",
            &["config", "check"],
        ),
        (
            "[[exports]]\nname = \"a\"\nformat = \"csv\"\ndir = \"out\"\nscope = \"window\"\n",
            "exports[0].window",
            &["config", "check"],
        ),
        (
            "[[exports]]\nname = \"a\"\nformat = \"csv\"\ndir = \"out\"\nschedule = \"nightly\"\n",
            "exports[0].schedule",
            &["config", "check"],
        ),
        (
            "[[exports]]\nname = \"a\"\nformat = \"xls\"\ndir = \"out\"\n",
            "exports[0].format",
            &["config", "check"],
        ),
        (
            "[[exports]]\nname = \"a\"\nformat = \"csv\"\ndir = \"out\"\ntenants = [\"nobody\"]\n",
            "exports[0].tenants",
            &["config", "check"],
        ),
        (
            "[[exports]]\nname = \"a\"\nformat = \"csv\"\ndir = \"out\"\nmin_severity = \"Severe\"\n",
            "exports[0].min_severity",
            &["config", "check"],
        ),
        // `{tenant}` placeholders, tenant lists and colliding file names.
        (
            "[[exports]]\nname = \"a-{tennant}\"\nformat = \"csv\"\ndir = \"out\"\n",
            "exports[0].name",
            &["config", "check"],
        ),
        (
            "[[exports]]\nname = \"a\"\nformat = \"csv\"\ndir = \"out/{tenant}\"\n",
            "exports[0].dir",
            &["export"],
        ),
        (
            "[[exports]]\nname = \"a\"\nformat = \"csv\"\ndir = \"out\"\ntenants = []\n",
            "exports[0].tenants",
            &["poll"],
        ),
        (
            "[[exports]]\nname = \"a-{tenant}\"\nformat = \"csv\"\ndir = \"out\"\n\
             [[exports]]\nname = \"a-t1\"\nformat = \"json\"\ndir = \"other\"\n",
            "exports[1].name",
            &["export"],
        ),
        // A tenant name that would leave the directory never gets that far.
        (
            "[[exports]]\nname = \"a-{tenant}\"\nformat = \"csv\"\ndir = \"out\"\n\
             [[tenants]]\nname = \"../../evil\"\ntenant_id = \"contoso.com\"\n\
             client_id = \"11111111-2222-3333-4444-555555555555\"\nclient_secret_env = \"X\"\n",
            "tenants[1].name",
            &["export"],
        ),
    ];
    for (block, key, args) in cases {
        std::fs::write(&env.config_path, format!("{base}\n{block}")).unwrap();
        let out = run(&env, args).await;
        let t = text(&out);
        assert_eq!(out.status.code(), Some(78), "{block}\n{t}");
        assert!(t.contains(key), "{key}: {t}");
    }
    assert!(!env.path().join("out").exists(), "nothing was written");
    assert!(!env.path().parent().unwrap().join("evil").exists());
    // A column that looks like a typo is kept (it may be a newer field), with a "did you mean".
    let typo = cases[1].0.replace("my title", "titel");
    std::fs::write(&env.config_path, format!("{base}\n{typo}")).unwrap();
    let out = run(&env, &["config", "check"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("did you mean `title`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xlsx_and_report_exports() {
    let env = env_with_exports(
        150,
        vec![
            config::export("book", ExportFormat::Xlsx, "out"),
            RawExport {
                window: Some(config::duration("7d")),
                ..config::export("nightly", ExportFormat::Report, "out")
            },
        ],
    )
    .await;
    let out = run(&env, &["poll"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let dir = env.path().join("out");
    let book = std::fs::read(dir.join("book-latest.xlsx")).unwrap();
    assert!(book.starts_with(b"PK"), "an xlsx is a zip");
    let html = std::fs::read_to_string(dir.join("nightly-latest.html")).unwrap();
    let md = std::fs::read_to_string(dir.join("nightly-latest.md")).unwrap();
    // A mail body as much as a page: Outlook on Windows shows no SVG and no client runs script.
    assert!(
        html.contains("<table class=\"plot\""),
        "the charts are HTML tables"
    );
    for banned in ["<svg", "<script", "javascript:"] {
        assert!(
            !html.to_ascii_lowercase().contains(banned),
            "{banned} in the report"
        );
    }
    for external in ["src=\"http", "href=\"http", "@import", "url("] {
        assert!(!html.contains(external), "external reference {external}");
    }
    assert!(md.contains('|'), "markdown tables");
    let out = run(
        &env,
        &[
            "report",
            "--window",
            "24h",
            "--out",
            dir.join("adhoc").to_str().unwrap(),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(dir.join("adhoc/report.html").exists() && dir.join("adhoc/report.md").exists());
    let config: Config = env.config();
    assert_eq!(config.exports.len(), 2);
}

/// A store fed by the MDE API and then by Graph `alerts_v2` (the same ids) exports one
/// vocabulary: CSV, XLSX, filters and `scope = "open"` read Graph alerts in the MDE API's shape.
mod graph {
    use super::*;
    use mde_alerts::alert::filter::Filter;
    use mde_alerts::alert::time::ApiTime;
    use mde_alerts::alert::{Alert, Indexed};
    use mde_alerts::config::{ExportConfig, ExportShape, Scope};
    use mde_alerts::export::{export_file, selection_for};
    use serde_json::{Value, json};

    /// Alert `i` as the MDE API writes it: `(status, severity, classification)` vary.
    fn mde(i: usize, status: &str, severity: &str, class: Option<&str>) -> Value {
        let mut v = json!({
            "id": format!("da63755122767756081{i}_-961444813"),
            "incidentId": 28280 + i, "investigationId": null,
            "investigationState": INVESTIGATION_STATES[i % 3].0,
            "assignedTo": "secop@contoso.com", "severity": severity, "status": status,
            "classification": class, "determination": class.map(|_| "Malware"),
            "detectionSource": "WindowsDefenderAv", "detectorId": "e0da400f-affd-43ef-b1d5-afc2eb6f2756",
            "category": "Execution", "threatFamilyName": "Mimikatz", "threatName": "HackTool:Win32/Mimikatz",
            "title": format!("Suspicious =cmd {i}"), "description": "A line\nand another",
        });
        merge(
            &mut v,
            json!({
                "alertCreationTime": "2024-05-01T10:00:00.12Z",
                "firstEventTime": "2024-05-01T09:59:00Z",
                "lastEventTime": "2024-05-01T09:59:30.1234567Z",
                "lastUpdateTime": format!("2024-05-02T1{i}:00:00.3133333Z"),
                "resolvedTime": if status == "Resolved" { json!("2024-05-02T12:00:00Z") } else { Value::Null },
                "machineId": "73e7e2de709dff64ef64b1d0c30e67fab63279db",
                "computerDnsName": "tempdevice.contoso.com", "rbacGroupName": "Servers",
                "aadTenantId": "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c",
            }),
        );
        merge(
            &mut v,
            json!({
                "mitreTechniques": ["T1003", "T1059"],
                "relatedUser": {"userName": "alice", "domainName": "CONTOSO"},
                "loggedOnUsers": [{"accountName": "bob", "domainName": "CONTOSO"}],
                "comments": [{"comment": "on it", "createdBy": "secop@contoso.com", "createdTime": "2024-05-02T08:00:00.5Z"}],
                "evidence": []
            }),
        );
        v
    }

    /// `b`'s keys into `a`.
    fn merge(a: &mut Value, b: Value) {
        if let (Value::Object(a), Value::Object(b)) = (a, b) {
            a.extend(b);
        }
    }

    /// `investigationState` as the MDE API and as Graph write it.
    const INVESTIGATION_STATES: [(&str, &str); 3] = [
        ("UnsupportedAlertType", "unsupportedAlertType"),
        ("Benign", "benign"),
        ("PendingApproval", "pendingApproval"),
    ];

    /// The same alert as Graph `alerts_v2` writes it.
    fn graph(i: usize, status: &str, severity: &str, class: &str) -> Value {
        let mut v = json!({
            "@odata.type": "#microsoft.graph.security.alert",
            "id": format!("da63755122767756081{i}_-961444813"),
            "providerAlertId": format!("da63755122767756081{i}_-961444813"),
            "incidentId": format!("{}", 28280 + i),
            "assignedTo": "secop@contoso.com", "severity": severity, "status": status,
            "classification": class, "determination": if class == "unknown" { "unknown" } else { "malware" },
            "serviceSource": "microsoftDefenderForEndpoint", "productName": "Microsoft Defender for Endpoint",
            "investigationState": INVESTIGATION_STATES[i % 3].1,
        });
        merge(
            &mut v,
            json!({
                "detectionSource": "antivirus", "detectorId": "e0da400f-affd-43ef-b1d5-afc2eb6f2756",
                "category": "Execution", "threatFamilyName": "Mimikatz", "threatDisplayName": "HackTool:Win32/Mimikatz",
                "title": format!("Suspicious =cmd {i}"), "description": "A line\nand another",
                "alertWebUrl": "https://security.microsoft.com/alerts/x", "incidentWebUrl": "https://security.microsoft.com/incidents/x",
                "recommendedActions": "", "actorDisplayName": null, "systemTags": [], "alertPolicyId": null,
            }),
        );
        merge(
            &mut v,
            json!({
                "createdDateTime": "2024-05-01T10:00:00.1200000Z",
                "firstActivityDateTime": "2024-05-01T09:59:00Z",
                "lastActivityDateTime": "2024-05-01T09:59:30.1234567Z",
                "lastUpdateDateTime": format!("2024-05-02T1{i}:00:00.3133333Z"),
                "resolvedDateTime": if status == "resolved" { json!("2024-05-02T12:00:00.0000000Z") } else { Value::Null },
                "tenantId": "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c",
                "mitreTechniques": ["T1003", "T1059"],
                "comments": [{"comment": "on it", "createdByDisplayName": "secop@contoso.com", "createdDateTime": "2024-05-02T08:00:00.5000000Z"}],
            }),
        );
        let evidence: Value = serde_json::from_str(r##"[
            {"@odata.type": "#microsoft.graph.security.deviceEvidence", "createdDateTime": "2024-05-01T10:00:00Z",
             "verdict": "suspicious", "mdeDeviceId": "73e7e2de709dff64ef64b1d0c30e67fab63279db",
             "deviceDnsName": "tempdevice.contoso.com", "rbacGroupName": "Servers", "osPlatform": "Windows11",
             "loggedOnUsers": [{"accountName": "bob", "domainName": "CONTOSO"}]},
            {"@odata.type": "#microsoft.graph.security.fileEvidence", "createdDateTime": "2024-05-01T10:00:00Z",
             "detectionStatus": "detected",
             "fileDetails": {"sha1": "ab12", "sha256": "cd34", "fileName": "=mimikatz.exe", "filePath": "C:\\t"}},
            {"@odata.type": "#microsoft.graph.security.userEvidence", "createdDateTime": "2024-05-01T10:00:00Z",
             "userAccount": {"accountName": "alice", "domainName": "CONTOSO", "userSid": "S-1-5-21-1",
                             "azureAdUserId": "0b1e", "userPrincipalName": "alice@contoso.com"}},
            {"@odata.type": "#microsoft.graph.security.kubernetesPodEvidence", "name": "pod-7"}
        ]"##).unwrap();
        merge(&mut v, json!({ "evidence": evidence }));
        v
    }

    /// The three alerts, as `(MDE, Graph)` pairs.
    fn pairs() -> Vec<(Value, Value)> {
        vec![
            (
                mde(1, "InProgress", "High", Some("TruePositive")),
                graph(1, "inProgress", "high", "truePositive"),
            ),
            (
                mde(2, "Resolved", "UnSpecified", None),
                graph(2, "resolved", "unknown", "unknown"),
            ),
            (
                mde(3, "New", "Medium", Some("TruePositive")),
                graph(3, "new", "medium", "truePositive"),
            ),
        ]
    }

    /// A Graph alert as the store holds it, indexed with Graph's own spellings: the exports must
    /// not depend on how (or whether) the store normalises what it indexes.
    fn graph_alert(v: &Value) -> Alert {
        let raw = v.to_string();
        let text = |k: &str| v[k].as_str().map(str::to_owned);
        Alert {
            id: text("id").unwrap(),
            shape: mde_alerts::alert::Shape::Graph,
            last_update: ApiTime::parse(v["lastUpdateDateTime"].as_str().unwrap()).unwrap(),
            hash: *blake3::hash(raw.as_bytes()).as_bytes(),
            raw: raw.into(),
            fields: Indexed {
                status: text("status"),
                severity: text("severity"),
                category: text("category"),
                created: ApiTime::parse(v["createdDateTime"].as_str().unwrap()).ok(),
                service: text("serviceSource"),
            },
        }
    }

    /// A store at `path` holding `alerts` (MDE-shaped ones are parsed, Graph ones built).
    fn store_of(path: &Path, alerts: &[&Value]) -> Store {
        let mut store = Store::open(path).unwrap();
        let mut w = store.writer().unwrap();
        for v in alerts {
            let a = if v.get("lastUpdateTime").is_some() {
                Alert::parse(&v.to_string()).unwrap()
            } else {
                graph_alert(v)
            };
            w.upsert("t1", &a).unwrap();
        }
        w.commit(None, 0).unwrap();
        store
    }

    /// The MDE versions, then the Graph versions of the same ids over them (what a tenant's
    /// switch leaves), except alert 3, which stays MDE.
    fn mixed_store(path: &Path) -> Store {
        let pairs = pairs();
        let mut all: Vec<&Value> = pairs.iter().map(|(m, _)| m).collect();
        all.extend([&pairs[0].1, &pairs[1].1]);
        store_of(path, &all)
    }

    fn write(store: &Store, e: &ExportConfig, path: &Path) {
        let sel = selection_for(store, e, &["t1".to_owned()]).unwrap();
        export_file(store, e, &sel, path).unwrap();
    }

    fn xlsx_cells(path: &Path) -> Vec<Vec<String>> {
        use calamine::Reader;
        let mut wb: calamine::Xlsx<_> = calamine::open_workbook(path).unwrap();
        let mut all = Vec::new();
        for name in wb.sheet_names() {
            let range = wb.worksheet_range(&name).unwrap();
            all.extend(
                range
                    .rows()
                    .map(|r| r.iter().map(ToString::to_string).collect::<Vec<_>>()),
            );
        }
        all
    }

    #[test]
    fn graph_rows_export_exactly_like_their_mde_versions() {
        let dir = tempfile::tempdir().unwrap();
        let pairs = pairs();
        let mde_only = store_of(
            &dir.path().join("mde.db"),
            &pairs.iter().map(|(m, _)| m).collect::<Vec<_>>(),
        );
        let mixed = mixed_store(&dir.path().join("mixed.db"));
        let csv = ExportConfig::ad_hoc(ExportFormat::Csv);
        write(&mde_only, &csv, &dir.path().join("mde.csv"));
        write(&mixed, &csv, &dir.path().join("mixed.csv"));
        let (a, b) = (
            std::fs::read(dir.path().join("mde.csv")).unwrap(),
            std::fs::read(dir.path().join("mixed.csv")).unwrap(),
        );
        assert_eq!(
            String::from_utf8_lossy(&a),
            String::from_utf8_lossy(&b),
            "the default CSV is byte-identical, header and values"
        );
        let (h, rows) = read_csv(&dir.path().join("mixed.csv"));
        let header: Vec<&str> = mde_alerts::export::DEFAULT_COLUMNS.to_vec();
        assert_eq!(h, header);
        let first = &rows[0];
        assert_eq!(first[col(&h, "status")], "InProgress");
        assert_eq!(first[col(&h, "severity")], "High");
        assert_eq!(first[col(&h, "classification")], "TruePositive");
        assert_eq!(first[col(&h, "detectionSource")], "WindowsDefenderAv");
        assert_eq!(first[col(&h, "computerDnsName")], "tempdevice.contoso.com");
        assert_eq!(first[col(&h, "relatedUser")], "CONTOSO\\alice");
        assert_eq!(first[col(&h, "investigationState")], "Benign");
        assert_eq!(first[col(&h, "incidentId")], "28281");
        assert_eq!(
            first[col(&h, "alertCreationTime")],
            "2024-05-01T10:00:00.1200000Z"
        );
        assert_eq!(rows[1][col(&h, "severity")], "UnSpecified");
        assert_eq!(rows[1][col(&h, "classification")], "");

        let xlsx = ExportConfig::ad_hoc(ExportFormat::Xlsx);
        write(&mde_only, &xlsx, &dir.path().join("mde.xlsx"));
        write(&mixed, &xlsx, &dir.path().join("mixed.xlsx"));
        assert_eq!(
            xlsx_cells(&dir.path().join("mde.xlsx")),
            xlsx_cells(&dir.path().join("mixed.xlsx")),
            "the workbook's alerts and its severity/status summary agree too"
        );
    }

    #[test]
    fn filters_and_open_read_graph_alerts_in_the_mde_vocabulary() {
        let dir = tempfile::tempdir().unwrap();
        let mixed = mixed_store(&dir.path().join("mixed.db"));
        let ids = |e: &ExportConfig| -> Vec<String> {
            let p = dir.path().join("f.csv");
            write(&mixed, e, &p);
            let (h, rows) = read_csv(&p);
            rows.iter()
                .map(|r| r[col(&h, "id")][..20].to_owned())
                .collect()
        };
        let id = |i: usize| format!("da63755122767756081{i}");
        let base = ExportConfig::ad_hoc(ExportFormat::Csv);
        // Graph's `resolved` is closed.
        let open = ExportConfig {
            scope: Scope::Open,
            ..base.clone()
        };
        assert_eq!(ids(&open), [id(1), id(3)]);
        // Graph's `unknown` severity is UnSpecified, below Low (read as stored it would rank as
        // an unknown severity, above High).
        let low = ExportConfig {
            filter: Filter {
                min_severity: Some(2),
                ..Filter::default()
            },
            ..base.clone()
        };
        assert_eq!(ids(&low), [id(1), id(3)]);
        let in_progress = ExportConfig {
            filter: Filter {
                statuses: vec!["InProgress".into()],
                categories: vec!["Execution".into()],
                ..Filter::default()
            },
            ..base.clone()
        };
        assert_eq!(ids(&in_progress), [id(1)]);
        let unspecified = ExportConfig {
            filter: Filter {
                statuses: vec!["Resolved".into()],
                ..Filter::default()
            },
            ..base
        };
        assert_eq!(ids(&unspecified), [id(2)]);
    }

    #[test]
    fn graph_only_columns_and_typed_evidence_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mixed = mixed_store(&dir.path().join("mixed.db"));
        let e = ExportConfig {
            columns: [
                "id",
                "serviceSource",
                "alertWebUrl",
                "machineId",
                "evidence",
            ]
            .map(String::from)
            .to_vec(),
            evidence_separate: true,
            ..ExportConfig::ad_hoc(ExportFormat::Csv)
        };
        let main = dir.path().join("g.csv");
        write(&mixed, &e, &main);
        let (h, rows) = read_csv(&main);
        assert_eq!(
            rows[0][col(&h, "serviceSource")],
            "microsoftDefenderForEndpoint"
        );
        assert_eq!(
            rows[0][col(&h, "alertWebUrl")],
            "https://security.microsoft.com/alerts/x"
        );
        assert_eq!(
            rows[0][col(&h, "machineId")],
            "73e7e2de709dff64ef64b1d0c30e67fab63279db"
        );
        assert_eq!(rows[0][col(&h, "evidence")], "4");
        assert_eq!(rows[2][col(&h, "serviceSource")], "", "an MDE row has none");
        let (h, ev) = read_csv(&dir.path().join("g-evidence.csv"));
        let kinds: Vec<&str> = ev
            .iter()
            .filter(|r| r[0].starts_with("da637551227677560811"))
            .map(|r| r[col(&h, "entityType")].as_str())
            .collect();
        assert_eq!(
            kinds,
            [
                "Machine",
                "File",
                "User",
                "#microsoft.graph.security.kubernetesPodEvidence"
            ]
        );
        let file = &ev[1];
        assert_eq!(file[col(&h, "sha1")], "ab12");
        assert_eq!(file[col(&h, "fileName")], "'=mimikatz.exe", "guarded");
        assert_eq!(file[col(&h, "detectionStatus")], "Detected");
        assert_eq!(
            file[col(&h, "evidenceCreationTime")],
            "2024-05-01T10:00:00.0000000Z"
        );
        let user = &ev[2];
        assert_eq!(user[col(&h, "accountName")], "alice");
        assert_eq!(user[col(&h, "aadUserId")], "0b1e");
        assert_eq!(user[col(&h, "userPrincipalName")], "alice@contoso.com");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shape_mde_maps_graph_json_and_verbatim_keeps_it_byte_for_byte() {
        let env = env_with_exports(
            0,
            vec![
                RawExport {
                    shape: Some(ExportShape::Mde),
                    ..config::export("mde", ExportFormat::Ndjson, "out")
                },
                config::export("verbatim", ExportFormat::Json, "out"),
            ],
        )
        .await;
        drop(mixed_store(&env.store_path()));
        let pairs = pairs();
        let stored_graph = pairs[0].1.to_string();
        let stored_mde = pairs[2].0.to_string();

        let out = run(&env, &["export"]).await;
        assert!(out.status.success(), "{}", text(&out));
        let dir = env.path().join("out");
        let mde_lines = std::fs::read_to_string(dir.join("mde-latest.ndjson")).unwrap();
        let lines: Vec<&str> = mde_lines.lines().collect();
        assert_eq!(lines.len(), 3);
        let g: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(g["lastUpdateTime"], "2024-05-02T11:00:00.3133333Z");
        assert!(g.get("lastUpdateDateTime").is_none());
        assert_eq!(g["status"], "InProgress");
        assert_eq!(g["severity"], "High");
        assert_eq!(g["incidentId"], 28281);
        assert_eq!(g["computerDnsName"], "tempdevice.contoso.com");
        assert_eq!(g["serviceSource"], "microsoftDefenderForEndpoint");
        assert_eq!(g["investigationState"], "Benign");
        assert_eq!(g["evidence"][1]["entityType"], "File");
        assert_eq!(lines[2], stored_mde, "an MDE alert is written as stored");
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(dir.join("mde-latest.manifest.json")).unwrap())
                .unwrap();
        assert_eq!(manifest["shape"], "mde");

        let verbatim = std::fs::read_to_string(dir.join("verbatim-latest.json")).unwrap();
        assert!(
            verbatim.contains(&stored_graph),
            "Graph's text byte for byte"
        );
        assert!(verbatim.contains("\"lastUpdateDateTime\""));
        let manifest: Value = serde_json::from_slice(
            &std::fs::read(dir.join("verbatim-latest.manifest.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(manifest["shape"], "verbatim");

        // The ad-hoc file: `--shape mde` on JSON; refused where it does not apply.
        let adhoc = env.path().join("adhoc.json");
        let out = run(
            &env,
            &["export", "--out", adhoc.to_str().unwrap(), "--shape", "mde"],
        )
        .await;
        assert!(out.status.success(), "{}", text(&out));
        let all: Vec<Value> = serde_json::from_slice(&std::fs::read(&adhoc).unwrap()).unwrap();
        assert_eq!(all[0]["status"], "InProgress");
        assert_eq!(all[0]["investigationState"], "Benign");
        assert_eq!(all[1]["severity"], "UnSpecified");
        let out = run(&env, &["export", "--out", "x.csv", "--shape", "mde"]).await;
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains("--shape"), "{}", text(&out));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shape_is_a_json_choice_and_a_wrong_one_names_the_key() {
        let env = env_with_exports(0, vec![]).await;
        let base = env.raw_config();
        for (export, says) in [
            (
                RawExport {
                    shape: Some(ExportShape::Mde),
                    ..csv("a")
                },
                "only used with format",
            ),
            (
                RawExport {
                    shape: Some(ExportShape::Verbatim),
                    ..config::export("r", ExportFormat::Report, "out")
                },
                "only used with format",
            ),
        ] {
            std::fs::write(
                &env.config_path,
                config::changed(&base, |c| c.exports = vec![export]),
            )
            .unwrap();
            let out = run(&env, &["config", "check"]).await;
            let t = text(&out);
            assert_eq!(out.status.code(), Some(78), "{t}");
            assert!(t.contains("exports[0].shape") && t.contains(says), "{t}");
        }
        let good = config::changed(&base, |c| {
            c.exports = vec![config::export("j", ExportFormat::Json, "out")]
        });
        std::fs::write(
            &env.config_path,
            good.replace("format = \"json\"", "format = \"json\"\nshape = \"graph\""),
        )
        .unwrap();
        let out = run(&env, &["config", "check"]).await;
        let t = text(&out);
        assert_eq!(out.status.code(), Some(78), "{t}");
        assert!(
            t.contains("exports[0].shape") && t.contains("\"mde\""),
            "{t}"
        );
    }
}

/// `{tenant}` in an export's name writes one file set per tenant, each holding
/// only that tenant's alerts; `tenants = [...]` limits the sets; the scheduled export under `run`
/// writes them too.
mod per_tenant {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use mde_alerts::config::raw::RawTenant;
    use mde_alerts::daemon::{self, Control, Driver, Event, JobKey};
    use mde_alerts::export::manifest::Manifest;
    use mde_sim::{SimConfig, Simulator};

    /// The env's tenant `t1` and two customers, each behind its own simulator.
    struct Customers {
        env: Env,
        /// name → its simulator (`t1` is `env.sim`).
        sims: BTreeMap<&'static str, Simulator>,
    }

    impl Customers {
        async fn new(exports: Vec<RawExport>) -> Customers {
            let env = Env::new(sim_config(12, 71, Hazards::default()), Opts::default()).await;
            let mut sims = BTreeMap::new();
            for (name, guid, alerts, seed) in [
                ("northwind", "0c0a0b0e-1111-4a55-9a0e-5e1d9c0d1e11", 9, 72),
                ("tailspin", "0f0a0b0e-2222-4a55-9a0e-5e1d9c0d1e11", 15, 73),
            ] {
                let cfg = SimConfig {
                    tenant_id: guid.into(),
                    ..sim_config(alerts, seed, Hazards::default())
                };
                sims.insert(name, Simulator::start(cfg, 0).await.unwrap());
            }
            env.edit_config(|c| {
                let base = c.tenants[0].clone();
                for (name, sim) in &sims {
                    c.tenants.push(RawTenant {
                        name: Some((*name).into()),
                        tenant_id: Some(sim_tenant(name).into()),
                        login_url: Some(sim.url()),
                        api_url: Some(sim.url()),
                        graph_url: Some(sim.url()),
                        ..base.clone()
                    });
                }
                c.exports = exports;
            });
            Customers { env, sims }
        }

        /// Each tenant's alert ids, from its simulator.
        async fn truth(&self) -> BTreeMap<String, BTreeSet<String>> {
            let mut out = BTreeMap::new();
            settle(&self.env.sim).await;
            out.insert("t1".to_owned(), ids(&self.env.sim));
            for (name, sim) in &self.sims {
                settle(sim).await;
                out.insert((*name).to_owned(), ids(sim));
            }
            out
        }
    }

    fn sim_tenant(name: &str) -> &'static str {
        match name {
            "northwind" => "0c0a0b0e-1111-4a55-9a0e-5e1d9c0d1e11",
            _ => "0f0a0b0e-2222-4a55-9a0e-5e1d9c0d1e11",
        }
    }

    fn ids(sim: &Simulator) -> BTreeSet<String> {
        sim.truth(false).into_iter().map(|t| t.id).collect()
    }

    /// The file names in `dir`, sorted.
    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    /// What one run of a set leaves: a timestamped file per `exts`, its `-latest` and the manifest.
    fn assert_one_set_each(dir: &Path, stem: &str, tenants: &[&str], exts: &[&str]) {
        let files = listing(dir);
        let mut expected = Vec::new();
        for t in tenants {
            for ext in exts {
                expected.push(format!("{stem}-{t}-latest.{ext}"));
            }
            expected.push(format!("{stem}-{t}-latest.manifest.json"));
        }
        let latest: Vec<&String> = files.iter().filter(|f| f.contains("-latest.")).collect();
        let mut want: Vec<&String> = expected.iter().collect();
        want.sort();
        assert_eq!(latest, want, "{files:?}");
        // Every other file is one tenant's timestamped file, one per tenant and extension.
        let stamped: Vec<&String> = files.iter().filter(|f| !f.contains("-latest.")).collect();
        assert_eq!(stamped.len(), tenants.len() * exts.len(), "{files:?}");
        for t in tenants {
            for ext in exts {
                let prefix = format!("{stem}-{t}-2");
                let n = stamped
                    .iter()
                    .filter(|f| f.starts_with(&prefix) && f.ends_with(&format!(".{ext}")))
                    .count();
                assert_eq!(n, 1, "{t} .{ext}: {files:?}");
            }
        }
    }

    fn manifest(path: &Path) -> Manifest {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn csv_ids(path: &Path) -> BTreeSet<String> {
        let (headers, rows) = read_csv(path);
        let i = col(&headers, "id");
        rows.into_iter().map(|r| r[i].clone()).collect()
    }

    fn exports() -> Vec<RawExport> {
        vec![
            config::export("alerts-{tenant}", ExportFormat::Csv, "csv"),
            config::export("book-{tenant}", ExportFormat::Xlsx, "xlsx"),
            config::export("nightly-{tenant}", ExportFormat::Report, "report"),
            RawExport {
                tenants: Some(vec!["tailspin".into(), "northwind".into()]),
                ..config::export("cust-{tenant}", ExportFormat::Ndjson, "limited")
            },
            RawExport {
                scope: Some(ScopeKind::Changed),
                ..config::export("delta-{tenant}", ExportFormat::Csv, "delta")
            },
        ]
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tenant_exports_write_one_set_per_tenant_and_nothing_else() {
        let c = Customers::new(exports()).await;
        let truth = c.truth().await;
        let out = run(&c.env, &["poll"]).await;
        assert!(out.status.success(), "{}", text(&out));
        let all = ["northwind", "tailspin", "t1"];
        let p = c.env.path();
        assert_one_set_each(&p.join("csv"), "alerts", &all, &["csv"]);
        assert_one_set_each(&p.join("xlsx"), "book", &all, &["xlsx"]);
        assert_one_set_each(&p.join("report"), "nightly", &all, &["html", "md"]);
        assert_one_set_each(
            &p.join("limited"),
            "cust",
            &["northwind", "tailspin"],
            &["ndjson"],
        );
        for t in all {
            let own = &truth[t];
            assert!(!own.is_empty());
            assert_eq!(
                &csv_ids(&p.join(format!("csv/alerts-{t}-latest.csv"))),
                own,
                "{t}"
            );
            assert_eq!(
                &csv_ids(&p.join(format!("delta/delta-{t}-latest.csv"))),
                own,
                "{t}"
            );
            for (dir, stem) in [("csv", "alerts"), ("xlsx", "book"), ("report", "nightly")] {
                let m = manifest(&p.join(format!("{dir}/{stem}-{t}-latest.manifest.json")));
                assert_eq!(m.tenant.as_deref(), Some(t));
                assert_eq!(m.rows, own.len() as u64, "{dir} {t}");
                assert_eq!(
                    m.cursor.keys().collect::<Vec<_>>(),
                    [t],
                    "only its own cursor"
                );
                assert_eq!(m.filter.tenants, [t]);
            }
            // The report names no other customer.
            for f in ["html", "md"] {
                let page =
                    std::fs::read_to_string(p.join(format!("report/nightly-{t}-latest.{f}")))
                        .unwrap();
                for other in ["northwind", "tailspin"].iter().filter(|o| **o != t) {
                    assert!(!page.contains(other), "{t}'s report names {other}");
                }
                // One reader's report: its own alerts, no table of tenants.
                assert!(!page.contains("By tenant"), "{t}");
                if f == "md" {
                    let on_record = format!("alerts on record: {}", own.len());
                    assert!(page.contains(&on_record), "{t}: {page}");
                }
            }
        }
        for t in ["northwind", "tailspin"] {
            let body =
                std::fs::read_to_string(p.join(format!("limited/cust-{t}-latest.ndjson"))).unwrap();
            let got: BTreeSet<String> = body
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect();
            assert_eq!(got, truth[t], "{t}");
        }

        // `changed` keeps its starting point per tenant's set: one customer's new alerts never
        // make another's set skip its own.
        let versions = |sim: &Simulator| -> BTreeMap<String, i64> {
            sim.truth(false)
                .into_iter()
                .map(|a| (a.id, a.last_update))
                .collect()
        };
        let before: BTreeMap<&str, _> = c.sims.iter().map(|(t, s)| (*t, versions(s))).collect();
        c.sims["northwind"].update_random(3);
        c.sims["tailspin"].create(2);
        c.truth().await; // settled
        let out = run(&c.env, &["poll"]).await;
        assert!(out.status.success(), "{}", text(&out));
        for (t, sim) in &c.sims {
            let moved: BTreeSet<String> = versions(sim)
                .into_iter()
                .filter(|(id, at)| before[t].get(id) != Some(at))
                .map(|(id, _)| id)
                .collect();
            assert!(!moved.is_empty(), "{t}");
            let got = csv_ids(&p.join(format!("delta/delta-{t}-latest.csv")));
            assert_eq!(got, moved, "{t}'s changed set");
        }
        assert!(csv_ids(&p.join("delta/delta-t1-latest.csv")).is_empty());
    }

    async fn next_event(remote: &mut mde_alerts::daemon::Remote) -> Event {
        tokio::time::timeout(std::time::Duration::from_secs(10), remote.events.recv())
            .await
            .expect("an event within 10 s")
            .expect("the loop ended")
    }

    /// Serves `config` in-process, fires one tick of `schedule`, waits for the first job to
    /// finish (it must be `job`, and succeed), and stops.
    async fn serve_one_job(env: &Env, config: Config, schedule: String, job: JobKey) {
        let tenants = config.tenants.len();
        let (driver, mut remote) = Driver::manual();
        let path = env.config_path.clone();
        let task = tokio::spawn(async move { daemon::serve(&path, config, driver).await });
        while next_event(&mut remote).await != Event::Notify("READY=1".into()) {}
        // Every tenant shares the poll schedule; an export's schedule is its own.
        let jobs = match &job {
            JobKey::Poll(_) => tenants,
            JobKey::Export(_) => 1,
        };
        remote.fire(&mde_alerts::config::parse_cron(&schedule).unwrap(), jobs);
        loop {
            if let Event::Finished { key, ok } = next_event(&mut remote).await {
                assert_eq!(key, job);
                assert!(ok);
                break;
            }
        }
        remote.control.send(Control::Stop).unwrap();
        task.await.unwrap().unwrap();
    }

    /// The daemon's scheduled export expands `{tenant}` too, over the tenants configured then.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_scheduled_export_under_run_writes_one_set_per_tenant() {
        let c = Customers::new(vec![RawExport {
            schedule: Some("0 0 5 * * *".into()),
            ..config::export("alerts-{tenant}", ExportFormat::Csv, "csv")
        }])
        .await;
        let truth = c.truth().await;
        let out = run(&c.env, &["poll", "--no-export"]).await;
        assert!(out.status.success(), "{}", text(&out));
        assert!(!c.env.path().join("csv").exists());
        let config = c.env.config();
        let key = daemon::schedule_key(config.exports[0].schedule.as_ref().unwrap());
        serve_one_job(
            &c.env,
            config,
            key,
            JobKey::Export("alerts-{tenant}".into()),
        )
        .await;
        let all = ["northwind", "t1", "tailspin"];
        let p = c.env.path();
        assert_one_set_each(&p.join("csv"), "alerts", &all, &["csv"]);
        for t in all {
            let got = csv_ids(&p.join(format!("csv/alerts-{t}-latest.csv")));
            assert_eq!(got, truth[t], "{t}");
        }
    }

    /// Under `run`, a `{tenant}` export without a schedule follows each tenant's poll with that
    /// tenant's set alone: the cost of a poll does not grow with the number of customers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_a_tenants_poll_under_run_only_its_set_is_written() {
        let c = Customers::new(vec![config::export(
            "alerts-{tenant}",
            ExportFormat::Csv,
            "csv",
        )])
        .await;
        let truth = c.truth().await;
        // t1 (the first tenant: no stagger) polls on a schedule of its own, which the test fires;
        // the others never do.
        c.env.edit_config(|cfg| {
            for t in &mut cfg.tenants {
                t.schedule = Some(if t.name.as_deref() == Some("t1") {
                    "0 0 4 * * *".into()
                } else {
                    "0 0 3 1 1 *".into()
                });
            }
        });
        let config = c.env.config();
        let key = daemon::schedule_key(config.tenants[0].schedule.as_ref().unwrap());
        serve_one_job(&c.env, config, key, JobKey::Poll("t1".into())).await;
        let p = c.env.path();
        assert_one_set_each(&p.join("csv"), "alerts", &["t1"], &["csv"]);
        assert_eq!(csv_ids(&p.join("csv/alerts-t1-latest.csv")), truth["t1"]);
    }
}
