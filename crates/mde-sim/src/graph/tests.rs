//! The Graph view, tested as a pure function: every Defender field with a counterpart comes
//! back when a client rebuilds Defender's columns from Graph.

use serde_json::{Map, Value, json};

use super::view::{DETECTION_SOURCES, camel, graph_view, mask_unknown_enums};
use super::world::{GraphMaker, is_mde_only};
use crate::clock::sim_now;
use crate::generator::Generator;

/// PascalCase again: what a client does to get Defender's enum text back.
fn pascal(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

fn s(v: &Value, k: &str) -> Value {
    v.get(k).cloned().unwrap_or(Value::Null)
}

/// Rebuilds a Defender alert from its Graph view, the way the migration guide's table reads.
fn rebuild(g: &Value) -> Map<String, Value> {
    let mut m = Map::new();
    let enum_back = |v: Value| match v {
        Value::String(x) => Value::from(pascal(&x)),
        other => other,
    };
    m.insert("id".into(), s(g, "id"));
    m.insert(
        "incidentId".into(),
        g["incidentId"]
            .as_str()
            .and_then(|i| i.parse::<i64>().ok())
            .map_or(Value::Null, Value::from),
    );
    m.insert("assignedTo".into(), s(g, "assignedTo"));
    m.insert(
        "severity".into(),
        match g["severity"].as_str() {
            Some("unknown") => Value::from("UnSpecified"),
            _ => enum_back(s(g, "severity")),
        },
    );
    m.insert("status".into(), enum_back(s(g, "status")));
    m.insert("classification".into(), enum_back(s(g, "classification")));
    m.insert("determination".into(), enum_back(s(g, "determination")));
    m.insert(
        "investigationState".into(),
        enum_back(s(g, "investigationState")),
    );
    let ds = g["detectionSource"].as_str().unwrap_or_default();
    m.insert(
        "detectionSource".into(),
        Value::from(
            DETECTION_SOURCES
                .iter()
                .find(|(_, gr)| *gr == ds)
                .map_or_else(|| pascal(ds), |(mde, _)| (*mde).to_owned()),
        ),
    );
    for k in [
        "detectorId",
        "category",
        "threatFamilyName",
        "title",
        "description",
        "mitreTechniques",
    ] {
        m.insert(k.into(), s(g, k));
    }
    m.insert("threatName".into(), s(g, "threatDisplayName"));
    m.insert("alertCreationTime".into(), s(g, "createdDateTime"));
    m.insert("firstEventTime".into(), s(g, "firstActivityDateTime"));
    m.insert("lastEventTime".into(), s(g, "lastActivityDateTime"));
    m.insert("lastUpdateTime".into(), s(g, "lastUpdateDateTime"));
    m.insert("resolvedTime".into(), s(g, "resolvedDateTime"));
    m.insert("aadTenantId".into(), s(g, "tenantId"));
    let evidence = g["evidence"].as_array().cloned().unwrap_or_default();
    let of = |t: &'static str| {
        evidence
            .iter()
            .filter(move |e| e["@odata.type"] == format!("#microsoft.graph.security.{t}"))
    };
    let device = of("deviceEvidence").next().cloned().unwrap_or(Value::Null);
    m.insert("machineId".into(), s(&device, "mdeDeviceId"));
    m.insert("computerDnsName".into(), s(&device, "deviceDnsName"));
    m.insert("rbacGroupName".into(), s(&device, "rbacGroupName"));
    m.insert("loggedOnUsers".into(), s(&device, "loggedOnUsers"));
    m.insert(
        "relatedUser".into(),
        of("userEvidence").next().map_or(Value::Null, |u| {
            json!({"userName": u["userAccount"]["accountName"], "domainName": u["userAccount"]["domainName"]})
        }),
    );
    m.insert(
        "comments".into(),
        Value::Array(
            g["comments"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|c| json!({"comment": c["comment"], "createdBy": c["createdByDisplayName"], "createdTime": c["createdDateTime"]}))
                .collect(),
        ),
    );
    // Evidence items back in Defender's flat form (every key, null where it does not apply).
    let mut items = Vec::new();
    for e in &evidence {
        let t = e["@odata.type"].as_str().unwrap_or_default();
        let mut flat = json!({
            "evidenceCreationTime": e["createdDateTime"], "sha1": null, "sha256": null,
            "fileName": null, "filePath": null, "processId": null, "processCommandLine": null,
            "processCreationTime": null, "parentProcessId": null, "parentProcessCreationTime": null,
            "parentProcessFileName": null, "parentProcessFilePath": null, "ipAddress": null,
            "url": null, "registryKey": null, "registryHive": null, "registryValueType": null,
            "registryValue": null, "accountName": null, "domainName": null, "userSid": null,
            "aadUserId": null, "userPrincipalName": null, "detectionStatus": null,
        });
        let detection = match e["detectionStatus"].as_str() {
            Some(d) => Value::from(pascal(d)),
            None => Value::Null,
        };
        match t.rsplit('.').next().unwrap_or_default() {
            "userEvidence" => {
                let a = &e["userAccount"];
                flat["entityType"] = "User".into();
                flat["accountName"] = a["accountName"].clone();
                flat["domainName"] = a["domainName"].clone();
                flat["userSid"] = a["userSid"].clone();
                flat["aadUserId"] = a["azureAdUserId"].clone();
                flat["userPrincipalName"] = a["userPrincipalName"].clone();
            }
            "processEvidence" => {
                flat["entityType"] = "Process".into();
                for (mde, gr) in [
                    ("processId", "processId"),
                    ("parentProcessId", "parentProcessId"),
                    ("processCommandLine", "processCommandLine"),
                    ("processCreationTime", "processCreationDateTime"),
                    ("parentProcessCreationTime", "parentProcessCreationDateTime"),
                ] {
                    flat[mde] = e[gr].clone();
                }
                for k in ["sha1", "sha256", "fileName", "filePath"] {
                    flat[k] = e["imageFile"][k].clone();
                }
                flat["parentProcessFileName"] = e["parentProcessImageFile"]["fileName"].clone();
                flat["parentProcessFilePath"] = e["parentProcessImageFile"]["filePath"].clone();
                flat["detectionStatus"] = detection;
            }
            "fileEvidence" => {
                flat["entityType"] = "File".into();
                for k in ["sha1", "sha256", "fileName", "filePath"] {
                    flat[k] = e["fileDetails"][k].clone();
                }
                flat["detectionStatus"] = detection;
            }
            _ => continue,
        }
        items.push(flat);
    }
    m.insert("evidence".into(), Value::Array(items));
    m
}

/// Defender's fields that Graph has no counterpart for.
const NO_COUNTERPART: [&str; 4] = [
    "investigationId",
    "threatFamily",
    "domains",
    "futureInsight",
];

#[test]
fn every_defender_field_with_a_counterpart_survives_the_round_trip() {
    let mut g = Generator::new(11, crate::DEMO_TENANT_ID);
    let now = sim_now();
    let mut seen_comment = false;
    for i in 0..300 {
        let (_, mut a) = g.new_alert(now - 10_000_000 * 3600, now - 10_000_000 * 60);
        for k in 0..(i % 5) {
            g.change(&mut a, now + k);
        }
        seen_comment |= a["comments"].as_array().is_some_and(|c| !c.is_empty());
        let graph = graph_view(&Value::Object(a.clone()));
        let back = rebuild(&graph);
        for (k, v) in &a {
            if NO_COUNTERPART.contains(&k.as_str()) {
                assert!(!back.contains_key(k));
                continue;
            }
            assert_eq!(
                back.get(k),
                Some(v),
                "field {k} of alert {i}: graph {graph:#}"
            );
        }
        // And Graph's own fields.
        assert_eq!(graph["providerAlertId"], a["id"]);
        assert!(graph["incidentId"].is_string());
        assert_eq!(graph["serviceSource"], "microsoftDefenderForEndpoint");
        assert_eq!(graph["productName"], "Microsoft Defender for Endpoint");
        assert_eq!(
            graph["alertWebUrl"],
            format!(
                "https://security.microsoft.com/alerts/{}?tid={}",
                a["id"].as_str().unwrap(),
                crate::DEMO_TENANT_ID
            )
        );
        assert!(graph["evidence"][0]["osPlatform"].is_string());
    }
    assert!(seen_comment);
}

#[test]
fn enums_are_camel_case_and_new_members_need_the_prefer_header() {
    assert_eq!(camel("InProgress"), "inProgress");
    assert_eq!(camel("TruePositive"), "truePositive");
    assert_eq!(camel("MTP"), "mtp");
    assert_eq!(camel("ThirdPartySensors"), "thirdPartySensors");
    assert_eq!(camel("AADThing"), "aadThing");
    assert_eq!(camel(""), "");
    let a = json!({
        "id": "da1_2", "status": "SomeFutureStatus", "severity": "Critical",
        "classification": "InformationalExpectedActivity", "determination": "ConfirmedActivity",
        "detectionSource": "ThirdPartySensors", "lastUpdateTime": "2024-01-01T00:00:00Z",
        "alertCreationTime": "2024-01-01T00:00:00Z",
    });
    let g = graph_view(&a);
    assert_eq!(g["status"], "someFutureStatus");
    assert_eq!(g["severity"], "critical");
    assert_eq!(g["detectionSource"], "thirdPartySensors");
    let mut masked = g.clone();
    mask_unknown_enums(&mut masked);
    assert_eq!(masked["status"], "unknownFutureValue");
    assert_eq!(masked["severity"], "unknownFutureValue");
    assert_eq!(masked["detectionSource"], "unknownFutureValue");
    assert_eq!(masked["classification"], "informationalExpectedActivity");
    assert_eq!(masked["determination"], "confirmedActivity");
    assert_eq!(masked["serviceSource"], "microsoftDefenderForEndpoint");
    let us = graph_view(
        &json!({"id": "da3_4", "severity": "UnSpecified", "lastUpdateTime": "2024-01-01T00:00:00Z"}),
    );
    assert_eq!(us["severity"], "unknown");
    assert!(
        us["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["@odata.type"] != "#microsoft.graph.security.deviceEvidence")
    );
}

#[test]
fn graph_shaped_json_and_non_objects_pass_through() {
    let mut m = GraphMaker::new(5, crate::DEMO_TENANT_ID);
    for _ in 0..40 {
        let (id, a) = m.new_alert(sim_now(), sim_now());
        let v = Value::Object(a);
        assert_eq!(graph_view(&v), v);
        let service = v["serviceSource"].as_str().unwrap();
        assert_ne!(service, "microsoftDefenderForEndpoint");
        assert_eq!(v["id"], id);
        if service == "microsoftDefenderForOffice365" {
            assert!(id.starts_with("fa"));
            assert_eq!(v["providerAlertId"].as_str().unwrap(), &id[2..]);
        }
    }
    assert_eq!(graph_view(&json!([1])), json!([1]));
}

#[test]
fn some_views_carry_an_evidence_type_nobody_knows_yet() {
    let mut g = Generator::new(2, crate::DEMO_TENANT_ID);
    let future = (0..400)
        .filter(|_| {
            let (_, a) = g.new_alert(sim_now(), sim_now());
            graph_view(&Value::Object(a))["evidence"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["@odata.type"] == "#microsoft.graph.security.futureThingEvidence")
        })
        .count();
    assert!((5..60).contains(&future), "{future}");
}

#[test]
fn mde_only_is_a_stable_share_of_ids() {
    let ids: Vec<String> = (0..20_000).map(|i| format!("da{i}_{}", i * 7)).collect();
    let n = ids.iter().filter(|id| is_mde_only(id, 0.02)).count();
    assert!((250..550).contains(&n), "{n}");
    assert!(!ids.iter().any(|id| is_mde_only(id, 0.0)));
    assert!(ids.iter().all(|id| is_mde_only(id, 1.0)));
}
