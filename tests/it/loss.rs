//! Silent loss, guarded: a future-dated alert, a crowded instant with odd
//! creation times, and a poll that cannot finish its overlap before its deadline.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use mde_alerts::alert::time::ApiTime;
use mde_alerts::budget::Budget;
use mde_alerts::poll::{PollSettings, poll_tenant};
use mde_alerts::poll_job;
use mde_alerts::source::client::ApiSource;
use mde_alerts::store::{Outcome, Store};
use mde_sim::Hazards;
use serde_json::json;

use crate::support::*;

fn alert(id: &str, updated: ApiTime, created: &str) -> serde_json::Value {
    json!({
        "id": id,
        "title": format!("alert {id}"),
        "severity": "Medium",
        "status": "New",
        "category": "Malware",
        "alertCreationTime": created,
        "lastUpdateTime": updated.to_api_string(),
    })
}

/// One alert dated 9999 used to clamp the cursor to now + 5 min, so the next poll started
/// 5 minutes later than the overlap intends and an alert that became visible late was never read
/// (with `overlap` ≤ 5 min, every new alert was lost). The cursor never passes this machine's
/// clock, and the future alert is reported once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_future_dated_alert_does_not_shrink_the_overlap() {
    for (overlap, late_by) in [("10m", 7 * 60), ("5m", 3 * 60), ("2m", 90)] {
        let env = Env::new(
            sim_config(40, 5, Hazards::default()),
            Opts {
                overlap,
                ..Opts::default()
            },
        )
        .await;
        env.sim.put_alert(alert(
            "da-future",
            ApiTime::parse("9999-01-01T00:00:00Z").unwrap(),
            "2026-01-01T00:00:00Z",
        ));
        let config = env.config();
        let s = poll_job::poll(&config, None, false).await.unwrap();
        assert!(s.failed.is_empty(), "{:?}", s.failed);
        assert_eq!(s.ok[0].future, 1, "the future alert is reported");
        let cursor = s.ok[0].cursor_after.unwrap();
        assert!(cursor <= ApiTime::now(), "cursor {cursor} passed the clock");
        assert!(s.ok[0].to_string().contains("dated in the future"));

        // An alert updated `late_by` ago becomes visible only now (ingestion delay < overlap).
        let updated = ApiTime::now().minus(Duration::from_secs(late_by));
        env.sim
            .put_alert(alert("da-late", updated, "2026-01-01T00:00:00Z"));
        let s = poll_job::poll(&config, None, false).await.unwrap();
        assert!(s.failed.is_empty(), "{:?}", s.failed);
        assert_eq!(s.ok[0].future, 0, "reported once, not on every re-read");
        let stored = stored(&env.store_path());
        assert!(
            stored.contains_key("da-late"),
            "overlap {overlap}: an alert {late_by}s late was lost"
        );
        assert!(stored.contains_key("da-future"), "the future alert is kept");
        assert_matches_truth(&env);
    }
}

/// More alerts share one `lastUpdateTime` than fit on a page, and some have creation
/// times no window covered: .NET's `0001-01-01` sentinel, and one twenty years after the update.
/// The creation windows now cover every value (open at both ends), so every alert is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowded_instant_with_odd_creation_times_loses_nothing() {
    let env = Env::new(sim_config(0, 9, Hazards::default()), Opts::default()).await;
    let t = ApiTime::now().minus(Duration::from_secs(3_600));
    let mut n = 0;
    let mut put = |created: String, count: usize| {
        for _ in 0..count {
            n += 1;
            env.sim.put_alert(alert(&format!("da{n:04}"), t, &created));
        }
    };
    put("0001-01-01T00:00:00Z".into(), 130); // more than a page, all in one creation tick
    put("1969-07-20T20:17:40Z".into(), 20);
    put(t.minus(Duration::from_secs(600)).to_api_string(), 90);
    put(
        t.plus(Duration::from_secs(20 * 365 * 86_400))
            .to_api_string(),
        110,
    );
    put("9999-12-31T23:59:59.9999999Z".into(), 5);
    let config = env.config();
    let s = poll_job::poll(&config, None, false).await.unwrap();
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    assert_eq!(stored(&env.store_path()).len(), 355);
    assert_matches_truth(&env);
}

/// Re-reading the overlap took longer than one poll may run, so every poll restarted at
/// `cursor − overlap`, read the same pages, and stopped at its deadline: the cursor never moved,
/// while the run said "partial … continues from here". The settled watermark makes each partial
/// poll resume where the last one stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_poll_resumes_where_it_stopped() {
    let env = Env::new(sim_config(0, 11, Hazards::default()), Opts::default()).await;
    // 600 alerts spread over ten minutes, half an hour ago: one overlap's worth.
    let base = ApiTime::now().minus(Duration::from_secs(40 * 60));
    for i in 0..600u64 {
        env.sim.put_alert(alert(
            &format!("da{i:04}"),
            base.plus(Duration::from_secs(i)),
            "2026-01-01T00:00:00Z",
        ));
    }
    let config = env.config();
    let t = &config.tenants[0];
    let http = mde_alerts::http::client(Duration::from_secs(20), &config.http).unwrap();
    let tokens = std::sync::Arc::new(
        mde_alerts::auth::TokenProvider::new(http.clone(), t, mde_alerts::config::SourceKind::Mde)
            .unwrap(),
    );
    let store = Arc::new(Mutex::new(Store::open(&env.store_path()).unwrap()));
    let settings = PollSettings {
        overlap: Duration::from_secs(600),
        initial_lookback: Duration::from_secs(86_400),
        page_size: 100,
    };
    let poll = |budget: Budget| {
        let source = ApiSource::mde(
            http.clone(),
            &t.api_url,
            tokens.clone(),
            false,
            Arc::new(budget),
        )
        .with_deadline(Some(tokio::time::Instant::now() + Duration::from_secs(3)));
        let store = store.clone();
        async move { poll_tenant(&source, &store, "t1", settings).await.unwrap() }
    };
    let mut outcomes = Vec::new();
    for _ in 0..10 {
        // Two calls a poll, then the budget's wait passes the deadline.
        let r = poll(Budget::new(2, 10_000, Vec::new())).await;
        outcomes.push(r.outcome);
        if r.outcome == Outcome::Ok {
            break;
        }
        assert_eq!(r.outcome, Outcome::Partial, "{r}");
        assert!(r.to_string().contains("resumes from"), "{r}");
    }
    assert_eq!(outcomes.last(), Some(&Outcome::Ok), "{outcomes:?}");
    // Seven pages, one per poll (each poll's other call proves the server sorts): the old pager
    // re-read the first two pages for ever.
    assert!(outcomes.len() <= 8, "{outcomes:?}");
    assert_matches_truth(&env);

    // A poll that cannot make a single call before its deadline made no progress: it is
    // `stalled`, not `partial`, and `status` does not count it as a success.
    let r = poll(Budget::new(1, 10_000, vec![SystemTime::now()])).await;
    assert_eq!(r.outcome, Outcome::Stalled, "{r}");
    assert!(r.to_string().contains("WITHOUT PROGRESS"), "{r}");
    let runs = store.lock().unwrap().runs(Some("t1"), 1).unwrap();
    assert_eq!(runs[0].outcome, "stalled");
}

/// `status` exits 1 when no poll has made progress within `max_age`: a run of stalled polls is
/// not a healthy tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_unhealthy_when_polls_make_no_progress() {
    let env = Env::new(sim_config(10, 12, Hazards::default()), Opts::default()).await;
    {
        let mut s = Store::open(&env.store_path()).unwrap();
        let run = s.begin_run("t1", "poll").unwrap();
        s.finish_run(run, Outcome::Stalled, Default::default(), None, None)
            .unwrap();
    }
    let out = run(&env, &["status"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("no poll has made progress"), "{text}");
}

/// The store keyed alerts by the tenant's `name`, so renaming a tenant in the config
/// backfilled everything again under the new name and every export held each alert twice. The
/// store now knows each name's `tenant_id` and carries a renamed tenant's rows over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_a_tenant_keeps_one_row_per_alert() {
    let env = Env::new(
        sim_config(120, 13, Hazards::default()),
        Opts {
            exports: true,
            ..Opts::default()
        },
    )
    .await;
    let s = poll_job::poll(&env.config(), None, true).await.unwrap();
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    env.edit_config(|c| c.tenants[0].name = Some("contoso".into()));
    env.sim.update_random(5);
    env.sim.create(3);
    let out = run(&env, &["poll"]).await;
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("renamed to"), "{log}");
    assert_matches_truth(&env);
    let store = Store::open(&env.store_path()).unwrap();
    assert_eq!(
        store.alert_counts().unwrap(),
        vec![("contoso".to_owned(), 123)]
    );
    assert!(
        store.runs(Some("t1"), 10).unwrap().is_empty(),
        "history moved too"
    );
    // The CSV holds each alert once.
    let mut csv = csv::Reader::from_path(env.path().join("exports/alerts-latest.csv")).unwrap();
    assert_eq!(csv.records().count(), 123);
}

/// Rows of a tenant that is no longer configured are never exported, and the export says
/// so, rather than silently mixing another tenant's alerts into the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_leave_out_tenants_that_are_not_configured() {
    let env = Env::new(
        sim_config(20, 14, Hazards::default()),
        Opts {
            exports: true,
            ..Opts::default()
        },
    )
    .await;
    assert!(run(&env, &["poll", "--no-export"]).await.status.success());
    {
        let mut s = Store::open(&env.store_path()).unwrap();
        let mut w = s.writer().unwrap();
        for i in 0..5 {
            let a = mde_alerts::alert::Alert::parse(
                &alert(&format!("gone{i}"), ApiTime::now(), "2026-01-01T00:00:00Z").to_string(),
            )
            .unwrap();
            w.upsert("removed-customer", &a).unwrap();
        }
        w.commit(None, 0).unwrap();
    }
    let out = run(&env, &["export"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("removed-customer"), "{err}");
    assert!(err.contains("not in the config"), "{err}");
    let mut csv = csv::Reader::from_path(env.path().join("exports/alerts-latest.csv")).unwrap();
    assert_eq!(csv.records().count(), 20);
    let adhoc = env.path().join("adhoc.json");
    let out = run(&env, &["export", "--out", adhoc.to_str().unwrap()]).await;
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&adhoc).unwrap()).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 20);
}
