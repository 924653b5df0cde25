//! Microsoft Graph `security/alerts_v2` as a source, against the simulator's Graph (the same world
//! as its `/api/alerts`): the pager's guarantees in every `$orderby` mode, the `services` filter,
//! a switch from the MDE API, tokens that go only to the configured host, and the config and
//! `auth check` messages of a Graph tenant.

use std::time::Duration;

use crate::support::*;
use mde_alerts::poll::Quirk;
use mde_alerts::poll_job;
use mde_alerts::store::Store;
use mde_sim::{GraphOrderBy, Hazards, SimConfig, Simulator};

const ENDPOINT: &[&str] = &["microsoftDefenderForEndpoint"];

fn graph() -> Opts {
    Opts {
        graph: true,
        ..Opts::default()
    }
}

/// Asserts that the store holds exactly Graph's alerts of `services`, each once, in its latest state.
#[track_caller]
fn assert_matches_graph(env: &Env, services: &[&str]) {
    let d = diff(&stored(&env.store_path()), &env.sim.graph_truth(services));
    assert!(d.is_clean(), "{d:?}");
}

/// The moving world, read through Graph with `$orderby` honoured, refused and silently ignored:
/// 0 missing, 0 stale, 0 duplicated each time, and every request asked for unknown enum members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_polls_lose_nothing_in_every_orderby_mode() {
    for (seed, mode) in [
        (31, GraphOrderBy::Supported),
        (32, GraphOrderBy::Refused),
        (33, GraphOrderBy::Ignored),
    ] {
        let hazards = Hazards {
            mutate_per_page: 4,
            late_fraction: 0.1,
            late_delay: Duration::from_millis(300),
            graph_orderby: mode,
            ..Hazards::default()
        };
        let env = Env::new(sim_config(500, seed, hazards), graph()).await;
        let config = env.config();
        let s = poll_job::poll(&config, None, false).await.unwrap();
        assert!(s.failed.is_empty(), "{mode:?}: {:?}", s.failed);
        env.sim.update_random(40);
        env.sim.create(10);
        poll_job::poll(&config, None, false).await.unwrap();
        // The world stops moving; late versions become visible; one more poll collects them.
        env.sim.set_hazards(Hazards {
            graph_orderby: mode,
            ..Hazards::default()
        });
        settle(&env.sim).await;
        let s = poll_job::poll(&config, None, false).await.unwrap();
        assert!(s.failed.is_empty(), "{mode:?}: {:?}", s.failed);
        assert_matches_graph(&env, ENDPOINT);
        assert_eq!(
            env.sim.stats().graph_without_prefer,
            0,
            "every Graph request says Prefer: include-unknown-enum-members"
        );
        assert_eq!(
            env.sim.stats().alert_calls,
            0,
            "a Graph tenant never calls /api/alerts"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_graph_poll_costs_one_call() {
    let env = Env::new(sim_config(300, 34, Hazards::default()), graph()).await;
    let config = env.config();
    poll_job::poll(&config, None, false).await.unwrap();
    let before = env.sim.stats().graph_calls;
    let s = poll_job::poll(&config, None, false).await.unwrap();
    assert_eq!(env.sim.stats().graph_calls - before, 1);
    assert_eq!(s.ok[0].api_calls, 1);
}

/// `services` left out keeps other Defender products out; `["all"]` brings them in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_default_keeps_other_products_out_and_all_brings_them_in() {
    let env = Env::new(sim_config(400, 35, Hazards::default()), graph()).await;
    poll_job::poll(&env.config(), None, false).await.unwrap();
    let stored_ids = stored(&env.store_path());
    let others = env.sim.graph_truth(&[]).len() - env.sim.graph_truth(ENDPOINT).len();
    assert!(
        others > 10,
        "the simulator has other products' alerts ({others})"
    );
    assert_matches_graph(&env, ENDPOINT);
    assert!(
        stored_ids.keys().all(|id| id.starts_with("da")),
        "only endpoint alerts"
    );

    env.rewrite(&Opts {
        services: Some(vec!["all".into()]),
        ..graph()
    });
    poll_job::poll(&env.config(), None, false).await.unwrap();
    assert_matches_graph(&env, &[]);
}

/// A store filled through the MDE API; the tenant switches to Graph while alerts change: every
/// alert is there once afterwards, in its latest state, and the cursor carried over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_from_mde_to_graph_keeps_one_row_per_alert() {
    let mde = Opts {
        exports: true,
        ..Opts::default()
    };
    let env = Env::new(sim_config(600, 36, Hazards::default()), mde.clone()).await;
    poll_job::poll(&env.config(), None, true).await.unwrap();
    let (header_before, rows_before) = csv_rows(&env);
    assert_matches_truth(&env);
    let before = Store::open(&env.store_path())
        .unwrap()
        .cursor("t1")
        .unwrap();
    env.sim.update_random(50);
    env.sim.create(20);
    env.rewrite(&Opts { graph: true, ..mde });
    let s = poll_job::poll(&env.config(), None, true).await.unwrap();
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    // One row per alert, each in its latest state: alerts read through Graph since the switch are
    // as Graph has them; alerts unchanged since are still their last MDE version (the same
    // instant); those Graph leaves out (tuned, standalone) keep their MDE version.
    let stored = stored(&env.store_path());
    let mde_truth = env.sim.truth(false);
    assert_eq!(stored.len(), mde_truth.len(), "one row per alert");
    // Graph cannot bring the changes of alerts it leaves out: that is what `compare` shows.
    let mde_only: std::collections::HashSet<String> = env.sim.mde_only_ids().into_iter().collect();
    for t in mde_truth.iter().filter(|t| !mde_only.contains(&t.id)) {
        let (time, _) = &stored[&t.id];
        assert_eq!(
            time.ticks(),
            t.last_update,
            "{} is in its latest state",
            t.id
        );
    }
    let mut via_graph = 0;
    for g in env.sim.graph_truth(ENDPOINT) {
        let (_, json) = &stored[&g.id];
        if json.get("lastUpdateDateTime").is_some() {
            assert_eq!(*json, g.json, "{}", g.id);
            via_graph += 1;
        }
    }
    assert!(
        via_graph >= 60,
        "the changed alerts came through Graph ({via_graph})"
    );

    // The default CSV keeps its header, and a row read through Graph says what the MDE API would
    // have said of the same version: the same vocabulary, times, device and title.
    let (header_after, after) = csv_rows(&env);
    assert_eq!(
        header_after, header_before,
        "the default CSV header is unchanged"
    );
    let col = |name: &str| header_after.iter().position(|h| h == name).unwrap();
    let truth: std::collections::HashMap<&str, &serde_json::Value> =
        mde_truth.iter().map(|t| (t.id.as_str(), &t.json)).collect();
    let mut checked = 0;
    for (id, row) in &after {
        let Some(old) = rows_before.get(id) else {
            continue;
        };
        if stored[id].1.get("lastUpdateDateTime").is_none() {
            continue;
        }
        let t = truth[id.as_str()];
        for k in [
            "status",
            "severity",
            "classification",
            "determination",
            "detectionSource",
            "investigationState",
        ] {
            assert_eq!(row[col(k)], t[k].as_str().unwrap_or(""), "{id} {k}");
        }
        for k in [
            "alertCreationTime",
            "computerDnsName",
            "title",
            "category",
            "machineId",
        ] {
            assert_eq!(row[col(k)], old[col(k)], "{id} {k} in the same format");
        }
        let updated = &row[col("lastUpdateTime")];
        assert_eq!(
            updated.len(),
            old[col("lastUpdateTime")].len(),
            "{id}: {updated}"
        );
        checked += 1;
    }
    assert!(checked >= 50, "{checked} rows compared");
    let store = Store::open(&env.store_path()).unwrap();
    let after = store.cursor("t1").unwrap();
    assert!(after >= before, "the cursor carried over");
    let graph_revs: i64 = store
        .connection()
        .query_row(
            "SELECT count(*) FROM alert_revisions WHERE api = 'graph'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        graph_revs > 0,
        "revisions record the API that returned them"
    );
    assert_eq!(store.cursor_api("t1").unwrap().as_deref(), Some("graph"));
}

/// The default CSV export's header and its rows by id.
fn csv_rows(env: &Env) -> (Vec<String>, std::collections::HashMap<String, Vec<String>>) {
    let mut r = csv::Reader::from_path(env.path().join("exports/alerts-latest.csv")).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
    let id = header.iter().position(|h| h == "id").unwrap();
    let rows = r
        .records()
        .map(|rec| {
            let rec: Vec<String> = rec.unwrap().iter().map(str::to_owned).collect();
            (rec[id].clone(), rec)
        })
        .collect();
    (header, rows)
}

/// More alerts share one instant and one creation time than `$skip` (at most 500) can page
/// through: the pager follows `@odata.nextLink` — and only on the configured host. A link to
/// another host is never followed: that host sees no request at all, let alone a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_link_is_followed_only_on_the_configured_host() {
    let foreign = Simulator::start(SimConfig::default(), 0).await.unwrap();
    for hostile in [false, true] {
        let hazards = Hazards {
            graph_foreign_next_link: hostile,
            graph_foreign_host: Some(foreign.url()),
            ..Hazards::default()
        };
        let env = Env::new(
            sim_config(0, 37, hazards),
            Opts {
                page_size: 100,
                ..graph()
            },
        )
        .await;
        let t = "2026-11-30T10:00:00.0000000Z";
        for i in 0..750 {
            env.sim.put_alert(serde_json::json!({
                "id": format!("da{i:06}_shared"),
                "lastUpdateTime": t,
                "alertCreationTime": t,
                "status": "New",
                "severity": "High",
                "title": "one of a batch",
            }));
        }
        let s = poll_job::poll(&env.config(), None, false).await.unwrap();
        if hostile {
            assert_eq!(
                s.failed.len(),
                1,
                "the poll cannot finish without a usable link"
            );
            assert!(
                s.failed[0].1.to_string().contains("nextLink"),
                "the error says why: {}",
                s.failed[0].1
            );
        } else {
            assert!(s.failed.is_empty(), "{:?}", s.failed);
            // Graph leaves out a few (tuned or standalone alerts): compare with what it has.
            assert_matches_graph(&env, ENDPOINT);
            assert!(env.sim.graph_truth(ENDPOINT).len() > 700);
        }
    }
    assert!(
        foreign.requests().is_empty(),
        "the foreign host was never called: {:?}",
        foreign.requests()
    );
}

/// Config errors of a Graph tenant name their key (exit 78).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_config_errors_name_the_key() {
    let env = Env::new(sim_config(1, 38, Hazards::default()), graph()).await;
    for (edit, key) in [
        (
            Box::new(|c: &mut mde_alerts::config::raw::RawConfig| {
                c.tenants[0].services = Some(vec!["microsoftDefenderForEndpiont".into()]);
            }) as Box<dyn Fn(&mut _)>,
            "tenants[0].services",
        ),
        (
            Box::new(|c: &mut mde_alerts::config::raw::RawConfig| {
                c.tenants[0].region = Some(mde_alerts::config::Region::Eu);
            }),
            "tenants[0].region",
        ),
        (
            // A Graph root with the API version must fail `config check`: every request would
            // go to /v1.0/v1.0/security/alerts_v2.
            Box::new(|c: &mut mde_alerts::config::raw::RawConfig| {
                c.tenants[0].graph_url = Some("https://graph.microsoft.com/v1.0".into());
            }),
            "tenants[0].graph_url",
        ),
    ] {
        let mut raw = config::base(&env.sim, &graph());
        edit(&mut raw);
        std::fs::write(&env.config_path, config::to_toml(&raw)).unwrap();
        let out = run(&env, &["config", "check"]).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{err}");
        assert!(err.contains(key), "{err}");
    }
}

/// `auth check` on a Graph tenant: the Graph audience, and when SecurityAlert.Read.All is
/// missing, exactly what to grant; MDE tenants are warned of the switch-off date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_check_explains_graph_permission_and_warns_mde_tenants() {
    let mut sim = sim_config(5, 39, Hazards::default());
    sim.identity.graph_roles = Vec::new();
    let env = Env::new(sim, graph()).await;
    let out = run(&env, &["auth", "check"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("https://graph.microsoft.com"), "{text}");
    assert!(
        text.contains("Microsoft Graph → Application permissions → SecurityAlert.Read.All"),
        "{text}"
    );
    assert!(text.contains("alerts_v2?$top=1"), "{text}");

    env.rewrite(&Opts::default());
    let out = run(&env, &["config", "check"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2027-02-01") && err.contains("source = \"graph\""),
        "{err}"
    );
}

/// `compare` shows what a switch changes: the alerts alerts_v2 leaves out, by id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_lists_what_only_one_api_returns() {
    let mut sim = sim_config(500, 40, Hazards::default());
    sim.mde_only_share = 0.05;
    let env = Env::new(sim, Opts::default()).await;
    let out = run(&env, &["compare", "--since", "30d", "--json"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let t = &v["tenants"][0];
    let mut only: Vec<String> = t["only_in_mde"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect();
    only.sort();
    let mut expected = env.sim.mde_only_ids();
    expected.sort();
    assert!(!expected.is_empty());
    assert_eq!(only, expected);
    assert_eq!(t["only_in_graph"].as_array().unwrap().len(), 0);
    assert_eq!(
        t["mde"]["alerts"].as_u64().unwrap() - t["graph"]["alerts"].as_u64().unwrap(),
        expected.len() as u64
    );
    assert!(
        !env.store_path().exists(),
        "compare does not touch (or create) the store"
    );
    // The header and the counts read as words: "the last 30 days", "(1 API call)".
    let out = run(&env, &["compare", "--since", "30d"]).await;
    let plain = String::from_utf8_lossy(&out.stdout);
    assert!(plain.contains("tenant t1: the last 30 days"), "{plain}");
    assert!(
        !plain.contains("30days") && !plain.contains("(1 API calls)"),
        "{plain}"
    );
}

/// Graph answering the undocumented `createdDateTime eq null` with 400 "Invalid filter clause":
/// an instant shared by more alerts than a page is read whole instead (by `$skip` and
/// `@odata.nextLink`), every poll ends `Ok`, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_null_comparison_loses_nothing_and_never_stalls() {
    let hazards = Hazards {
        graph_null_refused: true,
        ..Hazards::default()
    };
    let opts = Opts {
        page_size: 20,
        ..graph()
    };
    let env = Env::new(sim_config(200, 35, hazards), opts).await;
    let config = env.config();
    let s = poll_job::poll(&config, None, false).await.unwrap();
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    // 90 alerts at one new instant: more than four pages.
    env.sim.update_random(90);
    for _ in 0..2 {
        let s = poll_job::poll(&config, None, false).await.unwrap();
        assert!(s.failed.is_empty(), "{:?}", s.failed);
        assert_eq!(
            s.ok[0].outcome,
            mde_alerts::store::Outcome::Ok,
            "{}",
            s.ok[0]
        );
    }
    assert_matches_graph(&env, ENDPOINT);
    assert!(
        s_quirks(&config).await.contains(&Quirk::NullRefused),
        "the refusal is said"
    );
}

/// The quirks one more poll meets.
async fn s_quirks(config: &mde_alerts::config::Config) -> Vec<Quirk> {
    let s = poll_job::poll(config, None, false).await.unwrap();
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    s.ok[0].quirks.clone()
}

/// A poll's deadline used to bound only its waits: with budget to spare no call waited, and a
/// poll ran far past its schedule. Every call now checks it: a poll whose deadline has passed
/// makes no call and stops `Stalled`, not `Ok`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_checks_the_deadline_not_only_every_wait() {
    use mde_alerts::poll::{PollSettings, poll_tenant};
    use mde_alerts::source::client::ApiSource;
    use std::sync::{Arc, Mutex};

    let env = Env::new(sim_config(50, 36, Hazards::default()), graph()).await;
    let config = env.config();
    let t = &config.tenants[0];
    let http = mde_alerts::http::client(Duration::from_secs(20), &config.http).unwrap();
    let tokens = Arc::new(
        mde_alerts::auth::TokenProvider::new(
            http.clone(),
            t,
            mde_alerts::config::SourceKind::Graph,
        )
        .unwrap(),
    );
    let store = Arc::new(Mutex::new(Store::open(&env.store_path()).unwrap()));
    let budget = Arc::new(mde_alerts::budget::Budget::new(100_000, 1_000_000, []));
    let source = ApiSource::graph(http, &t.graph_url, tokens, t.services.clone(), budget)
        .with_deadline(Some(tokio::time::Instant::now()));
    let settings = PollSettings {
        overlap: Duration::from_secs(600),
        initial_lookback: Duration::from_secs(86_400),
        page_size: 100,
    };
    let before = env.sim.stats().graph_calls;
    let r = poll_tenant(&source, &store, "t1", settings).await.unwrap();
    assert_eq!(env.sim.stats().graph_calls, before, "{r}");
    assert_eq!(r.outcome, mde_alerts::store::Outcome::Stalled, "{r}");
}
