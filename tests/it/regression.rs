//! Regression tests across modules, each named after the behaviour it guards.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;
use mde_alerts::alert::time::ApiTime;
use mde_alerts::config::{ExportConfig, ExportFormat};
use mde_alerts::poll::{PollSettings, poll_tenant};
use mde_alerts::poll_job;
use mde_alerts::source::AlertSource;
use mde_alerts::source::fake::{FakeAlert, FakeSource, OrderBy};
use mde_alerts::store::Store;
use mde_sim::Hazards;

/// An alert sharing a timestamp with more alerts than fit on a page must not be skipped by the
/// `$skip` passes over that instant while other alerts of the instant are updated (and so leave
/// it) between the passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_at_a_shared_instant_is_not_lost_while_others_leave_it() {
    for page_size in [2u32, 3, 4] {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Mutex::new(Store::open(&dir.path().join("a.db")).unwrap()));
        let now = ApiTime::now();
        let t = now.minus(Duration::from_secs(7_200));
        let later = now.minus(Duration::from_secs(3_600));
        let alerts = (1..=10)
            .map(|i| {
                FakeAlert::new(
                    format!("a{i:02}"),
                    t,
                    Some(t.minus(Duration::from_secs(60 * i))),
                )
            })
            .collect();
        let fake = FakeSource::new(alerts, OrderBy::Sorted);
        // Three alerts of the shared instant are updated while the pager reads it.
        fake.set_mutator(Some(Box::new(move |call, world| {
            let departs = match call {
                5 => Some(("a01", 0)),
                7 => Some(("a02", 1)),
                9 => Some(("a03", 2)),
                _ => None,
            };
            if let Some((id, k)) = departs {
                for a in world.iter_mut().filter(|a| a.id == id) {
                    a.updated = later.plus(Duration::from_secs(k));
                    a.version += 1;
                }
            }
        })));
        let settings = PollSettings {
            overlap: Duration::from_secs(600),
            initial_lookback: Duration::from_secs(86_400),
            page_size,
        };
        poll_tenant(&fake, &store, "t", settings).await.unwrap();
        poll_tenant(&fake, &store, "t", settings).await.unwrap();
        assert!(
            fake.calls() >= 9,
            "page size {page_size}: the alerts left the instant after the poll ({} calls)",
            fake.calls()
        );
        let n: i64 = store
            .lock()
            .unwrap()
            .connection()
            .query_row("SELECT count(*) FROM alerts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 10, "page size {page_size}: an alert was lost");
    }
}

/// A store error in the middle of a large import must end the import: a parser thread left
/// blocked on a full channel would hang `import` for ever, holding the write transaction.
#[test]
fn a_store_error_mid_import_returns_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("a.db")).unwrap();
    store
        .connection()
        .execute_batch("PRAGMA max_page_count = 300")
        .unwrap();
    let file = dir.path().join("big.ndjson");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    let pad = "x".repeat(600);
    for i in 0..30_000 {
        writeln!(
            f,
            r#"{{"id":"a{i}","lastUpdateTime":"2024-01-01T00:00:00Z","title":"{pad}"}}"#
        )
        .unwrap();
    }
    drop(f);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = mde_alerts::import::import(&mut store, "t", &[file]);
        let _ = tx.send(r.map(|r| r.elements).map_err(|e| e.to_string()));
    });
    let r = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("import hung after a store error");
    let e = r.unwrap_err();
    assert!(e.contains("could not be written"), "{e}");
}

/// A short page that carries `@odata.nextLink` (the server cut it) is not the last page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_page_with_a_next_link_is_not_the_end() {
    for orderby in [true, false] {
        let hazards = Hazards {
            server_page: Some(40),
            orderby_supported: orderby,
            ..Hazards::default()
        };
        let env = Env::new(sim_config(500, 41, hazards), Opts::default()).await;
        let s = poll_job::poll(&env.config(), None, false).await.unwrap();
        assert!(s.failed.is_empty(), "{:?}", s.failed);
        let d = diff(&stored(&env.store_path()), &env.sim.truth(false));
        assert!(d.is_clean(), "orderby={orderby}: {d:?}");
    }
}

/// Pruning export `alerts` keeps the files of export `alerts-1d` in the same directory.
#[test]
fn pruning_one_export_leaves_another_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("a.db")).unwrap();
    let out = dir.path().join("out");
    let other = ExportConfig {
        name: "alerts-1d".into(),
        dir: out.clone(),
        ..ExportConfig::ad_hoc(ExportFormat::Csv)
    };
    let main = ExportConfig {
        name: "alerts".into(),
        dir: out.clone(),
        ..ExportConfig::ad_hoc(ExportFormat::Csv)
    };
    mde_alerts::export::run_export(&store, &other, &[]).unwrap();
    for _ in 0..12 {
        mde_alerts::export::run_export(&store, &main, &[]).unwrap();
    }
    assert!(out.join("alerts-1d-latest.csv").exists());
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let own = names
        .iter()
        .filter(|n| n.starts_with("alerts-2") && n.ends_with(".csv"))
        .count();
    assert_eq!(own, main.keep, "{names:?}");
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("alerts-1d-2"))
            .count(),
        1,
        "{names:?}"
    );
}

/// One alert stamped in the future must not carry the cursor past every
/// alert still to come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timestamp_from_the_future_does_not_stop_polling() {
    let env = Env::new(sim_config(50, 42, Hazards::default()), Opts::default()).await;
    let mut odd = env.sim.truth(false)[0].json.clone();
    let future = ApiTime::now().plus(Duration::from_secs(2 * 86_400));
    odd["id"] = "da-from-the-future_1".into();
    odd["lastUpdateTime"] = future.to_api_string().into();
    env.sim.put_alert(odd);
    let config = env.config();
    poll_job::poll(&config, None, false).await.unwrap();
    let cursor = Store::open(&env.store_path())
        .unwrap()
        .cursor("t1")
        .unwrap()
        .unwrap();
    assert!(
        cursor < ApiTime::now().plus(Duration::from_secs(600)),
        "cursor {cursor}"
    );
    env.sim.create(5);
    env.sim.update_random(5);
    poll_job::poll(&config, None, false).await.unwrap();
    assert_matches_truth(&env);
}

/// A `changed` export chooses its rows by the store's order, not by wall-clock time: an alert
/// stored with an earlier timestamp than the last export's (stored during that export, or after
/// the clock stepped back) must still be in the next `changed` file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_exports_do_not_depend_on_the_clock() {
    let env = Env::new(sim_config(40, 43, Hazards::default()), Opts::default()).await;
    let text = std::fs::read_to_string(&env.config_path).unwrap()
        + "\n[[exports]]\nname = \"c\"\nformat = \"json\"\ndir = \"out\"\nscope = \"changed\"\n";
    std::fs::write(&env.config_path, text).unwrap();
    let config = env.config();
    poll_job::poll(&config, None, true).await.unwrap();
    env.sim.create(3);
    poll_job::poll(&config, None, false).await.unwrap();
    // The three new rows look as if they had been stored an hour ago.
    let store = Store::open(&env.store_path()).unwrap();
    let an_hour_ago = ApiTime::now()
        .minus(Duration::from_secs(3_600))
        .to_api_string();
    store
        .connection()
        .execute("UPDATE alerts SET updated_at = ?1", [an_hour_ago])
        .unwrap();
    drop(store);
    // A manual export writes the delta to a timestamped file (`-latest` is the schedule's).
    let written = mde_alerts::configured_exports::run(&config, Some("c")).unwrap();
    let rows: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&written[0].path).unwrap()).unwrap();
    assert_eq!(rows.len(), 3, "the alerts stored since the last export");
}
