//! `source = "auto"`, the default: a tenant reads Microsoft Graph when its app may, else the MDE
//! API, and moves by itself — when the permission is granted later, and when the MDE API refuses
//! (as Microsoft's MC1220762 says it will from 2027-02-01) — in one-off polls and under `run`,
//! each time ending with every alert once, in its latest state.

use std::collections::HashSet;

use crate::service::InProcess;
use crate::support::*;
use mde_alerts::app;
use mde_sim::{Hazards, Retired};

fn auto() -> Opts {
    Opts {
        auto: true,
        ..Opts::default()
    }
}

/// Every alert of the MDE API's world stored once, in its latest state — except the alerts Graph
/// leaves out (tuned, standalone), which a tenant on Graph cannot see change or arrive: those are
/// stored as last read before the move, or not at all. Nothing is stored that the world lacks.
#[track_caller]
fn assert_one_latest_row_per_alert(env: &Env) {
    let stored = stored(&env.store_path());
    let truth = env.sim.truth(false);
    let graph_leaves_out: HashSet<String> = env.sim.mde_only_ids().into_iter().collect();
    let known: HashSet<&str> = truth.iter().map(|t| t.id.as_str()).collect();
    for id in stored.keys() {
        assert!(
            known.contains(id.as_str()),
            "{id} is not an alert of the world"
        );
    }
    for t in truth.iter().filter(|t| !graph_leaves_out.contains(&t.id)) {
        let Some((time, _)) = stored.get(&t.id) else {
            panic!("{} is missing", t.id);
        };
        assert_eq!(
            time.ticks(),
            t.last_update,
            "{} is in its latest state",
            t.id
        );
    }
}

/// `status --json` of tenant `t1`.
async fn status(env: &Env) -> serde_json::Value {
    let out = run(env, &["status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    v[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_tenant_whose_app_may_read_graph_reads_graph_at_one_call_a_quiet_poll() {
    let env = Env::new(sim_config(300, 61, Hazards::default()), auto()).await;
    let config = env.config();
    let s = app::poll(&config, None, false).await.unwrap();
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    assert_eq!(env.sim.stats().alert_calls, 0, "the MDE API is not called");
    let d = diff(
        &stored(&env.store_path()),
        &env.sim.graph_truth(&["microsoftDefenderForEndpoint"]),
    );
    assert!(d.is_clean(), "{d:?}");
    let before = env.sim.stats().graph_calls;
    let quiet = app::poll(&config, None, false).await.unwrap();
    assert_eq!(quiet.ok[0].api_calls, 1, "a quiet poll is one call");
    assert_eq!(env.sim.stats().graph_calls - before, 1);
    let st = status(&env).await;
    assert_eq!(st["source"], "auto");
    assert_eq!(st["api"], "graph");
    assert_eq!(st["api_reason"], "graph_permitted");
    assert!(
        st["warnings"].as_array().is_none_or(|w| w.is_empty()),
        "a tenant on Graph has nothing to fix: {st}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_tenant_without_graphs_permission_reads_mde_and_says_what_to_grant() {
    let env = Env::new(sim_config(300, 62, Hazards::default()), auto()).await;
    env.sim.set_graph_roles(&[]);
    let config = env.config();
    let s = app::poll(&config, None, false).await.unwrap();
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    assert_eq!(env.sim.stats().graph_calls, 0, "Graph is not called");
    assert_matches_truth(&env);
    let before = env.sim.stats().alert_calls;
    let quiet = app::poll(&config, None, false).await.unwrap();
    assert_eq!(quiet.ok[0].api_calls, 1, "a quiet poll is one call");
    assert_eq!(env.sim.stats().alert_calls - before, 1);
    let st = status(&env).await;
    assert_eq!(st["api"], "mde");
    assert_eq!(st["api_reason"], "graph_not_permitted");
    let warning = st["warnings"][0].as_str().unwrap();
    for needle in [
        "Microsoft Graph → Application permissions → SecurityAlert.Read.All",
        "Grant admin consent",
        "2027-02-01",
        "MC1220762",
        "moves to Graph by itself",
    ] {
        assert!(warning.contains(needle), "{needle}: {warning}");
    }
    let text = String::from_utf8_lossy(&run(&env, &["status"]).await.stdout).into_owned();
    assert!(
        text.contains("reads the Defender for Endpoint API (source = auto: the app lacks Microsoft Graph's SecurityAlert.Read.All)"),
        "{text}"
    );
}

/// Permission granted between two one-off polls: the second reads Graph, re-reading what the APIs
/// may disagree on, while alerts change; then the MDE API goes away and nothing is missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permission_granted_later_moves_one_off_polls_to_graph_without_a_second_row() {
    let env = Env::new(sim_config(500, 63, Hazards::default()), auto()).await;
    env.sim.set_graph_roles(&[]);
    let config = env.config();
    app::poll(&config, None, false).await.unwrap();
    assert_matches_truth(&env);
    env.sim.update_random(40);
    env.sim.create(15);
    env.sim.set_graph_roles(&["SecurityAlert.Read.All"]);
    let calls = env.sim.stats().alert_calls;
    let s = app::poll(&config, None, false).await.unwrap();
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    assert_eq!(
        env.sim.stats().alert_calls,
        calls,
        "no MDE call after the move"
    );
    assert_eq!(s.apis[0].1.api, mde_alerts::config::SourceKind::Graph);
    assert_one_latest_row_per_alert(&env);
    env.sim.set_mde_retired(Some(Retired::Gone));
    env.sim.update_random(30);
    let s = app::poll(&config, None, false).await.unwrap();
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    assert_one_latest_row_per_alert(&env);
    assert_eq!(status(&env).await["api"], "graph");
}

/// The MDE API switched off while the app still lacks Graph's permission: the poll fails with the
/// API's own answer first, says the tenant cannot move and what to grant, and moves nothing; once
/// granted, the next poll reads Graph and loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mde_switched_off_without_graphs_permission_fails_saying_what_to_grant() {
    for (seed, retired, answer) in [
        (64, Retired::Gone, "HTTP 410"),
        (65, Retired::Forbidden, "HTTP 403"),
        (66, Retired::Retired400, "HTTP 400"),
    ] {
        let env = Env::new(sim_config(300, seed, Hazards::default()), auto()).await;
        env.sim.set_graph_roles(&[]);
        let config = env.config();
        app::poll(&config, None, false).await.unwrap();
        let cursor = mde_alerts::store::Store::open(&env.store_path())
            .unwrap()
            .cursor("t1")
            .unwrap();
        env.sim.set_mde_retired(Some(retired));
        env.sim.create(10);
        let s = app::poll(&config, None, false).await.unwrap();
        assert_eq!(s.failed.len(), 1, "{retired:?}");
        let e = s.failed[0].1.to_string();
        assert!(e.starts_with("Defender for Endpoint answered"), "{e}");
        assert!(
            e.find(answer) < e.find("cannot move to Microsoft Graph"),
            "{e}"
        );
        assert!(e.contains("SecurityAlert.Read.All"), "{e}");
        if retired == Retired::Forbidden {
            assert!(
                !e.contains("says it is retired"),
                "a bare 403 is not blamed on the switch-off: {e}"
            );
        }
        let after = mde_alerts::store::Store::open(&env.store_path())
            .unwrap()
            .cursor("t1")
            .unwrap();
        assert_eq!(after, cursor, "{retired:?}: the cursor did not move");
        env.sim.set_graph_roles(&["SecurityAlert.Read.All"]);
        let s = app::poll(&config, None, false).await.unwrap();
        assert!(s.failed.is_empty(), "{retired:?}: {:?}", s.failed);
        assert_one_latest_row_per_alert(&env);
    }
}

/// Under `run` the Graph token is cached for its lifetime, so a permission granted meanwhile is not
/// in it yet: the MDE API answering 410 (or 403) makes the service fetch a fresh Graph token and
/// read Graph in the same poll, with no restart and no config edit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_run_the_mde_api_refusing_moves_the_tenant_to_graph_in_the_same_poll() {
    for (seed, retired) in [(67, Retired::Gone), (68, Retired::Forbidden)] {
        let env = Env::new(sim_config(400, seed, Hazards::default()), auto()).await;
        env.sim.set_graph_roles(&[]);
        let mut service = InProcess::start(&env, |_| {}).await;
        assert!(
            service.poll().await,
            "{retired:?}: the first poll reads MDE"
        );
        assert_eq!(env.sim.stats().graph_calls, 0);
        assert!(service.poll().await);
        env.sim.update_random(25);
        env.sim.create(10);
        env.sim.set_graph_roles(&["SecurityAlert.Read.All"]);
        env.sim.set_mde_retired(Some(retired));
        assert!(service.poll().await, "{retired:?}: the poll moved to Graph");
        assert!(env.sim.stats().graph_calls > 0);
        env.sim.update_random(20);
        assert!(service.poll().await);
        service.stop().await;
        assert_one_latest_row_per_alert(&env);
        let st = status(&env).await;
        assert_eq!(st["api"], "graph", "{st}");
    }
}

/// Under `run`, an app granted Graph's permission is seen at the next token renewal: with tokens
/// that live two seconds, the service moves to Graph without a refusal, a restart or an edit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_run_a_permission_granted_later_is_seen_at_the_next_token_renewal() {
    let mut sim = sim_config(300, 69, Hazards::default());
    sim.token_lifetime = std::time::Duration::from_secs(2);
    let env = Env::new(sim, auto()).await;
    env.sim.set_graph_roles(&[]);
    let mut service = InProcess::start(&env, |_| {}).await;
    assert!(service.poll().await);
    assert_eq!(env.sim.stats().graph_calls, 0);
    env.sim.set_graph_roles(&["SecurityAlert.Read.All"]);
    env.sim.update_random(20);
    // Past 80 % of the token's life: the next poll renews it and decides again.
    tokio::time::sleep(std::time::Duration::from_millis(1_800)).await;
    assert!(service.poll().await);
    assert!(env.sim.stats().graph_calls > 0, "moved to Graph");
    let mde_calls = env.sim.stats().alert_calls;
    assert!(service.poll().await);
    assert_eq!(env.sim.stats().alert_calls, mde_calls, "and stays there");
    service.stop().await;
    assert_one_latest_row_per_alert(&env);
}

/// A pinned tenant never moves: `source = "mde"` keeps reading the MDE API though the app may read
/// Graph, and a refusal is its failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_tenant_never_moves() {
    let env = Env::new(sim_config(200, 70, Hazards::default()), Opts::default()).await;
    let config = env.config();
    app::poll(&config, None, false).await.unwrap();
    assert_eq!(env.sim.stats().graph_calls, 0);
    env.sim.set_mde_retired(Some(Retired::Gone));
    let s = app::poll(&config, None, false).await.unwrap();
    assert_eq!(s.failed.len(), 1);
    assert_eq!(env.sim.stats().graph_calls, 0, "pinned: no move");
    let e = s.failed[0].1.to_string();
    assert!(e.contains("HTTP 410"), "{e}");
    assert!(e.contains("the API says it is retired"), "{e}");
}

/// A machine whose firewall lets only the MDE API through (here: a Graph URL that redirects, as a
/// proxy's login page does): an auto tenant granted Graph's permission keeps reading the MDE API,
/// where its cursor came from, instead of failing every poll, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_graph_keeps_an_auto_tenant_on_the_api_its_cursor_came_from() {
    let env = Env::new(sim_config(200, 71, Hazards::default()), auto()).await;
    env.sim.set_graph_roles(&[]);
    app::poll(&env.config(), None, false).await.unwrap();
    env.sim.set_graph_roles(&["SecurityAlert.Read.All"]);
    let proxy = crate::hostile::hostile(|_| crate::hostile::Answer::Fixed {
        status: 302,
        headers: vec![("Location", "https://login.proxy.example/".into())],
        body: String::new(),
    })
    .await;
    env.edit_config(|c| c.tenants[0].graph_url = Some(proxy.url.clone()));
    env.sim.update_random(20);
    let s = app::poll(&env.config(), None, false).await.unwrap();
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    assert_eq!(s.apis[0].1.api, mde_alerts::config::SourceKind::Mde);
    assert_matches_truth(&env);
    let st = status(&env).await;
    assert_eq!(st["api"], "mde");
    assert_eq!(st["api_reason"], "unreachable");
    let warning = st["warnings"][0].as_str().unwrap();
    assert!(warning.contains("could not be reached"), "{warning}");
}

/// What deciding costs under `run`: nothing per poll. A quiet poll is one API call, and tokens are
/// requested once per lifetime per API the tenant reads (an auto tenant on Graph never needs the
/// MDE API's token; one on the MDE API holds both, the Graph one to look for the permission).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_run_deciding_costs_no_call_and_one_token_per_lifetime() {
    for (seed, graph_allowed, tokens) in [(72, true, 1), (73, false, 2)] {
        let env = Env::new(sim_config(100, seed, Hazards::default()), auto()).await;
        if !graph_allowed {
            env.sim.set_graph_roles(&[]);
        }
        let mut service = InProcess::start(&env, |_| {}).await;
        assert!(service.poll().await);
        let calls = |s: mde_sim::Stats| s.alert_calls + s.graph_calls;
        for _ in 0..3 {
            let before = calls(env.sim.stats());
            assert!(service.poll().await);
            assert_eq!(
                calls(env.sim.stats()) - before,
                1,
                "a quiet poll is one call"
            );
        }
        service.stop().await;
        assert_eq!(
            env.sim.issued_tokens().len(),
            tokens,
            "graph allowed: {graph_allowed}"
        );
    }
}
