//! `source = "auto"`, the default: a tenant reads Microsoft Graph when its app may, else the MDE
//! API, and moves by itself — when the permission is granted later, and when the MDE API refuses
//! (as Microsoft's MC1220762 says it will from 2027-02-01) — in one-off polls and under `run`,
//! each time ending with every alert once, in its latest state.

use std::collections::HashSet;

use crate::service::InProcess;
use crate::support::*;
use mde_alerts::poll_job;
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
    let s = poll_job::poll(&config, None, false).await.unwrap();
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    assert_eq!(env.sim.stats().alert_calls, 0, "the MDE API is not called");
    let d = diff(
        &stored(&env.store_path()),
        &env.sim.graph_truth(&["microsoftDefenderForEndpoint"]),
    );
    assert!(d.is_clean(), "{d:?}");
    let before = env.sim.stats().graph_calls;
    let quiet = poll_job::poll(&config, None, false).await.unwrap();
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
    let s = poll_job::poll(&config, None, false).await.unwrap();
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    assert_eq!(env.sim.stats().graph_calls, 0, "Graph is not called");
    assert_matches_truth(&env);
    let before = env.sim.stats().alert_calls;
    let quiet = poll_job::poll(&config, None, false).await.unwrap();
    assert_eq!(quiet.ok[0].api_calls, 1, "a quiet poll is one call");
    assert_eq!(env.sim.stats().alert_calls - before, 1);
    let st = status(&env).await;
    assert_eq!(st["api"], "mde");
    assert_eq!(st["api_reason"], "graph_not_permitted");
    // The warning says what and when; its fix, apart, what to grant.
    let warning = st["warnings"][0]["warning"].as_str().unwrap();
    let fix = st["warnings"][0]["fix"].as_str().unwrap();
    for needle in ["2027-02-01", "MC1220762"] {
        assert!(warning.contains(needle), "{needle}: {warning}");
    }
    for needle in [
        "Microsoft Graph → Application permissions → SecurityAlert.Read.All",
        "Grant admin consent",
        "moves to Graph by itself",
    ] {
        assert!(fix.contains(needle), "{needle}: {fix}");
        assert!(
            !warning.contains(needle),
            "said once, as the fix: {warning}"
        );
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
    poll_job::poll(&config, None, false).await.unwrap();
    assert_matches_truth(&env);
    env.sim.update_random(40);
    env.sim.create(15);
    env.sim.set_graph_roles(&["SecurityAlert.Read.All"]);
    let calls = env.sim.stats().alert_calls;
    let s = poll_job::poll(&config, None, false).await.unwrap();
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
    let s = poll_job::poll(&config, None, false).await.unwrap();
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
        poll_job::poll(&config, None, false).await.unwrap();
        let cursor = mde_alerts::store::Store::open(&env.store_path())
            .unwrap()
            .cursor("t1")
            .unwrap();
        env.sim.set_mde_retired(Some(retired));
        env.sim.create(10);
        let s = poll_job::poll(&config, None, false).await.unwrap();
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
        let s = poll_job::poll(&config, None, false).await.unwrap();
        assert!(s.failed.is_empty(), "{retired:?}: {:?}", s.failed);
        assert_one_latest_row_per_alert(&env);
    }
}

/// Polls under the service every 100 ms, each poll succeeding, until `done` says so (at most
/// 10 s): a test of what happens at a token's renewal waits for the renewal itself, not for a
/// guessed stretch of its life. Returns the simulator's counters before the first poll and after
/// each.
async fn poll_until(
    service: &mut InProcess,
    env: &Env,
    done: impl Fn() -> bool,
) -> Vec<mde_sim::Stats> {
    let started = std::time::Instant::now();
    let mut seen = vec![env.sim.stats()];
    loop {
        assert!(service.poll().await, "{:?}", service.seen);
        seen.push(env.sim.stats());
        if done() {
            return seen;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "not done after {} polls: {:?}",
            seen.len() - 1,
            seen.last()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Asserts that the last of `polls` (counters from [`poll_until`]) renewed a token, and that at
/// least one quiet poll came before it: what changed was seen at the renewal, not before.
#[track_caller]
fn seen_at_the_renewal(polls: &[mde_sim::Stats]) {
    let [.., before, last] = polls else {
        panic!("no poll: {polls:?}");
    };
    assert!(
        polls.len() >= 3,
        "a quiet poll before the renewal: {polls:?}"
    );
    assert!(
        last.tokens_issued > before.tokens_issued,
        "seen at a token's renewal: {polls:?}"
    );
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
    // The polls go on reading MDE until, past 80 % of the token's life, one renews it and
    // decides again.
    let polls = poll_until(&mut service, &env, || env.sim.stats().graph_calls > 0).await;
    seen_at_the_renewal(&polls);
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
    poll_job::poll(&config, None, false).await.unwrap();
    assert_eq!(env.sim.stats().graph_calls, 0);
    env.sim.set_mde_retired(Some(Retired::Gone));
    let s = poll_job::poll(&config, None, false).await.unwrap();
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
    poll_job::poll(&env.config(), None, false).await.unwrap();
    env.sim.set_graph_roles(&["SecurityAlert.Read.All"]);
    let proxy = crate::hostile::hostile(|_| crate::hostile::Answer::Fixed {
        status: 302,
        headers: vec![("Location", "https://login.proxy.example/".into())],
        body: String::new(),
    })
    .await;
    env.edit_config(|c| c.tenants[0].graph_url = Some(proxy.url.clone()));
    env.sim.update_random(20);
    let s = poll_job::poll(&env.config(), None, false).await.unwrap();
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    assert_eq!(s.apis[0].1.api, mde_alerts::config::SourceKind::Mde);
    assert_matches_truth(&env);
    let st = status(&env).await;
    assert_eq!(st["api"], "mde");
    assert_eq!(st["api_reason"], "unreachable");
    let warning = st["warnings"][0]["warning"].as_str().unwrap();
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

/// The recorded choice of `t1`: (api, reason, detail, since).
fn choice(env: &Env) -> Option<mde_alerts::store::ApiChoiceRow> {
    mde_alerts::store::Store::open(&env.store_path())
        .unwrap()
        .api_choice("t1")
        .unwrap()
}

/// A Graph that answers every call with `status` and Graph's error body, counting the calls.
async fn refusing_graph(
    status: u16,
    code: &'static str,
) -> (
    crate::hostile::Hostile,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = calls.clone();
    let server = crate::hostile::hostile(move |_| {
        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        crate::hostile::Answer::Fixed {
            status,
            headers: vec![("Content-Type", "application/json".into())],
            body: format!(
                r#"{{"error":{{"code":"{code}","message":"Graph says no ({status}).","innerError":{{"date":"2026-12-06T00:00:00","request-id":"1","client-request-id":"2"}}}}}}"#
            ),
        }
    })
    .await;
    (server, calls)
}

fn hits(calls: &std::sync::atomic::AtomicUsize) -> usize {
    calls.load(std::sync::atomic::Ordering::SeqCst)
}

/// A Graph that refuses a token carrying the permission (a delegated user without a Security
/// role, a tenant without the licence): one-off polls read the MDE API, each trying Graph once
/// with its fresh token; the recorded choice does not flap to Graph and back, and a refusal
/// already recorded is not logged again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_refusing_a_permitted_token_is_recorded_and_said_once_across_one_off_polls() {
    let env = Env::new(sim_config(200, 80, Hazards::default()), auto()).await;
    let (graph, calls) = refusing_graph(403, "Forbidden").await;
    env.edit_config(|c| c.tenants[0].graph_url = Some(graph.url.clone()));
    let first = run(&env, &["poll"]).await;
    assert!(first.status.success(), "{first:?}");
    assert!(
        String::from_utf8_lossy(&first.stderr).contains("The API refused the tenant"),
        "the first refusal is said: {first:?}"
    );
    assert_matches_truth(&env);
    let recorded = choice(&env).unwrap();
    assert_eq!(
        (recorded.api.as_str(), recorded.reason.as_str()),
        ("mde", "graph_refused")
    );
    // `since` has a resolution of a second: once the clock has moved past its second, a row
    // rewritten later would show it.
    let second = || chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    while second() <= recorded.since {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for _ in 0..2 {
        let out = run(&env, &["poll"]).await;
        assert!(out.status.success(), "{out:?}");
        let log = String::from_utf8_lossy(&out.stderr);
        for line in log.lines().filter(|l| l.contains("t1")) {
            assert!(
                !line.contains(" WARN ") && !line.contains("The tenant reads"),
                "a refusal already recorded is not said again: {line}"
            );
        }
    }
    assert_eq!(
        choice(&env).unwrap(),
        recorded,
        "the recorded choice did not flap"
    );
    assert_eq!(hits(&calls), 3, "one refused Graph call per one-off poll");
}

/// Under `run`, a Graph that refuses a permitted token is tried again once per Graph token
/// lifetime, and the polls between cost one MDE call each; the recorded choice stays still.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_run_a_graph_refusing_a_permitted_token_costs_one_call_per_token_lifetime() {
    let mut sim = sim_config(100, 87, Hazards::default());
    sim.token_lifetime = std::time::Duration::from_secs(2);
    let env = Env::new(sim, auto()).await;
    let (graph, calls) = refusing_graph(403, "Forbidden").await;
    env.edit_config(|c| c.tenants[0].graph_url = Some(graph.url.clone()));
    let mut service = InProcess::start(&env, |_| {}).await;
    assert!(service.poll().await);
    let recorded = choice(&env).unwrap();
    assert_eq!(recorded.reason, "graph_refused");
    for _ in 0..3 {
        let before = env.sim.stats().alert_calls;
        assert!(service.poll().await);
        assert_eq!(env.sim.stats().alert_calls - before, 1, "a quiet poll");
    }
    assert_eq!(
        hits(&calls),
        1,
        "Graph is not asked again before its token is renewed"
    );
    // Quiet polls, one MDE call each, until past 80 % of the Graph token's life a poll renews it,
    // decides again and Graph refuses again.
    let polls = poll_until(&mut service, &env, || hits(&calls) > 1).await;
    seen_at_the_renewal(&polls);
    for w in polls[..polls.len() - 1].windows(2) {
        assert_eq!(w[1].alert_calls - w[0].alert_calls, 1, "a quiet poll");
    }
    assert_eq!(hits(&calls), 2);
    service.stop().await;
    assert_eq!(
        choice(&env).unwrap(),
        recorded,
        "the recorded choice did not flap"
    );
    assert_matches_truth(&env);
}

/// The MDE API switched off on a machine that cannot reach Graph: the poll fails with the MDE
/// API's answer first and says Graph could not be reached, not that a permission is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mde_switched_off_and_graph_unreachable_says_graph_could_not_be_reached() {
    let env = Env::new(sim_config(200, 81, Hazards::default()), auto()).await;
    env.sim.set_graph_roles(&[]);
    poll_job::poll(&env.config(), None, false).await.unwrap();
    env.sim.set_graph_roles(&["SecurityAlert.Read.All"]);
    let proxy = crate::hostile::hostile(|_| crate::hostile::Answer::Fixed {
        status: 302,
        headers: vec![("Location", "https://login.proxy.example/".into())],
        body: String::new(),
    })
    .await;
    env.edit_config(|c| c.tenants[0].graph_url = Some(proxy.url.clone()));
    env.sim.set_mde_retired(Some(Retired::Gone));
    let s = poll_job::poll(&env.config(), None, false).await.unwrap();
    assert_eq!(s.failed.len(), 1);
    let e = s.failed[0].1.to_string();
    eprintln!("{e}");
    assert!(
        e.starts_with("Defender for Endpoint answered HTTP 410"),
        "{e}"
    );
    assert!(e.contains("redirect"), "Graph's own failure is said: {e}");
    assert!(!e.contains("the app holds"), "{e}");
    assert!(!e.contains("Grant admin consent"), "nothing to grant: {e}");
}

/// The MDE API switched off and Graph refusing the app although its token carries the
/// permission: the poll says both answers, each with its HTTP status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mde_switched_off_and_graph_refusing_says_both_answers() {
    let env = Env::new(sim_config(200, 82, Hazards::default()), auto()).await;
    env.sim.set_graph_roles(&[]);
    poll_job::poll(&env.config(), None, false).await.unwrap();
    env.sim.set_graph_roles(&["SecurityAlert.Read.All"]);
    let (graph, _) = refusing_graph(403, "Forbidden").await;
    env.edit_config(|c| c.tenants[0].graph_url = Some(graph.url.clone()));
    env.sim.set_mde_retired(Some(Retired::Gone));
    let s = poll_job::poll(&env.config(), None, false).await.unwrap();
    assert_eq!(s.failed.len(), 1);
    let e = s.failed[0].1.to_string();
    eprintln!("{e}");
    assert!(
        e.starts_with("Defender for Endpoint answered HTTP 410"),
        "{e}"
    );
    assert!(e.contains("HTTP 403"), "Graph's answer is said: {e}");
    assert!(!e.contains("the app holds"), "{e}");
}

/// Entra refusing to sign the app in for Graph (AADSTS65001, consent missing): under `run` the
/// tenant reads the MDE API and asks Entra for a Graph token once per MDE token lifetime, not at
/// every poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_sign_in_entra_refuses_is_not_asked_again_at_every_poll() {
    let env = Env::new(sim_config(100, 83, Hazards::default()), auto()).await;
    env.sim.set_graph_sign_in_refused(Some(65001));
    let mut service = InProcess::start(&env, |_| {}).await;
    for _ in 0..4 {
        assert!(service.poll().await);
    }
    service.stop().await;
    assert_matches_truth(&env);
    let st = env.sim.stats();
    eprintln!(
        "token requests {} issued {}",
        st.token_requests, st.tokens_issued
    );
    assert_eq!(st.tokens_issued, 1, "the MDE API's token");
    assert_eq!(
        st.token_requests, 2,
        "one MDE token, one refused Graph sign-in"
    );
    let c = choice(&env).unwrap();
    assert_eq!(
        (c.api.as_str(), c.reason.as_str()),
        ("mde", "graph_sign_in_failed")
    );
    assert!(c.detail.contains("65001"), "{}", c.detail);
}

/// Consent given after Entra refused the Graph sign-in: under `run`, the tenant asks Entra again
/// when its MDE API token is renewed, and moves to Graph without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_run_a_graph_sign_in_refused_is_asked_again_at_the_mde_tokens_renewal() {
    let mut sim = sim_config(100, 88, Hazards::default());
    sim.token_lifetime = std::time::Duration::from_secs(2);
    let env = Env::new(sim, auto()).await;
    env.sim.set_graph_sign_in_refused(Some(500011));
    let mut service = InProcess::start(&env, |_| {}).await;
    assert!(service.poll().await);
    let c = choice(&env).unwrap();
    assert_eq!(
        (c.api.as_str(), c.reason.as_str()),
        ("mde", "graph_sign_in_failed")
    );
    assert!(c.detail.contains("AADSTS500011"), "{}", c.detail);
    assert!(
        !c.detail
            .contains("Defender for Endpoint is not provisioned"),
        "Entra's words for the MDE API's sign-in are not said of Graph's: {}",
        c.detail
    );
    env.sim.set_graph_sign_in_refused(None);
    env.sim.update_random(10);
    let requests = env.sim.stats().token_requests;
    let polls = poll_until(&mut service, &env, || env.sim.stats().graph_calls > 0).await;
    seen_at_the_renewal(&polls);
    assert_eq!(
        polls[polls.len() - 2].token_requests,
        requests,
        "Entra is not asked again before the renewal"
    );
    service.stop().await;
    assert_eq!(choice(&env).unwrap().api, "graph");
    assert_one_latest_row_per_alert(&env);
}

/// A tenant pinned by a config edit after reading as auto: `status` and `config check` say it is
/// pinned, not the reason its last auto decision had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_pinned_after_auto_is_shown_as_pinned_before_its_next_poll() {
    let env = Env::new(sim_config(100, 84, Hazards::default()), auto()).await;
    poll_job::poll(&env.config(), None, false).await.unwrap();
    assert_eq!(status(&env).await["api_reason"], "graph_permitted");
    env.edit_config(|c| c.tenants[0].source = Some(mde_alerts::config::SourceChoice::Mde));
    let st = status(&env).await;
    assert_eq!(st["api"], "mde", "{st}");
    assert_ne!(st["api_reason"], "graph_permitted", "{st}");
    let out = run(&env, &["config", "check"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("the app holds Microsoft Graph"), "{text}");
}

/// A Graph answering 404 (a private graph_url with the wrong path): the warning says to check
/// graph_url, not to grant a permission the app holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_answering_404_is_not_told_to_grant_a_permission() {
    let env = Env::new(sim_config(100, 85, Hazards::default()), auto()).await;
    let (graph, _) = refusing_graph(404, "ResourceNotFound").await;
    env.edit_config(|c| c.tenants[0].graph_url = Some(graph.url.clone()));
    let s = poll_job::poll(&env.config(), None, false).await.unwrap();
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    let st = status(&env).await;
    let fix = st["warnings"][0]["fix"].as_str().unwrap();
    assert!(fix.contains("graph_url"), "{fix}");
    assert!(!fix.contains("Grant admin consent"), "{fix}");
}

/// Forty auto tenants in one situation (the app lacks Graph's permission), one of them refused by
/// a switched-off MDE API: that one fails alone with the API's answer, the others read the MDE
/// API; `status`, `auth check` and `config check` each say the shared situation once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_auto_tenants_in_one_situation_are_warned_once_and_fail_alone() {
    let env = Env::many_tenants(3, 40, 86, auto()).await;
    env.sim.set_graph_roles(&[]);
    env.sim.set_tenant_fault(
        &mde_sim::tenant_id(7),
        Some(mde_sim::TenantFault::MdeRetired(Retired::Gone)),
    );
    let out = run(&env, &["poll"]).await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    let store = stored(&env.store_path());
    assert_eq!(store.len(), 39 * 3, "every tenant but sim-0007");
    let out = run(&env, &["status"]).await;
    let status_text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{status_text}");
    assert_eq!(
        status_text
            .matches("holds no Microsoft Graph permission")
            .count(),
        1,
        "{status_text}"
    );
    let out = run(&env, &["auth", "check"]).await;
    let auth_text = String::from_utf8_lossy(&out.stdout).into_owned();
    let warnings: Vec<&str> = auth_text
        .lines()
        .filter(|l| l.starts_with("warning"))
        .collect();
    eprintln!("{warnings:#?}");
    assert_eq!(
        auth_text
            .matches("holds no Microsoft Graph permission")
            .count(),
        1,
        "{auth_text}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("and 35 more")),
        "forty names are not listed one by one: {warnings:#?}"
    );
    let out = run(&env, &["config", "check"]).await;
    let check_text = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("{check_text}");
    assert_eq!(
        check_text
            .matches("holds no Microsoft Graph permission")
            .count(),
        1,
        "{check_text}"
    );
}

/// An Entra that refuses the Graph sign-in (AADSTS65001, an auto tenant's cue to read the MDE
/// API) and echoes the request, client secret included: the secret reaches neither the recorded
/// choice nor `poll`, `status` or `config check`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_echoed_secret_in_a_refused_graph_sign_in_reaches_no_output_or_store() {
    let env = Env::new(sim_config(20, 89, Hazards::default()), auto()).await;
    let entra = crate::hostile::hostile(|_| crate::hostile::Answer::Fixed {
        status: 400,
        headers: vec![("Content-Type", "application/json".into())],
        body: r#"{"error":"invalid_grant","error_description":"AADSTS65001: The user or administrator has not consented. You sent: {BODY}","error_codes":[65001]}"#.into(),
    })
    .await;
    env.edit_config(|c| c.tenants[0].login_url = Some(entra.url.clone()));
    let secret = mde_sim::DEMO_CLIENT_SECRET;
    let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let mut said = String::new();
    for args in [
        &["poll"][..],
        &["status", "--json"],
        &["status"],
        &["config", "check"],
    ] {
        let out = run(&env, args).await;
        said.push_str(&String::from_utf8_lossy(&out.stdout));
        said.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    let c = choice(&env).unwrap();
    assert_eq!(c.reason, "graph_sign_in_failed", "{c:?}");
    said.push_str(&c.detail);
    assert!(said.contains("AADSTS65001"), "{said}");
    for s in [secret, encoded.as_str()] {
        assert!(!said.contains(s), "the secret leaked: {said}");
    }
}

/// SIGKILL at random instants while an auto tenant moves between the two APIs at random (the
/// permission granted and removed between runs, the MDE API refusing now and then) as alerts
/// change: at the end, on either API, every alert is stored once in its latest state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_polls_moving_between_apis_lose_nothing_and_store_nothing_twice() {
    use rand::{Rng, SeedableRng};
    let mut cfg = sim_config(
        600,
        90,
        Hazards {
            late_fraction: 0.2,
            late_delay: std::time::Duration::from_millis(800),
            ..Hazards::default()
        },
    );
    cfg.token_lifetime = std::time::Duration::from_secs(2);
    let env = Env::new(
        cfg,
        Opts {
            page_size: 100,
            overlap: "30s",
            ..auto()
        },
    )
    .await;
    let mutator = env
        .sim
        .spawn_mutator(std::time::Duration::from_millis(5), 2, 1);
    let mut rng = rand::rngs::StdRng::seed_from_u64(9090);
    let (mut killed, mut moves) = (0, 0);
    let mut on_graph = true;
    for _ in 0..24 {
        if rng.random_bool(0.5) {
            on_graph = !on_graph;
            moves += 1;
            env.sim.set_graph_roles(if on_graph {
                &["SecurityAlert.Read.All"]
            } else {
                &[]
            });
        }
        env.sim
            .set_mde_retired((on_graph && rng.random_bool(0.3)).then_some(Retired::Gone));
        let mut child = tokio::process::Command::new(bin())
            .arg("--config")
            .arg(&env.config_path)
            .arg("poll")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let life = std::time::Duration::from_millis(rng.random_range(5..300));
        if tokio::time::timeout(life, child.wait()).await.is_err() {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
            killed += 1;
        }
    }
    assert!(killed >= 5 && moves >= 5, "{killed} kills, {moves} moves");
    drop(mutator);
    settle(&env.sim).await;
    env.sim.set_mde_retired(None);
    // Ending on the MDE API, which serves every alert: all of them, in their latest state.
    env.sim.set_graph_roles(&[]);
    let s = poll_job::poll(&env.config(), None, false).await.unwrap();
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    assert_matches_truth(&env);
    // And once more on Graph, after changes: nothing doubled, nothing Graph serves left stale.
    env.sim.set_graph_roles(&["SecurityAlert.Read.All"]);
    env.sim.update_random(30);
    // A fifth of the changes become visible late: one poll can read only what is visible, and
    // the truth holds every version, so the poll waits until they all are.
    settle(&env.sim).await;
    let s = poll_job::poll(&env.config(), None, false).await.unwrap();
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    assert_eq!(s.apis[0].1.api, mde_alerts::config::SourceKind::Graph);
    assert_one_latest_row_per_alert(&env);
}

/// A wrong client secret fails every API's sign-in alike: an auto tenant does not go to the MDE
/// API for it, and no warning tells the admin to grant a Graph permission the app may well hold.
/// The poll fails with Entra's code and the fix for the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_not_taken_for_a_missing_graph_permission() {
    let env = Env::new(sim_config(20, 94, Hazards::default()), auto()).await;
    std::fs::write(env.path().join("secret"), "not-the-secret-value").unwrap();
    let out = run(&env, &["poll"]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("AADSTS7000215"), "{t}");
    assert!(t.contains("  fix: "), "{t}");
    assert!(!t.contains("SecurityAlert.Read.All"), "{t}");
    let st = env.sim.stats();
    assert_eq!((st.alert_calls, st.graph_calls), (0, 0), "{t}");
    let status = status(&env).await;
    assert_ne!(status["api"], "mde", "{status}");
    assert_eq!(status["api_reason"], "sign_in_failed", "{status}");
    assert!(
        status["warnings"].as_array().is_none_or(|w| w.is_empty()),
        "{status}"
    );
}
