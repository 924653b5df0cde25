//! Snapshot files that spreadsheets, scripts and people can trust: exact round trips, scopes and
//! filters, atomic `-latest` files under a reader in a loop, retention, and bad configs.

use std::path::{Path, PathBuf};

use crate::support::*;
use mde_alerts::config::raw::{EvidenceMode, MinSeverity, RawExport, ScopeKind};
use mde_alerts::config::{Config, ExportFormat};
use mde_alerts::store::Store;
use mde_sim::Hazards;

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

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
    let since = mde_alerts::time::ApiTime::now().minus(std::time::Duration::from_secs(2 * 86_400));
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
        mde_alerts::app::export_configured(&config, None).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.join().expect("the reader saw a torn file");
    assert!(reads > 5, "only {reads} reads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_mid_export_leaves_the_previous_latest_intact() {
    let env = env_with_exports(100, vec![csv("a")]).await;
    assert!(run(&env, &["poll"]).await.status.success());
    let latest = env.path().join("out/a-latest.csv");
    let before = std::fs::read(&latest).unwrap();
    // Damage one stored alert so that the export fails half-way through.
    let store = Store::open(&env.store_path()).unwrap();
    store
        .connection()
        .execute("UPDATE alert_revisions SET raw = '{\"id\": ' WHERE rev = (SELECT rev FROM alerts ORDER BY last_update_time DESC LIMIT 1)", [])
        .unwrap();
    drop(store);
    let out = run(&env, &["export"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
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
    ];
    for (block, key, args) in cases {
        std::fs::write(&env.config_path, format!("{base}\n{block}")).unwrap();
        let out = run(&env, args).await;
        let t = text(&out);
        assert_eq!(out.status.code(), Some(78), "{block}\n{t}");
        assert!(t.contains(key), "{key}: {t}");
    }
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
    assert!(html.contains("<svg"), "the chart is inline SVG");
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
