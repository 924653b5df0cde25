//! Behaviour of the poller against the simulator: correctness while the API moves, budget, and
//! bad pages.

use std::time::{Duration, Instant};

use crate::support::*;
use mde_alerts::alert::time::ApiTime;
use mde_alerts::auth::TokenProvider;
use mde_alerts::poll_job;
use mde_alerts::store::Store;
use mde_sim::{FaultKind, Hazards};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_poll_stores_everything_and_quiet_poll_costs_one_call() {
    let env = Env::new(sim_config(450, 7, Hazards::default()), Opts::default()).await;
    let config = env.config();
    let s = poll_job::poll(&config, None, false).await.unwrap();
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    assert_eq!(s.ok[0].counts.new, 450);
    assert_matches_truth(&env);

    let before = env.sim.stats();
    let s = poll_job::poll(&config, None, false).await.unwrap();
    let after = env.sim.stats();
    assert_eq!(
        after.alert_calls - before.alert_calls,
        1,
        "a quiet poll is one call"
    );
    assert_eq!(s.ok[0].api_calls, 1);
    assert_eq!(s.ok[0].counts.new + s.ok[0].counts.updated, 0);
    // One token for both polls of the process? Each `poll_job::poll` builds its own provider, like a
    // separate `mde-alerts poll` run would; within a poll, one token serves every call.
    assert_eq!(after.tokens_issued, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_replace_versions_and_are_kept_as_revisions() {
    let env = Env::new(sim_config(120, 8, Hazards::default()), Opts::default()).await;
    let config = env.config();
    poll_job::poll(&config, None, false).await.unwrap();
    env.sim.update_random(30);
    env.sim.create(5);
    let s = poll_job::poll(&config, None, false).await.unwrap();
    let c = s.ok[0].counts;
    assert_eq!(c.new, 5);
    assert!(c.updated >= 25 && c.updated <= 30, "{c:?}");
    assert_matches_truth(&env);
    let store = Store::open(&env.store_path()).unwrap();
    let revs: i64 = store
        .connection()
        .query_row("SELECT count(*) FROM alert_revisions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(revs as u64, 125 + c.updated);
}

/// The central correctness property: alerts change while the pager pages, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyset_pager_loses_nothing_while_alerts_change_between_pages() {
    let hazards = Hazards {
        mutate_per_page: 5,
        ..Hazards::default()
    };
    let env = Env::new(sim_config(2_000, 11, hazards), Opts::default()).await;
    let config = env.config();
    poll_job::poll(&config, None, false).await.unwrap();
    let d = diff(&stored(&env.store_path()), &env.sim.truth(false));
    assert!(d.missing.is_empty(), "{d:?}");
    env.sim.set_hazards(Hazards::default());
    poll_job::poll(&config, None, false).await.unwrap();
    assert_matches_truth(&env);
}

/// A naive `$skip` pager over the same simulator loses alerts: proof that the simulator is nasty
/// enough for the test above to mean something.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_pager_would_lose_alerts_in_the_same_simulator() {
    let hazards = Hazards {
        mutate_per_page: 5,
        ..Hazards::default()
    };
    let env = Env::new(sim_config(2_000, 11, hazards), Opts::default()).await;
    let config = env.config();
    let tenant = &config.tenants[0];
    let http = mde_alerts::http::client(Duration::from_secs(20), &config.http).unwrap();
    let tokens =
        TokenProvider::new(http.clone(), tenant, mde_alerts::config::SourceKind::Mde).unwrap();
    let start = ApiTime::now().minus(Duration::from_secs(40 * 86_400));
    let mut seen = std::collections::HashMap::new();
    let mut skip = 0;
    let mut cursor = start;
    loop {
        let token = tokens.token().await.unwrap();
        let resp: serde_json::Value = http
            .get(format!("{}/api/alerts", env.sim.url()))
            .query(&[
                (
                    "$filter",
                    format!("lastUpdateTime ge {}", start.to_api_string()),
                ),
                ("$orderby", "lastUpdateTime asc".into()),
                ("$top", "100".into()),
                ("$skip", skip.to_string()),
            ])
            .bearer_auth(token.bearer())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let page = resp["value"].as_array().unwrap();
        for a in page {
            let t = ApiTime::parse(a["lastUpdateTime"].as_str().unwrap()).unwrap();
            cursor = cursor.max(t);
            seen.insert(a["id"].as_str().unwrap().to_owned(), t);
        }
        if page.len() < 100 {
            break;
        }
        skip += 100;
    }
    // Alerts whose latest version is older than the cursor the skip pager would store, yet were
    // never returned in that version: the next poll starts after them, so they are lost for good.
    let lost = env
        .sim
        .truth(false)
        .into_iter()
        .filter(|t| {
            let last = ApiTime::from_ticks(t.last_update);
            last <= cursor && seen.get(&t.id) != Some(&last)
        })
        .count();
    assert!(
        lost > 0,
        "the $skip pager lost nothing; the simulator is not nasty enough"
    );
    eprintln!("the $skip pager lost {lost} alerts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_alerts_at_one_instant_than_fit_on_a_page() {
    let env = Env::new(sim_config(400, 12, Hazards::default()), Opts::default()).await;
    // An automated investigation updates 350 alerts at one instant; pages hold 100. The alerts
    // keep changing (leaving the instant) while the pager reads it.
    env.sim.update_random(350);
    env.sim.set_hazards(Hazards {
        mutate_per_page: 2,
        ..Hazards::default()
    });
    let config = env.config();
    let s = poll_job::poll(&config, None, false).await.unwrap();
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    // One poll already has every alert (in some version: the world moved on after its last page).
    let d = diff(&stored(&env.store_path()), &env.sim.truth(false));
    assert!(d.missing.is_empty(), "{d:?}");
    env.sim.set_hazards(Hazards::default());
    poll_job::poll(&config, None, false).await.unwrap();
    assert_matches_truth(&env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_visible_alerts_are_caught_by_the_overlap() {
    let hazards = Hazards {
        late_fraction: 0.5,
        late_delay: Duration::from_millis(800),
        ..Hazards::default()
    };
    let env = Env::new(sim_config(100, 13, hazards), Opts::default()).await;
    let config = env.config();
    poll_job::poll(&config, None, false).await.unwrap();
    env.sim.update_random(40);
    env.sim.create(20);
    // Poll while half of those are not visible yet, then after.
    poll_job::poll(&config, None, false).await.unwrap();
    settle(&env.sim).await;
    poll_job::poll(&config, None, false).await.unwrap();
    assert_matches_truth(&env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_elements_are_counted_and_the_rest_is_stored() {
    let hazards = Hazards {
        invalid_element_rate: 1.0,
        ..Hazards::default()
    };
    let env = Env::new(sim_config(250, 14, hazards), Opts::default()).await;
    let config = env.config();
    let s = poll_job::poll(&config, None, false).await.unwrap();
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    assert!(s.ok[0].counts.invalid >= 3, "{:?}", s.ok[0].counts);
    env.sim.set_hazards(Hazards::default());
    poll_job::poll(&config, None, false).await.unwrap();
    assert_matches_truth(&env);
    // What is not a valid alert is kept verbatim, never dropped, and `status`
    // says so.
    let kept = Store::open(&env.store_path())
        .unwrap()
        .rejected_count("t1")
        .unwrap();
    assert!(kept >= 3, "{kept}");
    let out = crate::support::run(&env, &["status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["rejected"], kept);
    assert!(
        v[0]["problem"]
            .as_str()
            .unwrap()
            .contains("rejected_elements"),
        "{v}"
    );
}

/// A truncated page and a page that is not JSON each fail the poll (after the retries a
/// transient fault gets) without moving the cursor. The two run side by side: each waits out the
/// product's backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_page_fails_the_poll_without_moving_the_cursor() {
    tokio::join!(
        malformed_page_fails(FaultKind::Truncated),
        malformed_page_fails(FaultKind::NotJson)
    );
}

async fn malformed_page_fails(kind: FaultKind) {
    let env = Env::new(sim_config(150, 15, Hazards::default()), Opts::default()).await;
    let config = env.config();
    poll_job::poll(&config, None, false).await.unwrap();
    let cursor = Store::open(&env.store_path())
        .unwrap()
        .cursor("t1")
        .unwrap();
    env.sim.update_random(20);
    env.sim.set_hazards(Hazards {
        fault_rate: 1.0,
        fault_kinds: vec![kind],
        ..Hazards::default()
    });
    let s = poll_job::poll(&config, None, false).await.unwrap();
    assert_eq!(s.failed.len(), 1, "{kind:?}");
    let msg = s.failed[0].1.to_string();
    assert!(msg.contains("not valid JSON"), "{msg}");
    let store = Store::open(&env.store_path()).unwrap();
    assert_eq!(
        store.cursor("t1").unwrap(),
        cursor,
        "{kind:?} moved the cursor"
    );
    let last = &store.runs(Some("t1"), 1).unwrap()[0];
    assert_eq!(last.outcome, "failed");
    assert!(
        last.error
            .as_deref()
            .unwrap_or("")
            .contains("not valid JSON")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_are_retried_within_the_poll() {
    let hazards = Hazards {
        fault_rate: 0.3,
        fault_kinds: vec![
            FaultKind::Internal,
            FaultKind::Unavailable,
            FaultKind::Truncated,
            FaultKind::TooManyRequests,
        ],
        retry_after_secs: 1,
        ..Hazards::default()
    };
    let env = Env::new(sim_config(800, 16, hazards), Opts::default()).await;
    let config = env.config();
    let s = poll_job::poll(&config, None, false).await.unwrap();
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    assert!(env.sim.stats().faults > 0);
    assert_matches_truth(&env);
}

/// Tokens that live a second are renewed at 80 % of their life, in the middle of a poll of a few
/// seconds, and no more often than that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_tokens_are_renewed_before_they_expire() {
    let hazards = Hazards {
        fault_rate: 1.0,
        fault_kinds: vec![FaultKind::Slow],
        slow_delay: Duration::from_millis(300),
        ..Hazards::default()
    };
    let life = Duration::from_secs(1);
    let mut cfg = sim_config(600, 17, hazards);
    cfg.token_lifetime = life;
    let env = Env::new(cfg, Opts::default()).await;
    let started = Instant::now();
    let s = poll_job::poll(&env.config(), None, false).await.unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    let st = env.sim.stats();
    let expected = elapsed / (0.8 * life.as_secs_f64());
    assert!(
        (st.tokens_issued as f64) <= expected + 2.0,
        "{} tokens for a {elapsed:.1}s poll",
        st.tokens_issued
    );
    assert!(st.tokens_issued >= 2, "tokens were not renewed");
    assert!(st.unauthorized <= st.tokens_issued, "{st:?}");
    assert_matches_truth(&env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_and_enum_values_are_kept() {
    let env = Env::new(
        sim_config(400, 18, Hazards::default()),
        Opts {
            expand: true,
            ..Opts::default()
        },
    )
    .await;
    poll_job::poll(&env.config(), None, false).await.unwrap();
    let stored = stored(&env.store_path());
    assert!(
        stored
            .values()
            .any(|(_, v)| v.get("futureInsight").is_some())
    );
    assert!(stored.values().any(|(_, v)| v["severity"] == "Critical"));
    assert!(
        stored
            .values()
            .all(|(_, v)| (1..=3).contains(&v["evidence"].as_array().unwrap().len()))
    );
    let d = diff(&stored, &env.sim.truth(true));
    assert!(d.is_clean(), "{d:?}");
}

/// `$orderby` is undocumented for alerts: when the API refuses it, or ignores it, the pager falls
/// back to bounded windows and still loses nothing while alerts move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_orderby_the_window_pager_loses_nothing() {
    for (refused, ignored) in [(true, false), (false, true)] {
        let hazards = Hazards {
            orderby_supported: !refused,
            orderby_ignored: ignored,
            mutate_per_page: 3,
            ..Hazards::default()
        };
        let env = Env::new(sim_config(1_200, 19, hazards.clone()), Opts::default()).await;
        env.sim.create(250); // one instant with more alerts than a page
        let config = env.config();
        let s = poll_job::poll(&config, None, false).await.unwrap();
        assert!(s.failed.is_empty(), "{:?}", s.failed);
        let why = if refused {
            mde_alerts::poll::WhyWindows::Refused
        } else {
            mde_alerts::poll::WhyWindows::Ignored
        };
        assert_eq!(s.ok[0].mode, mde_alerts::poll::Mode::Windows(why));
        let d = diff(&stored(&env.store_path()), &env.sim.truth(false));
        assert!(d.missing.is_empty(), "refused={refused}: {d:?}");
        env.sim.set_hazards(Hazards {
            mutate_per_page: 0,
            ..hazards
        });
        let s = poll_job::poll(&config, None, false).await.unwrap();
        assert!(s.failed.is_empty(), "{:?}", s.failed);
        let d = diff(&stored(&env.store_path()), &env.sim.truth(false));
        assert!(d.is_clean(), "refused={refused}: {d:?}");
    }
}

/// Alerts created *and* updated in the same tick cannot be told apart by creation time: the pager
/// reads them with `$skip` passes until a pass misses nothing of the one before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_created_and_updated_in_one_tick() {
    let env = Env::new(sim_config(30, 20, Hazards::default()), Opts::default()).await;
    env.sim.create(330);
    let config = env.config();
    let s = poll_job::poll(&config, None, false).await.unwrap();
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    assert_matches_truth(&env);
}

/// A one-off poll of many tenants runs `[poll] concurrency` of them at once, and one tenant's
/// failure (here a secret Entra refuses) is its own: the others store everything, in config order
/// in the summary. Each answer of the slow simulators takes 400 ms, so polling the three working
/// tenants one after another takes over twice as long as polling them together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_poll_keeps_each_tenants_failure_its_own() {
    use mde_alerts::config::raw::RawTenant;
    let slow = || Hazards {
        fault_rate: 1.0,
        fault_kinds: vec![FaultKind::Slow],
        slow_delay: Duration::from_millis(400),
        ..Hazards::default()
    };
    let env = Env::new(sim_config(20, 81, slow()), Opts::default()).await;
    let mut sims = Vec::new();
    let guids = [
        "1a0a0b0e-1111-4a55-9a0e-5e1d9c0d1e11",
        "2b0a0b0e-2222-4a55-9a0e-5e1d9c0d1e11",
        "3c0a0b0e-3333-4a55-9a0e-5e1d9c0d1e11",
    ];
    for (i, guid) in guids.into_iter().enumerate() {
        let cfg = mde_sim::SimConfig {
            tenant_id: guid.into(),
            ..sim_config(15 + i, 82 + i as u64, slow())
        };
        sims.push(mde_sim::Simulator::start(cfg, 0).await.unwrap());
    }
    let wrong = env.path().join("wrong-secret");
    std::fs::write(&wrong, "not-the-secret\n").unwrap();
    let set = |concurrency: i64| {
        env.edit_config(|c| {
            let base = c.tenants[0].clone();
            c.tenants.truncate(1);
            for (i, sim) in sims.iter().enumerate() {
                let name = ["refused", "second", "third"][i];
                c.tenants.push(RawTenant {
                    name: Some(name.into()),
                    tenant_id: Some(guids[i].into()),
                    login_url: Some(sim.url()),
                    api_url: Some(sim.url()),
                    graph_url: Some(sim.url()),
                    client_secret_file: (i == 0)
                        .then(|| wrong.display().to_string())
                        .or(base.client_secret_file.clone()),
                    ..base.clone()
                });
            }
            c.poll.concurrency = Some(concurrency);
        });
    };

    set(1);
    let started = Instant::now();
    let one_by_one = poll_job::poll(&env.config(), None, false).await.unwrap();
    let sequential = started.elapsed();
    let names = |s: &poll_job::PollSummary| -> Vec<String> {
        s.ok.iter().map(|r| r.tenant.clone()).collect()
    };
    assert_eq!(names(&one_by_one), ["t1", "second", "third"]);

    // A fresh store, polled with all four at once.
    std::fs::remove_file(env.store_path()).unwrap();
    set(4);
    let started = Instant::now();
    let together = poll_job::poll(&env.config(), None, false).await.unwrap();
    let concurrent = started.elapsed();
    assert_eq!(names(&together), ["t1", "second", "third"], "config order");
    assert_eq!(together.failed.len(), 1, "{:?}", together.failed);
    let (who, why) = &together.failed[0];
    assert_eq!(who, "refused");
    assert!(why.to_string().contains("AADSTS"), "{why}");
    // Three slow tenants together take about a third of their time one by one; 1.5× leaves room
    // for a loaded machine (2× failed there, with CPU rather than the servers' delays the bound).
    assert!(
        concurrent * 3 < sequential * 2,
        "together {concurrent:?}, one by one {sequential:?}"
    );
    // Each working tenant has exactly its simulator's alerts; the refused one has nothing and a
    // failed run.
    let store = Store::open(&env.store_path()).unwrap();
    for (name, sim) in [("t1", &env.sim), ("second", &sims[1]), ("third", &sims[2])] {
        let mut truth: Vec<String> = sim.truth(false).into_iter().map(|t| t.id).collect();
        truth.sort();
        let mut got = Vec::new();
        store
            .for_each_alert(|tenant, raw| {
                if tenant == name {
                    let v: serde_json::Value = serde_json::from_str(raw).unwrap();
                    got.push(v["id"].as_str().unwrap().to_owned());
                }
                Ok(())
            })
            .unwrap();
        got.sort();
        assert_eq!(got, truth, "{name}");
    }
    let refused = store.runs(Some("refused"), 1).unwrap();
    assert_eq!(refused[0].outcome, "failed");
}
