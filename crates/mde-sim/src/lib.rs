//! A Defender for Endpoint and Entra ID simulator, as nasty as the real thing.
//!
//! No machine that builds or tests mde-alerts reaches Microsoft, so this stands in for it in the
//! demo, in `mde-alerts simulate`, and in every integration test. It serves:
//!
//! - Entra's v1 and v2 token endpoints (`/{tenant}/oauth2/token`, `/{tenant}/oauth2/v2.0/token`):
//!   client credentials with a secret; JWTs whose lifetime is configurable so tests can force
//!   expiry; Entra's error bodies (AADSTS codes) for a wrong tenant, client or secret.
//! - `GET /api/alerts` (and `/api/v1.0/alerts`): `$filter` (see [`odata`]), `$orderby`, `$top` ≤
//!   10,000, `$skip`, `$expand=evidence`, Defender's error bodies, the bearer token checked for
//!   signature, audience and expiry.
//!
//! And the hazards of `design.md` §2, each a switch in [`Hazards`]: alerts changing while a client
//! pages ([`Simulator::update_random`], [`Hazards::mutate_per_page`], [`Simulator::spawn_mutator`]),
//! late visibility (a version becomes visible after its `lastUpdateTime`), many alerts sharing one
//! `lastUpdateTime` (batch updates, and a clock with Defender's 1/300 s granularity), unknown
//! fields and enum values, 429 with `Retry-After`, 500 and 503, truncated and non-JSON bodies, slow
//! responses, invalid elements inside a page, and `$orderby` refused.
//!
//! [`Simulator::truth`] is the oracle the tests compare the store against.

// The simulator's helpers return axum `Response`s as their error type: that is what every handler
// answers with, and boxing them would only add noise to test-only code paths.
#![allow(clippy::result_large_err)]
#![warn(missing_docs)]

mod clock;
pub mod odata;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Form, Path, RawQuery, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use crate::clock::{SIM_TICK, defender_time, parse_ticks, sim_now};

/// The tenant the demo and tests use.
pub const DEMO_TENANT_ID: &str = "3f0c1c4e-5d55-4a55-9a0e-5e1d9c0d1e11";
/// The demo app's client ID.
pub const DEMO_CLIENT_ID: &str = "8d4c7b2a-1e3f-4a5b-9c6d-7e8f9a0b1c2d";
/// The demo app's client secret (a simulator credential, worthless anywhere else).
pub const DEMO_CLIENT_SECRET: &str = "sim-secret-Qx7~not-a-real-secret";
/// Defender for Endpoint's resource (token audience); mde-alerts' `config::MDE_RESOURCE` is the
/// same text (a test in `tests/it` holds them together).
pub const RESOURCE: &str = "https://api.securitycenter.microsoft.com";

/// Faults and quirks to inject. All off by default.
#[derive(Debug, Clone)]
pub struct Hazards {
    /// Share of `/api/alerts` calls answered with a fault (429, 500, 503, truncated body, non-JSON
    /// body, or a slow but correct answer).
    pub fault_rate: f64,
    /// `Retry-After` seconds on injected 429s.
    pub retry_after_secs: u64,
    /// Delay of a "slow" fault.
    pub slow_delay: Duration,
    /// Alerts updated (sharing one new `lastUpdateTime`) right after each page is served.
    pub mutate_per_page: usize,
    /// Share of updates that become visible late.
    pub late_fraction: f64,
    /// How late, at most.
    pub late_delay: Duration,
    /// Share of pages that carry an extra invalid element (no `id`, or a bad `lastUpdateTime`).
    pub invalid_element_rate: f64,
    /// Whether `$orderby` is accepted (the real API does not document it); refused with 400 when not.
    pub orderby_supported: bool,
    /// Accept `$orderby` but ignore it, answering in the undocumented order.
    pub orderby_ignored: bool,
    /// The faults `fault_rate` draws from (all of them when empty).
    pub fault_kinds: Vec<FaultKind>,
    /// Defender's quota, `(per minute, per hour)`: calls beyond it get 429 with `Retry-After`.
    pub rate_limit: Option<(u32, u32)>,
    /// Server-driven paging: answer at most this many alerts, with `@odata.nextLink` when more
    /// match (the real API does this on some endpoints; not documented for alerts).
    pub server_page: Option<usize>,
}

/// A fault the simulator can inject into an `/api/alerts` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// 429 with `Retry-After`.
    TooManyRequests,
    /// 500 with Defender's error body.
    Internal,
    /// 503 with a plain-text body.
    Unavailable,
    /// 200 with the page cut in half.
    Truncated,
    /// 200 with an HTML body.
    NotJson,
    /// The right answer, late.
    Slow,
}

const ALL_FAULTS: [FaultKind; 6] = [
    FaultKind::TooManyRequests,
    FaultKind::Internal,
    FaultKind::Unavailable,
    FaultKind::Truncated,
    FaultKind::NotJson,
    FaultKind::Slow,
];

impl Default for Hazards {
    fn default() -> Self {
        Hazards {
            fault_rate: 0.0,
            retry_after_secs: 1,
            slow_delay: Duration::from_millis(1500),
            mutate_per_page: 0,
            late_fraction: 0.0,
            late_delay: Duration::from_secs(2),
            invalid_element_rate: 0.0,
            orderby_supported: true,
            orderby_ignored: false,
            fault_kinds: Vec::new(),
            rate_limit: None,
            server_page: None,
        }
    }
}

/// How the simulator starts.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The one tenant it knows.
    pub tenant_id: String,
    /// The one app it knows.
    pub client_id: String,
    /// That app's secret.
    pub client_secret: String,
    /// Lifetime of issued tokens.
    pub token_lifetime: Duration,
    /// Alerts present at start.
    pub initial_alerts: usize,
    /// Their `lastUpdateTime`s are spread over this span before now.
    pub history: Duration,
    /// Seed for every random choice.
    pub seed: u64,
    /// Faults and quirks.
    pub hazards: Hazards,
    /// Sign-in: registered certificate, users, expired secret, permissions.
    pub identity: Identity,
}

/// What Entra knows about the app and its users.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The app's client secret has expired (AADSTS7000222 even when it is right).
    pub secret_expired: bool,
    /// The PEM certificate registered on the app, if any: assertions are verified against it.
    pub certificate_pem: Option<String>,
    /// Users for the password grant.
    pub users: Vec<SimUser>,
    /// Whether Defender for Endpoint's service principal exists in the tenant (AADSTS500011 if
    /// not).
    pub resource_provisioned: bool,
    /// Application permissions (`roles`) in app tokens.
    pub roles: Vec<String>,
    /// Delegated permissions (`scp`) in user tokens.
    pub scopes: String,
    /// How far Entra's clock is ahead of this machine's, in seconds (assertions outside their
    /// validity window get AADSTS700024).
    pub clock_skew_secs: i64,
}

/// A user for the password grant.
#[derive(Debug, Clone)]
pub struct SimUser {
    /// User principal name.
    pub username: String,
    /// Password.
    pub password: String,
    /// Conditional Access requires MFA for this user: 50076 (MFA required) or 50079 (MFA
    /// registration required).
    pub mfa: Option<u32>,
}

/// The demo user of the password grant.
pub const DEMO_USER: &str = "analyst@contoso.example";
/// Its password (a simulator credential).
pub const DEMO_PASSWORD: &str = "sim-Passw0rd!-not-real";

impl Default for Identity {
    fn default() -> Self {
        Identity {
            secret_expired: false,
            certificate_pem: None,
            users: vec![
                SimUser {
                    username: DEMO_USER.into(),
                    password: DEMO_PASSWORD.into(),
                    mfa: None,
                },
                SimUser {
                    username: "mfa-user@contoso.example".into(),
                    password: DEMO_PASSWORD.into(),
                    mfa: Some(50076),
                },
                SimUser {
                    username: "new-user@contoso.example".into(),
                    password: DEMO_PASSWORD.into(),
                    mfa: Some(50079),
                },
            ],
            resource_provisioned: true,
            roles: vec!["Alert.Read.All".into()],
            scopes: "Alert.Read".into(),
            clock_skew_secs: 0,
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            tenant_id: DEMO_TENANT_ID.into(),
            client_id: DEMO_CLIENT_ID.into(),
            client_secret: DEMO_CLIENT_SECRET.into(),
            token_lifetime: Duration::from_secs(3599),
            initial_alerts: 200,
            history: Duration::from_secs(20 * 86_400),
            seed: 1,
            hazards: Hazards::default(),
            identity: Identity::default(),
        }
    }
}

/// Counters, for budget assertions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests to the token endpoints.
    pub token_requests: u64,
    /// Tokens issued.
    pub tokens_issued: u64,
    /// Requests to `/api/alerts`, whatever the answer.
    pub alert_calls: u64,
    /// Of those, answered with an injected fault.
    pub faults: u64,
    /// Of those, rejected with 401.
    pub unauthorized: u64,
    /// Of those, rejected with 429 by the quota (not injected faults).
    pub throttled: u64,
    /// Alert updates applied.
    pub updates: u64,
}

/// One version of an alert.
#[derive(Debug, Clone)]
struct Version {
    ticks: i64,
    visible_at: Instant,
    json: Map<String, Value>,
}

struct State {
    cfg: SimConfig,
    alerts: BTreeMap<String, Vec<Version>>,
    maker: Generator,
    stats: Stats,
    key: jsonwebtoken::EncodingKey,
    decoding: jsonwebtoken::DecodingKey,
    issued: Vec<String>,
    /// Accepted `/api/alerts` calls of the last hour, for the quota.
    quota_calls: std::collections::VecDeque<Instant>,
}

/// A running simulator. Dropping it stops the server.
pub struct Simulator {
    state: Arc<Mutex<State>>,
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

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
struct Generator {
    rng: StdRng,
    serial: u64,
    tenant_id: String,
}

impl Generator {
    fn new(seed: u64, tenant_id: &str) -> Self {
        Generator {
            rng: StdRng::seed_from_u64(seed),
            serial: 0,
            tenant_id: tenant_id.to_owned(),
        }
    }

    fn pick<'a>(&mut self, xs: &'a [&'a str]) -> &'a str {
        xs[self.rng.random_range(0..xs.len())]
    }

    fn new_alert(&mut self, created: i64, updated: i64) -> (String, Map<String, Value>) {
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
    fn change(&mut self, json: &mut Map<String, Value>, ticks: i64) {
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

impl State {
    fn visible_at(&mut self) -> Instant {
        let h = &self.cfg.hazards;
        if h.late_fraction > 0.0 && self.maker.rng.random_bool(h.late_fraction.clamp(0.0, 1.0)) {
            let max = h.late_delay.as_millis().max(1) as u64;
            Instant::now() + Duration::from_millis(self.maker.rng.random_range(0..=max))
        } else {
            Instant::now()
        }
    }

    /// Updates `n` random alerts, all at one new `lastUpdateTime` (an automated investigation).
    fn update_random(&mut self, n: usize) {
        if self.alerts.is_empty() || n == 0 {
            return;
        }
        let ticks = sim_now();
        let ids: Vec<String> = {
            let len = self.alerts.len();
            (0..n)
                .map(|_| self.maker.rng.random_range(0..len))
                .filter_map(|i| self.alerts.keys().nth(i).cloned())
                .collect()
        };
        for id in ids {
            let Some(latest) = self.alerts.get(&id).and_then(|v| v.last()).cloned() else {
                continue;
            };
            if latest.ticks >= ticks {
                continue; // already updated at this instant
            }
            let mut json = latest.json;
            self.maker.change(&mut json, ticks);
            let visible_at = self.visible_at();
            self.alerts.entry(id).or_default().push(Version {
                ticks,
                visible_at,
                json,
            });
            self.stats.updates += 1;
        }
    }

    fn create(&mut self, n: usize) {
        let ticks = sim_now();
        for _ in 0..n {
            let (id, json) = self.maker.new_alert(ticks, ticks);
            let visible_at = self.visible_at();
            self.alerts.insert(
                id,
                vec![Version {
                    ticks,
                    visible_at,
                    json,
                }],
            );
        }
    }
}

/// The latest state of an alert, as the oracle knows it.
#[derive(Debug, Clone)]
pub struct TruthAlert {
    /// The alert's id.
    pub id: String,
    /// Its latest `lastUpdateTime`, in 100 ns ticks since the Unix epoch (`ApiTime::from_ticks`
    /// in mde-alerts turns it into an instant).
    pub last_update: i64,
    /// Its latest JSON, as `/api/alerts` serves it (with or without evidence).
    pub json: Value,
}

impl Simulator {
    /// Starts a simulator on `127.0.0.1:port` (0: any free port).
    pub async fn start(cfg: SimConfig, port: u16) -> std::io::Result<Simulator> {
        let secret = format!("sim-signing-key-{}", cfg.seed);
        let mut state = State {
            maker: Generator::new(cfg.seed, &cfg.tenant_id),
            cfg: cfg.clone(),
            alerts: BTreeMap::new(),
            stats: Stats::default(),
            key: jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
            decoding: jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
            issued: Vec::new(),
            quota_calls: std::collections::VecDeque::new(),
        };
        let now = sim_now();
        let span = (cfg.history.as_nanos() / 100).max(1) as i64;
        for _ in 0..cfg.initial_alerts {
            let created = now - state.maker.rng.random_range(0..span);
            let updated = created + state.maker.rng.random_range(0..=(now - created)).min(span);
            let updated = updated - updated.rem_euclid(SIM_TICK);
            let (id, json) = state.maker.new_alert(created, updated);
            let mut versions = vec![Version {
                ticks: updated,
                visible_at: Instant::now(),
                json,
            }];
            // Some alerts were already resolved before we arrived.
            if state.maker.rng.random_bool(0.2) {
                let mut j = versions[0].json.clone();
                state.maker.change(&mut j, updated);
                versions[0].json = j;
            }
            state.alerts.insert(id, versions);
        }
        let state = Arc::new(Mutex::new(state));
        let app = Router::new()
            .route("/{tenant}/oauth2/token", post(token_v1).get(token_get))
            .route("/{tenant}/oauth2/v2.0/token", post(token_v2).get(token_get))
            .route("/api/alerts", get(alerts))
            .route("/api/v1.0/alerts", get(alerts))
            .fallback(not_found)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Simulator {
            state,
            addr,
            shutdown: Some(tx),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `http://127.0.0.1:PORT`, for `login_url` and `api_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Updates `n` random alerts at one shared new `lastUpdateTime`.
    pub fn update_random(&self, n: usize) {
        self.lock().update_random(n);
    }

    /// Creates `n` new alerts.
    pub fn create(&self, n: usize) {
        self.lock().create(n);
    }

    /// Stores `json` as the newest version of its alert, visible now, whatever its
    /// `lastUpdateTime` says (tests use it for odd data: a timestamp from the future, say).
    pub fn put_alert(&self, json: Value) {
        let Some(obj) = json.as_object().cloned() else {
            return;
        };
        let id = obj
            .get("id")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        let ticks = obj
            .get("lastUpdateTime")
            .and_then(|v| v.as_str())
            .and_then(parse_ticks)
            .unwrap_or(0);
        self.lock().alerts.entry(id).or_default().push(Version {
            ticks,
            visible_at: Instant::now(),
            json: obj,
        });
    }

    /// Rotates the app's client secret (the old one stops working at once).
    pub fn set_client_secret(&self, secret: &str) {
        self.lock().cfg.client_secret = secret.to_owned();
    }

    /// Replaces the hazards.
    pub fn set_hazards(&self, h: Hazards) {
        self.lock().cfg.hazards = h;
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.lock().stats
    }

    /// Every token issued so far (the first thousand), for tests that grep for leaks.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.lock().issued.clone()
    }

    /// Whether every version is visible yet (late ones included).
    pub fn all_visible(&self) -> bool {
        let now = Instant::now();
        self.lock()
            .alerts
            .values()
            .all(|v| v.iter().all(|x| x.visible_at <= now))
    }

    /// Every alert's latest version, visible or not: what a perfect client ends up with.
    pub fn truth(&self, expand_evidence: bool) -> Vec<TruthAlert> {
        self.lock()
            .alerts
            .iter()
            .filter_map(|(id, versions)| {
                let v = versions.last()?;
                Some(TruthAlert {
                    id: id.clone(),
                    last_update: v.ticks,
                    json: Value::Object(served(&v.json, expand_evidence)),
                })
            })
            .collect()
    }

    /// Starts a background task that, every `every`, updates `batch` alerts at one shared instant
    /// and creates `new` alerts. It stops when the returned handle is dropped.
    pub fn spawn_mutator(&self, every: Duration, batch: usize, new: usize) -> Mutator {
        let state = self.state.clone();
        let handle = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                s.update_random(batch);
                s.create(new);
            }
        });
        Mutator(handle)
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
    let mut recent: std::collections::VecDeque<Map<String, Value>> =
        std::collections::VecDeque::new();
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

/// A running mutator; dropping it stops the changes.
#[derive(Debug)]
pub struct Mutator(tokio::task::JoinHandle<()>);

impl Drop for Mutator {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn served(json: &Map<String, Value>, expand: bool) -> Map<String, Value> {
    let mut j = json.clone();
    if !expand {
        j.insert("evidence".into(), Value::Array(Vec::new()));
    }
    j
}

// ---------------------------------------------------------------------------------------------
// Entra

type Shared = Arc<Mutex<State>>;

fn entra_error(status: StatusCode, error: &str, code: u32, text: &str) -> Response {
    entra_error_with(status, error, code, text, None)
}

fn entra_error_with(
    status: StatusCode,
    error: &str,
    code: u32,
    text: &str,
    suberror: Option<&str>,
) -> Response {
    let now = chrono::Utc::now();
    let mut body = json!({
        "error": error,
        "error_description": format!(
            "AADSTS{code}: {text}\r\nTrace ID: 0b1e2a3c-0000-4000-8000-000000000001\r\nCorrelation ID: 0b1e2a3c-0000-4000-8000-000000000002\r\nTimestamp: {}",
            now.format("%Y-%m-%d %H:%M:%SZ")
        ),
        "error_codes": [code],
        "timestamp": now.format("%Y-%m-%d %H:%M:%SZ").to_string(),
        "trace_id": "0b1e2a3c-0000-4000-8000-000000000001",
        "correlation_id": "0b1e2a3c-0000-4000-8000-000000000002",
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    if let Some(sub) = suberror {
        body["suberror"] = Value::from(sub);
    }
    (status, axum::Json(body)).into_response()
}

async fn token_get() -> Response {
    entra_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        900561,
        "The endpoint only accepts POST requests.",
    )
}

async fn token_v1(
    AxState(s): AxState<Shared>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    token(s, tenant, form, false)
}

async fn token_v2(
    AxState(s): AxState<Shared>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    token(s, tenant, form, true)
}

fn token(s: Shared, tenant: String, form: HashMap<String, String>, v2: bool) -> Response {
    let mut st = s.lock().unwrap_or_else(|p| p.into_inner());
    st.stats.token_requests += 1;
    let cfg = st.cfg.clone();
    let id = &cfg.identity;
    if !tenant.eq_ignore_ascii_case(&cfg.tenant_id) {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    let get = |k: &str| form.get(k).map(String::as_str);
    let grant = match get("grant_type") {
        Some(g @ ("client_credentials" | "password")) => g,
        Some(other) => {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                &format!("The app requested an unsupported grant type '{other}'."),
            );
        }
        None => {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            );
        }
    };
    if get("client_id").map(str::to_ascii_lowercase) != Some(cfg.client_id.to_ascii_lowercase()) {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
                get("client_id").unwrap_or("")
            ),
        );
    }
    let audience = if v2 {
        if get("resource").is_some() {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                901002,
                "The 'resource' request parameter is not supported.",
            );
        }
        match get("scope") {
            Some(sc) => sc
                .split_whitespace()
                .find(|x| x.ends_with("/.default"))
                .unwrap_or(sc)
                .trim_end_matches("/.default")
                .to_owned(),
            None => {
                return entra_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'scope'.",
                );
            }
        }
    } else {
        get("resource")
            .unwrap_or("00000002-0000-0000-c000-000000000000")
            .to_owned()
    };
    if audience == RESOURCE && !id.resource_provisioned {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            &format!(
                "The resource principal named {RESOURCE} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."
            ),
        );
    }
    // The app's own credential: a secret or a certificate assertion (optional for a public client
    // using the password grant).
    let has_credential = get("client_secret").is_some() || get("client_assertion").is_some();
    if grant == "client_credentials" || has_credential {
        if let Some(assertion) = get("client_assertion") {
            if let Err(r) = check_assertion(&cfg, &tenant, get("client_assertion_type"), assertion)
            {
                return r;
            }
        } else {
            match get("client_secret") {
                None => {
                    return entra_error(
                        StatusCode::UNAUTHORIZED,
                        "invalid_client",
                        7000218,
                        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                    );
                }
                Some(sec) if sec != cfg.client_secret => {
                    return entra_error(
                        StatusCode::UNAUTHORIZED,
                        "invalid_client",
                        7000215,
                        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app.",
                    );
                }
                Some(_) if id.secret_expired => {
                    return entra_error(
                        StatusCode::UNAUTHORIZED,
                        "invalid_client",
                        7000222,
                        "The provided client secret keys for app are expired. Visit the Azure portal to create new keys for your app.",
                    );
                }
                Some(_) => {}
            }
        }
    }
    let user = if grant == "password" {
        let name = get("username").unwrap_or("");
        let Some(u) = id
            .users
            .iter()
            .find(|u| u.username.eq_ignore_ascii_case(name))
        else {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                50034,
                "The user account does not exist in the directory. To sign into this application, the account must be added to the directory.",
            );
        };
        if get("password") != Some(u.password.as_str()) {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                50126,
                "Error validating credentials due to invalid username or password.",
            );
        }
        match u.mfa {
            Some(50079) => {
                return entra_error_with(
                    StatusCode::BAD_REQUEST,
                    "interaction_required",
                    50079,
                    "Due to a configuration change made by your administrator, or because you moved to a new location, you must enroll in multi-factor authentication to access the resource.",
                    Some("basic_action"),
                );
            }
            Some(code) => {
                return entra_error_with(
                    StatusCode::BAD_REQUEST,
                    "interaction_required",
                    code,
                    "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access the resource.",
                    Some("basic_action"),
                );
            }
            None => {}
        }
        Some(u.username.clone())
    } else {
        None
    };
    let now = chrono::Utc::now().timestamp();
    let life = cfg.token_lifetime.as_secs().max(1) as i64;
    let mut claims = json!({
        "aud": audience,
        "iss": format!("https://sts.windows.net/{}/", cfg.tenant_id),
        "iat": now - 300,
        "nbf": now - 300,
        "exp": now + life,
        "appid": cfg.client_id,
        "tid": cfg.tenant_id,
        "ver": "1.0",
        "uti": format!("sim{}", st.stats.token_requests),
    });
    match &user {
        Some(upn) => {
            claims["scp"] = Value::from(id.scopes.clone());
            claims["upn"] = Value::from(upn.clone());
            claims["amr"] = json!(["pwd"]);
            claims["appidacr"] = Value::from(if get("client_secret").is_some() {
                "1"
            } else {
                "0"
            });
        }
        None => {
            claims["roles"] = json!(id.roles);
            claims["appidacr"] = Value::from(if get("client_assertion").is_some() {
                "2"
            } else {
                "1"
            });
        }
    }
    let token = match jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &st.key) {
        Ok(t) => t,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    st.stats.tokens_issued += 1;
    if st.issued.len() < 1000 {
        st.issued.push(token.clone());
    }
    let mut body = if v2 {
        json!({"token_type": "Bearer", "expires_in": life, "ext_expires_in": life, "access_token": token})
    } else {
        json!({
            "token_type": "Bearer",
            "expires_in": life.to_string(),
            "ext_expires_in": life.to_string(),
            "expires_on": (now + life).to_string(),
            "not_before": (now - 300).to_string(),
            "resource": audience,
            "access_token": token,
        })
    };
    if user.is_some() {
        body["scope"] = Value::from(id.scopes.clone());
    }
    axum::Json(body).into_response()
}

/// Verifies a certificate client assertion the way Entra does: registered certificate,
/// thumbprint, signature, audience, issuer and subject, validity window.
fn check_assertion(
    cfg: &SimConfig,
    tenant: &str,
    assertion_type: Option<&str>,
    assertion: &str,
) -> Result<(), Response> {
    let rejected =
        |code: u32, text: &str| entra_error(StatusCode::UNAUTHORIZED, "invalid_client", code, text);
    if assertion_type != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
        return Err(entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            9002313,
            "Invalid request. Request is malformed or invalid: client_assertion_type.",
        ));
    }
    let Some(pem) = &cfg.identity.certificate_pem else {
        return Err(rejected(
            700027,
            "Client assertion failed signature validation. No certificate is registered for the app.",
        ));
    };
    let der = match x509_parser::pem::parse_x509_pem(pem.as_bytes()) {
        Ok((_, p)) => p.contents,
        Err(_) => {
            return Err(rejected(
                700027,
                "Client assertion failed signature validation.",
            ));
        }
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
        return Err(rejected(
            700027,
            "Client assertion failed signature validation.",
        ));
    };
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| rejected(700027, "Client assertion failed signature validation."))?;
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use sha2::Digest;
    let thumb_ok = match header.alg {
        jsonwebtoken::Algorithm::PS256 => {
            header.x5t_s256.as_deref() == Some(&b64.encode(sha2::Sha256::digest(&der)))
        }
        jsonwebtoken::Algorithm::RS256 => {
            header.x5t.as_deref() == Some(&b64.encode(sha1::Sha1::digest(&der)))
                || header.x5t_s256.as_deref() == Some(&b64.encode(sha2::Sha256::digest(&der)))
        }
        _ => false,
    };
    if !thumb_ok {
        return Err(rejected(
            700027,
            "Client assertion failed signature validation. The certificate thumbprint in the assertion is not registered for the app.",
        ));
    }
    let key = jsonwebtoken::DecodingKey::from_rsa_der(&cert.public_key().subject_public_key.data);
    let mut v = jsonwebtoken::Validation::new(header.alg);
    // Time is checked below against Entra's (possibly skewed) clock.
    v.validate_exp = false;
    v.validate_aud = false;
    v.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
    let data = jsonwebtoken::decode::<Value>(assertion, &key, &v)
        .map_err(|_| rejected(700027, "Client assertion failed signature validation."))?;
    let c = &data.claims;
    let now = chrono::Utc::now().timestamp() + cfg.identity.clock_skew_secs;
    let (nbf, exp) = (
        c["nbf"].as_i64().unwrap_or(i64::MAX),
        c["exp"].as_i64().unwrap_or(0),
    );
    if now < nbf - 300 || now >= exp {
        let t = |x: i64| {
            chrono::DateTime::<chrono::Utc>::from_timestamp(x, 0)
                .map(|d| d.to_rfc3339())
                .unwrap_or_default()
        };
        return Err(rejected(
            700024,
            &format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}.",
                t(now),
                t(nbf),
                t(exp)
            ),
        ));
    }
    let aud_ok = c["aud"].as_str().is_some_and(|a| {
        a.ends_with(&format!("/{tenant}/oauth2/v2.0/token"))
            || a.ends_with(&format!("/{tenant}/oauth2/token"))
    });
    if !aud_ok {
        return Err(rejected(
            700027,
            "Client assertion failed signature validation. The audience is not this tenant's token endpoint.",
        ));
    }
    if c["iss"].as_str() != Some(cfg.client_id.as_str()) || c["sub"] != c["iss"] {
        return Err(rejected(
            50048,
            "Subject mismatches Issuer claim in the client assertion.",
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Defender

fn defender_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message, "target": "43f4cb08-8fac-4b65-9db1-745c2ae65f3a"}});
    (status, axum::Json(body)).into_response()
}

async fn not_found() -> Response {
    defender_error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        "Resource not found",
    )
}

/// What to answer instead of the page.
enum Fault {
    TooMany(u64),
    Internal,
    Unavailable,
    Truncated,
    Garbage,
    Slow(Duration),
}

struct Query {
    filter: Option<odata::Expr>,
    top: usize,
    skip: usize,
    order: Option<(String, bool)>,
    expand: bool,
}

fn parse_query(raw: Option<&str>, orderby_ok: bool) -> Result<Query, Response> {
    let bad = |m: String| {
        defender_error(
            StatusCode::BAD_REQUEST,
            "ODataError",
            &format!("Invalid OData URI query: {m}"),
        )
    };
    let mut q = Query {
        filter: None,
        top: 10_000,
        skip: 0,
        order: None,
        expand: false,
    };
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "$filter" => q.filter = Some(odata::parse_filter(&v).map_err(|e| bad(e.to_string()))?),
            "$top" => {
                let n: usize = v
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("$top '{v}' is not a number")))?;
                if n > 10_000 {
                    return Err(bad(format!(
                        "The limit of '10000' for Top query has been exceeded. The value from the incoming request is '{n}'."
                    )));
                }
                q.top = n;
            }
            "$skip" => {
                q.skip = v
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("$skip '{v}' is not a number")))?
            }
            "$expand" => {
                if v.trim().eq_ignore_ascii_case("evidence") {
                    q.expand = true;
                } else {
                    return Err(bad(format!(
                        "Could not find a property named '{v}' on type 'Alert'."
                    )));
                }
            }
            "$orderby" => {
                if !orderby_ok {
                    return Err(bad(
                        "The query parameter '$orderby' is not supported.".into()
                    ));
                }
                let mut parts = v.split_whitespace();
                let prop = parts.next().unwrap_or("").to_owned();
                let desc = match parts.next().map(str::to_ascii_lowercase).as_deref() {
                    None | Some("asc") => false,
                    Some("desc") => true,
                    Some(o) => return Err(bad(format!("'{o}' is not a sort direction"))),
                };
                let known = [
                    "lastUpdateTime",
                    "alertCreationTime",
                    "id",
                    "severity",
                    "status",
                ];
                let prop = known
                    .iter()
                    .find(|k| k.eq_ignore_ascii_case(&prop))
                    .ok_or_else(|| {
                        bad(format!(
                            "Could not find a property named '{prop}' on type 'Alert'."
                        ))
                    })?;
                q.order = Some(((*prop).to_owned(), desc));
            }
            other if other.starts_with('$') => {
                return Err(bad(format!(
                    "The query parameter '{other}' is not supported."
                )));
            }
            _ => {}
        }
    }
    Ok(q)
}

fn authorize(st: &mut State, headers: &HeaderMap) -> Result<(), Response> {
    let unauthorized = |st: &mut State| {
        st.stats.unauthorized += 1;
        let mut r = defender_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Invalid Authorization header",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        r
    };
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
    else {
        return Err(unauthorized(st));
    };
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.leeway = 0;
    v.validate_aud = false;
    let data = match jsonwebtoken::decode::<Value>(token, &st.decoding, &v) {
        Ok(d) => d,
        Err(_) => return Err(unauthorized(st)),
    };
    if data.claims.get("aud").and_then(|a| a.as_str()) != Some(RESOURCE) {
        return Err(defender_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "The token's audience is not https://api.securitycenter.microsoft.com.",
        ));
    }
    let roles_ok = data.claims["roles"].as_array().is_some_and(|r| {
        r.iter()
            .any(|x| matches!(x.as_str(), Some("Alert.Read.All" | "Alert.ReadWrite.All")))
    });
    let scp_ok = data.claims["scp"].as_str().is_some_and(|s| {
        s.split(' ')
            .any(|x| matches!(x, "Alert.Read" | "Alert.ReadWrite"))
    });
    if !roles_ok && !scp_ok {
        return Err(defender_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "The application does not have any of the required application permissions (Alert.ReadWrite.All, Alert.Read.All) to access the resource.",
        ));
    }
    Ok(())
}

async fn alerts(
    AxState(s): AxState<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let (fault, answer) = {
        let mut st = s.lock().unwrap_or_else(|p| p.into_inner());
        st.stats.alert_calls += 1;
        if let Err(r) = authorize(&mut st, &headers) {
            return r;
        }
        let h = st.cfg.hazards.clone();
        if let Some((per_minute, per_hour)) = h.rate_limit
            && let Some(wait) = quota_wait(&mut st.quota_calls, per_minute, per_hour)
        {
            st.stats.throttled += 1;
            let mut r = defender_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                &format!("API calls quota exceeded! Maximum admitted {per_minute} per 1m."),
            );
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(wait.as_secs_f64().ceil() as u64),
            );
            return r;
        }
        let fault = if h.fault_rate > 0.0 && st.maker.rng.random_bool(h.fault_rate.clamp(0.0, 1.0))
        {
            st.stats.faults += 1;
            let kinds: &[FaultKind] = if h.fault_kinds.is_empty() {
                &ALL_FAULTS
            } else {
                &h.fault_kinds
            };
            Some(match kinds[st.maker.rng.random_range(0..kinds.len())] {
                FaultKind::TooManyRequests => Fault::TooMany(h.retry_after_secs),
                FaultKind::Internal => Fault::Internal,
                FaultKind::Unavailable => Fault::Unavailable,
                FaultKind::Truncated => Fault::Truncated,
                FaultKind::NotJson => Fault::Garbage,
                FaultKind::Slow => Fault::Slow(h.slow_delay),
            })
        } else {
            None
        };
        let answer = match &fault {
            Some(Fault::TooMany(_) | Fault::Internal | Fault::Unavailable | Fault::Garbage) => None,
            _ => Some(page(&mut st, raw.as_deref())),
        };
        (fault, answer)
    };
    match fault {
        Some(Fault::TooMany(secs)) => {
            let mut r = defender_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "API calls quota exceeded. Retry in a bit.",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            r
        }
        Some(Fault::Internal) => {
            defender_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "")
        }
        Some(Fault::Unavailable) => {
            (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response()
        }
        Some(Fault::Garbage) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body>Gateway hiccup</body></html>",
        )
            .into_response(),
        Some(Fault::Truncated) => match answer {
            Some(Ok(body)) => {
                let cut = body.len() / 2;
                ok_json(body[..cut].to_vec())
            }
            Some(Err(r)) => r,
            None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
        Some(Fault::Slow(d)) => {
            tokio::time::sleep(d).await;
            match answer {
                Some(Ok(body)) => ok_json(body),
                Some(Err(r)) => r,
                None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            }
        }
        None => match answer {
            Some(Ok(body)) => ok_json(body),
            Some(Err(r)) => r,
            None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
    }
}

/// Records a call against the quota, or says how long until one is allowed.
fn quota_wait(
    calls: &mut std::collections::VecDeque<Instant>,
    per_minute: u32,
    per_hour: u32,
) -> Option<Duration> {
    let now = Instant::now();
    let (minute, hour) = (Duration::from_secs(60), Duration::from_secs(3600));
    while calls
        .front()
        .is_some_and(|t| now.duration_since(*t) >= hour)
    {
        calls.pop_front();
    }
    let mut wait = Duration::ZERO;
    if calls.len() >= per_hour as usize {
        wait = wait.max(hour - now.duration_since(calls[calls.len() - per_hour as usize]));
    }
    let in_minute = calls
        .iter()
        .rev()
        .take_while(|t| now.duration_since(**t) < minute)
        .count();
    if in_minute >= per_minute as usize {
        wait = wait.max(minute - now.duration_since(calls[calls.len() - per_minute as usize]));
    }
    if wait.is_zero() {
        calls.push_back(now);
        None
    } else {
        Some(wait)
    }
}

fn ok_json(body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8",
            ),
            (header::HeaderName::from_static("odata-version"), "4.0"),
        ],
        body,
    )
        .into_response()
}

/// Builds one page, then lets the world move on (`mutate_per_page`).
fn page(st: &mut State, raw: Option<&str>) -> Result<Vec<u8>, Response> {
    let h = st.cfg.hazards.clone();
    let mut q = parse_query(raw, h.orderby_supported)?;
    if h.orderby_ignored {
        q.order = None;
    }
    let now = Instant::now();
    let mut hits: Vec<(i64, &String, &Map<String, Value>)> = st
        .alerts
        .iter()
        .filter_map(|(id, versions)| {
            let v = versions.iter().rev().find(|v| v.visible_at <= now)?;
            q.filter
                .as_ref()
                .is_none_or(|f| f.matches(&v.json))
                .then_some((v.ticks, id, &v.json))
        })
        .collect();
    // Without $orderby the order is undocumented: here, by id, which has nothing to do with time.
    if let Some((prop, desc)) = &q.order {
        if prop == "lastUpdateTime" {
            hits.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        } else {
            hits.sort_by(|a, b| {
                let ka = a.2.get(prop).map(|v| v.to_string()).unwrap_or_default();
                let kb = b.2.get(prop).map(|v| v.to_string()).unwrap_or_default();
                ka.cmp(&kb).then_with(|| a.1.cmp(b.1))
            });
        }
        if *desc {
            hits.reverse();
        }
    }
    let take = h.server_page.map_or(q.top, |p| p.min(q.top));
    let more = hits.len() > q.skip + take && take < q.top;
    let mut value: Vec<Value> = hits
        .iter()
        .skip(q.skip)
        .take(take)
        .map(|(_, _, j)| Value::Object(served(j, q.expand)))
        .collect();
    let add_invalid = h.invalid_element_rate > 0.0
        && !value.is_empty()
        && st
            .maker
            .rng
            .random_bool(h.invalid_element_rate.clamp(0.0, 1.0));
    if add_invalid {
        let junk = if st.maker.rng.random_bool(0.5) {
            json!({"title": "an element without an id", "lastUpdateTime": defender_time(sim_now())})
        } else {
            json!({"id": "da-broken-time_1", "lastUpdateTime": "not a time"})
        };
        let at = st.maker.rng.random_range(0..value.len());
        value.insert(at, junk);
        // Keep the page within $top, as the real service would.
        if value.len() > q.top {
            value.pop();
        }
    }
    let mut envelope = json!({
        "@odata.context": "https://api.securitycenter.microsoft.com/api/$metadata#Alerts",
        "value": value,
    });
    if more {
        envelope["@odata.nextLink"] = Value::from(format!(
            "https://api.securitycenter.microsoft.com/api/alerts?$skip={}",
            q.skip + take
        ));
    }
    let body = serde_json::to_vec(&envelope)
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())?;
    if h.mutate_per_page > 0 {
        st.update_random(h.mutate_per_page);
    }
    Ok(body)
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
