//! Graph's `security/alerts_v2` over HTTP: order, paging, limits, filters, enums, tokens, the
//! oracle, and where requests went. A tiny HTTP/1.0 client keeps the crate free of reqwest.

mod common;

use std::collections::BTreeMap;

use common::{Reply, form, http};

use mde_sim::{
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_TENANT_ID, DEMO_USER, FaultKind,
    GRAPH_ROOT, GraphOrderBy, Hazards, RESOURCE, SimConfig, Simulator,
};
use serde_json::{Value, json};

/// A token from the v2 endpoint for `scope`, by client credentials.
async fn token(sim: &Simulator, scope: &str) -> String {
    let r = http(
        sim.addr,
        "POST",
        &format!("/{DEMO_TENANT_ID}/oauth2/v2.0/token"),
        vec![],
        Some(form(&[
            ("client_id", DEMO_CLIENT_ID),
            ("client_secret", DEMO_CLIENT_SECRET),
            ("scope", scope),
            ("grant_type", "client_credentials"),
        ])),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["access_token"].as_str().unwrap().to_owned()
}

async fn graph_token(sim: &Simulator) -> String {
    token(sim, &format!("{GRAPH_ROOT}/.default")).await
}

fn q(query: &[(&str, &str)]) -> String {
    format!("/v1.0/security/alerts_v2?{}", form(query))
}

async fn get(sim: &Simulator, tok: &str, target: &str, prefer: bool) -> Reply {
    let mut h = vec![("Authorization".to_owned(), format!("Bearer {tok}"))];
    if prefer {
        h.push((
            "Prefer".to_owned(),
            "include-unknown-enum-members".to_owned(),
        ));
    }
    http(sim.addr, "GET", target, h, None).await
}

/// Follows `@odata.nextLink` (on this simulator) to the end; the concatenated values.
async fn all_pages(sim: &Simulator, tok: &str, first: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut target = first.to_owned();
    for _ in 0..1000 {
        let r = get(sim, tok, &target, true).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let j = r.json();
        out.extend(j["value"].as_array().unwrap().iter().cloned());
        match j["@odata.nextLink"].as_str() {
            Some(link) => {
                let prefix = format!("http://{}", sim.addr);
                assert!(link.starts_with(&prefix), "{link}");
                target = link[prefix.len()..].to_owned();
            }
            None => return out,
        }
    }
    panic!("no end to the pages");
}

fn cfg(alerts: usize) -> SimConfig {
    SimConfig {
        initial_alerts: alerts,
        seed: 7,
        ..SimConfig::default()
    }
}

fn ids(v: &[Value]) -> Vec<String> {
    v.iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

fn assert_graph_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    let e = &r.json()["error"];
    assert_eq!(e["code"], code, "{}", r.body);
    assert!(e["message"].is_string());
    for k in ["date", "request-id", "client-request-id"] {
        assert!(e["innerError"][k].is_string(), "{k} in {}", r.body);
    }
}

#[tokio::test]
async fn default_order_is_newest_first_and_next_links_give_everything() {
    let sim = Simulator::start(cfg(120), 0).await.unwrap();
    let tok = graph_token(&sim).await;
    let first = get(&sim, &tok, "/v1.0/security/alerts_v2", true).await;
    let j = first.json();
    assert_eq!(
        j["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#security/alerts_v2"
    );
    assert_eq!(j["value"].as_array().unwrap().len(), 100, "default $top");
    assert!(j["@odata.nextLink"].is_string());
    let all = all_pages(&sim, &tok, &q(&[("$top", "7"), ("$count", "true")])).await;
    let truth = sim.graph_truth(&[]);
    assert_eq!(all.len(), truth.len());
    let mut got = ids(&all);
    // Newest first: createdDateTime descending, ties by id descending.
    let keys: Vec<(String, String)> = all
        .iter()
        .map(|a| {
            let t = chrono::DateTime::parse_from_rfc3339(a["createdDateTime"].as_str().unwrap())
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            (t, a["id"].as_str().unwrap().to_owned())
        })
        .collect();
    assert!(keys.windows(2).all(|w| w[0] > w[1]), "not newest first");
    got.sort();
    let want: Vec<String> = truth.iter().map(|t| t.id.clone()).collect();
    assert_eq!(got, want);
    // Graph-only alerts are there, MDE-only ones are not.
    assert!(
        all.iter()
            .any(|a| a["serviceSource"] != "microsoftDefenderForEndpoint")
    );
    for id in sim.mde_only_ids() {
        assert!(!got.contains(&id));
    }
}

#[tokio::test]
async fn orderby_asc_works_and_the_refused_and_ignored_modes_do_what_they_say() {
    let sim = Simulator::start(cfg(60), 0).await.unwrap();
    let tok = graph_token(&sim).await;
    let asc = all_pages(
        &sim,
        &tok,
        &q(&[("$orderby", "lastUpdateDateTime asc"), ("$top", "9")]),
    )
    .await;
    let times: Vec<i64> = asc
        .iter()
        .map(|a| {
            chrono::DateTime::parse_from_rfc3339(a["lastUpdateDateTime"].as_str().unwrap())
                .unwrap()
                .timestamp_nanos_opt()
                .unwrap()
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(asc.len(), sim.graph_truth(&[]).len());

    let newest = get(&sim, &tok, &q(&[("$top", "20")]), true).await.json();
    sim.set_hazards(Hazards {
        graph_orderby: GraphOrderBy::Ignored,
        ..Hazards::default()
    });
    let ignored = get(
        &sim,
        &tok,
        &q(&[("$orderby", "lastUpdateDateTime asc"), ("$top", "20")]),
        true,
    )
    .await
    .json();
    assert_eq!(
        ids(ignored["value"].as_array().unwrap()),
        ids(newest["value"].as_array().unwrap())
    );

    sim.set_hazards(Hazards {
        graph_orderby: GraphOrderBy::Refused,
        ..Hazards::default()
    });
    let r = get(
        &sim,
        &tok,
        &q(&[("$orderby", "lastUpdateDateTime asc")]),
        true,
    )
    .await;
    assert_graph_error(&r, 400, "BadRequest");
    assert!(r.body.contains("$orderby is not supported"));
    // /api/alerts still sorts: graph_orderby is Graph's alone.
    let mde = token(&sim, &format!("{RESOURCE}/.default")).await;
    let r = get(
        &sim,
        &mde,
        "/api/alerts?$orderby=lastUpdateTime%20asc&$top=3",
        false,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn top_above_1000_and_skip_above_500_are_refused_with_graphs_error_body() {
    let sim = Simulator::start(cfg(5), 0).await.unwrap();
    let tok = graph_token(&sim).await;
    for (query, status) in [
        (q(&[("$top", "1001")]), 400),
        (q(&[("$skip", "501")]), 400),
        (q(&[("$top", "1000"), ("$skip", "500")]), 200),
        (q(&[("$expand", "evidence")]), 400),
        (q(&[("$select", "id")]), 400),
        (q(&[("$filter", "investigationState eq 'Queued'")]), 400),
        (
            q(&[("$filter", "lastUpdateTime gt 2024-01-01T00:00:00Z")]),
            400,
        ),
        (q(&[("$skiptoken", "garbage")]), 400),
        (q(&[("top", "3")]), 200),
    ] {
        let r = get(&sim, &tok, &query, true).await;
        if status == 400 {
            assert_graph_error(&r, 400, "BadRequest");
        } else {
            assert_eq!(r.status, 200, "{query}: {}", r.body);
        }
    }
    let r = get(&sim, &tok, &q(&[("top", "3")]), true).await;
    assert_eq!(r.json()["value"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn service_source_filters_with_eq_or_and_in() {
    let sim = Simulator::start(cfg(80), 0).await.unwrap();
    let tok = graph_token(&sim).await;
    let ep = "microsoftDefenderForEndpoint";
    let o365 = "microsoftDefenderForOffice365";
    let count = |v: &[Value], s: &str| v.iter().filter(|a| a["serviceSource"] == s).count();
    let only_ep = all_pages(
        &sim,
        &tok,
        &q(&[
            ("$filter", &format!("serviceSource eq '{ep}'")),
            ("$top", "50"),
        ]),
    )
    .await;
    assert_eq!(only_ep.len(), count(&only_ep, ep));
    assert_eq!(only_ep.len(), sim.graph_truth(&[ep]).len());
    let both = format!("serviceSource eq '{ep}' or serviceSource eq '{o365}'");
    let both_in = format!("serviceSource in ('{ep}', '{o365}')");
    let a = all_pages(&sim, &tok, &q(&[("$filter", &both)])).await;
    let b = all_pages(&sim, &tok, &q(&[("$filter", &both_in)])).await;
    assert_eq!(ids(&a), ids(&b));
    assert_eq!(a.len(), sim.graph_truth(&[ep, o365]).len());
    assert!(count(&a, o365) > 0);
    // createdDateTime eq null matches nothing here; ne null everything.
    let none = get(
        &sim,
        &tok,
        &q(&[("$filter", "createdDateTime eq null")]),
        true,
    )
    .await;
    assert_eq!(none.json()["value"].as_array().unwrap().len(), 0);
    // Nothing Graph-only reaches /api/alerts or truth().
    assert!(sim.truth(false).iter().all(|t| t.id.starts_with("da")));
}

#[tokio::test]
async fn unknown_enum_members_need_the_prefer_header() {
    let mut c = cfg(3);
    c.mde_only_share = 0.0;
    let sim = Simulator::start(c, 0).await.unwrap();
    let mut a = sim.truth(true)[0].json.clone();
    a["id"] = "da999_1".into();
    a["severity"] = "Critical".into();
    a["status"] = "Escalated".into();
    sim.put_alert(a);
    let tok = graph_token(&sim).await;
    let target = "/v1.0/security/alerts_v2/da999_1";
    let plain = get(&sim, &tok, target, false).await;
    assert_eq!(plain.json()["severity"], "unknownFutureValue");
    assert_eq!(plain.json()["status"], "unknownFutureValue");
    let with = get(&sim, &tok, target, true).await;
    assert_eq!(with.json()["severity"], "critical");
    assert_eq!(with.json()["status"], "escalated");
    assert_eq!(
        with.headers.get("preference-applied").map(String::as_str),
        Some("include-unknown-enum-members")
    );
    assert_eq!(sim.stats().graph_without_prefer, 1);
    assert_eq!(sim.stats().graph_calls, 2);
    // A Graph-only alert put in Graph's shape is served as it is, and only by Graph.
    sim.put_alert(
        json!({"id": "fa0000", "serviceSource": "microsoftDefenderForOffice365",
        "lastUpdateDateTime": "2024-01-01T00:00:00Z", "createdDateTime": "2024-01-01T00:00:00Z",
        "status": "new"}),
    );
    assert_eq!(
        get(&sim, &tok, "/v1.0/security/alerts_v2/fa0000", true)
            .await
            .status,
        200
    );
    assert!(sim.truth(false).iter().all(|t| t.id != "fa0000"));
    assert!(
        sim.graph_truth(&["microsoftDefenderForOffice365"])
            .iter()
            .any(|t| t.id == "fa0000")
    );
    assert_graph_error(
        &get(&sim, &tok, "/v1.0/security/alerts_v2/nope", true).await,
        404,
        "NotFound",
    );
}

#[tokio::test]
async fn audience_and_role_are_checked_both_ways() {
    let sim = Simulator::start(cfg(3), 0).await.unwrap();
    let list = "/v1.0/security/alerts_v2";
    // A Defender token on Graph: 401; a Graph token on Defender: 403.
    let mde = token(&sim, &format!("{RESOURCE}/.default")).await;
    assert_graph_error(
        &get(&sim, &mde, list, true).await,
        401,
        "InvalidAuthenticationToken",
    );
    let graph = graph_token(&sim).await;
    let r = get(&sim, &graph, "/api/alerts", false).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "Forbidden");
    assert_eq!(get(&sim, &graph, list, true).await.status, 200);
    // No token, a forged one.
    let r = http(sim.addr, "GET", list, vec![], None).await;
    assert_graph_error(&r, 401, "InvalidAuthenticationToken");
    assert!(r.headers.contains_key("www-authenticate"));
    assert_graph_error(
        &get(&sim, "e30.e30.sig", list, true).await,
        401,
        "InvalidAuthenticationToken",
    );
    // The US Gov roots, and v1's resource.
    for root in [
        "https://graph.microsoft.us",
        "https://dod-graph.microsoft.us",
    ] {
        let t = token(&sim, &format!("{root}/.default")).await;
        assert_eq!(get(&sim, &t, list, true).await.status, 200, "{root}");
    }
    let r = http(
        sim.addr,
        "POST",
        &format!("/{DEMO_TENANT_ID}/oauth2/token"),
        vec![],
        Some(form(&[
            ("client_id", DEMO_CLIENT_ID),
            ("client_secret", DEMO_CLIENT_SECRET),
            ("resource", GRAPH_ROOT),
            ("grant_type", "client_credentials"),
        ])),
    )
    .await;
    assert_eq!(r.json()["resource"], GRAPH_ROOT);
    let t = r.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(get(&sim, &t, list, true).await.status, 200);
    // The password grant, for Graph's scope.
    let r = http(
        sim.addr,
        "POST",
        &format!("/{DEMO_TENANT_ID}/oauth2/v2.0/token"),
        vec![],
        Some(form(&[
            ("client_id", DEMO_CLIENT_ID),
            ("username", DEMO_USER),
            ("password", DEMO_PASSWORD),
            ("scope", &format!("{GRAPH_ROOT}/.default offline_access")),
            ("grant_type", "password"),
        ])),
    )
    .await;
    let t = r.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(get(&sim, &t, list, true).await.status, 200);

    // An app without the Graph permission: 403 with Graph's message.
    let mut c = cfg(3);
    c.identity.graph_roles = Vec::new();
    let sim = Simulator::start(c, 0).await.unwrap();
    let t = graph_token(&sim).await;
    let r = get(&sim, &t, list, true).await;
    assert_graph_error(&r, 403, "Forbidden");
    assert!(r.body.contains("Missing application roles. API required roles: SecurityAlert.Read.All, SecurityAlert.ReadWrite.All"));
    assert_eq!(sim.stats().graph_forbidden, 1);
    // A simulator for one cloud refuses another cloud's token.
    let mut c = cfg(3);
    c.graph_audience = Some("https://graph.microsoft.us".into());
    let sim = Simulator::start(c, 0).await.unwrap();
    let t = graph_token(&sim).await;
    assert_graph_error(
        &get(&sim, &t, list, true).await,
        401,
        "InvalidAuthenticationToken",
    );
}

/// A naive ascending keyset client: `lastUpdateDateTime ge <cursor>`, ascending, every page of
/// the answer through `@odata.nextLink`, the cursor moved to the last instant read, until a
/// round brings nothing new; keeps the newest version of each alert.
#[tokio::test]
async fn graph_truth_is_what_an_ascending_keyset_client_reads() {
    let sim = Simulator::start(cfg(150), 0).await.unwrap();
    sim.update_random(40);
    sim.create(20);
    let tok = graph_token(&sim).await;
    let mut store: BTreeMap<String, Value> = BTreeMap::new();
    let mut cursor = "2000-01-01T00:00:00Z".to_owned();
    for round in 0.. {
        assert!(round < 50, "the client never settles");
        let pages = all_pages(
            &sim,
            &tok,
            &q(&[
                ("$filter", &format!("lastUpdateDateTime ge {cursor}")),
                ("$orderby", "lastUpdateDateTime asc"),
                ("$top", "25"),
            ]),
        )
        .await;
        let mut new = false;
        for a in &pages {
            let id = a["id"].as_str().unwrap().to_owned();
            new |= store.insert(id, a.clone()).as_ref() != Some(a);
        }
        if !new {
            break;
        }
        if let Some(last) = pages.last() {
            cursor = last["lastUpdateDateTime"].as_str().unwrap().to_owned();
        }
        // The world moves on between rounds.
        if round == 0 {
            sim.update_random(5);
        }
    }
    let truth = sim.graph_truth(&[]);
    assert_eq!(store.len(), truth.len());
    for t in truth {
        assert_eq!(store.get(&t.id), Some(&t.json), "{}", t.id);
    }
}

#[tokio::test]
async fn hazards_apply_to_graph_with_graphs_error_bodies() {
    let sim = Simulator::start(cfg(10), 0).await.unwrap();
    let tok = graph_token(&sim).await;
    let only = |k: FaultKind| Hazards {
        fault_rate: 1.0,
        fault_kinds: vec![k],
        retry_after_secs: 3,
        ..Hazards::default()
    };
    sim.set_graph_hazards(Some(only(FaultKind::TooManyRequests)));
    let r = get(&sim, &tok, "/v1.0/security/alerts_v2", true).await;
    assert_graph_error(&r, 429, "TooManyRequests");
    assert_eq!(r.headers.get("retry-after").map(String::as_str), Some("3"));
    // /api/alerts keeps its own (no) hazards.
    let mde = token(&sim, &format!("{RESOURCE}/.default")).await;
    assert_eq!(get(&sim, &mde, "/api/alerts", false).await.status, 200);
    sim.set_graph_hazards(Some(only(FaultKind::Unavailable)));
    assert_graph_error(
        &get(&sim, &tok, "/v1.0/security/alerts_v2", true).await,
        503,
        "ServiceUnavailable",
    );
    sim.set_graph_hazards(Some(only(FaultKind::Truncated)));
    let r = get(&sim, &tok, "/v1.0/security/alerts_v2", true).await;
    assert!(serde_json::from_str::<Value>(&r.body).is_err());
    sim.set_graph_hazards(Some(Hazards {
        rate_limit: Some((2, 100)),
        ..Hazards::default()
    }));
    for _ in 0..2 {
        assert_eq!(
            get(&sim, &tok, "/v1.0/security/alerts_v2", true)
                .await
                .status,
            200
        );
    }
    assert_graph_error(
        &get(&sim, &tok, "/v1.0/security/alerts_v2", true).await,
        429,
        "TooManyRequests",
    );
    assert_eq!(sim.stats().graph_throttled, 1);
    assert!(sim.stats().graph_faults >= 3);
}

#[tokio::test]
async fn a_foreign_next_link_and_the_request_log() {
    let other = Simulator::start(cfg(1), 0).await.unwrap();
    let sim = Simulator::start(cfg(30), 0).await.unwrap();
    sim.set_hazards(Hazards {
        graph_foreign_next_link: true,
        graph_foreign_host: Some(other.url()),
        ..Hazards::default()
    });
    let tok = graph_token(&sim).await;
    let r = get(&sim, &tok, &q(&[("$top", "5")]), true).await;
    let link = r.json()["@odata.nextLink"].as_str().unwrap().to_owned();
    assert!(
        link.starts_with(&format!("{}/v1.0/security/alerts_v2?", other.url())),
        "{link}"
    );
    // A well-behaved client follows it without a token (here: does not follow it at all).
    let _ = http(other.addr, "GET", &link[other.url().len()..], vec![], None).await;
    let seen = other.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1.0/security/alerts_v2");
    assert!(!seen[0].authorized);
    let mine = sim.requests();
    assert!(
        mine.iter()
            .any(|r| r.method == "POST" && r.path.ends_with("/oauth2/v2.0/token"))
    );
    assert!(
        mine.iter()
            .any(|r| r.path == "/v1.0/security/alerts_v2" && r.authorized)
    );
    // Without the hazard the link is on the host called.
    sim.set_hazards(Hazards::default());
    let r = get(&sim, &tok, &q(&[("$top", "5")]), true).await;
    let link = r.json()["@odata.nextLink"].as_str().unwrap().to_owned();
    assert!(link.starts_with(&format!("http://{}/", sim.addr)), "{link}");
}
