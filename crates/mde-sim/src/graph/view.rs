//! The Graph view of an alert: a pure function of its Defender JSON (the mapping table is in the
//! documentation of [`crate::graph`]), and the evolvable enums `Prefer:
//! include-unknown-enum-members` reveals.

use serde_json::{Map, Value, json};

/// Graph's `serviceSource` of Defender for Endpoint alerts.
pub(crate) const ENDPOINT: &str = "microsoftDefenderForEndpoint";

/// What Graph answers for an enum value newer than the documented members.
pub(crate) const UNKNOWN_FUTURE: &str = "unknownFutureValue";

/// FNV-1a of an id: the view's "random" choices (an unknown evidence type, a system tag, an OS)
/// are a pure function of the alert, and so is being MDE-only.
pub(crate) fn id_hash(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// camelCase of Defender's PascalCase enum text: `InProgress` → `inProgress`, `MTP` → `mtp`,
/// `ThirdPartySensors` → `thirdPartySensors` (a leading run of capitals is one word).
pub(crate) fn camel(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let run = chars.iter().take_while(|c| c.is_ascii_uppercase()).count();
    // In `ABCdef` the last capital of the run starts the next word.
    let lower = if run > 1 && run < chars.len() && chars[run].is_ascii_lowercase() {
        run - 1
    } else {
        run.max(1)
    };
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < lower {
                c.to_ascii_lowercase()
            } else {
                *c
            }
        })
        .collect()
}

fn camel_value(v: Option<&Value>) -> Value {
    match v {
        Some(Value::String(s)) => Value::from(camel(s)),
        Some(other) => other.clone(),
        None => Value::Null,
    }
}

fn severity(v: Option<&Value>) -> Value {
    match v {
        Some(Value::String(s)) if s.eq_ignore_ascii_case("UnSpecified") => Value::from("unknown"),
        other => camel_value(other),
    }
}

/// Defender's `detectionSource` texts and their Graph members.
pub(super) const DETECTION_SOURCES: &[(&str, &str)] = &[
    ("WindowsDefenderAtp", "microsoftDefenderForEndpoint"),
    ("WindowsDefenderAv", "antivirus"),
    ("WindowsDefenderSmartScreen", "smartScreen"),
    ("CustomerTI", "customTi"),
    ("CustomDetection", "customDetection"),
    ("AutomatedInvestigation", "automatedInvestigation"),
    ("MTP", "microsoft365Defender"),
    ("OfficeATP", "microsoftDefenderForOffice365"),
    ("ThreatExperts", "microsoftThreatExperts"),
    ("Manual", "manual"),
    ("MCAS", "cloudAppSecurity"),
    ("AAD", "azureAdIdentityProtection"),
    ("AppGPolicy", "appGovernancePolicy"),
    ("AppGDetection", "appGovernanceDetection"),
];

fn detection_source(v: Option<&Value>) -> Value {
    match v {
        Some(Value::String(s)) => DETECTION_SOURCES
            .iter()
            .find(|(mde, _)| mde.eq_ignore_ascii_case(s))
            .map_or_else(|| Value::from(camel(s)), |(_, g)| Value::from(*g)),
        other => camel_value(other),
    }
}

/// The documented members of each evolvable enum, before `unknownFutureValue`: any other value
/// needs `Prefer: include-unknown-enum-members`.
const MEMBERS: &[(&str, &[&str])] = &[
    ("status", &["unknown", "new", "inProgress", "resolved"]),
    (
        "severity",
        &["unknown", "informational", "low", "medium", "high"],
    ),
    (
        "classification",
        &[
            "unknown",
            "falsePositive",
            "truePositive",
            "informationalExpectedActivity",
        ],
    ),
    (
        "determination",
        // Both of Microsoft's spellings (docs and SDK disagree).
        &[
            "unknown",
            "apt",
            "malware",
            "securityPersonnel",
            "securityTesting",
            "unwantedSoftware",
            "other",
            "multiStagedAttack",
            "compromisedUser",
            "compromisedAccount",
            "phishing",
            "maliciousUserActivity",
            "clean",
            "notMalicious",
            "insufficientData",
            "notEnoughDataToValidate",
            "confirmedUserActivity",
            "confirmedActivity",
            "lineOfBusinessApplication",
        ],
    ),
    (
        "serviceSource",
        &[
            "unknown",
            "microsoftDefenderForEndpoint",
            "microsoftDefenderForIdentity",
            "microsoftDefenderForCloudApps",
            "microsoftDefenderForOffice365",
            "microsoft365Defender",
            "azureAdIdentityProtection",
            "microsoftAppGovernance",
            "dataLossPrevention",
        ],
    ),
    (
        "detectionSource",
        &[
            "unknown",
            "microsoftDefenderForEndpoint",
            "antivirus",
            "smartScreen",
            "customTi",
            "microsoftDefenderForOffice365",
            "automatedInvestigation",
            "microsoftThreatExperts",
            "customDetection",
            "microsoftDefenderForIdentity",
            "cloudAppSecurity",
            "microsoft365Defender",
            "azureAdIdentityProtection",
            "manual",
            "microsoftDataLossPrevention",
            "appGovernancePolicy",
            "appGovernanceDetection",
        ],
    ),
];

/// Replaces every evolvable-enum value newer than the documented members by
/// `unknownFutureValue`, as Graph does for a request without `Prefer:
/// include-unknown-enum-members`. Other values (and nulls) are left alone.
pub fn mask_unknown_enums(alert: &mut Value) {
    let Some(obj) = alert.as_object_mut() else {
        return;
    };
    for (field, members) in MEMBERS {
        if let Some(Value::String(s)) = obj.get_mut(*field)
            && s != UNKNOWN_FUTURE
            && !members.contains(&s.as_str())
        {
            *s = UNKNOWN_FUTURE.to_owned();
        }
    }
}

/// The product behind a `serviceSource`.
pub(crate) fn product_name(service: &str) -> &'static str {
    match service {
        "microsoftDefenderForEndpoint" => "Microsoft Defender for Endpoint",
        "microsoftDefenderForOffice365" => "Microsoft Defender for Office 365",
        "microsoftDefenderForIdentity" => "Microsoft Defender for Identity",
        "microsoftDefenderForCloudApps" => "Microsoft Defender for Cloud Apps",
        "microsoftDefenderForCloud" => "Microsoft Defender for Cloud",
        "microsoftSentinel" => "Microsoft Sentinel",
        "azureAdIdentityProtection" => "Microsoft Entra ID Protection",
        "dataLossPrevention" => "Microsoft Purview Data Loss Prevention",
        "microsoft365Defender" => "Microsoft Defender XDR",
        _ => "Microsoft Defender",
    }
}

/// Whether `json` is already in Graph's shape (a Graph-only alert stored as Graph serves it).
pub(crate) fn is_graph_shaped(json: &Map<String, Value>) -> bool {
    !json.contains_key("lastUpdateTime")
        && (json.contains_key("lastUpdateDateTime") || json.contains_key("createdDateTime"))
}

/// The `serviceSource` an alert has: its own field, or Defender for Endpoint.
pub(crate) fn service_of(json: &Map<String, Value>) -> &str {
    json.get("serviceSource")
        .and_then(Value::as_str)
        .unwrap_or(ENDPOINT)
}

const RECOMMENDED: &str = "A. Validate the alert.\r\nB. Examine the device timeline for other suspicious activity.\r\nC. Contain the device if the activity is malicious.\r\nD. Classify the alert and resolve it.";

/// An alert as Graph's `security/alerts_v2` serves it, from its Defender JSON (`/api/alerts`
/// shape, evidence included). JSON already in Graph's shape comes back as it is; anything that
/// is not an object too. Enum values are the real ones: [`mask_unknown_enums`] hides the new
/// ones.
#[must_use]
pub fn graph_view(mde: &Value) -> Value {
    match mde.as_object() {
        Some(obj) => Value::Object(view_map(obj)),
        None => mde.clone(),
    }
}

/// A version's Graph view, with the two instants alerts_v2 sorts by, parsed once.
#[derive(Debug, Clone)]
pub(crate) struct CachedView {
    /// `createdDateTime` in ticks (`i64::MIN` when absent or not a time).
    pub(crate) created: i64,
    /// `lastUpdateDateTime` in ticks, the same way.
    pub(crate) updated: i64,
    /// The view.
    pub(crate) map: Map<String, Value>,
}

impl CachedView {
    /// The view of `m` (see [`graph_view`]).
    pub(crate) fn of(m: &Map<String, Value>) -> CachedView {
        let map = view_map(m);
        let at = |k: &str| {
            map.get(k)
                .and_then(Value::as_str)
                .and_then(crate::clock::parse_ticks)
                .unwrap_or(i64::MIN)
        };
        CachedView {
            created: at("createdDateTime"),
            updated: at("lastUpdateDateTime"),
            map,
        }
    }
}

pub(crate) fn view_map(m: &Map<String, Value>) -> Map<String, Value> {
    if is_graph_shaped(m) {
        return m.clone();
    }
    let get = |k: &str| m.get(k).cloned().unwrap_or(Value::Null);
    let id = m.get("id").and_then(Value::as_str).unwrap_or_default();
    let service = service_of(m).to_owned();
    // Other products' ids are a two-letter prefix and the provider's own id.
    let provider_id = match id.get(2..) {
        Some(rest) if service != ENDPOINT && !rest.is_empty() => rest.to_owned(),
        _ => id.to_owned(),
    };
    let tenant = m.get("aadTenantId").and_then(Value::as_str);
    let incident = match m.get("incidentId") {
        Some(Value::Number(n)) => Value::from(n.to_string()),
        Some(Value::String(s)) => Value::from(s.clone()),
        _ => Value::Null,
    };
    let tid = tenant.map(|t| format!("?tid={t}")).unwrap_or_default();
    let alert_url = Value::from(format!("https://security.microsoft.com/alerts/{id}{tid}"));
    let incident_url = match incident.as_str() {
        Some(i) => Value::from(format!("https://security.microsoft.com/incidents/{i}{tid}")),
        None => Value::Null,
    };
    let comments: Vec<Value> = m
        .get("comments")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    json!({
                        "comment": c.get("comment").cloned().unwrap_or(Value::Null),
                        "createdByDisplayName": c.get("createdBy").cloned().unwrap_or(Value::Null),
                        "createdDateTime": c.get("createdTime").or_else(|| c.get("createTime")).cloned().unwrap_or(Value::Null),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let hash = id_hash(id);
    let system_tags: Vec<Value> = if hash.is_multiple_of(7) {
        vec![Value::from("Defender Experts")]
    } else {
        Vec::new()
    };
    let mut g = Map::new();
    let mut put = |k: &str, v: Value| {
        g.insert(k.to_owned(), v);
    };
    put("id", Value::from(id));
    put("providerAlertId", Value::from(provider_id));
    put("incidentId", incident);
    put("status", camel_value(m.get("status")));
    put("severity", severity(m.get("severity")));
    put("classification", camel_value(m.get("classification")));
    put("determination", camel_value(m.get("determination")));
    // A v1.0 alert property since 2025-11: Defender's own vocabulary in camelCase.
    put(
        "investigationState",
        camel_value(m.get("investigationState")),
    );
    put("serviceSource", Value::from(service.clone()));
    put(
        "detectionSource",
        detection_source(m.get("detectionSource")),
    );
    put("productName", Value::from(product_name(&service)));
    put("detectorId", get("detectorId"));
    put("tenantId", get("aadTenantId"));
    put("title", get("title"));
    put("description", get("description"));
    put("recommendedActions", Value::from(RECOMMENDED));
    put("category", get("category"));
    put("assignedTo", get("assignedTo"));
    put("alertWebUrl", alert_url);
    put("incidentWebUrl", incident_url);
    put("actorDisplayName", Value::Null);
    put("threatDisplayName", get("threatName"));
    put("threatFamilyName", get("threatFamilyName"));
    put(
        "mitreTechniques",
        m.get("mitreTechniques")
            .filter(|v| !v.is_null())
            .cloned()
            .unwrap_or_else(|| json!([])),
    );
    put("createdDateTime", get("alertCreationTime"));
    put("lastUpdateDateTime", get("lastUpdateTime"));
    put("resolvedDateTime", get("resolvedTime"));
    put("firstActivityDateTime", get("firstEventTime"));
    put("lastActivityDateTime", get("lastEventTime"));
    put("comments", Value::Array(comments));
    put("evidence", Value::Array(evidence(m, hash)));
    put("systemTags", Value::Array(system_tags));
    put("alertPolicyId", Value::Null);
    put("additionalData", json!({}));
    g
}

/// Fields every evidence item carries.
fn evidence_base(kind: &str, created: &Value) -> Map<String, Value> {
    let mut e = Map::new();
    e.insert(
        "@odata.type".into(),
        Value::from(format!("#microsoft.graph.security.{kind}")),
    );
    e.insert("createdDateTime".into(), created.clone());
    e.insert("verdict".into(), Value::from("suspicious"));
    e.insert("remediationStatus".into(), Value::from("none"));
    e.insert("remediationStatusDetails".into(), Value::Null);
    e.insert("roles".into(), json!([]));
    e.insert("detailedRoles".into(), json!([]));
    e.insert("tags".into(), json!([]));
    e
}

fn str_field<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

/// The typed evidence of an endpoint alert: the device (machineId, computerDnsName,
/// rbacGroupName, loggedOnUsers), the related user (enriched from a matching User item), then
/// each evidence item; one alert in twenty also carries a type no client knows yet.
fn evidence(m: &Map<String, Value>, hash: u64) -> Vec<Value> {
    let created = m.get("alertCreationTime").cloned().unwrap_or(Value::Null);
    let get = |k: &str| m.get(k).cloned().unwrap_or(Value::Null);
    let items: Vec<&Map<String, Value>> = m
        .get("evidence")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    let machine = get("machineId");
    let dns = get("computerDnsName");
    if !machine.is_null() || !dns.is_null() {
        let mut d = evidence_base("deviceEvidence", &created);
        let (host, domain) = match dns.as_str() {
            Some(n) => match n.split_once('.') {
                Some((h, d)) => (Value::from(h), Value::from(d)),
                None => (Value::from(n), Value::Null),
            },
            None => (Value::Null, Value::Null),
        };
        let os = [
            "Windows10",
            "Windows11",
            "WindowsServer2019",
            "WindowsServer2022",
        ];
        let logged_on: Vec<Value> = m
            .get("loggedOnUsers")
            .and_then(Value::as_array)
            .map(|us| {
                us.iter()
                    .map(|u| {
                        json!({
                            "accountName": u.get("accountName").cloned().unwrap_or(Value::Null),
                            "domainName": u.get("domainName").cloned().unwrap_or(Value::Null),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        for (k, v) in [
            ("firstSeenDateTime", Value::Null),
            ("mdeDeviceId", machine),
            ("azureAdDeviceId", Value::Null),
            ("deviceDnsName", dns),
            ("hostName", host),
            ("ntDomain", Value::Null),
            ("dnsDomain", domain),
            ("osPlatform", Value::from(os[(hash % 4) as usize])),
            ("osBuild", Value::Null),
            ("version", Value::Null),
            ("healthStatus", Value::from("active")),
            ("riskScore", Value::from("medium")),
            ("rbacGroupId", Value::Null),
            ("rbacGroupName", get("rbacGroupName")),
            ("onboardingStatus", Value::from("onboarded")),
            ("defenderAvStatus", Value::from("updated")),
            ("loggedOnUsers", Value::Array(logged_on)),
            ("ipInterfaces", json!([])),
            ("vmMetadata", Value::Null),
        ] {
            d.insert(k.into(), v);
        }
        out.push(Value::Object(d));
    }
    let related = m.get("relatedUser").and_then(Value::as_object);
    let related_name = related.and_then(|r| str_field(r, "userName"));
    let matches_related = |e: &Map<String, Value>| {
        str_field(e, "entityType").is_some_and(|t| t.eq_ignore_ascii_case("User"))
            && related_name.is_some()
            && str_field(e, "accountName")
                .zip(related_name)
                .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b))
    };
    if let Some(r) = related {
        let twin = items.iter().find(|e| matches_related(e));
        let from_twin = |k: &str| twin.and_then(|t| t.get(k)).cloned().unwrap_or(Value::Null);
        let mut u = evidence_base("userEvidence", &created);
        u.insert(
            "userAccount".into(),
            json!({
                "accountName": r.get("userName").cloned().unwrap_or(Value::Null),
                "domainName": r.get("domainName").cloned().unwrap_or(Value::Null),
                "userSid": from_twin("userSid"),
                "azureAdUserId": from_twin("aadUserId"),
                "userPrincipalName": from_twin("userPrincipalName"),
                "displayName": Value::Null,
            }),
        );
        out.push(Value::Object(u));
    }
    let mde_device = m.get("machineId").cloned().unwrap_or(Value::Null);
    for e in items {
        if related.is_some() && matches_related(e) {
            continue;
        }
        out.push(Value::Object(evidence_item(e, &mde_device)));
    }
    if hash % 20 == 3 {
        let mut f = evidence_base("futureThingEvidence", &created);
        f.insert(
            "futureThing".into(),
            json!({"name": "sim-2027", "score": 7, "nested": {"kept": true}}),
        );
        out.push(Value::Object(f));
    }
    out
}

/// One Defender evidence item as a typed Graph evidence item.
fn evidence_item(e: &Map<String, Value>, mde_device: &Value) -> Map<String, Value> {
    let get = |k: &str| e.get(k).cloned().unwrap_or(Value::Null);
    let created = get("evidenceCreationTime");
    let kind = str_field(e, "entityType").unwrap_or("Unknown");
    let detection = camel_value(e.get("detectionStatus"));
    let file = || {
        json!({
            "sha1": get("sha1"),
            "sha256": get("sha256"),
            "md5": Value::Null,
            "fileName": get("fileName"),
            "filePath": get("filePath"),
            "fileSize": Value::Null,
            "filePublisher": Value::Null,
            "signer": Value::Null,
            "issuer": Value::Null,
        })
    };
    match kind.to_ascii_lowercase().as_str() {
        "user" => {
            let mut u = evidence_base("userEvidence", &created);
            u.insert(
                "userAccount".into(),
                json!({
                    "accountName": get("accountName"),
                    "domainName": get("domainName"),
                    "userSid": get("userSid"),
                    "azureAdUserId": get("aadUserId"),
                    "userPrincipalName": get("userPrincipalName"),
                    "displayName": Value::Null,
                }),
            );
            u
        }
        "process" => {
            let mut p = evidence_base("processEvidence", &created);
            for (k, v) in [
                ("processId", get("processId")),
                ("parentProcessId", get("parentProcessId")),
                ("processCommandLine", get("processCommandLine")),
                ("processCreationDateTime", get("processCreationTime")),
                (
                    "parentProcessCreationDateTime",
                    get("parentProcessCreationTime"),
                ),
                ("imageFile", file()),
                (
                    "parentProcessImageFile",
                    json!({"fileName": get("parentProcessFileName"), "filePath": get("parentProcessFilePath")}),
                ),
                ("userAccount", Value::Null),
                ("mdeDeviceId", mde_device.clone()),
                ("detectionStatus", detection),
            ] {
                p.insert(k.into(), v);
            }
            p
        }
        "file" => {
            let mut f = evidence_base("fileEvidence", &created);
            f.insert("fileDetails".into(), file());
            f.insert("mdeDeviceId".into(), mde_device.clone());
            f.insert("detectionStatus".into(), detection);
            f
        }
        "ip" => {
            let mut i = evidence_base("ipEvidence", &created);
            i.insert("ipAddress".into(), get("ipAddress"));
            i
        }
        "url" => {
            let mut u = evidence_base("urlEvidence", &created);
            u.insert("url".into(), get("url"));
            u
        }
        "registry" | "registryvalue" | "registrykey" => {
            let mut r = evidence_base("registryValueEvidence", &created);
            for k in [
                "registryKey",
                "registryHive",
                "registryValue",
                "registryValueType",
            ] {
                r.insert(k.into(), get(k));
            }
            r.insert("mdeDeviceId".into(), mde_device.clone());
            r
        }
        _ => {
            // Another entity type: Graph's name for it, with whatever the item holds.
            let mut o = evidence_base(&format!("{}Evidence", camel(kind)), &created);
            for (k, v) in e {
                if !v.is_null() && k != "entityType" && k != "evidenceCreationTime" {
                    o.insert(k.clone(), v.clone());
                }
            }
            o
        }
    }
}
