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
//! - `GET /v1.0/security/alerts_v2` (and `…/alerts_v2/{id}`): Microsoft Graph's view of the same
//!   world, plus alerts of other Defender products and minus a few endpoint ones; Graph's query
//!   options, `@odata.nextLink` paging, evolvable enums, error bodies and token checks. See
//!   [`graph`] for the mapping and the rules.
//!
//! And the hazards of `docs/design.md` §2, each a switch in [`Hazards`]: alerts changing while a
//! client pages ([`Simulator::update_random`], [`Hazards::mutate_per_page`], [`Simulator::spawn_mutator`]),
//! late visibility (a version becomes visible after its `lastUpdateTime`), many alerts sharing one
//! `lastUpdateTime` (batch updates, and a clock with Defender's 1/300 s granularity), unknown
//! fields and enum values, 429 with `Retry-After`, 500 and 503, truncated and non-JSON bodies, slow
//! responses, invalid elements inside a page, and `$orderby` refused.
//!
//! [`Simulator::truth`] is the oracle the tests compare the store against;
//! [`Simulator::graph_truth`] the one for Graph. [`Simulator::requests`] lists what reached the
//! server, and whether it carried a token.
//!
//! It is a crate of its own so that the product library carries neither its 4k lines nor axum.
//! Layout: this file holds the public surface ([`Simulator`], [`SimConfig`], [`Stats`]) and the
//! shared state; `entra` answers the token endpoints, `defender` the alerts endpoint, `generator`
//! makes and changes alerts, `hazards` lists the faults, `truth` is the oracle, [`odata`] the
//! `$filter` language, `graph` serves alerts_v2 (its view, its own alerts, its endpoint), and
//! `clock` converts Defender's 100 ns ticks (through chrono).
#![warn(missing_docs)]

mod clock;
mod defender;
mod entra;
mod generator;
pub mod graph;
mod hazards;
pub mod odata;
mod tenants;
mod truth;

pub use crate::entra::{DEMO_PASSWORD, DEMO_USER, Identity, SimUser};
pub use crate::generator::backfill;
pub use crate::graph::{
    GRAPH_ROOT, GRAPH_ROOTS, GraphOrderBy, RequestSeen, graph_view, mask_unknown_enums,
};
pub use crate::hazards::{FaultKind, Hazards};
pub use crate::tenants::{TenantFault, TenantMode, TenantPick, tenant_id};
pub use crate::truth::TruthAlert;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{get, post};
use serde_json::{Map, Value};

use crate::clock::parse_ticks;
use crate::generator::Generator;

/// The tenant the demo and tests use.
pub const DEMO_TENANT_ID: &str = "3f0c1c4e-5d55-4a55-9a0e-5e1d9c0d1e11";
/// The demo app's client ID.
pub const DEMO_CLIENT_ID: &str = "8d4c7b2a-1e3f-4a5b-9c6d-7e8f9a0b1c2d";
/// The demo app's client secret (a simulator credential, worthless anywhere else).
pub const DEMO_CLIENT_SECRET: &str = "sim-secret-Qx7~not-a-real-secret";
/// Defender for Endpoint's resource (token audience); mde-alerts' `config::MDE_RESOURCE` is the
/// same text (a test in `tests/it` holds them together).
pub const RESOURCE: &str = "https://api.securitycenter.microsoft.com";

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
    /// Graph-only alerts (other Defender products, never in `/api/alerts`) per endpoint alert:
    /// at start, and with every [`Simulator::create`] and [`Simulator::update_random`] (0.1).
    pub graph_only_share: f64,
    /// Share of endpoint alerts that alerts_v2 leaves out (suppressed by a tuning rule, or
    /// standalone outside an incident), chosen by id (0.02).
    pub mde_only_share: f64,
    /// Hazards of alerts_v2 when they differ from `hazards` (`None`: the same).
    pub graph_hazards: Option<Hazards>,
    /// The one Graph root alerts_v2 accepts as a token's audience (`None`: any of
    /// [`GRAPH_ROOTS`]), to test that a client asks for the right cloud's token.
    pub graph_audience: Option<String>,
    /// One tenant (`tenant_id`, the default) or any GUID a tenant of its own: see
    /// [`TenantMode::Many`].
    pub tenants: TenantMode,
    /// `/api/alerts` switched off, as Microsoft's MC1220762 announces for 2027-02-01 (`None`: it
    /// serves). How the real API will answer is not documented: each way is a test.
    pub mde_retired: Option<Retired>,
}

/// How a switched-off `/api/alerts` answers every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retired {
    /// 410 Gone, saying the API is retired.
    Gone,
    /// 403 Forbidden with Defender's usual words, saying nothing of a retirement.
    Forbidden,
    /// 400 with a message that says the API is retired.
    Retired400,
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
            graph_only_share: 0.1,
            mde_only_share: 0.02,
            graph_hazards: None,
            graph_audience: None,
            tenants: TenantMode::One,
            mde_retired: None,
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
    /// Alert updates applied (endpoint alerts).
    pub updates: u64,
    /// Requests to Graph's alerts_v2, whatever the answer.
    pub graph_calls: u64,
    /// Of those that passed the token checks, without `Prefer: include-unknown-enum-members`.
    pub graph_without_prefer: u64,
    /// Of those, rejected with 401.
    pub graph_unauthorized: u64,
    /// Of those, rejected with 403 (the role is missing).
    pub graph_forbidden: u64,
    /// Of those, rejected with 429 by the quota.
    pub graph_throttled: u64,
    /// Of those, answered with an injected fault.
    pub graph_faults: u64,
    /// Updates applied to Graph-only alerts.
    pub graph_updates: u64,
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        self.token_requests += o.token_requests;
        self.tokens_issued += o.tokens_issued;
        self.alert_calls += o.alert_calls;
        self.faults += o.faults;
        self.unauthorized += o.unauthorized;
        self.throttled += o.throttled;
        self.updates += o.updates;
        self.graph_calls += o.graph_calls;
        self.graph_without_prefer += o.graph_without_prefer;
        self.graph_unauthorized += o.graph_unauthorized;
        self.graph_forbidden += o.graph_forbidden;
        self.graph_throttled += o.graph_throttled;
        self.graph_faults += o.graph_faults;
        self.graph_updates += o.graph_updates;
    }
}

/// One version of an alert.
#[derive(Debug, Clone)]
pub(crate) struct Version {
    pub(crate) ticks: i64,
    pub(crate) visible_at: Instant,
    pub(crate) json: Map<String, Value>,
    /// Its Graph view, built on the first alerts_v2 call that needs it: a version never changes
    /// (a change is a new version), so the cache needs no invalidation, and alerts_v2 no longer
    /// rebuilds the view of every alert on every call.
    pub(crate) view: std::sync::OnceLock<graph::CachedView>,
}

impl Version {
    pub(crate) fn new(ticks: i64, visible_at: Instant, json: Map<String, Value>) -> Version {
        Version {
            ticks,
            visible_at,
            json,
            view: std::sync::OnceLock::new(),
        }
    }
}

/// One tenant's world: every version of every alert, the makers that change them, the quotas
/// and the counters. The one-tenant simulator has one; with [`TenantMode::Many`] every other
/// tenant has its own (see [`tenants`]).
pub(crate) struct World {
    pub(crate) alerts: BTreeMap<String, Vec<Version>>,
    pub(crate) maker: Generator,
    pub(crate) stats: Stats,
    /// Accepted `/api/alerts` calls of the last hour, for the quota.
    pub(crate) quota_calls: VecDeque<Instant>,
    /// The alerts only Graph returns, in Graph's shape.
    pub(crate) graph_alerts: BTreeMap<String, Vec<Version>>,
    /// Makes and changes them, and draws Graph's faults.
    pub(crate) graph_maker: graph::GraphMaker,
    /// Accepted alerts_v2 calls of the last hour, for its own quota.
    pub(crate) graph_quota_calls: VecDeque<Instant>,
}

impl World {
    /// An empty world whose random numbers come from `seed`.
    pub(crate) fn empty(maker: Generator, graph_maker: graph::GraphMaker) -> World {
        World {
            alerts: BTreeMap::new(),
            maker,
            stats: Stats::default(),
            quota_calls: VecDeque::new(),
            graph_alerts: BTreeMap::new(),
            graph_maker,
            graph_quota_calls: VecDeque::new(),
        }
    }
}

/// The simulator's state: configuration, the home tenant's world, the other tenants, keys and
/// what reached the server. One mutex guards it; every handler holds it only while it computes
/// its answer.
pub(crate) struct State {
    pub(crate) cfg: SimConfig,
    /// The world of `cfg.tenant_id`.
    pub(crate) home: World,
    /// Every other tenant ([`TenantMode::Many`]; none in the one-tenant mode).
    pub(crate) tenants: tenants::Tenants,
    pub(crate) key: jsonwebtoken::EncodingKey,
    pub(crate) decoding: jsonwebtoken::DecodingKey,
    pub(crate) issued: Vec<String>,
    /// What reached the server.
    pub(crate) requests: VecDeque<RequestSeen>,
    /// While true, `/api/alerts` answers nothing ([`Simulator::hold_alerts`]).
    pub(crate) alerts_held: tokio::sync::watch::Sender<bool>,
}

impl SimConfig {
    /// The hazards alerts_v2 applies.
    pub(crate) fn alerts_v2_hazards(&self) -> Hazards {
        self.graph_hazards
            .clone()
            .unwrap_or_else(|| self.hazards.clone())
    }
}

/// The state as the handlers share it.
pub(crate) type Shared = Arc<Mutex<State>>;

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

impl Simulator {
    /// Starts a simulator on `127.0.0.1:port` (0: any free port).
    pub async fn start(cfg: SimConfig, port: u16) -> std::io::Result<Simulator> {
        let secret = format!("sim-signing-key-{}", cfg.seed);
        let mut home = World::empty(
            Generator::new(cfg.seed, &cfg.tenant_id),
            graph::GraphMaker::new(cfg.seed, &cfg.tenant_id),
        );
        home.populate(&cfg);
        let state = State {
            tenants: tenants::Tenants::new(&cfg),
            cfg: cfg.clone(),
            home,
            key: jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
            decoding: jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
            issued: Vec::new(),
            requests: VecDeque::new(),
            alerts_held: tokio::sync::watch::Sender::new(false),
        };
        let state = Arc::new(Mutex::new(state));
        let app = Router::new()
            .route(
                "/{tenant}/oauth2/token",
                post(entra::token_v1).get(entra::token_get),
            )
            .route(
                "/{tenant}/oauth2/v2.0/token",
                post(entra::token_v2).get(entra::token_get),
            )
            .route("/api/alerts", get(defender::alerts))
            .route("/api/v1.0/alerts", get(defender::alerts))
            .route("/v1.0/security/alerts_v2", get(graph::alerts_v2))
            .route("/v1.0/security/alerts_v2/{id}", get(graph::alert_v2))
            .fallback(not_found)
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                graph::record,
            ))
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

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `http://127.0.0.1:PORT`, for `login_url` and `api_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Updates `n` random alerts at one shared new `lastUpdateTime`.
    pub fn update_random(&self, n: usize) {
        let mut st = self.lock();
        let State { cfg, home, .. } = &mut *st;
        home.update_random(cfg, n);
    }

    /// Creates `n` new alerts.
    pub fn create(&self, n: usize) {
        let mut st = self.lock();
        let State { cfg, home, .. } = &mut *st;
        home.create(cfg, n);
    }

    /// Stores `json` as the newest version of its alert, visible now, whatever its
    /// `lastUpdateTime` says (tests use it for odd data: a timestamp from the future, say).
    ///
    /// A Graph-only alert is accepted too: JSON whose `serviceSource` is not
    /// `microsoftDefenderForEndpoint` (in Defender's shape, then served through
    /// [`graph_view`], or already in Graph's), or any JSON in Graph's shape (a
    /// `lastUpdateDateTime` and no `lastUpdateTime`), served as it is. Neither reaches
    /// `/api/alerts` or [`Simulator::truth`].
    pub fn put_alert(&self, json: Value) {
        let Some(obj) = json.as_object().cloned() else {
            return;
        };
        let id = obj
            .get("id")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        let graph_only = graph::is_graph_shaped(&obj) || graph::service_of(&obj) != graph::ENDPOINT;
        let ticks = obj
            .get("lastUpdateTime")
            .or_else(|| obj.get("lastUpdateDateTime"))
            .and_then(|v| v.as_str())
            .and_then(parse_ticks)
            .unwrap_or(0);
        let version = Version::new(ticks, Instant::now(), obj);
        let mut st = self.lock();
        let world = if graph_only {
            &mut st.home.graph_alerts
        } else {
            &mut st.home.alerts
        };
        world.entry(id).or_default().push(version);
    }

    /// Rotates the app's client secret (the old one stops working at once).
    pub fn set_client_secret(&self, secret: &str) {
        self.lock().cfg.client_secret = secret.to_owned();
    }

    /// Grants (or, with `[]`, removes) the app's Microsoft Graph permissions: tokens issued from
    /// now on carry them, as Entra's do after an admin consents.
    pub fn set_graph_roles(&self, roles: &[&str]) {
        self.lock().cfg.identity.graph_roles = roles.iter().map(|r| (*r).to_owned()).collect();
    }

    /// Makes Entra refuse tokens for Microsoft Graph alone with AADSTS `code` (65001: consent
    /// missing; 500011: Graph's service principal not found), or issue them again with `None`.
    pub fn set_graph_sign_in_refused(&self, code: Option<u32>) {
        self.lock().cfg.identity.graph_sign_in_refused = code;
    }

    /// Switches `/api/alerts` off (or back on, with `None`).
    pub fn set_mde_retired(&self, retired: Option<Retired>) {
        self.lock().cfg.mde_retired = retired;
    }

    /// Replaces the hazards.
    pub fn set_hazards(&self, h: Hazards) {
        self.lock().cfg.hazards = h;
    }

    /// Counts `calls` accepted `/api/alerts` calls of the home tenant, made `ago` before now,
    /// against [`Hazards::rate_limit`], as an earlier client's would: a test puts the quota into
    /// a spent state that frees `60 s − ago` from now, instead of spending it by real calls and
    /// waiting out the minute they start.
    pub fn spend_quota(&self, calls: u32, ago: Duration) {
        let at = Instant::now()
            .checked_sub(ago)
            .expect("the monotonic clock reaches back that far");
        let mut st = self.lock();
        let q = &mut st.home.quota_calls;
        q.extend(std::iter::repeat_n(at, calls as usize));
        q.make_contiguous().sort();
    }

    /// Holds every `/api/alerts` answer, of every tenant, until the returned [`Hold`] is dropped:
    /// a client's call then lasts exactly as long as the test needs it to (a poll that keeps the
    /// store's writer lock while a second writer tries it), with no delay to guess.
    pub fn hold_alerts(&self) -> Hold {
        let held = self.lock().alerts_held.clone();
        held.send_replace(true);
        Hold(held)
    }

    /// The counters: the home tenant's and every other tenant's, added up
    /// ([`Simulator::tenant_stats`] has one tenant's).
    pub fn stats(&self) -> Stats {
        let st = self.lock();
        let mut total = st.home.stats;
        total += st.tenants.stats_total();
        total
    }

    /// Every token issued so far (the first thousand), for tests that grep for leaks.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.lock().issued.clone()
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
                let State { cfg, home, .. } = &mut *s;
                home.update_random(cfg, batch);
                home.create(cfg, new);
            }
        });
        Mutator(handle)
    }
}

/// 404 with Graph's error body under `/v1.0/` and `/beta/`, Defender's elsewhere.
async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    let p = uri.path();
    if p.starts_with("/v1.0/") || p.starts_with("/beta/") {
        let ids = (
            "6f1c0a52-0000-4000-8000-000000000404".to_owned(),
            "6f1c0a52-0000-4000-8000-000000000404".to_owned(),
        );
        graph::graph_error(
            axum::http::StatusCode::NOT_FOUND,
            "BadRequest",
            &format!(
                "Resource not found for the segment '{}'.",
                p.rsplit('/').next().unwrap_or("")
            ),
            &ids,
        )
    } else {
        defender::not_found().await
    }
}

/// The `/api/alerts` answers held by [`Simulator::hold_alerts`]; dropping it lets them go.
#[derive(Debug)]
pub struct Hold(tokio::sync::watch::Sender<bool>);

impl Drop for Hold {
    fn drop(&mut self) {
        self.0.send_replace(false);
    }
}

/// A running mutator; dropping it stops the changes.
#[derive(Debug)]
pub struct Mutator(tokio::task::JoinHandle<()>);

impl Drop for Mutator {
    fn drop(&mut self) {
        self.0.abort();
    }
}
