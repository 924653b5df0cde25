//! The many-tenant mode over HTTP: any GUID a tenant, tokens bound to their tenant, worlds made
//! lazily and kept apart, quotas, counters and failures per tenant, determinism.

mod common;

use std::time::Duration;

use base64::Engine;
use common::{Reply, form, http};
use mde_sim::{
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, GRAPH_ROOT, Hazards, RESOURCE, SimConfig, Simulator,
    TenantFault, TenantMode, TenantPick, tenant_id,
};
use serde_json::Value;

fn many(alerts_per_tenant: usize, seed: u64) -> SimConfig {
    SimConfig {
        initial_alerts: 5,
        seed,
        tenants: TenantMode::Many { alerts_per_tenant },
        ..SimConfig::default()
    }
}

/// The token endpoint's answer for `tenant` (v1, for Defender's resource or Graph's).
async fn sign_in(sim: &Simulator, tenant: &str, graph: bool) -> Reply {
    let resource = if graph { GRAPH_ROOT } else { RESOURCE };
    http(
        sim.addr,
        "POST",
        &format!("/{tenant}/oauth2/token"),
        vec![],
        Some(form(&[
            ("client_id", DEMO_CLIENT_ID),
            ("client_secret", DEMO_CLIENT_SECRET),
            ("resource", resource),
            ("grant_type", "client_credentials"),
        ])),
    )
    .await
}

async fn token(sim: &Simulator, tenant: &str, graph: bool) -> String {
    let r = sign_in(sim, tenant, graph).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["access_token"].as_str().unwrap().to_owned()
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn get(sim: &Simulator, tok: &str, target: &str) -> Reply {
    let h = vec![("Authorization".to_owned(), format!("Bearer {tok}"))];
    http(sim.addr, "GET", target, h, None).await
}

/// `/api/alerts` of the token's tenant, all of it.
async fn alerts(sim: &Simulator, tok: &str) -> Vec<Value> {
    let r = get(sim, tok, "/api/alerts").await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["value"].as_array().unwrap().clone()
}

fn ids(v: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = v
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_token_carries_its_tenant_and_reads_only_that_tenants_world() {
    let sim = Simulator::start(many(20, 3), 0).await.unwrap();
    let (a, b) = (
        tenant_id(1),
        "0C2F3A4B-1111-4222-8333-944455556666".to_owned(),
    );
    let (ta, tb) = (token(&sim, &a, false).await, token(&sim, &b, false).await);
    assert_eq!(claims(&ta)["tid"], a.as_str());
    assert_eq!(claims(&tb)["tid"], b.to_ascii_lowercase().as_str());
    assert_eq!(
        claims(&ta)["iss"],
        format!("https://sts.windows.net/{a}/").as_str()
    );

    let (va, vb) = (alerts(&sim, &ta).await, alerts(&sim, &tb).await);
    assert_eq!((va.len(), vb.len()), (20, 20));
    assert!(va.iter().all(|x| x["aadTenantId"] == a.as_str()));
    assert!(
        vb.iter()
            .all(|x| x["aadTenantId"] == b.to_ascii_lowercase().as_str())
    );
    let (ia, ib) = (ids(&va), ids(&vb));
    assert!(ia.iter().all(|id| !ib.contains(id)), "worlds share alerts");
    let truth: Vec<String> = sim
        .tenant_truth(&a, false)
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ia, truth);

    // Graph sees the same tenant's world, never the home tenant's nor another's.
    let g = token(&sim, &a, true).await;
    let r = get(&sim, &g, "/v1.0/security/alerts_v2?$top=1000").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let graph = r.json()["value"].as_array().unwrap().clone();
    assert!(!graph.is_empty());
    assert!(graph.iter().all(|x| x["tenantId"] == a.as_str()));
    // The home tenant keeps its own world.
    let home = token(&sim, mde_sim::DEMO_TENANT_ID, false).await;
    assert_eq!(alerts(&sim, &home).await.len(), 5);
}

#[tokio::test]
async fn tenants_are_made_on_first_use_and_asking_the_oracle_makes_none() {
    let sim = Simulator::start(many(20, 1), 0).await.unwrap();
    assert!(sim.tenants_in_use().is_empty());
    assert_eq!(sim.tenant_truth(&tenant_id(7), false).len(), 20);
    assert!(sim.tenants_in_use().is_empty(), "the oracle made a tenant");
    token(&sim, &tenant_id(7), false).await;
    token(&sim, &tenant_id(8), false).await;
    assert_eq!(sim.tenants_in_use(), vec![tenant_id(7), tenant_id(8)]);
    // What is stored for a tenant nobody changed: its starting alerts are regenerated.
    let t = token(&sim, &tenant_id(7), false).await;
    assert_eq!(alerts(&sim, &t).await.len(), 20);
    assert_eq!(alerts(&sim, &t).await, alerts(&sim, &t).await);
}

#[tokio::test]
async fn not_a_guid_is_no_tenant_and_the_one_tenant_mode_knows_one() {
    let sim = Simulator::start(many(20, 1), 0).await.unwrap();
    let r = sign_in(&sim, "contoso", false).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error_codes"][0], 90002);
    assert!(sim.tenants_in_use().is_empty());

    let one = Simulator::start(SimConfig::default(), 0).await.unwrap();
    let r = sign_in(&one, &tenant_id(1), false).await;
    assert_eq!(r.json()["error_codes"][0], 90002, "{}", r.body);
}

#[tokio::test]
async fn each_tenant_has_its_own_quota_and_counters() {
    let cfg = SimConfig {
        hazards: Hazards {
            rate_limit: Some((2, 100)),
            ..Hazards::default()
        },
        ..many(3, 1)
    };
    let sim = Simulator::start(cfg, 0).await.unwrap();
    let (a, b) = (tenant_id(1), tenant_id(2));
    let ta = token(&sim, &a, false).await;
    let tb = token(&sim, &b, false).await;
    for _ in 0..2 {
        assert_eq!(get(&sim, &ta, "/api/alerts").await.status, 200);
    }
    let r = get(&sim, &ta, "/api/alerts").await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.headers.contains_key("retry-after"));
    // B's quota is untouched by A's calls.
    assert_eq!(get(&sim, &tb, "/api/alerts").await.status, 200);

    let (sa, sb) = (sim.tenant_stats(&a), sim.tenant_stats(&b));
    assert_eq!((sa.token_requests, sa.alert_calls, sa.throttled), (1, 3, 1));
    assert_eq!((sb.token_requests, sb.alert_calls, sb.throttled), (1, 1, 0));
    let total = sim.stats();
    assert_eq!((total.token_requests, total.alert_calls), (2, 4));
    assert_eq!(sim.tenant_stats(&tenant_id(3)), mde_sim::Stats::default());
}

#[tokio::test]
async fn a_tenant_failing_on_purpose_fails_alone() {
    let sim = Simulator::start(many(4, 1), 0).await.unwrap();
    let (a, b, c) = (tenant_id(1), tenant_id(2), tenant_id(3));
    let tb = token(&sim, &b, false).await;
    let tb_graph = token(&sim, &b, true).await;
    sim.set_tenant_fault(&a, Some(TenantFault::SignIn));
    sim.set_tenant_fault(&b, Some(TenantFault::Api(500)));

    let r = sign_in(&sim, &a, false).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["error_codes"][0], 7000215);
    assert_eq!(sim.tenant_stats(&a).tokens_issued, 0);

    let r = get(&sim, &tb, "/api/alerts").await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "InternalServerError");
    let r = get(&sim, &tb_graph, "/v1.0/security/alerts_v2").await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(sim.tenant_stats(&b).faults, 1);
    assert_eq!(sim.tenant_stats(&b).graph_faults, 1);

    // The others are untouched.
    let tc = token(&sim, &c, false).await;
    assert_eq!(alerts(&sim, &tc).await.len(), 4);
    assert_eq!(sim.tenant_stats(&c).faults, 0);

    // And a tenant recovers.
    sim.set_tenant_fault(&a, None);
    sim.set_tenant_fault(&b, None);
    token(&sim, &a, false).await;
    assert_eq!(alerts(&sim, &tb).await.len(), 4);
}

#[tokio::test]
async fn changes_in_one_tenant_stay_in_it() {
    let sim = Simulator::start(many(10, 1), 0).await.unwrap();
    let (a, b) = (tenant_id(1), tenant_id(2));
    let (ta, tb) = (token(&sim, &a, false).await, token(&sim, &b, false).await);
    let before_b = alerts(&sim, &tb).await;
    sim.create_in(&a, 2);
    sim.update_in(&a, 3);
    let after_a = alerts(&sim, &ta).await;
    assert_eq!(after_a.len(), 12);
    assert_eq!(sim.tenant_stats(&a).updates, 3);
    assert_eq!(alerts(&sim, &tb).await, before_b);
    // The oracle agrees with what is served.
    let truth: Vec<String> = sim
        .tenant_truth(&a, false)
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids(&after_a), truth);
    // The home tenant is untouched too.
    assert_eq!(sim.stats().updates, 3);

    // A mutator of given tenants changes only them.
    let before_updates = sim.tenant_stats(&a).updates;
    let m = sim.spawn_tenant_mutator(
        Duration::from_millis(20),
        TenantPick::These(vec![b.clone()]),
        1,
        1,
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    drop(m);
    assert!(alerts(&sim, &tb).await.len() > 10);
    assert_eq!(sim.tenant_stats(&a).updates, before_updates);
    assert_eq!(alerts(&sim, &ta).await.len(), 12);
}

#[tokio::test]
async fn worlds_are_a_function_of_the_seed_and_the_tenant() {
    let (s1, s2, s3) = (
        Simulator::start(many(20, 9), 0).await.unwrap(),
        Simulator::start(many(20, 9), 0).await.unwrap(),
        Simulator::start(many(20, 10), 0).await.unwrap(),
    );
    let summary = |sim: &Simulator, t: &str| -> Vec<(String, Value, Value)> {
        sim.tenant_truth(t, false)
            .into_iter()
            .map(|a| (a.id, a.json["title"].clone(), a.json["severity"].clone()))
            .collect()
    };
    let a = tenant_id(5);
    assert_eq!(summary(&s1, &a), summary(&s2, &a));
    assert_ne!(summary(&s1, &a), summary(&s3, &a));
    assert_ne!(summary(&s1, &a), summary(&s1, &tenant_id(6)));
    // Ids are unique across tenants.
    let mut all = std::collections::HashSet::new();
    for i in 0..100 {
        for t in s1.tenant_truth(&tenant_id(i), false) {
            assert!(all.insert(t.id), "an id in two tenants");
        }
    }
    assert_eq!(all.len(), 2000);
}

#[tokio::test]
async fn a_filtered_read_returns_what_the_whole_world_matches() {
    // Reads skip starting alerts their filter's time floor excludes without building them:
    // the answer must be the same as filtering the whole world.
    let sim = Simulator::start(many(40, 4), 0).await.unwrap();
    let a = tenant_id(4);
    let truth = sim.tenant_truth(&a, false);
    let mut times: Vec<i64> = truth.iter().map(|t| t.last_update).collect();
    times.sort();
    let median = &truth
        .iter()
        .find(|t| t.last_update == times[20])
        .unwrap()
        .json["lastUpdateTime"];
    let median = median.as_str().unwrap();
    let want: Vec<String> = {
        let mut v: Vec<String> = truth
            .iter()
            .filter(|t| t.last_update >= times[20])
            .map(|t| t.id.clone())
            .collect();
        v.sort();
        v
    };
    let tok = token(&sim, &a, false).await;
    let f = |filter: &str| format!("/api/alerts?{}", form(&[("$filter", filter)]));
    let r = get(&sim, &tok, &f(&format!("lastUpdateTime ge {median}"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let got = r.json()["value"].as_array().unwrap().clone();
    assert_eq!(ids(&got), want);
    // An `or` with a branch without a floor reads everything.
    let r = get(
        &sim,
        &tok,
        &f(&format!(
            "lastUpdateTime ge {median} or status eq 'New' or status ne 'New'"
        )),
    )
    .await;
    assert_eq!(r.json()["value"].as_array().unwrap().len(), 40);
    // Graph, in its names: the same as filtering all it serves.
    let g = token(&sim, &a, true).await;
    let graph_ids = |filter: Option<String>| {
        let mut q = vec![("$top".to_owned(), "1000".to_owned())];
        q.extend(filter.map(|f| ("$filter".to_owned(), f)));
        let target = format!(
            "/v1.0/security/alerts_v2?{}",
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(q)
                .finish()
        );
        let (sim, g) = (&sim, &g);
        async move {
            let r = get(sim, g, &target).await;
            assert_eq!(r.status, 200, "{}", r.body);
            ids(r.json()["value"].as_array().unwrap())
        }
    };
    let all = graph_ids(None).await;
    let filtered = graph_ids(Some(format!("lastUpdateDateTime ge {median}"))).await;
    let by_time: Vec<String> = sim
        .tenant_graph_truth(&a)
        .into_iter()
        .filter(|t| t.last_update >= times[20] && all.contains(&t.id))
        .map(|t| t.id)
        .collect();
    assert!(!filtered.is_empty() && filtered.len() < all.len());
    assert_eq!(filtered, by_time);
}
