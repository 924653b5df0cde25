//! The part of the world only Graph sees: alerts of the other Defender products, made and
//! changed here in Graph's own shape, and the endpoint alerts Graph leaves out.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use super::view::{id_hash, product_name};
use crate::clock::defender_time;

/// Whether an endpoint alert is MDE-only (suppressed by a tuning rule, or standalone outside an
/// incident): a pure function of its id, so the share holds for new alerts too.
pub(crate) fn is_mde_only(id: &str, share: f64) -> bool {
    if share <= 0.0 {
        return false;
    }
    // Another hash than the view's choices, so that MDE-only alerts are not also the ones with
    // an unknown evidence type.
    let h = id_hash(id).rotate_left(29) % 1_000_000;
    (h as f64) < share.clamp(0.0, 1.0) * 1_000_000.0
}

/// The Defender products whose alerts only Graph returns, with a weight each.
const SERVICES: &[(&str, u32)] = &[
    ("microsoftDefenderForOffice365", 40),
    ("microsoftDefenderForIdentity", 25),
    ("microsoftDefenderForCloudApps", 20),
    // Newer than the documented members: `unknownFutureValue` without the Prefer header.
    ("microsoftDefenderForCloud", 15),
];

/// Makes and changes Graph-only alerts, with its own random numbers so that the endpoint world
/// is the same, seed for seed, as before Graph existed.
pub(crate) struct GraphMaker {
    pub(crate) rng: StdRng,
    tenant_id: String,
}

impl GraphMaker {
    pub(crate) fn new(seed: u64, tenant_id: &str) -> Self {
        GraphMaker {
            rng: StdRng::seed_from_u64(seed ^ 0x6772_6170_6821_0001),
            tenant_id: tenant_id.to_owned(),
        }
    }

    fn guid(&mut self) -> String {
        let hex = |rng: &mut StdRng, n: usize| -> String {
            (0..n)
                .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
                .collect()
        };
        format!(
            "{}-{}-{}-{}-{}",
            hex(&mut self.rng, 8),
            hex(&mut self.rng, 4),
            hex(&mut self.rng, 4),
            hex(&mut self.rng, 4),
            hex(&mut self.rng, 12)
        )
    }

    fn service(&mut self) -> &'static str {
        let total: u32 = SERVICES.iter().map(|(_, w)| w).sum();
        let mut n = self.rng.random_range(0..total);
        for (s, w) in SERVICES {
            if n < *w {
                return s;
            }
            n -= w;
        }
        SERVICES[0].0
    }

    /// A new Graph-only alert created at `created`, last updated at `updated`.
    pub(crate) fn new_alert(&mut self, created: i64, updated: i64) -> (String, Map<String, Value>) {
        let service = self.service();
        let guid = self.guid();
        let user = format!("user{:03}", self.rng.random_range(0..400));
        let upn = format!("{user}@contoso.com");
        let ev_base = |kind: &str| {
            json!({
                "@odata.type": format!("#microsoft.graph.security.{kind}"),
                "createdDateTime": defender_time(created),
                "verdict": "suspicious",
                "remediationStatus": "none",
                "remediationStatusDetails": null,
                "roles": [],
                "detailedRoles": [],
                "tags": [],
            })
        };
        let with = |mut base: Value, extra: Value| {
            if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
                b.extend(e.clone());
            }
            base
        };
        let user_ev = with(
            ev_base("userEvidence"),
            json!({"userAccount": {"accountName": user, "domainName": "CONTOSO", "userSid": null,
                   "azureAdUserId": self.guid(), "userPrincipalName": upn, "displayName": null}}),
        );
        let ip = format!("203.0.113.{}", self.rng.random_range(1..255));
        let ip_ev = with(ev_base("ipEvidence"), json!({"ipAddress": ip}));
        let (id, provider, detection, category, title, evidence) = match service {
            "microsoftDefenderForOffice365" => (
                format!("fa{guid}"),
                guid.clone(),
                "microsoftDefenderForOffice365",
                "InitialAccess",
                "Email messages containing malicious URL removed after delivery",
                vec![
                    with(
                        ev_base("mailboxEvidence"),
                        json!({"primaryAddress": upn, "displayName": user, "userAccount": {"accountName": user, "userPrincipalName": upn}}),
                    ),
                    with(
                        ev_base("analyzedMessageEvidence"),
                        json!({"networkMessageId": self.guid(), "subject": "Your invoice is overdue",
                               "senderIp": ip, "p1Sender": {"emailAddress": "billing@evil.example"},
                               "recipientEmailAddress": upn, "deliveryAction": "delivered"}),
                    ),
                    with(
                        ev_base("urlEvidence"),
                        json!({"url": "https://evil.example/invoice"}),
                    ),
                ],
            ),
            "microsoftDefenderForIdentity" => (
                format!("aa{guid}"),
                guid.clone(),
                "microsoftDefenderForIdentity",
                "CredentialAccess",
                "Suspected brute-force attack (LDAP)",
                vec![user_ev, ip_ev],
            ),
            "microsoftDefenderForCloudApps" => (
                format!("ca{}", guid.replace('-', "")),
                guid.replace('-', ""),
                "cloudAppSecurity",
                "InitialAccess",
                "Impossible travel activity",
                vec![
                    user_ev,
                    ip_ev,
                    with(
                        ev_base("cloudApplicationEvidence"),
                        json!({"appId": 11161, "displayName": "Office 365", "instanceId": 0}),
                    ),
                ],
            ),
            _ => (
                format!("dc{guid}"),
                guid.clone(),
                // Also newer than the documented members.
                "microsoftDefenderForServers",
                "Execution",
                "Suspicious process executed on a virtual machine",
                vec![with(
                    ev_base("azureResourceEvidence"),
                    json!({"resourceId": format!("/subscriptions/{}/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/vm-{:03}", self.guid(), self.rng.random_range(0..100)),
                           "resourceName": "vm", "resourceType": "Virtual Machine"}),
                )],
            ),
        };
        let severity = ["informational", "low", "medium", "high"][self.rng.random_range(0..4)];
        let incident = self.rng.random_range(1000..99999).to_string();
        let detector = self.guid();
        let tid = &self.tenant_id;
        let alert = json!({
            "id": id,
            "providerAlertId": provider,
            "incidentId": incident,
            "status": "new",
            "severity": severity,
            "classification": null,
            "determination": null,
            "serviceSource": service,
            "detectionSource": detection,
            "productName": product_name(service),
            "detectorId": detector,
            "tenantId": tid,
            "title": title,
            "description": "An alert another Defender product raised.",
            "recommendedActions": "Review the evidence and the user's recent activity.",
            "category": category,
            "assignedTo": null,
            "alertWebUrl": format!("https://security.microsoft.com/alerts/{id}?tid={tid}"),
            "incidentWebUrl": format!("https://security.microsoft.com/incidents/{incident}?tid={tid}"),
            "actorDisplayName": null,
            "threatDisplayName": null,
            "threatFamilyName": null,
            "mitreTechniques": ["T1566.002"],
            "createdDateTime": defender_time(created),
            "lastUpdateDateTime": defender_time(updated),
            "resolvedDateTime": null,
            "firstActivityDateTime": defender_time(created - 600 * 10_000_000),
            "lastActivityDateTime": defender_time(created - 10_000_000),
            "comments": [],
            "evidence": evidence,
            "systemTags": [],
            "alertPolicyId": null,
            "additionalData": {},
        });
        (id, alert.as_object().cloned().unwrap_or_default())
    }

    /// One analyst- or automation-like change at `ticks`, in Graph's terms.
    pub(crate) fn change(&mut self, json: &mut Map<String, Value>, ticks: i64) {
        let status = json
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("new")
            .to_owned();
        match self.rng.random_range(0..3) {
            0 => {
                let next = match status.as_str() {
                    "new" => "inProgress",
                    "inProgress" => "resolved",
                    _ => "new",
                };
                json.insert("status".into(), Value::from(next));
                let resolved = next == "resolved";
                json.insert(
                    "resolvedDateTime".into(),
                    if resolved {
                        Value::from(defender_time(ticks))
                    } else {
                        Value::Null
                    },
                );
                if resolved {
                    json.insert("classification".into(), Value::from("truePositive"));
                    json.insert("determination".into(), Value::from("phishing"));
                }
            }
            1 => {
                let n = self.rng.random_range(0..100);
                if let Some(Value::Array(c)) = json.get_mut("comments") {
                    c.push(json!({
                        "comment": format!("checked by SOC, ticket {n}"),
                        "createdByDisplayName": "analyst@contoso.com",
                        "createdDateTime": defender_time(ticks),
                    }));
                }
            }
            _ => {
                let who = format!("analyst{}@contoso.com", self.rng.random_range(0..20));
                json.insert("assignedTo".into(), Value::from(who));
            }
        }
        json.insert(
            "lastUpdateDateTime".into(),
            Value::from(defender_time(ticks)),
        );
    }

    /// How many Graph-only alerts go with `n` endpoint ones at `share`: the whole part, and
    /// one more with the probability of the rest.
    pub(crate) fn share_of(&mut self, n: usize, share: f64) -> usize {
        if share <= 0.0 || n == 0 {
            return 0;
        }
        let x = n as f64 * share;
        let whole = x.floor();
        let rest = (x - whole).clamp(0.0, 1.0);
        whole as usize + usize::from(rest > 0.0 && self.rng.random_bool(rest))
    }
}
