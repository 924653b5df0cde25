//! The API budget and faults: wait for budget rather than be throttled, honour 429, retry what is
//! transient, one writer per store, and a full disk that loses nothing.

use std::time::{Duration, Instant};

use crate::support::*;
use mde_alerts::alert::time::ApiTime;
use mde_alerts::poll_job;
use mde_alerts::store::{Outcome, Store};
use mde_sim::{FaultKind, Hazards};

fn throttled_sim(seed: u64) -> mde_sim::SimConfig {
    sim_config(
        3_000,
        seed,
        Hazards {
            rate_limit: Some((5, 1_500)),
            ..Hazards::default()
        },
    )
}

/// With a 5-calls-a-minute limit, a 3,000-alert backfill in 600-alert pages completes in one poll:
/// with no quota configured it meets at most 3 responses of 429 (two waits of a minute, one of
/// them perhaps met twice); with `calls_per_minute = 5` none.
/// (Both run side by side: each waits about a minute, as the real API would make it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_backfill_finishes_in_one_poll() {
    let unconfigured = async {
        let env = Env::new(
            throttled_sim(31),
            Opts {
                page_size: 600,
                ..Opts::default()
            },
        )
        .await;
        let started = Instant::now();
        let s = poll_job::poll(&env.config(), None, false).await.unwrap();
        (env, s, started.elapsed())
    };
    let configured = async {
        let env = Env::new(
            throttled_sim(32),
            Opts {
                page_size: 600,
                calls_per_minute: Some(5),
                ..Opts::default()
            },
        )
        .await;
        let s = poll_job::poll(&env.config(), None, false).await.unwrap();
        (env, s)
    };
    let ((env1, s1, took), (env2, s2)) = tokio::join!(unconfigured, configured);
    for (env, s) in [(&env1, &s1), (&env2, &s2)] {
        assert!(s.failed.is_empty(), "{:?}", s.failed);
        assert_eq!(s.ok[0].outcome, Outcome::Ok);
        assert_matches_truth(env);
    }
    let st1 = env1.sim.stats();
    // The quota is a sliding minute: after the wait a 429 asked for, the calls made before it
    // leave the window one by one, as fast as they were made. A retry that outruns them (pages
    // parsed faster than the first time, on a busy machine) meets one more 429 of the same
    // window — never more per window, and the backfill still ends in this one poll.
    assert!(st1.throttled >= 1 && st1.throttled <= 3, "{st1:?}");
    assert_eq!(s1.ok[0].throttled, st1.throttled);
    assert!(took >= Duration::from_secs(30), "it waited as asked");
    let st2 = env2.sim.stats();
    assert_eq!(
        st2.throttled, 0,
        "waiting for budget avoids every 429: {st2:?}"
    );
    assert!(s2.ok[0].waited >= Duration::from_secs(30), "{:?}", s2.ok[0]);
    // The runs table has the figures.
    let run = &Store::open(&env1.store_path())
        .unwrap()
        .runs(Some("t1"), 1)
        .unwrap()[0];
    assert_eq!(run.api_calls as u64, st1.alert_calls);
}

/// A poll never runs past the next scheduled one: with the budget spent, it stops at its deadline
/// with everything so far stored, reports it, and the next poll continues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_stops_at_its_deadline_and_the_next_continues() {
    let env = Env::new(
        sim_config(1_000, 33, Hazards::default()),
        Opts {
            page_size: 200,
            calls_per_minute: Some(2),
            ..Opts::default()
        },
    )
    .await;
    env.edit_config(|c| c.poll.schedule = Some("* * * * * *".into()));
    let out = run(&env, &["poll"]).await;
    let t =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("stopped at the deadline"), "{t}");
    let store = Store::open(&env.store_path()).unwrap();
    let last = &store.runs(Some("t1"), 1).unwrap()[0];
    assert_eq!(last.outcome, "partial");
    let stored_after_one = stored(&env.store_path()).len();
    assert!(
        (200..1_000).contains(&stored_after_one),
        "{stored_after_one}"
    );
    // The calls were recorded for the next run's budget.
    assert_eq!(store.recent_calls("t1").unwrap().len(), 2);
    let out = run(&env, &["status"]).await;
    assert!(out.status.success(), "a partial run is healthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_percent_faults_and_one_poll_completes() {
    let hazards = Hazards {
        fault_rate: 0.3,
        fault_kinds: vec![
            FaultKind::Internal,
            FaultKind::Unavailable,
            FaultKind::Truncated,
            FaultKind::Slow,
        ],
        slow_delay: Duration::from_millis(300),
        ..Hazards::default()
    };
    let env = Env::new(
        sim_config(2_000, 34, hazards),
        Opts {
            page_size: 150,
            ..Opts::default()
        },
    )
    .await;
    let s = poll_job::poll(&env.config(), None, false).await.unwrap();
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    assert!(env.sim.stats().faults >= 3, "{:?}", env.sim.stats());
    assert_matches_truth(&env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_waits_then_says_who_is_writing() {
    let hazards = Hazards {
        fault_rate: 1.0,
        fault_kinds: vec![FaultKind::Slow],
        slow_delay: Duration::from_millis(2_500),
        ..Hazards::default()
    };
    let env = Env::new(
        sim_config(600, 35, hazards),
        Opts {
            page_size: 100,
            ..Opts::default()
        },
    )
    .await;
    let mut first = tokio::process::Command::new(bin())
        .arg("--config")
        .arg(&env.config_path)
        .arg("poll")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = first.id().unwrap();
    for args in [&["poll"][..], &["import", "/dev/null"]] {
        let out = run(&env, args).await;
        let t = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {t}");
        assert!(t.contains("another mde-alerts is writing to"), "{t}");
        assert!(t.contains(&format!("pid {pid}")), "{t}");
        assert!(!t.contains("database is locked"), "{t}");
    }
    assert!(first.wait().await.unwrap().success());
    // Readers never need the lock.
    let out = run(&env, &["status"]).await;
    assert!(out.status.success());
}

/// A full disk during a commit: the poll stops with a clear error, the store keeps everything
/// committed before, and the cursor does not move past what was stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_poll_with_the_store_intact() {
    use std::sync::{Arc, Mutex};
    let env = Env::new(sim_config(300, 36, Hazards::default()), Opts::default()).await;
    let config = env.config();
    poll_job::poll(&config, None, false).await.unwrap();
    let before = stored(&env.store_path());
    let cursor = Store::open(&env.store_path())
        .unwrap()
        .cursor("t1")
        .unwrap();
    env.sim.create(400);
    // Cap the database at its current size: SQLite answers SQLITE_FULL, as on a full disk.
    let store = Store::open(&env.store_path()).unwrap();
    let pages: i64 = store
        .connection()
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    store
        .connection()
        .pragma_update(None, "max_page_count", pages + 2)
        .unwrap();
    let store = Arc::new(Mutex::new(store));
    let http = mde_alerts::http::client(Duration::from_secs(10), &config.http).unwrap();
    let tokens = Arc::new(
        mde_alerts::auth::TokenProvider::new(
            http.clone(),
            &config.tenants[0],
            mde_alerts::config::SourceKind::Mde,
        )
        .unwrap(),
    );
    let budget = Arc::new(mde_alerts::budget::Budget::new(100, 1_500, []));
    let source = mde_alerts::source::client::ApiSource::mde(
        http,
        &config.tenants[0].api_url,
        tokens,
        false,
        budget,
    );
    let settings = mde_alerts::poll::PollSettings {
        overlap: config.poll.overlap,
        initial_lookback: config.poll.initial_lookback,
        page_size: config.poll.page_size,
    };
    let e = mde_alerts::poll::poll_tenant(&source, &store, "t1", settings)
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("could not be written") && msg.contains("nothing was lost"),
        "{msg}"
    );
    drop(store);
    let after = stored(&env.store_path()); // also runs PRAGMA integrity_check
    assert!(after.len() >= before.len());
    let s = Store::open(&env.store_path()).unwrap();
    let new_cursor = s.cursor("t1").unwrap();
    // Whatever the cursor covers is stored.
    let covered = env
        .sim
        .truth(false)
        .into_iter()
        .filter(|t| Some(ApiTime::from_ticks(t.last_update)) < new_cursor)
        .all(|t| after.contains_key(&t.id));
    assert!(covered, "the cursor moved past alerts that were not stored");
    assert!(new_cursor >= cursor);
    // Space again: the next poll completes.
    poll_job::poll(&config, None, false).await.unwrap();
    assert_matches_truth(&env);
}
