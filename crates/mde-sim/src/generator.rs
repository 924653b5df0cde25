//! Realistic alerts and realistic changes to them: the world the simulator serves, and the
//! saved-response files of [`backfill`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use crate::clock::{SIM_TICK, defender_time, parse_ticks, sim_now};
use crate::{DEMO_TENANT_ID, SimConfig, Version, World};

const TITLES: &[&str] = &[
    "Suspicious PowerShell command line",
    "Possible credential dumping via LSASS access",
    "'Meterpreter' backdoor was detected",
    "=HYPERLINK(\"http://evil.example\",\"click\")",
    "Ransomware behavior detected in the file system",
    "Suspicious process injection observed",
    "Unusual sign-in from a new country, \"München\" — ünïcødé",
    "@SUM(1+1) hidden formula in a title",
];
const CATEGORIES: &[&str] = &[
    "Execution",
    "SuspiciousActivity",
    "Malware",
    "Exploit",
    "CommandAndControl",
    "DefenseEvasion",
    "CredentialAccess",
];
const SEVERITIES: &[&str] = &["Informational", "Low", "Medium", "High", "UnSpecified"];
const ENTITY_TYPES: [&str; 3] = ["User", "Process", "File"];
const SOURCES: &[&str] = &[
    "WindowsDefenderAtp",
    "WindowsDefenderAv",
    "CustomerTI",
    "AutomatedInvestigation",
    "MTP",
];

/// Makes realistic alerts and realistic changes to them. Public through [`backfill`] for the
/// benchmark; the simulator's state owns one.
pub(crate) struct Generator {
    pub(crate) rng: StdRng,
    serial: u64,
    tenant_id: String,
}

impl Generator {
    pub(crate) fn new(seed: u64, tenant_id: &str) -> Self {
        Generator {
            rng: StdRng::seed_from_u64(seed),
            serial: 0,
            tenant_id: tenant_id.to_owned(),
        }
    }

    /// A generator whose alert ids continue after `serial`: each tenant of the many-tenant mode
    /// numbers its alerts in a range of its own, so ids stay unique across tenants.
    pub(crate) fn starting_at(seed: u64, tenant_id: &str, serial: u64) -> Self {
        Generator {
            serial,
            ..Generator::new(seed, tenant_id)
        }
    }

    fn pick<'a>(&mut self, xs: &'a [&'a str]) -> &'a str {
        xs[self.rng.random_range(0..xs.len())]
    }

    pub(crate) fn new_alert(&mut self, created: i64, updated: i64) -> (String, Map<String, Value>) {
        self.serial += 1;
        let id = format!(
            "da{}_{}",
            638_000_000_000_000_000u64 + self.serial * 7919,
            self.rng.random_range(-2_000_000_000i64..2_000_000_000)
        );
        let machine: String = (0..40)
            .map(|_| char::from_digit(self.rng.random_range(0..16), 16).unwrap_or('0'))
            .collect();
        let host = format!("ws-{:04}.contoso.local", self.rng.random_range(0..5000));
        let user = format!("user{:03}", self.rng.random_range(0..400));
        let sha = |rng: &mut StdRng, n: usize| -> String {
            (0..n)
                .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
                .collect()
        };
        // One to three evidence items (a user, a process, a file): about 2.6 KB an alert on average.
        let items = self.rng.random_range(1..=3);
        let evidence: Vec<Value> = (0..items)
            .map(|i| {
                json!({
                    "entityType": ENTITY_TYPES[i],
                    "evidenceCreationTime": defender_time(created),
                    "sha1": if i > 0 { Value::from(sha(&mut self.rng, 40)) } else { Value::Null },
                    "sha256": if i > 0 { Value::from(sha(&mut self.rng, 64)) } else { Value::Null },
                    "fileName": if i > 0 { Value::from("powershell.exe") } else { Value::Null },
                    "filePath": if i > 0 { Value::from("C:\\Windows\\System32\\WindowsPowerShell\\v1.0") } else { Value::Null },
                    "processId": if i == 1 { Value::from(self.rng.random_range(100..60000)) } else { Value::Null },
                    "processCommandLine": if i == 1 { Value::from("powershell.exe -NoProfile -EncodedCommand SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkA") } else { Value::Null },
                    "processCreationTime": if i == 1 { Value::from(defender_time(created)) } else { Value::Null },
                    "parentProcessId": Value::Null,
                    "parentProcessCreationTime": Value::Null,
                    "parentProcessFileName": if i == 1 { Value::from("explorer.exe") } else { Value::Null },
                    "parentProcessFilePath": if i == 1 { Value::from("C:\\Windows") } else { Value::Null },
                    "ipAddress": Value::Null,
                    "url": Value::Null,
                    "registryKey": Value::Null,
                    "registryHive": Value::Null,
                    "registryValueType": Value::Null,
                    "registryValue": Value::Null,
                    "accountName": if i == 0 { Value::from(user.clone()) } else { Value::Null },
                    "domainName": if i == 0 { Value::from("CONTOSO") } else { Value::Null },
                    "userSid": if i == 0 { Value::from("S-1-5-21-1111111111-2222222222-3333333333-1001") } else { Value::Null },
                    "aadUserId": Value::Null,
                    "userPrincipalName": if i == 0 { Value::from(format!("{user}@contoso.com")) } else { Value::Null },
                    "detectionStatus": if i == 2 { Value::from("Detected") } else { Value::Null },
                })
            })
            .collect();
        let title = self.pick(TITLES);
        let mut a = json!({
            "id": id,
            "incidentId": self.rng.random_range(1000..99999),
            "investigationId": if self.rng.random_bool(0.7) { Value::from(self.rng.random_range(1000..999999)) } else { Value::Null },
            "assignedTo": Value::Null,
            "severity": self.pick(SEVERITIES),
            "status": "New",
            "classification": Value::Null,
            "determination": Value::Null,
            "investigationState": "Queued",
            "detectionSource": self.pick(SOURCES),
            "detectorId": "00000000-0000-0000-0000-000000000000",
            "category": self.pick(CATEGORIES),
            "threatFamilyName": if self.rng.random_bool(0.3) { Value::from("Meterpreter") } else { Value::Null },
            "threatName": Value::Null,
            "title": title,
            "description": "A process ran a suspicious command line.\nInvestigate the device timeline.\u{200b}",
            "alertCreationTime": defender_time(created),
            "firstEventTime": defender_time(created - 600 * 10_000_000),
            "lastEventTime": defender_time(created - 10_000_000),
            "lastUpdateTime": defender_time(updated),
            "resolvedTime": Value::Null,
            "machineId": machine,
            "computerDnsName": host,
            "rbacGroupName": if self.rng.random_bool(0.8) { Value::from("Servers") } else { Value::Null },
            "aadTenantId": self.tenant_id.clone(),
            "threatFamily": Value::Null,
            "mitreTechniques": ["T1059.001", "T1086"],
            "relatedUser": { "userName": user, "domainName": "CONTOSO" },
            "loggedOnUsers": [{ "accountName": user, "domainName": "CONTOSO" }],
            "comments": [],
            "evidence": evidence,
            "domains": [],
        });
        let obj = a.as_object_mut().expect("built as an object");
        // Unknown fields and enum values appear over time: keep a few around.
        if self.rng.random_bool(0.1) {
            obj.insert(
                "futureInsight".into(),
                json!({"score": 0.93, "model": "sim-2026"}),
            );
        }
        if self.rng.random_bool(0.05) {
            obj.insert("severity".into(), Value::from("Critical"));
        }
        (id, a.as_object().cloned().unwrap_or_default())
    }

    /// Applies one analyst- or automation-like change at `ticks`.
    pub(crate) fn change(&mut self, json: &mut Map<String, Value>, ticks: i64) {
        let status = json
            .get("status")
            .and_then(|s| s.as_str())
            .unwrap_or("New")
            .to_owned();
        match self.rng.random_range(0..4) {
            0 => {
                let next = match status.as_str() {
                    "New" => "InProgress",
                    "InProgress" => "Resolved",
                    _ => "New",
                };
                json.insert("status".into(), Value::from(next));
                json.insert(
                    "resolvedTime".into(),
                    if next == "Resolved" {
                        Value::from(defender_time(ticks))
                    } else {
                        Value::Null
                    },
                );
                if next == "Resolved" {
                    json.insert("classification".into(), Value::from("TruePositive"));
                    json.insert("determination".into(), Value::from("Malware"));
                    json.insert(
                        "investigationState".into(),
                        Value::from("SuccessfullyRemediated"),
                    );
                }
            }
            1 => {
                let n = self.rng.random_range(0..100);
                if let Some(Value::Array(c)) = json.get_mut("comments") {
                    c.push(json!({
                        "comment": format!("-checked by SOC, ticket {n}"),
                        "createdBy": "analyst@contoso.com",
                        "createdTime": defender_time(ticks),
                    }));
                }
            }
            2 => {
                let who = format!("analyst{}@contoso.com", self.rng.random_range(0..20));
                json.insert("assignedTo".into(), Value::from(who));
            }
            _ => {
                // An investigation moves on, sometimes into a state no client has heard of.
                let states = ["Running", "PendingApproval", "Benign", "SomeFutureState"];
                let s = states[self.rng.random_range(0..states.len())];
                json.insert("investigationState".into(), Value::from(s));
            }
        }
        json.insert("lastUpdateTime".into(), Value::from(defender_time(ticks)));
    }
}

/// One alert of a world's starting set, made by `maker`: created within `span` ticks before
/// `now`, last updated between then and now, one in five already changed once.
pub(crate) fn initial_alert(maker: &mut Generator, now: i64, span: i64) -> (String, Version) {
    let (created, updated) = initial_times(&mut maker.rng, now, span);
    initial_alert_at(maker, created, updated)
}

/// When a starting alert was created and last updated: the first draws of its maker.
pub(crate) fn initial_times(rng: &mut StdRng, now: i64, span: i64) -> (i64, i64) {
    let created = now - rng.random_range(0..span);
    let updated = created + rng.random_range(0..=(now - created)).min(span);
    (created, updated - updated.rem_euclid(SIM_TICK))
}

/// The rest of [`initial_alert`], once [`initial_times`] has drawn its times.
pub(crate) fn initial_alert_at(
    maker: &mut Generator,
    created: i64,
    updated: i64,
) -> (String, Version) {
    let (id, mut json) = maker.new_alert(created, updated);
    // Some alerts were already resolved before we arrived.
    if maker.rng.random_bool(0.2) {
        maker.change(&mut json, updated);
    }
    (id, Version::new(updated, Instant::now(), json))
}

/// One Graph-only alert of a world's starting set, the same way.
pub(crate) fn initial_graph_alert(
    maker: &mut crate::graph::GraphMaker,
    now: i64,
    span: i64,
) -> (String, Version) {
    let (created, updated) = initial_times(&mut maker.rng, now, span);
    initial_graph_alert_at(maker, created, updated)
}

/// The rest of [`initial_graph_alert`], once [`initial_times`] has drawn its times.
pub(crate) fn initial_graph_alert_at(
    maker: &mut crate::graph::GraphMaker,
    created: i64,
    updated: i64,
) -> (String, Version) {
    let (id, mut json) = maker.new_alert(created, updated);
    if maker.rng.random_bool(0.2) {
        maker.change(&mut json, updated);
    }
    (id, Version::new(updated, Instant::now(), json))
}

/// `history` in ticks (at least one).
pub(crate) fn span_of(cfg: &SimConfig) -> i64 {
    (cfg.history.as_nanos() / 100).max(1) as i64
}

impl World {
    /// Fills an empty world with `initial_alerts` alerts whose `lastUpdateTime`s spread over
    /// `history` before now.
    pub(crate) fn populate(&mut self, cfg: &SimConfig) {
        let now = sim_now();
        let span = span_of(cfg);
        for _ in 0..cfg.initial_alerts {
            let (id, v) = initial_alert(&mut self.maker, now, span);
            self.alerts.insert(id, vec![v]);
        }
        // Alerts of the other Defender products, which only Graph returns.
        let extra = self
            .graph_maker
            .share_of(cfg.initial_alerts, cfg.graph_only_share);
        for _ in 0..extra {
            let (id, v) = initial_graph_alert(&mut self.graph_maker, now, span);
            self.graph_alerts.insert(id, vec![v]);
        }
    }

    /// When a new version becomes visible: now, or up to `late_delay` later for a `late_fraction`
    /// of them (Defender's late visibility).
    pub(crate) fn visible_at(&mut self, cfg: &SimConfig) -> Instant {
        late(&cfg.hazards, &mut self.maker.rng)
    }

    /// The same for a Graph-only alert, with Graph's hazards and random numbers.
    fn graph_visible_at(&mut self, cfg: &SimConfig) -> Instant {
        let h = cfg.alerts_v2_hazards();
        late(&h, &mut self.graph_maker.rng)
    }

    /// Updates `n` random Graph-only alerts at `ticks`.
    fn update_graph_only(&mut self, cfg: &SimConfig, n: usize, ticks: i64) {
        let len = self.graph_alerts.len();
        if len == 0 || n == 0 {
            return;
        }
        let ids: Vec<String> = (0..n)
            .map(|_| self.graph_maker.rng.random_range(0..len))
            .filter_map(|i| self.graph_alerts.keys().nth(i).cloned())
            .collect();
        for id in ids {
            let Some(latest) = self.graph_alerts.get(&id).and_then(|v| v.last()) else {
                continue;
            };
            // Stored by `put_alert` in Defender's shape: not changed here.
            if latest.ticks >= ticks || !crate::graph::is_graph_shaped(&latest.json) {
                continue;
            }
            let mut json = latest.json.clone();
            self.graph_maker.change(&mut json, ticks);
            let visible_at = self.graph_visible_at(cfg);
            self.graph_alerts
                .entry(id)
                .or_default()
                .push(Version::new(ticks, visible_at, json));
            self.stats.graph_updates += 1;
        }
    }

    /// Updates `n` random alerts, all at one new `lastUpdateTime` (an automated investigation).
    pub(crate) fn update_random(&mut self, cfg: &SimConfig, n: usize) {
        let ticks = sim_now();
        let graph_n = self.graph_maker.share_of(n, cfg.graph_only_share);
        self.update_graph_only(cfg, graph_n, ticks);
        if self.alerts.is_empty() || n == 0 {
            return;
        }
        let ids: Vec<String> = {
            let len = self.alerts.len();
            (0..n)
                .map(|_| self.maker.rng.random_range(0..len))
                .filter_map(|i| self.alerts.keys().nth(i).cloned())
                .collect()
        };
        for id in ids {
            let Some(latest) = self.alerts.get(&id).and_then(|v| v.last()) else {
                continue;
            };
            if latest.ticks >= ticks {
                continue; // already updated at this instant
            }
            let mut json = latest.json.clone();
            self.maker.change(&mut json, ticks);
            let visible_at = self.visible_at(cfg);
            self.alerts
                .entry(id)
                .or_default()
                .push(Version::new(ticks, visible_at, json));
            self.stats.updates += 1;
        }
    }

    pub(crate) fn create(&mut self, cfg: &SimConfig, n: usize) {
        let ticks = sim_now();
        for _ in 0..n {
            let (id, json) = self.maker.new_alert(ticks, ticks);
            let visible_at = self.visible_at(cfg);
            self.alerts
                .insert(id, vec![Version::new(ticks, visible_at, json)]);
        }
        let extra = self.graph_maker.share_of(n, cfg.graph_only_share);
        for _ in 0..extra {
            let (id, json) = self.graph_maker.new_alert(ticks, ticks);
            let visible_at = self.graph_visible_at(cfg);
            self.graph_alerts
                .insert(id, vec![Version::new(ticks, visible_at, json)]);
        }
    }
}

/// When a new version becomes visible under `h`: now, or up to `late_delay` later for a
/// `late_fraction` of them.
fn late(h: &crate::Hazards, rng: &mut StdRng) -> Instant {
    if h.late_fraction > 0.0 && rng.random_bool(h.late_fraction.clamp(0.0, 1.0)) {
        let max = h.late_delay.as_millis().max(1) as u64;
        Instant::now() + Duration::from_millis(rng.random_range(0..=max))
    } else {
        Instant::now()
    }
}

/// Writes a saved-response file (`{"value":[…]}`) of `elements` realistic alerts with evidence,
/// for benchmarks and backfill tests: a `dup_fraction` of the elements are *other versions* of
/// alerts in the file, older or newer, in no particular order (a real backfill re-read across
/// days). Streams: memory stays flat whatever the size.
pub fn backfill(
    mut w: impl std::io::Write,
    elements: usize,
    dup_fraction: f64,
    seed: u64,
) -> std::io::Result<()> {
    let mut g = Generator::new(seed, DEMO_TENANT_ID);
    let now = sim_now();
    let span: i64 = 30 * 86_400 * 10_000_000;
    let unique = ((elements as f64) * (1.0 - dup_fraction.clamp(0.0, 0.99))).ceil() as usize;
    // Keep a window of recent alerts to draw duplicates from, so nothing is held whole.
    let mut recent: VecDeque<Map<String, Value>> = VecDeque::new();
    w.write_all(b"{\"@odata.context\":\"https://api.securitycenter.microsoft.com/api/$metadata#Alerts\",\"value\":[")?;
    let mut written_unique = 0;
    for i in 0..elements {
        if i > 0 {
            w.write_all(b",")?;
        }
        let remaining = elements - i;
        let need_unique = unique - written_unique;
        let make_dup = !recent.is_empty()
            && need_unique < remaining
            && g.rng.random_bool(dup_fraction.clamp(0.0, 1.0))
            || need_unique == 0;
        let json = if make_dup && !recent.is_empty() {
            let k = g.rng.random_range(0..recent.len());
            let mut v = recent[k].clone();
            let t = v
                .get("lastUpdateTime")
                .and_then(|t| t.as_str())
                .and_then(parse_ticks)
                .unwrap_or(now);
            // Older or newer than the copy already written.
            let delta = g.rng.random_range(1..3_600) * 10_000_000;
            let ticks = if g.rng.random_bool(0.5) {
                t - delta
            } else {
                t + delta
            };
            g.change(&mut v, ticks - ticks.rem_euclid(SIM_TICK));
            v
        } else {
            written_unique += 1;
            let created = now - g.rng.random_range(0..span);
            let updated = created + g.rng.random_range(0..3_600 * 10_000_000);
            let (_, v) = g.new_alert(created, updated - updated.rem_euclid(SIM_TICK));
            if recent.len() >= 2_000 {
                recent.pop_front();
            }
            recent.push_back(v.clone());
            v
        };
        serde_json::to_writer(&mut w, &json)?;
    }
    w.write_all(b"]}\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_are_realistic_in_size() {
        let mut g = Generator::new(3, DEMO_TENANT_ID);
        let (_, a) = g.new_alert(sim_now(), sim_now());
        let n = serde_json::to_string(&a).unwrap().len();
        assert!((1000..4000).contains(&n), "alert is {n} bytes");
    }
}
