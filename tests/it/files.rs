//! Files and paths: what `export` and `report` may replace, standard output, the
//! publishing order of `-latest` and its manifest, retention and temp cleanup, any property as a
//! column, one severity order, and manual runs of a `changed` export.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use crate::support::*;
use mde_sim::Hazards;

/// An env with `alerts` alerts, the given export blocks, polled once (exports included).
async fn polled(alerts: usize, exports: &str) -> Env {
    let env = Env::new(sim_config(alerts, 91, Hazards::default()), Opts::default()).await;
    let text = std::fs::read_to_string(&env.config_path).unwrap() + "\n" + exports;
    std::fs::write(&env.config_path, text).unwrap();
    let s = mde_alerts::poll_job::poll(&env.config(), None, true)
        .await
        .unwrap();
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    env
}

fn manifest(dir: &Path, name: &str) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(dir.join(format!("{name}-latest.manifest.json"))).unwrap(),
    )
    .unwrap()
}

fn csv_rows(path: &Path) -> usize {
    csv_rows_of(&std::fs::read(path).unwrap())
}

fn csv_rows_of(bytes: &[u8]) -> usize {
    let body = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    csv::Reader::from_reader(body).records().count()
}

fn mkfifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo {}", path.display());
}

/// `--out` never replaces a symlink, FIFO or directory (as root, `--out /dev/stdout` used to
/// replace the system's symlink with a regular file); the message names the path and the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_refuses_anything_but_a_regular_file() {
    let env = polled(20, "").await;
    let d = env.path();
    std::fs::write(d.join("precious.txt"), b"keep me").unwrap();
    std::os::unix::fs::symlink(d.join("precious.txt"), d.join("link.csv")).unwrap();
    mkfifo(&d.join("fifo.csv"));
    std::fs::create_dir(d.join("dir.json")).unwrap();
    std::os::unix::fs::symlink(d.join("precious.txt"), d.join("linked.html")).unwrap();
    let cases: [(&[&str], &str, &str); 5] = [
        (
            &["export", "--format", "csv", "--out"],
            "link.csv",
            "a symlink",
        ),
        (&["export", "--out"], "fifo.csv", "a FIFO"),
        (&["export", "--out"], "dir.json", "a directory"),
        (&["report", "--out"], "linked.html", "a symlink"),
        (&["export", "--out"], "linked.html", "a symlink"),
    ];
    for (args, name, kind) in cases {
        let path = d.join(name);
        let mut args = args.to_vec();
        args.push(path.to_str().unwrap());
        let out = run(&env, &args).await;
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {t}");
        assert!(
            t.contains(name) && t.contains(kind) && t.contains("fix:"),
            "{t}"
        );
    }
    let meta = |n: &str| std::fs::symlink_metadata(d.join(n)).unwrap().file_type();
    assert!(meta("link.csv").is_symlink() && meta("linked.html").is_symlink());
    assert!(meta("fifo.csv").is_fifo());
    assert!(meta("dir.json").is_dir());
    assert_eq!(std::fs::read(d.join("precious.txt")).unwrap(), b"keep me");
    assert!(
        !d.join("linked.md").exists(),
        "nothing written beside a refused file"
    );
    assert!(temp_files(d).is_empty());
}

/// `--out -` streams to standard output, and a reader that stops early is a normal end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_dash_streams_and_a_closed_pipe_is_a_normal_end() {
    let env = polled(300, "").await;
    let out = run(&env, &["export", "--format", "ndjson", "--out", "-"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 300);
    assert!(!env.path().join("-").exists(), "no file called -");

    // `| head -c 100`: the reader goes away after a few bytes of ~800 KB.
    for args in [
        &["export", "--format", "json", "--out", "-"][..],
        &["report", "--out", "-"],
    ] {
        let mut child = tokio::process::Command::new(bin())
            .arg("--config")
            .arg(&env.config_path)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 100];
        tokio::io::AsyncReadExt::read_exact(&mut stdout, &mut first)
            .await
            .unwrap();
        drop(stdout);
        let out = child.wait_with_output().await.unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// The format follows the extension of `--out`; an unknown one is a usage error naming
/// what to pass; `-` (no extension) is CSV.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_follows_the_extension() {
    let env = polled(30, "").await;
    let d = env.path();
    let p = |n: &str| d.join(n).to_str().unwrap().to_owned();
    for (file, check) in [
        ("a.jsonl", "ndjson"),
        ("a.NDJSON", "ndjson"),
        ("a.json", "json"),
        ("a.csv", "csv"),
        ("a.xlsx", "xlsx"),
        ("a.html", "html"),
        ("b.md", "md"),
    ] {
        let out = run(&env, &["export", "--out", &p(file)]).await;
        assert!(out.status.success(), "{file}: {}", text(&out));
        let bytes = std::fs::read(d.join(file)).unwrap();
        let s = String::from_utf8_lossy(&bytes);
        match check {
            "ndjson" => assert_eq!(s.lines().count(), 30, "{file}"),
            "json" => assert_eq!(
                serde_json::from_slice::<Vec<serde_json::Value>>(&bytes)
                    .unwrap()
                    .len(),
                30
            ),
            "csv" => assert_eq!(csv_rows(&d.join(file)), 30),
            "xlsx" => assert!(bytes.starts_with(b"PK")),
            "html" => assert!(
                s.contains("<table class=\"plot\"")
                    && !s.contains("<svg")
                    && d.join("a.md").exists()
            ),
            _ => assert!(s.contains("| Open now |") && !s.contains("<html")),
        }
    }
    for args in [
        vec!["export".to_owned(), "--out".into(), p("a.txt")],
        vec!["export".into(), "--out".into(), p("noext")],
        vec!["report".into(), "--out".into(), p("r.csv")],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(&env, &args).await;
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {t}");
        assert!(t.contains("--format") || t.contains(".md"), "{t}");
    }
    // Standard output has no extension: CSV unless --format says otherwise.
    let out = run(&env, &["export", "--out", "-"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(csv_rows_of(&out.stdout), 30);
}

/// A failure at the manifest used to leave `-latest` replaced and the manifest describing
/// the previous file. Everything is staged before anything is published now: here the manifest
/// cannot be written (something that is not a file sits at its path), and `-latest` keeps its
/// old content, matching the old manifest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_manifest_publishes_nothing() {
    let env = polled(
        40,
        "[[exports]]\nname = \"a\"\nformat = \"csv\"\ndir = \"out\"\n",
    )
    .await;
    let dir = env.path().join("out");
    let latest = dir.join("a-latest.csv");
    let before = std::fs::read(&latest).unwrap();
    let old_manifest = manifest(&dir, "a");
    env.sim.create(5);
    mde_alerts::poll_job::poll(&env.config(), None, false)
        .await
        .unwrap();
    // The manifest's path becomes a directory holding the old manifest: not replaceable.
    let m = dir.join("a-latest.manifest.json");
    std::fs::rename(&m, dir.join("old.json")).unwrap();
    std::fs::create_dir(&m).unwrap();
    let out = run(&env, &["export"]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("a-latest.manifest.json") && t.contains("a directory"),
        "{t}"
    );
    assert_eq!(
        std::fs::read(&latest).unwrap(),
        before,
        "-latest not replaced"
    );
    use sha2::Digest;
    let hex: String = sha2::Sha256::digest(&before)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        old_manifest["sha256"],
        hex.as_str(),
        "the pair still agrees"
    );
    assert!(temp_files(&dir).is_empty());
    // Once the obstacle is gone, the next export publishes both.
    std::fs::remove_dir(&m).unwrap();
    assert!(run(&env, &["export"]).await.status.success());
    assert_eq!(manifest(&dir, "a")["rows"], 45);
    assert_eq!(csv_rows(&latest), 45);
}

/// Prune never removes the file the same run wrote (newer-named files after a clock step
/// back), `--out` temps of killed writers are cleaned, and stray directories named like temp or
/// timestamped files neither fail an export nor get removed; errors name the right path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_and_cleanup_keep_what_they_must() {
    let env = polled(
        20,
        "[[exports]]\nname = \"a\"\nformat = \"csv\"\ndir = \"out\"\nkeep = 2\nkeep_daily = 0\n",
    )
    .await;
    let dir = env.path().join("out");
    // Files from "the future": the clock has since stepped back.
    for stamp in ["20991231T235958Z", "20991231T235959Z"] {
        std::fs::write(dir.join(format!("a-{stamp}.csv")), b"old\r\n").unwrap();
    }
    // Strays: a directory named like a dead writer's temp, one like a timestamped file.
    let stray_temp = dir.join(format!("{}4294967-x", mde_alerts::export::TEMP_PREFIX));
    let stray_stamp = dir.join("a-20000101T000000Z.csv");
    std::fs::create_dir(&stray_temp).unwrap();
    std::fs::create_dir(&stray_stamp).unwrap();
    let out = run(&env, &["export"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let written = manifest(&dir, "a")["file"].as_str().unwrap().to_owned();
    assert!(
        dir.join(&written).is_file(),
        "the file just written was pruned: {written}"
    );
    assert!(
        stray_temp.is_dir() && stray_stamp.is_dir(),
        "non-files are left alone"
    );
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.starts_with("a-2") && f.ends_with(".csv"))
        .filter(|f| dir.join(f).is_file())
        .collect();
    assert_eq!(files.len(), 2, "keep = 2: {files:?}");

    // A directory where -latest goes: refused, and the message names it.
    std::fs::remove_file(dir.join("a-latest.csv")).unwrap();
    std::fs::create_dir(dir.join("a-latest.csv")).unwrap();
    let out = run(&env, &["export"]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("a-latest.csv") && t.contains("a directory"),
        "{t}"
    );

    // `--out` temps: a killed writer's is removed, a live one's (pid 1) kept.
    let adhoc = env.path().join("adhoc");
    std::fs::create_dir(&adhoc).unwrap();
    let dead = adhoc.join(format!("{}4294967-abc", mde_alerts::export::TEMP_PREFIX));
    let live = adhoc.join(format!("{}1-abc", mde_alerts::export::TEMP_PREFIX));
    std::fs::write(&dead, b"x").unwrap();
    std::fs::write(&live, b"x").unwrap();
    let out = run(
        &env,
        &["export", "--out", adhoc.join("x.csv").to_str().unwrap()],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(!dead.exists() && live.exists());
}

/// Alerts with the given (id suffix, severity, status, extra fields), visible in the simulator.
fn put_alerts(env: &Env, alerts: &[(&str, &str, &str, serde_json::Value)]) {
    let now = mde_alerts::alert::time::ApiTime::now().to_api_string();
    for (id, severity, status, extra) in alerts {
        let mut a = serde_json::json!({
            "id": format!("da-files-{id}"),
            "title": format!("alert {id}"),
            "severity": severity,
            "status": status,
            "category": "Execution",
            "alertCreationTime": now,
            "lastUpdateTime": now,
        });
        for (k, v) in extra.as_object().into_iter().flatten() {
            a[k] = v.clone();
        }
        env.sim.put_alert(a);
    }
}

/// Any property (old-schema `alertUser`, a field added later) and dotted paths are columns;
/// a typo only warns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_property_path_is_a_column() {
    let env = polled(
        0,
        "[[exports]]\nname = \"c\"\nformat = \"csv\"\ndir = \"out\"\ncolumns = [\"id\", \"alertUser\", \"brandNewField\", \"relatedUser.userName\", \"brandNewField.k.1\", \"titel\"]\n",
    )
    .await;
    let out = run(&env, &["config", "check"]).await;
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("did you mean `title`"), "{t}");
    put_alerts(
        &env,
        &[(
            "1",
            "Low",
            "New",
            serde_json::json!({
                "alertUser": "CONTOSO\\bob",
                "brandNewField": {"k": [1, 2]},
                "relatedUser": {"userName": "alice", "domainName": "CONTOSO"},
            }),
        )],
    );
    let out = run(&env, &["poll"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let bytes = std::fs::read(env.path().join("out/c-latest.csv")).unwrap();
    let body = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap();
    let mut r = csv::Reader::from_reader(body);
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header[3], "relatedUser.userName");
    let row: Vec<String> = r
        .records()
        .map(|x| x.unwrap().iter().map(str::to_owned).collect::<Vec<_>>())
        .find(|row| row[0] == "da-files-1")
        .unwrap();
    assert_eq!(
        row,
        [
            "da-files-1",
            "CONTOSO\\bob",
            r#"{"k":[1,2]}"#,
            "alice",
            "2",
            ""
        ]
    );
}

/// An unknown severity (`Critical`) ranks above High everywhere and counts as High in the
/// report; `open` means the same (trimmed, any case `Resolved` is closed) in the store's
/// selection, the report and the XLSX summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_severity_order_and_one_definition_of_open() {
    let env = polled(
        0,
        "[[exports]]\nname = \"open\"\nformat = \"json\"\ndir = \"out\"\nscope = \"open\"\n\n[[exports]]\nname = \"hi\"\nformat = \"json\"\ndir = \"out\"\nmin_severity = \"High\"\n",
    )
    .await;
    put_alerts(
        &env,
        &[
            ("crit", "Critical", "New", serde_json::json!({})),
            ("high", "High", "InProgress", serde_json::json!({})),
            ("low", "low", "New", serde_json::json!({})),
            ("closed", "High", " resolved ", serde_json::json!({})),
        ],
    );
    let out = run(&env, &["poll"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let ids = |name: &str| -> Vec<String> {
        let v: Vec<serde_json::Value> = serde_json::from_slice(
            &std::fs::read(env.path().join(format!("out/{name}-latest.json"))).unwrap(),
        )
        .unwrap();
        let mut ids: Vec<String> = v.iter().map(|a| a["id"].as_str().unwrap().into()).collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids("open"),
        ["da-files-crit", "da-files-high", "da-files-low"]
    );
    assert_eq!(
        ids("hi"),
        ["da-files-closed", "da-files-crit", "da-files-high"]
    );

    let md = env.path().join("r.md");
    let out = run(&env, &["report", "--out", md.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", text(&out));
    let md = std::fs::read_to_string(md).unwrap();
    assert!(
        md.contains("| Open High and above | 2 | Critical 1 · High 1 |"),
        "Critical is said, not silently counted as High: {md}"
    );
    assert!(md.contains("| Open now | 3 |"), "{md}");
    let crit = md.find("| Critical | 1 |").expect("Critical row");
    let high = md.find("| High | 1 |").expect("High row");
    assert!(crit < high, "Critical ranks above High");

    let book = env.path().join("b.xlsx");
    let out = run(&env, &["export", "--out", book.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", text(&out));
    use calamine::Reader;
    let mut wb: calamine::Xlsx<_> = calamine::open_workbook(&book).unwrap();
    let summary = wb.worksheet_range("Summary").unwrap();
    let rows: Vec<String> = (1..4)
        .map(|r| summary.get((r, 0)).unwrap().to_string())
        .collect();
    assert_eq!(rows, ["Critical", "High", "Low"]);
    let statuses: Vec<String> = (1..4)
        .map(|c| summary.get((0, c)).unwrap().to_string())
        .collect();
    assert_eq!(statuses, ["New", "InProgress", "Resolved"]);
}

fn newest_timestamped(dir: &Path, name: &str) -> PathBuf {
    let mut v: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| {
            let f = e.file_name().into_string().unwrap();
            f.starts_with(&format!("{name}-2")) && f.ends_with(".csv")
        })
        .map(|e| (e.metadata().unwrap().modified().unwrap(), e.path()))
        .collect();
    v.sort();
    v.pop().unwrap().1
}

/// A manual `export` of a `changed` export neither consumes the scheduled state nor
/// replaces `-latest`: it writes the delta since the last scheduled run to a timestamped file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_export_does_not_consume_changed() {
    let env = polled(
        25,
        "[[exports]]\nname = \"whatsnew\"\nformat = \"csv\"\ndir = \"out\"\nscope = \"changed\"\nkeep = 100\n",
    )
    .await;
    let dir = env.path().join("out");
    let latest = dir.join("whatsnew-latest.csv");
    assert_eq!(csv_rows(&latest), 25);
    let before = std::fs::read(&latest).unwrap();
    let manifest_before = manifest(&dir, "whatsnew");
    env.sim.create(3);
    mde_alerts::poll_job::poll(&env.config(), None, false)
        .await
        .unwrap();
    for _ in 0..2 {
        let out = run(&env, &["export", "--name", "whatsnew"]).await;
        let t = text(&out);
        assert!(out.status.success(), "{t}");
        assert_eq!(std::fs::read(&latest).unwrap(), before, "-latest untouched");
        assert_eq!(manifest(&dir, "whatsnew"), manifest_before);
        let manual = newest_timestamped(&dir, "whatsnew");
        assert!(
            t.contains(&*manual.file_name().unwrap().to_string_lossy()),
            "{t}"
        );
        assert_eq!(
            csv_rows(&manual),
            3,
            "the delta since the last scheduled run"
        );
    }
    // The schedule (here: the exports after a poll) still gets those three.
    let s = mde_alerts::poll_job::poll(&env.config(), None, true)
        .await
        .unwrap();
    assert!(s.failed.is_empty());
    assert_eq!(csv_rows(&latest), 3);
}

/// `report --out` names a directory to make, or a `.html`/`.md` file: a device or file there
/// without such an extension (`/dev/null`) is a usage error that says what `--out` takes, not
/// "cannot create the directory /dev/null: File exists".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_out_that_is_neither_a_directory_nor_a_page_is_a_usage_error() {
    let env = polled(5, "").await;
    let plain = env.path().join("notes");
    std::fs::write(&plain, "keep").unwrap();
    for out in ["/dev/null", plain.to_str().unwrap()] {
        let o = run(&env, &["report", "--out", out]).await;
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{t}");
        assert!(
            t.contains("is neither a directory nor a .html or .md file"),
            "{t}"
        );
    }
    assert_eq!(std::fs::read_to_string(&plain).unwrap(), "keep");
}
