//! Graph `alerts_v2` alerts in the MDE API's vocabulary, for the exports.
//!
//! The store keeps every alert verbatim, so after a tenant moves from `/api/alerts` to Graph the
//! same `da…` id starts holding Graph-shaped JSON: other names (`lastUpdateDateTime`), camelCase
//! enums (`inProgress`, `high`), a string `incidentId`, and the device and user inside typed
//! evidence. A spreadsheet, a report or a script written against `/api/alerts` must not see two
//! vocabularies in one file, so every export that is not verbatim JSON reads a Graph alert through
//! [`into_mde_shape`] (the table: `docs/graph-mapping.md`).
//!
//! The rules:
//! - a Graph alert is recognised by `lastUpdateDateTime` without `lastUpdateTime` ([`is_graph`]);
//!   anything else is returned unchanged, so the mapping is idempotent;
//! - renamed fields get their MDE names; a field whose MDE name is already present keeps its
//!   Graph name (nothing is overwritten, nothing lost);
//! - enum values take the MDE documentation's spelling where a counterpart is documented
//!   (`docs/defender-api.md` §2.2: `unknown` severity is `UnSpecified`, `antivirus` is `WindowsDefenderAv`,
//!   both spellings of a determination become one), else the camelCase is PascalCased; values that
//!   are not camelCase words are kept as sent;
//! - times keep their text (both APIs write ISO-8601 UTC and the CSV normalises every `…Time`
//!   column to seven fractional digits, so the same instant reads the same); only a time without
//!   an offset is rewritten, in the canonical form, so that it still reads as a time;
//! - `machineId`, `computerDnsName`, `rbacGroupName` and `loggedOnUsers` come from the device
//!   evidence Graph marks as the primary device, else the first; `relatedUser` from the first user
//!   evidence with an account, else from any evidence's account;
//! - evidence of a known type becomes an MDE evidence entity (every documented key, `null` where
//!   it does not apply) that also keeps the Graph item's other keys; evidence of any other type
//!   is kept verbatim, `@odata.type` included;
//! - Graph-only fields (`serviceSource`, `alertWebUrl`, …) stay under their own names.
//!
//! Nothing here panics, whatever the input (see the proptest).

use serde_json::{Map, Value};

use crate::alert::time::ApiTime;

/// Whether an alert object is Graph-shaped: it has `lastUpdateDateTime` and no `lastUpdateTime`.
fn is_graph(obj: &Map<String, Value>) -> bool {
    super::Shape::of(obj) == super::Shape::Graph
}

/// [`into_mde_shape`] of a copy, for the tests.
#[cfg(test)]
pub(crate) fn to_mde_shape(graph: &Value) -> Value {
    into_mde_shape(graph.clone())
}

/// A Graph `alerts_v2` alert rewritten in the MDE API's JSON shape (module docs). Anything that is
/// not a Graph-shaped object (an MDE alert, a number) is returned as it is.
fn into_mde_shape(value: Value) -> Value {
    let Value::Object(mut g) = value else {
        return value;
    };
    if !is_graph(&g) {
        return Value::Object(g);
    }
    for (from, to) in [
        ("createdDateTime", "alertCreationTime"),
        ("lastUpdateDateTime", "lastUpdateTime"),
        ("resolvedDateTime", "resolvedTime"),
        ("firstActivityDateTime", "firstEventTime"),
        ("lastActivityDateTime", "lastEventTime"),
    ] {
        rename(&mut g, from, to, time);
    }
    rename(&mut g, "threatDisplayName", "threatName", |v| v);
    rename(&mut g, "tenantId", "aadTenantId", |v| v);
    map_in_place(&mut g, "incidentId", incident_id);
    map_in_place(&mut g, "status", |v| enum_value(v, STATUS));
    map_in_place(&mut g, "severity", |v| enum_value(v, SEVERITY));
    map_in_place(&mut g, "classification", |v| enum_value(v, CLASSIFICATION));
    map_in_place(&mut g, "determination", |v| enum_value(v, DETERMINATION));
    map_in_place(&mut g, "detectionSource", |v| {
        enum_value(v, DETECTION_SOURCE)
    });
    map_in_place(&mut g, "investigationState", |v| {
        enum_value(v, INVESTIGATION_STATE)
    });
    map_in_place(&mut g, "comments", |v| each(v, comment));
    let evidence = g.get("evidence").and_then(Value::as_array);
    let device = evidence.and_then(|items| primary_device(items));
    let derived = [
        (
            "machineId",
            field(device, &["mdeDeviceId"]).unwrap_or_default(),
        ),
        (
            "computerDnsName",
            field(device, &["deviceDnsName"]).unwrap_or_default(),
        ),
        (
            "rbacGroupName",
            field(device, &["rbacGroupName"]).unwrap_or_default(),
        ),
        (
            "loggedOnUsers",
            field(device, &["loggedOnUsers"])
                .filter(Value::is_array)
                .unwrap_or(Value::Array(Vec::new())),
        ),
        (
            "relatedUser",
            evidence.map_or(Value::Null, |e| related_user(e)),
        ),
    ];
    for (k, v) in derived {
        g.entry(k).or_insert(v);
    }
    map_in_place(&mut g, "evidence", |v| each(v, evidence_item));
    Value::Object(g)
}

/// The MDE shape of an alert's stored JSON text when it is a Graph alert; `None` when it is not
/// (an MDE alert, or text that is not a JSON object), whose text is then used as stored.
///
/// Cheap for MDE text, which is what a store mostly holds: a stored MDE alert always has the key
/// `lastUpdateTime` and never `lastUpdateDateTime`, so two substring searches (SIMD, no parse)
/// settle it; only text that may be Graph-shaped is parsed, and the parse decides. The needles
/// leave out the quotes: memchr's prefilter looks for a needle's rarest bytes, and in JSON a
/// quote is anything but rare (with them, the scan took about twice as long).
pub(crate) fn mde_shape_of_text(raw: &str) -> Option<Value> {
    use memchr::memmem::Finder;
    use std::sync::LazyLock;
    static GRAPH: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("lastUpdateDateTime"));
    static MDE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("lastUpdateTime"));
    let bytes = raw.as_bytes();
    let maybe = GRAPH.find(bytes).is_some() || MDE.find(bytes).is_none();
    if !maybe {
        return None;
    }
    match serde_json::from_str::<Value>(raw).ok()? {
        Value::Object(o) if is_graph(&o) => Some(into_mde_shape(Value::Object(o))),
        _ => None,
    }
}

/// Moves `from` to `to` through `f`, unless `to` is already there (then `from` stays as it is).
fn rename(m: &mut Map<String, Value>, from: &str, to: &str, f: impl FnOnce(Value) -> Value) {
    if m.contains_key(to) {
        return;
    }
    if let Some(v) = m.remove(from) {
        m.insert(to.to_owned(), f(v));
    }
}

fn map_in_place(m: &mut Map<String, Value>, key: &str, f: impl FnOnce(Value) -> Value) {
    if let Some(slot) = m.get_mut(key) {
        *slot = f(slot.take());
    }
}

/// `f` over each item of an array; anything else unchanged.
fn each(v: Value, f: fn(Value) -> Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.into_iter().map(f).collect()),
        other => other,
    }
}

/// A time as sent; one without an offset (read as UTC) in the canonical form.
fn time(v: Value) -> Value {
    match &v {
        Value::String(s) if ApiTime::parse(s).is_err() => match ApiTime::parse_lenient(s) {
            Ok(t) => Value::String(t.to_api_string()),
            Err(_) => v,
        },
        _ => v,
    }
}

/// Graph's string `incidentId` as MDE's number when it is a plain decimal that fits a long
/// (no sign, no leading zero); anything else is kept as sent.
fn incident_id(v: Value) -> Value {
    if let Value::String(s) = &v
        && !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s.len() == 1 || !s.starts_with('0'))
        && let Ok(n) = s.parse::<i64>()
    {
        return Value::from(n);
    }
    v
}

/// A Graph enum value and its MDE counterpart (`None`: MDE writes `null`).
///
/// Each table lists every member of Graph's enum (`docs/defender-api.md` §4.2b: Microsoft's Graph
/// reference, `security-alert.md`, `enums-security.md` and the v1.0 `$metadata`), `unknownFutureValue`
/// included, so that the test over the reference's lists is a test of these tables; a value
/// Microsoft adds later still reads as its PascalCase ([`enum_value`]).
type Table = &'static [(&'static str, Option<&'static str>)];

/// `alertStatus`; MDE: `Unknown`, `New`, `InProgress`, `Resolved` (`docs/defender-api.md` §2.2).
const STATUS: Table = &[
    ("unknown", Some("Unknown")),
    ("new", Some("New")),
    ("inProgress", Some("InProgress")),
    ("resolved", Some("Resolved")),
    ("unknownFutureValue", Some("UnknownFutureValue")),
];

/// `alertSeverity`; MDE spells the unknown severity `UnSpecified` (`docs/defender-api.md` §2.2).
const SEVERITY: Table = &[
    ("unknown", Some("UnSpecified")),
    ("informational", Some("Informational")),
    ("low", Some("Low")),
    ("medium", Some("Medium")),
    ("high", Some("High")),
    ("unknownFutureValue", Some("UnknownFutureValue")),
];

/// `alertClassification`. MDE writes `null` for an alert nobody classified; Graph writes
/// `unknown`.
const CLASSIFICATION: Table = &[
    ("unknown", None),
    ("falsePositive", Some("FalsePositive")),
    ("truePositive", Some("TruePositive")),
    (
        "informationalExpectedActivity",
        Some("InformationalExpectedActivity"),
    ),
    ("unknownFutureValue", Some("UnknownFutureValue")),
];

/// `alertDetermination`. Microsoft's Graph pages spell four members two ways (the property row
/// and the SDKs: `compromisedUser`, `clean`, `insufficientData`, `confirmedUserActivity`; the
/// member table and `$metadata`: `compromisedAccount`, `notMalicious`, `notEnoughDataToValidate`,
/// `confirmedActivity`); both become the MDE alert page's one word.
const DETERMINATION: Table = &[
    ("unknown", None),
    ("apt", Some("Apt")),
    ("malware", Some("Malware")),
    ("securityPersonnel", Some("SecurityPersonnel")),
    ("securityTesting", Some("SecurityTesting")),
    ("unwantedSoftware", Some("UnwantedSoftware")),
    ("other", Some("Other")),
    ("multiStagedAttack", Some("MultiStagedAttack")),
    ("compromisedUser", Some("CompromisedUser")),
    ("compromisedAccount", Some("CompromisedUser")),
    ("phishing", Some("Phishing")),
    ("maliciousUserActivity", Some("MaliciousUserActivity")),
    ("clean", Some("Clean")),
    ("notMalicious", Some("Clean")),
    ("insufficientData", Some("InsufficientData")),
    ("notEnoughDataToValidate", Some("InsufficientData")),
    ("confirmedUserActivity", Some("ConfirmedUserActivity")),
    ("confirmedActivity", Some("ConfirmedUserActivity")),
    (
        "lineOfBusinessApplication",
        Some("LineOfBusinessApplication"),
    ),
    ("unknownFutureValue", Some("UnknownFutureValue")),
];

/// `detectionSource`, all 39 members. Where MDE responses are seen to name the same detector
/// (`docs/defender-api.md` §2.2: `WindowsDefenderAv`, `MCAS`, …) that name; the others, which the
/// MDE API never returned (Defender for Cloud's plans, Sentinel's rule kinds), PascalCased.
const DETECTION_SOURCE: Table = &[
    ("unknown", Some("Unknown")),
    ("microsoftDefenderForEndpoint", Some("WindowsDefenderAtp")),
    ("antivirus", Some("WindowsDefenderAv")),
    ("smartScreen", Some("WindowsDefenderSmartScreen")),
    ("customTi", Some("CustomerTI")),
    ("microsoftDefenderForOffice365", Some("OfficeATP")),
    ("automatedInvestigation", Some("AutomatedInvestigation")),
    ("microsoftThreatExperts", Some("ThreatExperts")),
    ("customDetection", Some("CustomDetection")),
    (
        "microsoftDefenderForIdentity",
        Some("MicrosoftDefenderForIdentity"),
    ),
    ("cloudAppSecurity", Some("MCAS")),
    ("microsoft365Defender", Some("MTP")),
    ("azureAdIdentityProtection", Some("AAD")),
    ("manual", Some("Manual")),
    (
        "microsoftDataLossPrevention",
        Some("MicrosoftDataLossPrevention"),
    ),
    ("appGovernancePolicy", Some("AppGPolicy")),
    ("appGovernanceDetection", Some("AppGDetection")),
    ("unknownFutureValue", Some("UnknownFutureValue")),
    (
        "microsoftDefenderForCloud",
        Some("MicrosoftDefenderForCloud"),
    ),
    ("microsoftDefenderForIoT", Some("MicrosoftDefenderForIoT")),
    (
        "microsoftDefenderForServers",
        Some("MicrosoftDefenderForServers"),
    ),
    (
        "microsoftDefenderForStorage",
        Some("MicrosoftDefenderForStorage"),
    ),
    ("microsoftDefenderForDNS", Some("MicrosoftDefenderForDNS")),
    (
        "microsoftDefenderForDatabases",
        Some("MicrosoftDefenderForDatabases"),
    ),
    (
        "microsoftDefenderForContainers",
        Some("MicrosoftDefenderForContainers"),
    ),
    (
        "microsoftDefenderForNetwork",
        Some("MicrosoftDefenderForNetwork"),
    ),
    (
        "microsoftDefenderForAppService",
        Some("MicrosoftDefenderForAppService"),
    ),
    (
        "microsoftDefenderForKeyVault",
        Some("MicrosoftDefenderForKeyVault"),
    ),
    (
        "microsoftDefenderForResourceManager",
        Some("MicrosoftDefenderForResourceManager"),
    ),
    (
        "microsoftDefenderForApiManagement",
        Some("MicrosoftDefenderForApiManagement"),
    ),
    ("nrtAlerts", Some("NrtAlerts")),
    ("scheduledAlerts", Some("ScheduledAlerts")),
    (
        "microsoftDefenderThreatIntelligenceAnalytics",
        Some("MicrosoftDefenderThreatIntelligenceAnalytics"),
    ),
    ("builtInMl", Some("BuiltInMl")),
    (
        "microsoftInsiderRiskManagement",
        Some("MicrosoftInsiderRiskManagement"),
    ),
    (
        "microsoftThreatIntelligence",
        Some("MicrosoftThreatIntelligence"),
    ),
    (
        "microsoftDefenderForAIServices",
        Some("MicrosoftDefenderForAIServices"),
    ),
    ("securityCopilot", Some("SecurityCopilot")),
    ("microsoftSentinel", Some("MicrosoftSentinel")),
];

/// `investigationState`: MDE's vocabulary (`docs/defender-api.md` §2.2) in camelCase, so each
/// member is its MDE word PascalCased. Listed so that any casing of a known member reads as MDE writes it.
const INVESTIGATION_STATE: Table = &[
    ("unknown", Some("Unknown")),
    ("terminated", Some("Terminated")),
    ("successfullyRemediated", Some("SuccessfullyRemediated")),
    ("benign", Some("Benign")),
    ("failed", Some("Failed")),
    ("partiallyRemediated", Some("PartiallyRemediated")),
    ("running", Some("Running")),
    ("pendingApproval", Some("PendingApproval")),
    ("pendingResource", Some("PendingResource")),
    ("queued", Some("Queued")),
    ("innerFailure", Some("InnerFailure")),
    ("preexistingAlert", Some("PreexistingAlert")),
    ("unsupportedOs", Some("UnsupportedOs")),
    ("unsupportedAlertType", Some("UnsupportedAlertType")),
    ("suppressedAlert", Some("SuppressedAlert")),
    ("partiallyInvestigated", Some("PartiallyInvestigated")),
    ("terminatedByUser", Some("TerminatedByUser")),
    ("terminatedBySystem", Some("TerminatedBySystem")),
    ("unknownFutureValue", Some("UnknownFutureValue")),
];

/// A Graph `status` in the MDE vocabulary (`inProgress` → `InProgress`; an unknown camelCase
/// value PascalCased): the store indexes it so, and the exports write it so.
pub(crate) fn mde_status(s: &str) -> Option<String> {
    enum_value(Value::String(s.to_owned()), STATUS)
        .as_str()
        .map(str::to_owned)
}

/// A Graph `severity` in the MDE vocabulary (`unknown` → `UnSpecified`, `critical` → `Critical`).
pub(crate) fn mde_severity(s: &str) -> Option<String> {
    enum_value(Value::String(s.to_owned()), SEVERITY)
        .as_str()
        .map(str::to_owned)
}

/// The MDE spelling of an enum value: from `table` (exact, then ignoring ASCII case), else the
/// camelCase word PascalCased, else as sent.
fn enum_value(v: Value, table: Table) -> Value {
    let Value::String(s) = &v else {
        return v;
    };
    let found = table
        .iter()
        .find(|(g, _)| g == s)
        .or_else(|| table.iter().find(|(g, _)| g.eq_ignore_ascii_case(s)));
    match found {
        Some((_, Some(mde))) => Value::String((*mde).to_owned()),
        Some((_, None)) => Value::Null,
        None => pascal(s).map_or(v, Value::String),
    }
}

/// `inProgress` → `InProgress`; `None` for text that is not a camelCase word (kept as sent).
fn pascal(s: &str) -> Option<String> {
    let mut chars = s.chars();
    let first = chars.next()?;
    if !first.is_ascii_lowercase() || !s.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some(first.to_ascii_uppercase().to_string() + chars.as_str())
}

/// `{comment, createdByDisplayName, createdDateTime}` → `{comment, createdBy, createdTime}`.
fn comment(v: Value) -> Value {
    let Value::Object(mut c) = v else {
        return v;
    };
    rename(&mut c, "createdByDisplayName", "createdBy", |v| v);
    rename(&mut c, "createdDateTime", "createdTime", time);
    Value::Object(c)
}

/// The type of an evidence item without its namespace: `#microsoft.graph.security.fileEvidence`
/// → `fileEvidence`.
fn evidence_type(item: &Value) -> Option<&str> {
    let t = item.get("@odata.type")?.as_str()?;
    let t = t.strip_prefix('#').unwrap_or(t);
    Some(t.strip_prefix("microsoft.graph.security.").unwrap_or(t))
}

/// The device an alert is about: the device evidence Graph marks as the primary one, else the
/// first device evidence. An alert that touches several devices (lateral movement, a file copied
/// across) lists them in no promised order, and MDE's `machineId` is the alert's own device.
///
/// Graph's `roles` enum has no member for it; the mark is a free-form `detailedRoles` entry:
/// Microsoft's example alert says `Main device`, real `alerts_v2` payloads say `PrimaryDevice`
/// (`docs/defender-api.md` §4.2b). Both are read ignoring case, spaces and underscores.
fn primary_device(items: &[Value]) -> Option<&Value> {
    let mut devices = items
        .iter()
        .filter(|i| evidence_type(i) == Some("deviceEvidence"));
    let first = devices.clone().next();
    devices.find(|d| is_primary(d)).or(first)
}

/// Whether a device evidence carries the primary device's mark in `detailedRoles` (or `roles`,
/// should Graph ever move it there).
fn is_primary(device: &Value) -> bool {
    ["detailedRoles", "roles"].iter().any(|k| {
        device
            .get(k)
            .and_then(Value::as_array)
            .is_some_and(|roles| roles.iter().filter_map(Value::as_str).any(primary_mark))
    })
}

fn primary_mark(role: &str) -> bool {
    let word: String = role
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    word == "primarydevice" || word == "maindevice"
}

/// The value at `path` inside `v`, if any and not `null`.
fn field(v: Option<&Value>, path: &[&str]) -> Option<Value> {
    let mut cur = v?;
    for seg in path {
        cur = cur.get(seg)?;
    }
    (!cur.is_null()).then(|| cur.clone())
}

/// MDE's `relatedUser` `{userName, domainName}`: the account of the first user evidence that has
/// one, else the first account of any other evidence (`processEvidence` and `mailboxEvidence`
/// carry a `userAccount` too). Microsoft's own example alert has no user evidence: its only
/// account is on the process evidence, and without it the alert would name no user at all.
fn related_user(items: &[Value]) -> Value {
    let is_user = |i: &&Value| evidence_type(i) == Some("userEvidence");
    items
        .iter()
        .filter(is_user)
        .chain(items.iter().filter(|i| !is_user(i)))
        .find_map(|i| {
            let account = i.get("userAccount")?;
            let name = field(Some(account), &["accountName"])?;
            let mut u = Map::new();
            u.insert("userName".into(), name);
            u.insert(
                "domainName".into(),
                field(Some(account), &["domainName"]).unwrap_or(Value::Null),
            );
            Some(Value::Object(u))
        })
        .unwrap_or(Value::Null)
}

/// The documented keys of an MDE evidence entity, every one present (`null` where it does not
/// apply), as `/api/alerts?$expand=evidence` writes them. The one list of them: the columns of
/// `NAME-evidence` files are these, in this order, after the alert's id and tenant.
pub(crate) const MDE_EVIDENCE_KEYS: &[&str] = &[
    "entityType",
    "evidenceCreationTime",
    "detectionStatus",
    "fileName",
    "filePath",
    "sha1",
    "sha256",
    "processId",
    "processCommandLine",
    "processCreationTime",
    "parentProcessId",
    "parentProcessCreationTime",
    "parentProcessFileName",
    "parentProcessFilePath",
    "ipAddress",
    "url",
    "registryKey",
    "registryHive",
    "registryValueType",
    "registryValue",
    "accountName",
    "domainName",
    "userSid",
    "aadUserId",
    "userPrincipalName",
];

/// MDE's `entityType` for a Graph evidence type; `None` for types without a counterpart.
fn entity_type(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "deviceEvidence" => "Machine",
        "fileEvidence" => "File",
        "processEvidence" => "Process",
        "userEvidence" => "User",
        "ipEvidence" => "Ip",
        "urlEvidence" => "Url",
        "registryKeyEvidence" | "registryValueEvidence" => "Registry",
        "mailboxEvidence" => "MailBox",
        "analyzedMessageEvidence" => "MailMessage",
        "mailClusterEvidence" => "MailCluster",
        "securityGroupEvidence" => "SecurityGroup",
        _ => return None,
    })
}

/// One Graph evidence item as an MDE evidence entity (module docs); unknown types verbatim.
fn evidence_item(v: Value) -> Value {
    let Some(entity) = evidence_type(&v).and_then(entity_type) else {
        return v;
    };
    let Value::Object(mut g) = v else {
        return v;
    };
    let mut e: Map<String, Value> = MDE_EVIDENCE_KEYS
        .iter()
        .map(|k| ((*k).to_owned(), Value::Null))
        .collect();
    e.insert("entityType".into(), Value::String(entity.into()));
    let mut set = |to: &str, v: Option<Value>| {
        if let Some(v) = v {
            e.insert(to.to_owned(), v);
        }
    };
    let take = |g: &mut Map<String, Value>, k: &str| g.remove(k).filter(|v| !v.is_null());
    set(
        "evidenceCreationTime",
        take(&mut g, "createdDateTime").map(time),
    );
    set(
        "processCreationTime",
        take(&mut g, "processCreationDateTime").map(time),
    );
    set(
        "parentProcessCreationTime",
        take(&mut g, "parentProcessCreationDateTime").map(time),
    );
    set(
        "detectionStatus",
        take(&mut g, "detectionStatus").map(|v| enum_value(v, &[])),
    );
    let file = g.get("fileDetails").or_else(|| g.get("imageFile"));
    let file = file.map(|f| f.get("fileDetails").unwrap_or(f)).cloned();
    for k in ["sha1", "sha256", "fileName", "filePath"] {
        set(k, field(file.as_ref(), &[k]));
    }
    let parent = g.get("parentProcessImageFile").cloned();
    let parent = parent.as_ref().map(|f| f.get("fileDetails").unwrap_or(f));
    set("parentProcessFileName", field(parent, &["fileName"]));
    set("parentProcessFilePath", field(parent, &["filePath"]));
    let account = g.get("userAccount").cloned();
    for (to, from) in [
        ("accountName", "accountName"),
        ("domainName", "domainName"),
        ("userSid", "userSid"),
        ("aadUserId", "azureAdUserId"),
        ("userPrincipalName", "userPrincipalName"),
    ] {
        set(to, field(account.as_ref(), &[from]));
    }
    // The rest of the item keeps its Graph names, nothing lost; an MDE key already filled wins.
    for (k, v) in g {
        match e.get(&k) {
            Some(existing) if !existing.is_null() => {}
            _ => {
                e.insert(k, v);
            }
        }
    }
    Value::Object(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn graph() -> Value {
        serde_json::from_str(
            r##"{
            "@odata.type": "#microsoft.graph.security.alert",
            "id": "da637551227677560813_-961444813",
            "providerAlertId": "da637551227677560813_-961444813",
            "incidentId": "28282",
            "status": "inProgress",
            "severity": "high",
            "classification": "truePositive",
            "determination": "malware",
            "serviceSource": "microsoftDefenderForEndpoint",
            "detectionSource": "antivirus",
            "productName": "Microsoft Defender for Endpoint",
            "detectorId": "e0da400f-affd-43ef-b1d5-afc2eb6f2756",
            "tenantId": "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c",
            "title": "Suspicious execution of hidden file",
            "description": "A hidden file has been launched.",
            "recommendedActions": "Collect artifacts",
            "category": "DefenseEvasion",
            "assignedTo": null,
            "alertWebUrl": "https://security.microsoft.com/alerts/da1",
            "incidentWebUrl": "https://security.microsoft.com/incidents/28282",
            "actorDisplayName": null,
            "threatDisplayName": "Trojan:Win32/X",
            "threatFamilyName": "X",
            "mitreTechniques": ["T1564.001"],
            "createdDateTime": "2021-04-27T12:19:27.7211305Z",
            "lastUpdateDateTime": "2021-05-02T14:19:01.3266667Z",
            "resolvedDateTime": null,
            "firstActivityDateTime": "2021-04-26T07:45:50.116Z",
            "lastActivityDateTime": "2021-05-02T07:56:58.222Z",
            "systemTags": ["Defender Experts"],
            "alertPolicyId": null,
            "comments": [{"comment": "looked", "createdByDisplayName": "a@contoso.com",
                          "createdDateTime": "2021-05-02T14:19:01.3266667Z"}],
            "evidence": [
                {"@odata.type": "#microsoft.graph.security.deviceEvidence",
                 "createdDateTime": "2021-04-27T12:19:27.7211305Z", "verdict": "unknown",
                 "remediationStatus": "none", "roles": [], "tags": [],
                 "mdeDeviceId": "73e7e2de709dff64ef64b1d0c30e67fab63279db",
                 "deviceDnsName": "tempdevice.contoso.com", "rbacGroupName": "UnassignedGroup",
                 "osPlatform": "Windows10",
                 "loggedOnUsers": [{"accountName": "bob", "domainName": "CONTOSO"}]},
                {"@odata.type": "#microsoft.graph.security.fileEvidence",
                 "createdDateTime": "2021-04-27T12:19:27.7211305Z", "detectionStatus": "detected",
                 "fileDetails": {"sha1": "aa", "sha256": "bb", "fileName": "x.exe",
                                 "filePath": "C:\\t", "fileSize": 10}},
                {"@odata.type": "#microsoft.graph.security.processEvidence",
                 "processId": 4780, "parentProcessId": 668,
                 "processCommandLine": "\"x.exe\" -s",
                 "processCreationDateTime": "2021-04-27T12:19:27.7211305Z",
                 "parentProcessCreationDateTime": "2021-04-27T12:19:27.7211305Z",
                 "imageFile": {"sha1": "cc", "fileName": "x.exe", "filePath": "C:\\t"},
                 "parentProcessImageFile": {"fileName": "svchost.exe", "filePath": "C:\\w"},
                 "userAccount": {"accountName": "system", "domainName": "NT AUTHORITY",
                                 "userSid": "S-1-5-18", "azureAdUserId": null}},
                {"@odata.type": "#microsoft.graph.security.userEvidence",
                 "userAccount": {"accountName": "alice", "domainName": "CONTOSO",
                                 "userSid": "S-1-5-21-1", "azureAdUserId": "guid",
                                 "userPrincipalName": "alice@contoso.com"}},
                {"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": "10.0.0.1"},
                {"@odata.type": "#microsoft.graph.security.urlEvidence", "url": "http://x.test/"},
                {"@odata.type": "#microsoft.graph.security.registryValueEvidence",
                 "registryKey": "SOFTWARE\\X", "registryHive": "HKEY_LOCAL_MACHINE",
                 "registryValueType": "String", "registryValue": "1", "registryValueName": "n"},
                {"@odata.type": "#microsoft.graph.security.kubernetesPodEvidence",
                 "name": "pod-1", "createdDateTime": "2021-04-27T12:19:27Z"}
            ]
        }"##,
        )
        .unwrap()
    }

    #[test]
    fn stored_text_is_mapped_only_when_it_is_graph() {
        let g = graph().to_string();
        assert_eq!(mde_shape_of_text(&g), Some(to_mde_shape(&graph())));
        let pretty = serde_json::to_string_pretty(&graph()).unwrap();
        assert!(mde_shape_of_text(&pretty).is_some());
        for not in [
            r#"{"id":"a","lastUpdateTime":"2024-01-01T00:00:00Z"}"#,
            r#"{"id":"a","lastUpdateTime":"x","evidence":[{"lastUpdateDateTime":"y"}]}"#,
            r#"{"id":"a","lastUpdateTime":"x","lastUpdateDateTime":"y"}"#,
            r#"{"id":"a","title":"\"lastUpdateDateTime\""}"#,
            "[1]",
            "not json",
            "",
        ] {
            assert_eq!(mde_shape_of_text(not), None, "{not}");
        }
    }

    #[test]
    fn graph_is_recognised_by_its_update_time() {
        let g = graph();
        assert!(is_graph(g.as_object().unwrap()));
        let mde = json!({"id": "a", "lastUpdateTime": "2024-01-01T00:00:00Z"});
        assert!(!is_graph(mde.as_object().unwrap()));
        let both = json!({"lastUpdateTime": "x", "lastUpdateDateTime": "y"});
        assert!(!is_graph(both.as_object().unwrap()));
        assert_eq!(to_mde_shape(&mde), mde, "an MDE alert is left alone");
        assert_eq!(to_mde_shape(&json!([1])), json!([1]));
    }

    #[test]
    fn renamed_fields_get_their_mde_names_and_times_keep_their_text() {
        let m = to_mde_shape(&graph());
        for (k, v) in [
            ("alertCreationTime", "2021-04-27T12:19:27.7211305Z"),
            ("lastUpdateTime", "2021-05-02T14:19:01.3266667Z"),
            ("firstEventTime", "2021-04-26T07:45:50.116Z"),
            ("lastEventTime", "2021-05-02T07:56:58.222Z"),
            ("threatName", "Trojan:Win32/X"),
            ("aadTenantId", "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c"),
        ] {
            assert_eq!(m[k], json!(v), "{k}");
        }
        assert_eq!(m["resolvedTime"], Value::Null);
        for gone in [
            "createdDateTime",
            "lastUpdateDateTime",
            "resolvedDateTime",
            "firstActivityDateTime",
            "lastActivityDateTime",
            "threatDisplayName",
            "tenantId",
        ] {
            assert!(m.get(gone).is_none(), "{gone}");
        }
        assert!(!is_graph(m.as_object().unwrap()));
        assert_eq!(to_mde_shape(&m), m, "idempotent");
    }

    #[test]
    fn a_time_without_offset_is_made_canonical() {
        let g = json!({"lastUpdateDateTime": "2021-05-02T14:19:01.5", "createdDateTime": "soon"});
        let m = to_mde_shape(&g);
        assert_eq!(m["lastUpdateTime"], json!("2021-05-02T14:19:01.5000000Z"));
        assert_eq!(m["alertCreationTime"], json!("soon"), "unreadable: kept");
    }

    #[test]
    fn an_mde_name_already_present_is_not_overwritten() {
        let g = json!({"lastUpdateDateTime": "2021-05-02T14:19:01Z", "threatName": "kept",
                       "threatDisplayName": "graph", "machineId": "m"});
        let m = to_mde_shape(&g);
        assert_eq!(m["threatName"], json!("kept"));
        assert_eq!(m["threatDisplayName"], json!("graph"), "nothing lost");
        assert_eq!(m["machineId"], json!("m"));
    }

    #[test]
    fn incident_ids_become_numbers_when_they_are_plain_decimals() {
        let id = |v: Value| {
            to_mde_shape(&json!({"lastUpdateDateTime": "x", "incidentId": v}))["incidentId"].clone()
        };
        assert_eq!(id(json!("28282")), json!(28282));
        assert_eq!(id(json!("0")), json!(0));
        for kept in [
            json!("007"),
            json!("-1"),
            json!("12a"),
            json!(""),
            json!("99999999999999999999"),
            json!(5),
            Value::Null,
        ] {
            assert_eq!(id(kept.clone()), kept);
        }
    }

    #[test]
    fn enums_take_the_mde_spelling() {
        let one =
            |k: &str, v: &str| to_mde_shape(&json!({"lastUpdateDateTime": "x", k: v}))[k].clone();
        for (k, g, m) in [
            ("status", "new", json!("New")),
            ("status", "inProgress", json!("InProgress")),
            ("status", "resolved", json!("Resolved")),
            ("status", "unknown", json!("Unknown")),
            ("status", "unknownFutureValue", json!("UnknownFutureValue")),
            ("severity", "unknown", json!("UnSpecified")),
            ("severity", "informational", json!("Informational")),
            ("severity", "low", json!("Low")),
            ("severity", "medium", json!("Medium")),
            ("severity", "high", json!("High")),
            ("severity", "critical", json!("Critical")),
            ("severity", "HIGH", json!("High")),
            ("classification", "truePositive", json!("TruePositive")),
            ("classification", "falsePositive", json!("FalsePositive")),
            (
                "classification",
                "informationalExpectedActivity",
                json!("InformationalExpectedActivity"),
            ),
            ("classification", "unknown", Value::Null),
            ("determination", "unknown", Value::Null),
            ("determination", "malware", json!("Malware")),
            ("determination", "compromisedUser", json!("CompromisedUser")),
            (
                "determination",
                "compromisedAccount",
                json!("CompromisedUser"),
            ),
            ("determination", "clean", json!("Clean")),
            ("determination", "notMalicious", json!("Clean")),
            (
                "determination",
                "insufficientData",
                json!("InsufficientData"),
            ),
            (
                "determination",
                "notEnoughDataToValidate",
                json!("InsufficientData"),
            ),
            (
                "determination",
                "confirmedActivity",
                json!("ConfirmedUserActivity"),
            ),
            (
                "determination",
                "lineOfBusinessApplication",
                json!("LineOfBusinessApplication"),
            ),
            ("detectionSource", "antivirus", json!("WindowsDefenderAv")),
            (
                "detectionSource",
                "microsoftDefenderForEndpoint",
                json!("WindowsDefenderAtp"),
            ),
            (
                "detectionSource",
                "smartScreen",
                json!("WindowsDefenderSmartScreen"),
            ),
            ("detectionSource", "customTi", json!("CustomerTI")),
            (
                "detectionSource",
                "customDetection",
                json!("CustomDetection"),
            ),
            ("detectionSource", "microsoft365Defender", json!("MTP")),
            (
                "detectionSource",
                "microsoftDefenderForOffice365",
                json!("OfficeATP"),
            ),
            (
                "detectionSource",
                "microsoftDefenderForIdentity",
                json!("MicrosoftDefenderForIdentity"),
            ),
            ("detectionSource", "Already Odd", json!("Already Odd")),
            ("detectionSource", "", json!("")),
        ] {
            assert_eq!(one(k, g), m, "{k} {g}");
        }
        // Graph-only enums keep Graph's words.
        assert_eq!(
            to_mde_shape(&graph())["serviceSource"],
            json!("microsoftDefenderForEndpoint")
        );
    }

    /// Every member Microsoft's Graph reference lists for each enum the exports read in the MDE
    /// vocabulary, with the word it must read as. Members: microsoftgraph/microsoft-graph-docs-contrib
    /// `api-reference/v1.0/resources/security-alert.md` (status, severity, classification,
    /// determination in both spellings, detectionSource), `enums-security.md`, and the
    /// `investigationState` members of Graph's v1.0 SDK models (`docs/defender-api.md` §4.2b).
    /// MDE words: the MDE alert page (`docs/defender-api.md` §2.2).
    const REFERENCE: &[(&str, Table)] = &[
        (
            "status",
            &[
                ("unknown", Some("Unknown")),
                ("new", Some("New")),
                ("inProgress", Some("InProgress")),
                ("resolved", Some("Resolved")),
                ("unknownFutureValue", Some("UnknownFutureValue")),
            ],
        ),
        (
            "severity",
            &[
                ("unknown", Some("UnSpecified")),
                ("informational", Some("Informational")),
                ("low", Some("Low")),
                ("medium", Some("Medium")),
                ("high", Some("High")),
                ("unknownFutureValue", Some("UnknownFutureValue")),
            ],
        ),
        (
            "classification",
            &[
                ("unknown", None),
                ("falsePositive", Some("FalsePositive")),
                ("truePositive", Some("TruePositive")),
                (
                    "informationalExpectedActivity",
                    Some("InformationalExpectedActivity"),
                ),
                ("unknownFutureValue", Some("UnknownFutureValue")),
            ],
        ),
        (
            "determination",
            &[
                ("unknown", None),
                ("apt", Some("Apt")),
                ("malware", Some("Malware")),
                ("securityPersonnel", Some("SecurityPersonnel")),
                ("securityTesting", Some("SecurityTesting")),
                ("unwantedSoftware", Some("UnwantedSoftware")),
                ("other", Some("Other")),
                ("multiStagedAttack", Some("MultiStagedAttack")),
                ("compromisedUser", Some("CompromisedUser")),
                ("compromisedAccount", Some("CompromisedUser")),
                ("phishing", Some("Phishing")),
                ("maliciousUserActivity", Some("MaliciousUserActivity")),
                ("clean", Some("Clean")),
                ("notMalicious", Some("Clean")),
                ("insufficientData", Some("InsufficientData")),
                ("notEnoughDataToValidate", Some("InsufficientData")),
                ("confirmedUserActivity", Some("ConfirmedUserActivity")),
                ("confirmedActivity", Some("ConfirmedUserActivity")),
                (
                    "lineOfBusinessApplication",
                    Some("LineOfBusinessApplication"),
                ),
                ("unknownFutureValue", Some("UnknownFutureValue")),
            ],
        ),
        (
            "detectionSource",
            &[
                ("unknown", Some("Unknown")),
                ("microsoftDefenderForEndpoint", Some("WindowsDefenderAtp")),
                ("antivirus", Some("WindowsDefenderAv")),
                ("smartScreen", Some("WindowsDefenderSmartScreen")),
                ("customTi", Some("CustomerTI")),
                ("microsoftDefenderForOffice365", Some("OfficeATP")),
                ("automatedInvestigation", Some("AutomatedInvestigation")),
                ("microsoftThreatExperts", Some("ThreatExperts")),
                ("customDetection", Some("CustomDetection")),
                (
                    "microsoftDefenderForIdentity",
                    Some("MicrosoftDefenderForIdentity"),
                ),
                ("cloudAppSecurity", Some("MCAS")),
                ("microsoft365Defender", Some("MTP")),
                ("azureAdIdentityProtection", Some("AAD")),
                ("manual", Some("Manual")),
                (
                    "microsoftDataLossPrevention",
                    Some("MicrosoftDataLossPrevention"),
                ),
                ("appGovernancePolicy", Some("AppGPolicy")),
                ("appGovernanceDetection", Some("AppGDetection")),
                ("unknownFutureValue", Some("UnknownFutureValue")),
                (
                    "microsoftDefenderForCloud",
                    Some("MicrosoftDefenderForCloud"),
                ),
                ("microsoftDefenderForIoT", Some("MicrosoftDefenderForIoT")),
                (
                    "microsoftDefenderForServers",
                    Some("MicrosoftDefenderForServers"),
                ),
                (
                    "microsoftDefenderForStorage",
                    Some("MicrosoftDefenderForStorage"),
                ),
                ("microsoftDefenderForDNS", Some("MicrosoftDefenderForDNS")),
                (
                    "microsoftDefenderForDatabases",
                    Some("MicrosoftDefenderForDatabases"),
                ),
                (
                    "microsoftDefenderForContainers",
                    Some("MicrosoftDefenderForContainers"),
                ),
                (
                    "microsoftDefenderForNetwork",
                    Some("MicrosoftDefenderForNetwork"),
                ),
                (
                    "microsoftDefenderForAppService",
                    Some("MicrosoftDefenderForAppService"),
                ),
                (
                    "microsoftDefenderForKeyVault",
                    Some("MicrosoftDefenderForKeyVault"),
                ),
                (
                    "microsoftDefenderForResourceManager",
                    Some("MicrosoftDefenderForResourceManager"),
                ),
                (
                    "microsoftDefenderForApiManagement",
                    Some("MicrosoftDefenderForApiManagement"),
                ),
                ("nrtAlerts", Some("NrtAlerts")),
                ("scheduledAlerts", Some("ScheduledAlerts")),
                (
                    "microsoftDefenderThreatIntelligenceAnalytics",
                    Some("MicrosoftDefenderThreatIntelligenceAnalytics"),
                ),
                ("builtInMl", Some("BuiltInMl")),
                (
                    "microsoftInsiderRiskManagement",
                    Some("MicrosoftInsiderRiskManagement"),
                ),
                (
                    "microsoftThreatIntelligence",
                    Some("MicrosoftThreatIntelligence"),
                ),
                (
                    "microsoftDefenderForAIServices",
                    Some("MicrosoftDefenderForAIServices"),
                ),
                ("securityCopilot", Some("SecurityCopilot")),
                ("microsoftSentinel", Some("MicrosoftSentinel")),
            ],
        ),
        (
            "investigationState",
            &[
                ("unknown", Some("Unknown")),
                ("terminated", Some("Terminated")),
                ("successfullyRemediated", Some("SuccessfullyRemediated")),
                ("benign", Some("Benign")),
                ("failed", Some("Failed")),
                ("partiallyRemediated", Some("PartiallyRemediated")),
                ("running", Some("Running")),
                ("pendingApproval", Some("PendingApproval")),
                ("pendingResource", Some("PendingResource")),
                ("queued", Some("Queued")),
                ("innerFailure", Some("InnerFailure")),
                ("preexistingAlert", Some("PreexistingAlert")),
                ("unsupportedOs", Some("UnsupportedOs")),
                ("unsupportedAlertType", Some("UnsupportedAlertType")),
                ("suppressedAlert", Some("SuppressedAlert")),
                ("partiallyInvestigated", Some("PartiallyInvestigated")),
                ("terminatedByUser", Some("TerminatedByUser")),
                ("terminatedBySystem", Some("TerminatedBySystem")),
                ("unknownFutureValue", Some("UnknownFutureValue")),
            ],
        ),
    ];

    #[test]
    fn every_member_of_microsofts_graph_enums_reads_in_the_mde_vocabulary() {
        let one = |k: &str, v: &str| {
            let text = json!({"lastUpdateDateTime": "x", k: v}).to_string();
            let via_text = mde_shape_of_text(&text).expect("a Graph alert")[k].clone();
            let via_value = to_mde_shape(&json!({"lastUpdateDateTime": "x", k: v}))[k].clone();
            assert_eq!(via_text, via_value, "{k} {v}");
            via_value
        };
        for (key, members) in REFERENCE {
            for (graph, mde) in *members {
                let want = mde.map_or(Value::Null, |m| json!(m));
                assert_eq!(one(key, graph), want, "{key} {graph}");
                // Any casing of a member is that member; the MDE word reads as itself.
                assert_eq!(one(key, &graph.to_ascii_uppercase()), want, "{key} {graph}");
                if let Some(m) = mde {
                    assert_eq!(one(key, m), want, "{key} {m}");
                }
            }
        }
        // A value the reference does not list is never dropped: a camelCase word reads as MDE
        // would write it, anything else exactly as sent.
        for key in REFERENCE.iter().map(|(k, _)| *k) {
            assert_eq!(one(key, "brandNewValue"), json!("BrandNewValue"), "{key}");
            assert_eq!(one(key, "not a word"), json!("not a word"), "{key}");
            assert_eq!(one(key, ""), json!(""), "{key}");
            let n = to_mde_shape(&json!({"lastUpdateDateTime": "x", key: 7}));
            assert_eq!(n[key], json!(7), "{key}");
        }
    }

    #[test]
    fn investigation_state_takes_the_mde_spelling_in_every_export_path() {
        let g = json!({"lastUpdateDateTime": "2026-01-13T17:30:54.2633333Z",
                       "investigationState": "benign"});
        assert_eq!(to_mde_shape(&g)["investigationState"], json!("Benign"));
        let text = mde_shape_of_text(&g.to_string()).unwrap();
        assert_eq!(text["investigationState"], json!("Benign"));
        let mde = json!({"lastUpdateTime": "x", "investigationState": "UnsupportedAlertType"});
        assert_eq!(to_mde_shape(&mde), mde, "an MDE alert keeps its own words");
    }

    /// An alert as `alerts_v2` returns it (the shape of Microsoft's List alerts_v2 example and of
    /// real payloads in public test data): two devices, the primary one second; no user evidence,
    /// the only account on the process evidence.
    fn multi_device_alert(primary_mark: &str) -> Value {
        let text = r##"{
            "@odata.type": "#microsoft.graph.security.alert",
            "id": "da637551227677560813_-961444813",
            "providerAlertId": "da637551227677560813_-961444813",
            "incidentId": "28282",
            "status": "new",
            "severity": "low",
            "classification": "unknown",
            "determination": "unknown",
            "serviceSource": "microsoftDefenderForEndpoint",
            "detectionSource": "antivirus",
            "detectorId": "e0da400f-affd-43ef-b1d5-afc2eb6f2756",
            "tenantId": "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c",
            "title": "Suspicious execution of hidden file",
            "category": "DefenseEvasion",
            "investigationState": "terminatedBySystem",
            "createdDateTime": "2021-04-27T12:19:27.7211305Z",
            "lastUpdateDateTime": "2021-05-02T14:19:01.3266667Z",
            "resolvedDateTime": null,
            "comments": [],
            "evidence": [
                {"@odata.type": "#microsoft.graph.security.deviceEvidence",
                 "createdDateTime": "2021-04-27T12:19:27.7211305Z", "verdict": "unknown",
                 "remediationStatus": "none", "roles": [], "detailedRoles": [], "tags": [],
                 "mdeDeviceId": "1111111111111111111111111111111111111111",
                 "deviceDnsName": "fileserver.contoso.com", "rbacGroupName": "Servers",
                 "loggedOnUsers": []},
                {"@odata.type": "#microsoft.graph.security.deviceEvidence",
                 "createdDateTime": "2021-04-27T12:19:27.7211305Z", "verdict": "unknown",
                 "remediationStatus": "none", "roles": ["compromised"],
                 "detailedRoles": ["PRIMARY_MARK"], "tags": ["Test Machine"],
                 "mdeDeviceId": "73e7e2de709dff64ef64b1d0c30e67fab63279db",
                 "deviceDnsName": "tempDns", "rbacGroupName": "UnassignedGroup",
                 "loggedOnUsers": [{"accountName": "bob", "domainName": "CONTOSO"}]},
                {"@odata.type": "#microsoft.graph.security.fileEvidence",
                 "createdDateTime": "2021-04-27T12:19:27.7211305Z", "verdict": "unknown",
                 "remediationStatus": "none", "detectionStatus": "detected",
                 "mdeDeviceId": "73e7e2de709dff64ef64b1d0c30e67fab63279db",
                 "roles": [], "detailedRoles": ["Referred in command line"], "tags": [],
                 "fileDetails": {"sha1": "5f1e8acedc065031aad553b710838eb366cfee9a",
                                 "fileName": "MsSense.exe", "filePath": "C:\\Program Files\\temp"}},
                {"@odata.type": "#microsoft.graph.security.processEvidence",
                 "createdDateTime": "2021-04-27T12:19:27.7211305Z", "verdict": "unknown",
                 "remediationStatus": "none", "processId": 4780, "parentProcessId": 668,
                 "processCommandLine": "\"MsSense.exe\"", "detectionStatus": "detected",
                 "mdeDeviceId": "73e7e2de709dff64ef64b1d0c30e67fab63279db",
                 "roles": [], "detailedRoles": [], "tags": [],
                 "imageFile": {"fileName": "MsSense.exe", "filePath": "C:\\Program Files\\temp"},
                 "userAccount": {"accountName": "SYSTEM", "domainName": "NT AUTHORITY",
                                 "userSid": "S-1-5-18", "azureAdUserId": null,
                                 "userPrincipalName": null, "displayName": "System"}},
                {"@odata.type": "#microsoft.graph.security.registryKeyEvidence",
                 "createdDateTime": "2021-04-27T12:19:27.7211305Z", "verdict": "unknown",
                 "remediationStatus": "none",
                 "registryKey": "SYSTEM\\CONTROLSET001\\CONTROL\\WMI\\AUTOLOGGER\\SENSEAUDITLOGGER",
                 "registryHive": "HKEY_LOCAL_MACHINE", "roles": [], "detailedRoles": [], "tags": []}
            ],
            "systemTags": ["Defender Experts"]
        }"##;
        serde_json::from_str(&text.replace("PRIMARY_MARK", primary_mark)).unwrap()
    }

    #[test]
    fn the_device_is_the_one_graph_marks_primary_and_the_user_may_come_from_a_process() {
        // Microsoft's example writes the mark `Main device`; real payloads write `PrimaryDevice`.
        for mark in [
            "PrimaryDevice",
            "Main device",
            "primaryDevice",
            "MAIN_DEVICE",
        ] {
            let g = multi_device_alert(mark);
            for m in [to_mde_shape(&g), mde_shape_of_text(&g.to_string()).unwrap()] {
                assert_eq!(
                    m["machineId"],
                    json!("73e7e2de709dff64ef64b1d0c30e67fab63279db"),
                    "{mark}"
                );
                assert_eq!(m["computerDnsName"], json!("tempDns"), "{mark}");
                assert_eq!(m["rbacGroupName"], json!("UnassignedGroup"), "{mark}");
                assert_eq!(
                    m["loggedOnUsers"],
                    json!([{"accountName": "bob", "domainName": "CONTOSO"}])
                );
                assert_eq!(
                    m["relatedUser"],
                    json!({"userName": "SYSTEM", "domainName": "NT AUTHORITY"})
                );
                assert_eq!(m["investigationState"], json!("TerminatedBySystem"));
                assert_eq!(m["classification"], Value::Null);
                assert_eq!(m["evidence"].as_array().unwrap().len(), 5);
            }
        }
        // No device marked: the first device evidence.
        let m = to_mde_shape(&multi_device_alert("Lateral movement target"));
        assert_eq!(
            m["machineId"],
            json!("1111111111111111111111111111111111111111")
        );
        assert_eq!(m["computerDnsName"], json!("fileserver.contoso.com"));
    }

    #[test]
    fn user_evidence_wins_over_an_account_on_other_evidence() {
        let mut g = multi_device_alert("PrimaryDevice");
        g["evidence"].as_array_mut().unwrap().push(json!({
            "@odata.type": "#microsoft.graph.security.userEvidence",
            "userAccount": {"accountName": "alice", "domainName": "CONTOSO"}}));
        let m = to_mde_shape(&g);
        assert_eq!(
            m["relatedUser"],
            json!({"userName": "alice", "domainName": "CONTOSO"})
        );
        // An account without a name is no user; a later one is taken.
        let g = json!({"lastUpdateDateTime": "x", "evidence": [
            {"@odata.type": "#microsoft.graph.security.processEvidence",
             "userAccount": {"accountName": null, "domainName": "X"}},
            {"@odata.type": "#microsoft.graph.security.mailboxEvidence",
             "userAccount": {"accountName": "carol"}},
            {"@odata.type": "#microsoft.graph.security.deviceEvidence", "mdeDeviceId": "first"},
            {"@odata.type": "#microsoft.graph.security.deviceEvidence",
             "detailedRoles": "PrimaryDevice", "roles": [7, null], "mdeDeviceId": "odd"}]});
        let m = to_mde_shape(&g);
        assert_eq!(
            m["relatedUser"],
            json!({"userName": "carol", "domainName": null})
        );
        assert_eq!(
            m["machineId"],
            json!("first"),
            "malformed roles are no mark"
        );
    }

    #[test]
    fn device_and_user_come_from_evidence() {
        let m = to_mde_shape(&graph());
        assert_eq!(
            m["machineId"],
            json!("73e7e2de709dff64ef64b1d0c30e67fab63279db")
        );
        assert_eq!(m["computerDnsName"], json!("tempdevice.contoso.com"));
        assert_eq!(m["rbacGroupName"], json!("UnassignedGroup"));
        assert_eq!(
            m["loggedOnUsers"],
            json!([{"accountName": "bob", "domainName": "CONTOSO"}])
        );
        assert_eq!(
            m["relatedUser"],
            json!({"userName": "alice", "domainName": "CONTOSO"})
        );
        let bare = to_mde_shape(&json!({"lastUpdateDateTime": "x", "evidence": []}));
        assert_eq!(bare["machineId"], Value::Null);
        assert_eq!(bare["computerDnsName"], Value::Null);
        assert_eq!(bare["relatedUser"], Value::Null);
        assert_eq!(bare["loggedOnUsers"], json!([]));
    }

    #[test]
    fn comments_take_mde_names() {
        let m = to_mde_shape(&graph());
        assert_eq!(
            m["comments"],
            json!([{"comment": "looked", "createdBy": "a@contoso.com",
                    "createdTime": "2021-05-02T14:19:01.3266667Z"}])
        );
    }

    #[test]
    fn graph_only_fields_keep_their_names() {
        let (g, m) = (graph(), to_mde_shape(&graph()));
        for k in [
            "serviceSource",
            "productName",
            "alertWebUrl",
            "incidentWebUrl",
            "recommendedActions",
            "providerAlertId",
            "actorDisplayName",
            "systemTags",
            "detectorId",
            "alertPolicyId",
            "@odata.type",
            "mitreTechniques",
            "category",
            "title",
            "description",
            "id",
        ] {
            assert_eq!(m[k], g[k], "{k}");
        }
    }

    #[test]
    fn evidence_becomes_mde_entities_and_unknown_types_are_kept() {
        let m = to_mde_shape(&graph());
        let ev = m["evidence"].as_array().unwrap();
        for item in &ev[..7] {
            for k in MDE_EVIDENCE_KEYS {
                assert!(item.get(k).is_some(), "{k} in {item}");
            }
        }
        let kinds: Vec<Value> = ev.iter().map(|e| e["entityType"].clone()).collect();
        let want: Vec<Value> = [
            "Machine", "File", "Process", "User", "Ip", "Url", "Registry",
        ]
        .iter()
        .map(|k| json!(k))
        .chain([Value::Null])
        .collect();
        assert_eq!(kinds, want);
        let (device, file, process, user) = (&ev[0], &ev[1], &ev[2], &ev[3]);
        assert_eq!(device["deviceDnsName"], json!("tempdevice.contoso.com"));
        assert_eq!(device["verdict"], json!("unknown"), "Graph keys are kept");
        assert_eq!(
            device["evidenceCreationTime"],
            json!("2021-04-27T12:19:27.7211305Z")
        );
        assert!(device.get("createdDateTime").is_none());
        assert_eq!(file["sha1"], json!("aa"));
        assert_eq!(file["sha256"], json!("bb"));
        assert_eq!(file["fileName"], json!("x.exe"));
        assert_eq!(file["filePath"], json!("C:\\t"));
        assert_eq!(file["detectionStatus"], json!("Detected"));
        assert_eq!(file["fileDetails"]["fileSize"], json!(10));
        assert_eq!(process["processId"], json!(4780));
        assert_eq!(process["parentProcessId"], json!(668));
        assert_eq!(process["processCommandLine"], json!("\"x.exe\" -s"));
        assert_eq!(
            process["processCreationTime"],
            json!("2021-04-27T12:19:27.7211305Z")
        );
        assert_eq!(
            process["parentProcessCreationTime"],
            json!("2021-04-27T12:19:27.7211305Z")
        );
        assert_eq!(process["sha1"], json!("cc"));
        assert_eq!(process["fileName"], json!("x.exe"));
        assert_eq!(process["parentProcessFileName"], json!("svchost.exe"));
        assert_eq!(process["parentProcessFilePath"], json!("C:\\w"));
        assert_eq!(process["accountName"], json!("system"));
        assert_eq!(process["userSid"], json!("S-1-5-18"));
        assert_eq!(process["aadUserId"], Value::Null);
        assert_eq!(user["accountName"], json!("alice"));
        assert_eq!(user["domainName"], json!("CONTOSO"));
        assert_eq!(user["userSid"], json!("S-1-5-21-1"));
        assert_eq!(user["aadUserId"], json!("guid"));
        assert_eq!(user["userPrincipalName"], json!("alice@contoso.com"));
        assert_eq!(ev[4]["ipAddress"], json!("10.0.0.1"));
        assert_eq!(ev[5]["url"], json!("http://x.test/"));
        assert_eq!(ev[6]["registryKey"], json!("SOFTWARE\\X"));
        assert_eq!(ev[6]["registryHive"], json!("HKEY_LOCAL_MACHINE"));
        assert_eq!(ev[6]["registryValueType"], json!("String"));
        assert_eq!(ev[6]["registryValue"], json!("1"));
        assert_eq!(ev[6]["registryValueName"], json!("n"));
        assert_eq!(ev[7], graph()["evidence"][7], "an unknown type, verbatim");
    }

    /// Any JSON value, nested up to `depth`.
    fn any_json(depth: u32) -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            ".{0,12}".prop_map(Value::String),
            "[0-9]{0,25}".prop_map(Value::String),
            Just(json!("2024-05-01T10:00:00")),
            Just(json!("#microsoft.graph.security.fileEvidence")),
            Just(json!("#microsoft.graph.security.deviceEvidence")),
            Just(json!("#microsoft.graph.security.userEvidence")),
            Just(json!("inProgress")),
        ];
        leaf.prop_recursive(depth, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("@odata.type".to_owned()),
                        Just("fileDetails".to_owned()),
                        Just("userAccount".to_owned()),
                        Just("imageFile".to_owned()),
                        Just("accountName".to_owned()),
                        Just("createdDateTime".to_owned()),
                        "[a-zA-Z]{1,8}"
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    const FIELDS: &[&str] = &[
        "lastUpdateDateTime",
        "createdDateTime",
        "incidentId",
        "status",
        "severity",
        "classification",
        "determination",
        "detectionSource",
        "comments",
        "evidence",
        "threatDisplayName",
        "tenantId",
        "lastUpdateTime",
        "machineId",
    ];

    proptest! {
        /// No input panics, the result is never Graph-shaped again when the input was, and the
        /// mapping is idempotent.
        #[test]
        fn mapping_never_panics(
            fields in prop::collection::vec((0..FIELDS.len(), any_json(4)), 0..12),
            any in any_json(3),
        ) {
            let mut m = Map::new();
            m.insert("lastUpdateDateTime".into(), json!("2024-05-01T10:00:00Z"));
            for (k, v) in fields {
                m.insert(FIELDS[k].to_owned(), v);
            }
            let v = Value::Object(m);
            let out = to_mde_shape(&v);
            prop_assert_eq!(to_mde_shape(&out), out.clone());
            if is_graph(v.as_object().unwrap()) {
                prop_assert!(!is_graph(out.as_object().unwrap()));
            }
            let _ = to_mde_shape(&any);
        }
    }
}
