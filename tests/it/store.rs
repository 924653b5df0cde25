//! A store that lives for years. Retention (`store prune`), backup under a concurrent
//! writer, and `store check` on a sound store and on stores broken in each way it names.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::support::*;
use mde_alerts::alert::Alert;
use mde_alerts::alert::time::ApiTime;
use mde_alerts::store::{Store, backup, check};
use mde_sim::Hazards;
use rusqlite::Connection;

fn alert(id: &str, t: &str, status: &str) -> Alert {
    Alert::parse(&format!(
        r#"{{"id":"{id}","lastUpdateTime":"{t}","status":"{status}","pad":"{}"}}"#,
        "x".repeat(2000)
    ))
    .unwrap()
}

/// A config for a store only (no API is called): one tenant `t`, the store `alerts.db`.
fn store_config(dir: &Path, keep: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[[tenants]]\nname = \"t\"\ntenant_id = \"3f0c1c4e-5d55-4a55-9a0e-5e1d9c0d1e11\"\n\
             client_id = \"8d4c7b2a-1e3f-4a5b-9c6d-7e8f9a0b1c2d\"\nclient_secret_env = \"UNUSED\"\n\
             [store]\npath = \"alerts.db\"\nkeep_revisions = {keep}\n"
        ),
    )
    .unwrap();
    path
}

async fn mde(config: &Path, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .await
        .unwrap()
}

fn count(c: &Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Retention through the command: superseded revisions stored long ago go, the latest of every
/// alert stays (however old), and the file gives the space back. A store from before incremental
/// auto-vacuum is converted once.
#[tokio::test]
async fn store_prune_keeps_every_latest_revision_and_reclaims_space() {
    for older_store in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let config = store_config(dir.path(), "\"30d\"");
        let db = dir.path().join("alerts.db");
        {
            let mut s = Store::open(&db).unwrap();
            for (day, status) in [("01", "New"), ("02", "InProgress"), ("03", "Resolved")] {
                let mut w = s.writer().unwrap();
                for i in 0..60 {
                    w.upsert(
                        "t",
                        &alert(
                            &format!("a{i}"),
                            &format!("2020-01-{day}T00:00:00Z"),
                            status,
                        ),
                    )
                    .unwrap();
                }
                // An alert seen once, long ago: its only revision is its latest.
                w.upsert(
                    "t",
                    &alert(&format!("once{day}"), "2020-01-01T00:00:00Z", "New"),
                )
                .unwrap();
                w.commit(None, 0).unwrap();
            }
            let c = s.connection();
            // Stored two years ago, by the store's clock.
            c.execute(
                "UPDATE alert_revisions SET stored_at = '2020-01-01T00:00:00.0000000Z'",
                [],
            )
            .unwrap();
            if older_store {
                c.execute_batch("PRAGMA auto_vacuum = NONE; VACUUM;")
                    .unwrap();
            }
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .unwrap();
        }
        let latest_before: Vec<(String, i64)> = {
            let c = Connection::open(&db).unwrap();
            let mut st = c.prepare("SELECT id, rev FROM alerts ORDER BY id").unwrap();
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let size_before = std::fs::metadata(&db).unwrap().len();
        let out = mde(&config, &["store", "prune"]).await;
        let said = text(&out);
        assert!(out.status.success(), "{said}");
        // Thirty days in words, not humantime's "30days" (nor "1year 1month 4days 7h 26m 24s"
        // for the default 400 days).
        assert!(
            said.contains("removed 120 superseded revisions (older than 30 days)"),
            "{said}"
        );
        assert_eq!(said.contains("converting the store"), older_store, "{said}");
        let c = Connection::open(&db).unwrap();
        assert_eq!(count(&c, "SELECT count(*) FROM alert_revisions"), 63);
        let latest_after: Vec<(String, i64)> = {
            let mut st = c.prepare("SELECT a.id, r.rev FROM alerts a JOIN alert_revisions r ON r.rev = a.rev ORDER BY a.id").unwrap();
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert_eq!(
            latest_after, latest_before,
            "every latest revision is still there"
        );
        assert_eq!(
            count(&c, "PRAGMA auto_vacuum"),
            2,
            "incremental from now on"
        );
        assert_eq!(count(&c, "PRAGMA freelist_count"), 0);
        let size_after = std::fs::metadata(&db).unwrap().len();
        assert!(
            size_after + 120 * 2000 < size_before,
            "{size_before} → {size_after}: {said}"
        );
        drop(c);
        // And the store is sound afterwards.
        let out = mde(&config, &["store", "check"]).await;
        assert!(out.status.success(), "{}", text(&out));
    }
}

/// `keep_revisions = 0` keeps everything.
#[tokio::test]
async fn keep_revisions_zero_prunes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = store_config(dir.path(), "0");
    Store::open(&dir.path().join("alerts.db")).unwrap();
    let out = mde(&config, &["store", "prune"]).await;
    assert!(out.status.success());
    assert!(
        text(&out).contains("every revision is kept"),
        "{}",
        text(&out)
    );
}

/// A page of the concurrent writer: alerts `p{page}-{i}` and the cursor at the page's time.
fn page_time(page: i64) -> ApiTime {
    ApiTime::parse("2024-01-01T00:00:00Z")
        .unwrap()
        .plus(std::time::Duration::from_secs(page as u64))
}

/// A backup while another connection keeps committing pages: every copy opens, passes `store
/// check`, and holds a prefix of the pages, whole, with the cursor of its last page.
#[tokio::test]
async fn backup_under_a_concurrent_writer_is_a_consistent_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("alerts.db");
    let mut s = Store::open(&db).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    const PER_PAGE: i64 = 20;
    let writer = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let mut page = 0i64;
            while !stop.load(Ordering::Relaxed) || page < 5 {
                let t = page_time(page);
                let mut w = s.writer().unwrap();
                for i in 0..PER_PAGE {
                    w.upsert(
                        "t",
                        &alert(&format!("p{page}-{i}"), &t.to_api_string(), "New"),
                    )
                    .unwrap();
                }
                // And a new version of an alert of the first page, so revisions move too.
                w.upsert(
                    "t",
                    &alert(
                        "p0-0",
                        &t.plus(std::time::Duration::from_millis(1)).to_api_string(),
                        "InProgress",
                    ),
                )
                .unwrap();
                w.advance_cursor("t", t, t, ("mde", "microsoftDefenderForEndpoint"))
                    .unwrap();
                w.commit(None, 0).unwrap();
                page += 1;
            }
            page
        }
    });
    // Wait for the first page, then back up while the writer goes on.
    while Store::open_read_only(&db).is_err()
        || Store::open_read_only(&db)
            .unwrap()
            .cursor("t")
            .unwrap()
            .is_none()
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let reader = Store::open_read_only(&db).unwrap();
    let mut seen = Vec::new();
    for n in 0..4 {
        let copy = dir.path().join(format!("copy{n}.db"));
        backup::backup(&reader, &copy, 0o640).unwrap();
        let c = Store::open(&copy).unwrap();
        let r = check::check(&c).unwrap();
        assert!(r.is_sound(), "{r:?}");
        let cursor = c.cursor("t").unwrap().expect("a page was committed first");
        let pages = (cursor.ticks() - page_time(0).ticks()) / 10_000_000 + 1;
        let conn = c.connection();
        assert_eq!(
            count(conn, "SELECT count(*) FROM alerts"),
            pages * PER_PAGE,
            "whole pages only"
        );
        // Every page up to the cursor's, none after it.
        assert_eq!(
            count(
                conn,
                &format!(
                    "SELECT count(*) FROM alerts WHERE id LIKE 'p{}-%'",
                    pages - 1
                )
            ),
            PER_PAGE
        );
        assert_eq!(
            count(
                conn,
                &format!("SELECT count(*) FROM alerts WHERE id LIKE 'p{pages}-%'")
            ),
            0
        );
        // p0-0 was updated once per page after the first.
        assert_eq!(
            count(
                conn,
                "SELECT count(*) FROM alert_revisions WHERE alert_id = 'p0-0'"
            ),
            pages + 1
        );
        seen.push(pages);
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(seen.iter().all(|&p| p <= written));
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
}

/// The command: a backup while polled, restored, and the next poll continues from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_backup_opens_and_the_next_poll_continues() {
    let env = Env::new(sim_config(120, 13, Hazards::default()), Opts::default()).await;
    let out = run(&env, &["poll", "--no-export"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let copy = env.path().join("backup.db");
    let out = run(&env, &["backup", copy.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("backup written"), "{}", text(&out));
    // Refused: a directory, and the store itself.
    let out = run(&env, &["backup", env.path().to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not a regular file"), "{}", text(&out));
    let out = run(&env, &["backup", env.store_path().to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("the store itself"), "{}", text(&out));
    // The store is lost; the backup comes back; the world moved on meanwhile.
    for side in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{side}", env.store_path().display()));
    }
    std::fs::copy(&copy, env.store_path()).unwrap();
    env.sim.update_random(7);
    let out = run(&env, &["poll", "--no-export"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_matches_truth(&env);
    let out = run(&env, &["store", "check"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("sound"), "{}", text(&out));
}

/// A sound store with two alerts (`a` with two versions, `b`) and a cursor, in `dir`.
fn sound_store(dir: &Path) -> std::path::PathBuf {
    let db = dir.join("alerts.db");
    let mut s = Store::open(&db).unwrap();
    let mut w = s.writer().unwrap();
    w.upsert("t", &alert("a", "2024-01-01T00:00:00Z", "New"))
        .unwrap();
    w.upsert("t", &alert("a", "2024-01-02T00:00:00Z", "Resolved"))
        .unwrap();
    w.upsert("t", &alert("b", "2024-01-01T00:00:00Z", "New"))
        .unwrap();
    let t = ApiTime::parse("2024-01-02T00:00:00Z").unwrap();
    w.advance_cursor("t", t, t, ("mde", "microsoftDefenderForEndpoint"))
        .unwrap();
    w.commit(None, 0).unwrap();
    db
}

/// `store check`: exit 0 on a sound store; exit 1 naming each broken invariant and its rows.
#[tokio::test]
async fn store_check_names_each_broken_invariant() {
    let dir = tempfile::tempdir().unwrap();
    let config = store_config(dir.path(), "\"400d\"");
    sound_store(dir.path());
    let out = mde(&config, &["store", "check"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("sound (2 alerts, 3 revisions, 1 cursor)"),
        "{}",
        text(&out)
    );
    // Each way to break it (raw SQL, foreign keys off), and what the check must say.
    let cases: &[(&str, &str, &str)] = &[
        (
            "DELETE FROM alert_revisions WHERE rev = (SELECT rev FROM alerts WHERE id = 'b')",
            "alert_without_revision",
            "t/b → rev",
        ),
        (
            "UPDATE alerts SET rev = (SELECT rev FROM alerts WHERE id = 'b') WHERE id = 'a'",
            "revision_of_another_alert",
            "of t/b",
        ),
        (
            "INSERT INTO alert_revisions (tenant, alert_id, last_update_time, content_hash, raw, stored_at) \
             VALUES ('t', 'b', 9000000000000000000, x'00', '{}', '2024-01-03T00:00:00.0000000Z')",
            "not_latest_revision",
            "t/b → rev",
        ),
        (
            "DELETE FROM alerts WHERE id = 'b'",
            "revision_without_alert",
            "t/b rev",
        ),
        (
            "UPDATE cursors SET last_update_time = last_update_time + 10000000",
            "cursor_past_newest",
            "t: cursor 2024-01-02T00:00:01",
        ),
    ];
    for (sql, kind, row) in cases {
        for side in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(dir.path().join(format!("alerts.db{side}")));
        }
        let db = sound_store(dir.path());
        let c = Connection::open(&db).unwrap();
        c.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        c.execute(sql, []).unwrap();
        drop(c);
        let out = mde(&config, &["store", "check"]).await;
        let said = text(&out);
        assert_eq!(out.status.code(), Some(1), "{kind}: {said}");
        assert!(
            said.contains("NOT SOUND") && said.contains(kind) && said.contains(row),
            "{kind}: {said}"
        );
        let out = mde(&config, &["store", "check", "--json"]).await;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["problems"][0]["kind"], *kind, "{v}");
    }
}

/// A store whose stored alert text was altered (still JSON, another content) or cut (no longer
/// JSON) passed `store check` as sound. Each is now named with its revision, the damage called
/// corruption, and the fix said.
#[tokio::test]
async fn store_check_reads_every_revision_against_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let config = store_config(dir.path(), "\"400d\"");
    let db = sound_store(dir.path());
    let c = Connection::open(&db).unwrap();
    let rev = |id: &str| -> i64 { count(&c, &format!("SELECT rev FROM alerts WHERE id = '{id}'")) };
    let (a, b) = (rev("a"), rev("b"));
    c.execute(
        "UPDATE alert_revisions SET raw = replace(raw, 'Resolved', 'New') WHERE rev = ?1",
        [a],
    )
    .unwrap();
    c.execute(
        "UPDATE alert_revisions SET raw = substr(raw, 1, 40) WHERE rev = ?1",
        [b],
    )
    .unwrap();
    drop(c);
    let out = mde(&config, &["store", "check"]).await;
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    for expected in [
        "revision_hash_mismatch",
        &format!("t/a rev {a}"),
        "revision_not_json",
        &format!("t/b rev {b}"),
        "corrupt",
        "restore the newest backup",
    ] {
        assert!(said.contains(expected), "{expected}: {said}");
    }
    let out = mde(&config, &["store", "check", "--json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["damaged_alerts"],
        serde_json::json!(["t/a", "t/b"]),
        "{v}"
    );
}

/// One bad row costs one row: an export that meets a stored alert it cannot read writes every
/// other alert, names the bad one and says the store is corrupt, exits non-zero, and its
/// manifest says the file is incomplete; `status` is unhealthy until `store check` passes.
#[tokio::test]
async fn an_unreadable_row_costs_only_that_row_and_keeps_status_unhealthy_until_checked() {
    let dir = tempfile::tempdir().unwrap();
    let config = store_config(dir.path(), "\"400d\"");
    let mut text_of_config = std::fs::read_to_string(&config).unwrap();
    for (name, format) in [
        ("c", "csv"),
        ("j", "json"),
        ("n", "ndjson"),
        ("x", "xlsx"),
        ("r", "report"),
    ] {
        text_of_config.push_str(&format!(
            "\n[[exports]]\nname = \"{name}\"\nformat = \"{format}\"\ndir = \"out\"\n"
        ));
    }
    std::fs::write(&config, text_of_config).unwrap();
    let db = sound_store(dir.path());
    {
        let mut s = Store::open(&db).unwrap();
        let mut w = s.writer().unwrap();
        for id in ["c", "d"] {
            w.upsert("t", &alert(id, "2024-01-01T00:00:00Z", "New"))
                .unwrap();
        }
        w.commit(None, 0).unwrap();
    }
    let c = Connection::open(&db).unwrap();
    let b = count(&c, "SELECT rev FROM alerts WHERE id = 'b'");
    let original: String = c
        .query_row("SELECT raw FROM alert_revisions WHERE rev = ?1", [b], |r| {
            r.get(0)
        })
        .unwrap();
    c.execute(
        "UPDATE alert_revisions SET raw = substr(raw, 1, 40) WHERE rev = ?1",
        [b],
    )
    .unwrap();
    for name in ["c", "j", "n", "x", "r"] {
        let out = mde(&config, &["export", "--name", name]).await;
        let said = text(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {said}");
        assert!(said.contains("corrupt"), "{name}: {said}");
        assert!(said.contains(&format!("t/b rev {b}")), "{name}: {said}");
        assert!(said.contains("store check"), "{name}: {said}");
        assert!(!said.contains("free space"), "{name}: {said}");
    }
    // Every configured export at once: each is written without the damaged row, none is
    // skipped because an earlier one met it, and the command fails once.
    let _ = std::fs::remove_dir_all(dir.path().join("out"));
    let out = mde(&config, &["export"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    for latest in [
        "c-latest.csv",
        "j-latest.json",
        "n-latest.ndjson",
        "x-latest.xlsx",
        "r-latest.html",
    ] {
        assert!(
            dir.path().join("out").join(latest).is_file(),
            "{latest}: {}",
            text(&out)
        );
    }
    // An ad-hoc file and standard output alike.
    let adhoc = dir.path().join("adhoc.ndjson");
    for out_to in [adhoc.to_str().unwrap(), "-"] {
        let out = mde(&config, &["export", "--format", "ndjson", "--out", out_to]).await;
        let said = text(&out);
        assert_eq!(out.status.code(), Some(1), "{out_to}: {said}");
        assert!(said.contains(&format!("t/b rev {b}")), "{out_to}: {said}");
        let lines = if out_to == "-" {
            String::from_utf8_lossy(&out.stdout).lines().count()
        } else {
            std::fs::read_to_string(&adhoc).unwrap().lines().count()
        };
        assert_eq!(lines, 3, "{out_to}: {said}");
    }
    let out_dir = dir.path().join("out");
    let csv = std::fs::read_to_string(out_dir.join("c-latest.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3, "{csv}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("j-latest.json")).unwrap())
            .unwrap();
    assert_eq!(json.as_array().unwrap().len(), 3);
    let ndjson = std::fs::read_to_string(out_dir.join("n-latest.ndjson")).unwrap();
    assert_eq!(ndjson.lines().count(), 3);
    for name in ["c", "j", "n", "x", "r"] {
        let m: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out_dir.join(format!("{name}-latest.manifest.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(m["complete"], false, "{name}: {m}");
        assert_eq!(
            m["unreadable"],
            serde_json::json!([format!("t/b rev {b}")]),
            "{name}: {m}"
        );
        assert_eq!(m["rows"], 3, "{name}: {m}");
    }
    let out = mde(&config, &["status"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("corrupt"), "{}", text(&out));
    // Repaired (what a restored backup does), checked: healthy as far as the store goes.
    c.execute(
        "UPDATE alert_revisions SET raw = ?1 WHERE rev = ?2",
        rusqlite::params![original, b],
    )
    .unwrap();
    drop(c);
    let out = mde(&config, &["status"]).await;
    assert!(
        text(&out).contains("corrupt"),
        "until checked: {}",
        text(&out)
    );
    let out = mde(&config, &["store", "check"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let out = mde(&config, &["status"]).await;
    assert!(!text(&out).contains("corrupt"), "{}", text(&out));
    let out = mde(&config, &["export"]).await;
    assert!(out.status.success(), "{}", text(&out));
}

/// A member of the service's group may read the store (the README says to add readers to the
/// group), also once the service has stopped and SQLite has removed the -wal and -shm files it
/// would need to create: `status` reads the database as it is, and creates nothing beside it.
/// Run as root (as CI is), the reader is played by `nobody` through `setpriv`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_reader_reads_the_store_of_a_stopped_service() {
    use std::os::unix::fs::{PermissionsExt, chown};
    let setpriv = Path::new("/usr/bin/setpriv");
    if !nix::unistd::geteuid().is_root() || !setpriv.exists() {
        eprintln!("not root, or no setpriv: the reader cannot be played here");
        return;
    }
    let env = Env::new(sim_config(40, 96, Hazards::default()), Opts::default()).await;
    let s = mde_alerts::poll_job::poll(&env.config(), None, false)
        .await
        .unwrap();
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    // The last connection's close checkpoints and removes the -wal and -shm files.
    drop(Store::open(&env.store_path()).unwrap());
    let db = env.store_path();
    let beside = |suffix: &str| Path::new(&format!("{}{suffix}", db.display())).exists();
    assert!(!beside("-wal") && !beside("-shm"));
    // The service's layout: its directory 0750 and its files 0640, owned by root and the group.
    const GROUP: u32 = 65534;
    let copy = env.path().join("mde-alerts");
    std::fs::copy(bin(), &copy).unwrap();
    for (p, mode) in [
        (env.path().to_path_buf(), 0o750),
        (env.config_path.clone(), 0o640),
        (db.clone(), 0o640),
        (copy.clone(), 0o755),
    ] {
        chown(&p, Some(0), Some(GROUP)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let out = tokio::process::Command::new(setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&copy)
        .arg("--config")
        .arg(&env.config_path)
        .args(["status", "--json"])
        .output()
        .await
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let st: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {t}"));
    assert!(st[0]["alerts"].as_u64().unwrap_or(0) > 0, "{st}");
    assert!(
        !beside("-wal") && !beside("-shm"),
        "the reader created nothing"
    );
}
