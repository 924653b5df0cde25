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
        2_400,
        seed,
        Hazards {
            rate_limit: Some((PER_MINUTE, 1_500)),
            ..Hazards::default()
        },
    )
}

/// Defender's quota in these tests: more than the backfill's dozen calls, so that one wait frees
/// every call it still needs.
const PER_MINUTE: u32 = 20;
/// Calls an earlier client made [`SPENT_AGO`] before the poll starts: all but five of the minute.
const SPENT: u32 = PER_MINUTE - 5;
/// They leave the quota's minute 5 s after the poll starts.
const SPENT_AGO: Duration = Duration::from_secs(55);

/// With Defender's quota of 20 calls a minute of which an earlier client spent 15 a little under a
/// minute ago, a 2,400-alert backfill in 600-alert pages (about ten calls) completes in one poll:
/// with no quota configured it meets 429 at its sixth call, waits as `Retry-After` says and
/// carries on; with `calls_per_minute = 20` (the earlier calls are in the store, as a previous
/// poll's would be) it waits for budget instead and meets no 429. The quota is put into its spent
/// state directly, so each side waits seconds, not the minute real calls would start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_backfill_finishes_in_one_poll() {
    let env1 = Env::new(
        throttled_sim(31),
        Opts {
            page_size: 600,
            ..Opts::default()
        },
    )
    .await;
    let env2 = Env::new(
        throttled_sim(32),
        Opts {
            page_size: 600,
            calls_per_minute: Some(PER_MINUTE.into()),
            ..Opts::default()
        },
    )
    .await;
    let earlier = vec![std::time::SystemTime::now() - SPENT_AGO; SPENT as usize];
    Store::open(&env2.store_path())
        .unwrap()
        .record_calls("t1", &earlier)
        .unwrap();
    env1.sim.spend_quota(SPENT, SPENT_AGO);
    env2.sim.spend_quota(SPENT, SPENT_AGO);
    let unconfigured = async {
        let started = Instant::now();
        let s = poll_job::poll(&env1.config(), None, false).await.unwrap();
        (s, started.elapsed())
    };
    let configured = async { poll_job::poll(&env2.config(), None, false).await.unwrap() };
    let ((s1, took), s2) = tokio::join!(unconfigured, configured);
    for (env, s) in [(&env1, &s1), (&env2, &s2)] {
        assert!(s.failed.is_empty(), "{:?}", s.failed);
        assert_eq!(s.ok[0].outcome, Outcome::Ok);
        assert_matches_truth(env);
    }
    let st1 = env1.sim.stats();
    // The earlier calls leave the window together, so one wait frees every call the backfill
    // still needs; a retry that outruns them by a hair meets one more 429 of the same window.
    assert!(st1.throttled >= 1 && st1.throttled <= 2, "{st1:?}");
    assert_eq!(s1.ok[0].throttled, st1.throttled);
    assert!(
        s1.ok[0].waited >= Duration::from_secs(1) && took >= s1.ok[0].waited,
        "it waited as asked: {:?} in {took:?}",
        s1.ok[0]
    );
    let st2 = env2.sim.stats();
    assert_eq!(
        st2.throttled, 0,
        "waiting for budget avoids every 429: {st2:?}"
    );
    assert!(s2.ok[0].waited > Duration::ZERO, "{:?}", s2.ok[0]);
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

/// A second writer (`poll`, `import`) waits its few seconds for the first, then exits 1 naming
/// the first's pid, never SQLite's "database is locked"; the first carries on undisturbed. The
/// first is a poll whose API call the simulator holds until both have given up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_waits_then_says_who_is_writing() {
    let env = Env::new(sim_config(100, 35, Hazards::default()), Opts::default()).await;
    let hold = env.sim.hold_alerts();
    let mut first = tokio::process::Command::new(bin())
        .arg("--config")
        .arg(&env.config_path)
        .arg("poll")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = first.id().unwrap();
    // The lock file names its holder once the lock is taken.
    let lock = env.path().join("alerts.db.lock");
    let start = Instant::now();
    while std::fs::read_to_string(&lock).ok().as_deref() != Some(pid.to_string().as_str()) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the first poll never took the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (poll, import) = tokio::join!(run(&env, &["poll"]), run(&env, &["import", "/dev/null"]));
    for (args, out) in [("poll", poll), ("import", import)] {
        let t = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{args}: {t}");
        assert!(t.contains("another mde-alerts is writing to"), "{t}");
        assert!(t.contains(&format!("pid {pid}")), "{t}");
        assert!(!t.contains("database is locked"), "{t}");
    }
    drop(hold);
    assert!(first.wait().await.unwrap().success());
    assert_matches_truth(&env);
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
