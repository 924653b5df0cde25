//! Many tenants: with [`TenantMode::Many`] any GUID is a tenant of its own, so a benchmark or a
//! test can point thousands of `[[tenants]]` at one simulator.
//!
//! # The rules
//!
//! - **Which tenants.** `SimConfig::tenant_id` keeps its own world (`initial_alerts` alerts,
//!   everything the one-tenant simulator does: [`Simulator::truth`], [`Simulator::create`], …
//!   still speak of it). Every other tenant id that is a GUID (`8-4-4-4-12` hex digits, any
//!   case) is another tenant; anything else is `AADSTS90002` (tenant not found), as before.
//!   [`tenant_id`] numbers GUIDs for a benchmark: `tenant_id(42)` is
//!   `5e1a7e0a-0000-4000-8000-000000000042`.
//! - **Its app.** One multi-tenant app, consented in every tenant: `SimConfig::client_id` with
//!   `SimConfig::client_secret` (or the certificate) signs in to any of them, as a managed
//!   security provider's app does. [`TenantFault::SignIn`] makes one tenant refuse it.
//! - **Its world.** `alerts_per_tenant` endpoint alerts (and Graph-only alerts at
//!   `graph_only_share`), a pure function of the seed and the tenant id: the same ids and
//!   contents in every run with that seed, ids unique across tenants, times spread over
//!   `history` before the simulator started.
//! - **Made lazily, stored compactly.** A tenant costs nothing until a request names it; then it
//!   holds its counters, quotas and random numbers (about a kilobyte). Its starting alerts are
//!   never stored: each call regenerates them (a few hundred microseconds for twenty) and only
//!   the alerts created or changed since ([`Simulator::create_in`], [`Simulator::update_in`],
//!   the mutators, `mutate_per_page`) are kept, with all their versions. So 10,000 tenants of
//!   20 alerts cost megabytes, not the gigabytes their JSON would.
//! - **Tokens carry the tenant** (`tid`, and the issuer), and an API call is served from the
//!   world of its token's tenant: a token of one tenant never reads another's alerts.
//! - **Each tenant its own quota and counters**: the hazards' `rate_limit` counts per tenant,
//!   [`Simulator::tenant_stats`] has one tenant's counters ([`Simulator::stats`] the sum).
//! - **Failing on purpose**: [`Simulator::set_tenant_fault`].

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use axum::http::{HeaderMap, header};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::generator::{
    Generator, initial_alert_at, initial_graph_alert_at, initial_times, span_of,
};
use crate::graph::{GraphMaker, id_hash};
use crate::truth::TruthAlert;
use crate::{Mutator, SimConfig, Simulator, State, Stats, Version, World};

/// One tenant, or any GUID a tenant of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TenantMode {
    /// Only `SimConfig::tenant_id` (the default: the simulator as it always was).
    #[default]
    One,
    /// `SimConfig::tenant_id` and any other GUID, each with its own world of
    /// `alerts_per_tenant` alerts (see the module documentation).
    Many {
        /// Endpoint alerts in each tenant's starting world (20 for `mde-alerts simulate`).
        alerts_per_tenant: usize,
    },
}

/// How one tenant fails on purpose, so a test can show that its failure stays its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantFault {
    /// The token endpoint refuses the app's credential in this tenant: `401 invalid_client`,
    /// `AADSTS7000215` (what a revoked or rotated secret looks like).
    SignIn,
    /// `/api/alerts` and alerts_v2 answer every call of this tenant with this HTTP status
    /// (500, 503, 403, …) and the API's error body, after the token checks.
    Api(u16),
    /// `/api/alerts` of this tenant answers as switched off (alerts_v2 still serves it), as
    /// [`crate::Simulator::set_mde_retired`] does for every tenant.
    MdeRetired(crate::Retired),
}

/// Which tenants a tenant mutator changes on each tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantPick {
    /// This many tenants drawn at random among those in use (that a request has named).
    InUse(usize),
    /// These tenants, every tick.
    These(Vec<String>),
}

/// The `i`th tenant id of a benchmark's numbered tenants: `5e1a7e0a-0000-4000-8000-` and `i` in
/// twelve decimal digits (`tenant_id(42)` ends in `000000000042`), so a reader sees the number.
/// Any other GUID is a tenant just as well.
#[must_use]
pub fn tenant_id(i: u64) -> String {
    format!("5e1a7e0a-0000-4000-8000-{:012}", i % 1_000_000_000_000)
}

/// Whether `s` is a GUID: `8-4-4-4-12` hex digits.
pub(crate) fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Which world a request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TenantKey {
    /// `SimConfig::tenant_id`'s.
    Home,
    /// Another tenant's (its id in lower case).
    Other(String),
}

impl TenantKey {
    /// The tenant id, as tokens carry it.
    pub(crate) fn id<'a>(&'a self, cfg: &'a SimConfig) -> &'a str {
        match self {
            TenantKey::Home => &cfg.tenant_id,
            TenantKey::Other(t) => t,
        }
    }
}

/// Alerts by id, every version.
type Alerts = BTreeMap<String, Vec<Version>>;

/// The tenants other than the home one.
pub(crate) struct Tenants {
    /// Alerts in a tenant's starting world; `None` in the one-tenant mode.
    per_tenant: Option<usize>,
    /// When the simulator started: the starting worlds' times end here.
    born: i64,
    /// Tenants in use: counters, quotas, random numbers, and the alerts made or changed since the
    /// start (the starting ones are regenerated, see [`Tenants::materialize`]).
    slots: HashMap<String, World>,
    faults: HashMap<String, TenantFault>,
}

/// The ids of a materialized world's starting alerts, to drop them again when it is put back.
pub(crate) struct StartIds {
    alerts: Vec<String>,
    graph: Vec<String>,
}

impl Tenants {
    pub(crate) fn new(cfg: &SimConfig) -> Tenants {
        Tenants {
            per_tenant: match cfg.tenants {
                TenantMode::One => None,
                TenantMode::Many { alerts_per_tenant } => Some(alerts_per_tenant),
            },
            born: crate::clock::sim_now(),
            slots: HashMap::new(),
            faults: HashMap::new(),
        }
    }

    /// The world a tenant id names, if any: the home tenant in either mode, any GUID in the
    /// many-tenant mode.
    pub(crate) fn resolve(&self, cfg: &SimConfig, tenant: &str) -> Option<TenantKey> {
        if tenant.eq_ignore_ascii_case(&cfg.tenant_id) {
            Some(TenantKey::Home)
        } else if self.per_tenant.is_some() && is_guid(tenant) {
            Some(TenantKey::Other(tenant.to_ascii_lowercase()))
        } else {
            None
        }
    }

    /// How the tenant fails on purpose, if it does.
    pub(crate) fn fault(&self, key: &TenantKey) -> Option<TenantFault> {
        match key {
            TenantKey::Home => None,
            TenantKey::Other(t) => self.faults.get(t).copied(),
        }
    }

    /// Every tenant's counters, added up.
    pub(crate) fn stats_total(&self) -> Stats {
        let mut total = Stats::default();
        for w in self.slots.values() {
            total += w.stats;
        }
        total
    }

    /// The seed of everything in a tenant's world.
    fn seed(cfg: &SimConfig, tenant: &str) -> u64 {
        cfg.seed ^ id_hash(tenant)
    }

    /// Where a tenant's alert numbers start: a range of a million of its own.
    fn serial_base(seed: u64) -> u64 {
        (seed % 1_000_000_000) * 1_000_000
    }

    /// A new tenant's state: no alerts stored, random numbers for its changes and faults.
    fn fresh(&self, cfg: &SimConfig, tenant: &str) -> World {
        let seed = Self::seed(cfg, tenant);
        let n = self.per_tenant.unwrap_or(0) as u64;
        World::empty(
            Generator::starting_at(seed ^ 0x5eed, tenant, Self::serial_base(seed) + n),
            GraphMaker::new(seed ^ 0x5eed, tenant),
        )
    }

    /// A tenant's in-use state, made on first use.
    pub(crate) fn slot(&mut self, cfg: &SimConfig, tenant: &str) -> &mut World {
        if !self.slots.contains_key(tenant) {
            let w = self.fresh(cfg, tenant);
            self.slots.insert(tenant.to_owned(), w);
        }
        self.slots
            .get_mut(tenant)
            .unwrap_or_else(|| unreachable!("inserted above"))
    }

    /// The starting world of a tenant: each alert made by a generator of its own, seeded from
    /// the tenant's seed and its number, so any alert can be regenerated alone, and its times
    /// drawn first, so that alerts last updated before `floor` (ticks) are skipped unbuilt.
    fn start(&self, cfg: &SimConfig, tenant: &str, floor: Option<i64>) -> (Alerts, Alerts) {
        let floor = floor.unwrap_or(i64::MIN);
        let n = self.per_tenant.unwrap_or(0);
        let seed = Self::seed(cfg, tenant);
        let span = span_of(cfg);
        let base = Self::serial_base(seed);
        let per_alert = |i: u64| seed ^ (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let alerts = (0..n as u64)
            .filter_map(|i| {
                let mut g = Generator::starting_at(per_alert(i), tenant, base + i);
                let (created, updated) = initial_times(&mut g.rng, self.born, span);
                let (id, v) =
                    (updated >= floor).then(|| initial_alert_at(&mut g, created, updated))?;
                Some((id, vec![v]))
            })
            .collect();
        let extra = GraphMaker::new(seed, tenant).share_of(n, cfg.graph_only_share) as u64;
        let graph = (0..extra)
            .filter_map(|j| {
                let mut g = GraphMaker::new(per_alert(j | 1 << 40), tenant);
                let (created, updated) = initial_times(&mut g.rng, self.born, span);
                let (id, v) =
                    (updated >= floor).then(|| initial_graph_alert_at(&mut g, created, updated))?;
                Some((id, vec![v]))
            })
            .collect();
        (alerts, graph)
    }

    /// The tenant's world, for one call: its starting alerts regenerated (those last updated
    /// from `floor` on, when a read-only call's filter sets one), with the ones made or changed
    /// since laid over them. [`Tenants::put_back`] stores it again.
    pub(crate) fn materialize(
        &mut self,
        cfg: &SimConfig,
        tenant: &str,
        floor: Option<i64>,
    ) -> (World, StartIds) {
        let mut w = match self.slots.remove(tenant) {
            Some(w) => w,
            None => self.fresh(cfg, tenant),
        };
        let (mut alerts, mut graph) = self.start(cfg, tenant, floor);
        let ids = StartIds {
            alerts: alerts.keys().cloned().collect(),
            graph: graph.keys().cloned().collect(),
        };
        alerts.extend(std::mem::take(&mut w.alerts));
        graph.extend(std::mem::take(&mut w.graph_alerts));
        w.alerts = alerts;
        w.graph_alerts = graph;
        (w, ids)
    }

    /// Stores a materialized world again, keeping only what cannot be regenerated: alerts that
    /// are not starting ones, and starting ones with more than their first version.
    pub(crate) fn put_back(&mut self, tenant: &str, mut w: World, ids: &StartIds) {
        fn keep(start: &[String], id: &String, v: &[Version]) -> bool {
            v.len() > 1 || start.binary_search(id).is_err()
        }
        w.alerts.retain(|id, v| keep(&ids.alerts, id, v));
        w.graph_alerts.retain(|id, v| keep(&ids.graph, id, v));
        self.slots.insert(tenant.to_owned(), w);
    }
}

/// The floor a list call's `$filter` sets on `property` (see [`crate::odata::Expr::floor_of`]),
/// in ticks; `None` without one, or when the filter does not parse (the handler answers that).
pub(crate) fn read_floor(
    raw: Option<&str>,
    dialect: crate::odata::Dialect,
    property: crate::odata::Property,
) -> Option<i64> {
    let (_, text) = url::form_urlencoded::parse(raw?.as_bytes())
        .find(|(k, _)| k.trim_start_matches('$').eq_ignore_ascii_case("filter"))?;
    let expr = crate::odata::parse_filter_in(&text, dialect).ok()?;
    expr.floor_of(property).map(crate::clock::from_chrono)
}

impl State {
    /// The counters of a tenant (made in use if it was not).
    pub(crate) fn stats_of(&mut self, key: &TenantKey) -> &mut Stats {
        match key {
            TenantKey::Home => &mut self.home.stats,
            TenantKey::Other(t) => &mut self.tenants.slot(&self.cfg, t).stats,
        }
    }

    /// Runs `f` on a tenant's world (made in use if it was not). `floor`: `f` only reads alerts
    /// last updated from then on (ticks), and changes none, so older starting alerts need not
    /// be built.
    pub(crate) fn with_world<R>(
        &mut self,
        key: &TenantKey,
        floor: Option<i64>,
        f: impl FnOnce(&SimConfig, &jsonwebtoken::DecodingKey, &mut World) -> R,
    ) -> R {
        let State {
            cfg,
            home,
            tenants,
            decoding,
            ..
        } = self;
        match key {
            TenantKey::Home => f(cfg, decoding, home),
            TenantKey::Other(t) => {
                let (mut w, ids) = tenants.materialize(cfg, t, floor);
                let r = f(cfg, decoding, &mut w);
                tenants.put_back(t, w, &ids);
                r
            }
        }
    }

    /// The tenant of the request's bearer token, when it is one this simulator signed (expired
    /// or not: the handler's own checks reject it, and count the rejection in that tenant);
    /// the home tenant otherwise.
    pub(crate) fn token_tenant(&self, headers: &HeaderMap) -> TenantKey {
        if self.tenants.per_tenant.is_none() {
            return TenantKey::Home;
        }
        let tid = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .and_then(|token| {
                let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
                v.validate_exp = false;
                v.validate_aud = false;
                v.required_spec_claims.clear();
                jsonwebtoken::decode::<Value>(token, &self.decoding, &v).ok()
            })
            .and_then(|d| {
                d.claims
                    .get("tid")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
        tid.and_then(|t| self.tenants.resolve(&self.cfg, &t))
            .unwrap_or(TenantKey::Home)
    }

    /// The key of a tenant a test names, or a panic that says why it is not one.
    fn key_for(&self, tenant: &str) -> TenantKey {
        self.tenants.resolve(&self.cfg, tenant).unwrap_or_else(|| {
            panic!(
                "'{tenant}' is not a tenant of this simulator (the many-tenant mode takes any GUID)"
            )
        })
    }
}

impl Simulator {
    /// One tenant's counters (all zero for a tenant no request has named).
    pub fn tenant_stats(&self, tenant: &str) -> Stats {
        let st = self.lock();
        match st.tenants.resolve(&st.cfg, tenant) {
            Some(TenantKey::Home) => st.home.stats,
            Some(TenantKey::Other(t)) => st
                .tenants
                .slots
                .get(&t)
                .map(|w| w.stats)
                .unwrap_or_default(),
            None => Stats::default(),
        }
    }

    /// The tenants other than the home one that are in use (a request or a test named them),
    /// sorted: what the many-tenant mode holds in memory.
    pub fn tenants_in_use(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.lock().tenants.slots.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// A tenant's oracle, as [`Simulator::truth`] is the home tenant's. Asking does not put the
    /// tenant in use.
    ///
    /// # Panics
    /// When `tenant` is not a tenant of this simulator.
    pub fn tenant_truth(&self, tenant: &str, expand_evidence: bool) -> Vec<TruthAlert> {
        let mut st = self.lock();
        let key = st.key_for(tenant);
        let in_use = match &key {
            TenantKey::Home => true,
            TenantKey::Other(t) => st.tenants.slots.contains_key(t),
        };
        let truth = st.with_world(&key, None, |_, _, w| {
            crate::truth::truth_of(w, expand_evidence)
        });
        if let (TenantKey::Other(t), false) = (&key, in_use) {
            st.tenants.slots.remove(t);
        }
        truth
    }

    /// A tenant's Graph oracle, as [`Simulator::graph_truth`] is the home tenant's (every
    /// product). Asking does not put the tenant in use.
    ///
    /// # Panics
    /// When `tenant` is not a tenant of this simulator.
    pub fn tenant_graph_truth(&self, tenant: &str) -> Vec<TruthAlert> {
        let mut st = self.lock();
        let key = st.key_for(tenant);
        let in_use = match &key {
            TenantKey::Home => true,
            TenantKey::Other(t) => st.tenants.slots.contains_key(t),
        };
        let truth = st.with_world(&key, None, |cfg, _, w| {
            crate::graph::graph_truth_of(w, cfg, &[])
        });
        if let (TenantKey::Other(t), false) = (&key, in_use) {
            st.tenants.slots.remove(t);
        }
        truth
    }

    /// Creates `n` new alerts in a tenant.
    ///
    /// # Panics
    /// When `tenant` is not a tenant of this simulator.
    pub fn create_in(&self, tenant: &str, n: usize) {
        let mut st = self.lock();
        let key = st.key_for(tenant);
        st.with_world(&key, None, |cfg, _, w| w.create(cfg, n));
    }

    /// Updates `n` random alerts of a tenant at one shared new `lastUpdateTime`.
    ///
    /// # Panics
    /// When `tenant` is not a tenant of this simulator.
    pub fn update_in(&self, tenant: &str, n: usize) {
        let mut st = self.lock();
        let key = st.key_for(tenant);
        st.with_world(&key, None, |cfg, _, w| w.update_random(cfg, n));
    }

    /// Makes a tenant fail on purpose (`None`: it recovers). The home tenant cannot fail this
    /// way: its hazards do that.
    ///
    /// # Panics
    /// When `tenant` is not another tenant of this simulator.
    pub fn set_tenant_fault(&self, tenant: &str, fault: Option<TenantFault>) {
        let mut st = self.lock();
        let TenantKey::Other(t) = st.key_for(tenant) else {
            panic!("the home tenant fails through its hazards, not set_tenant_fault");
        };
        match fault {
            Some(f) => st.tenants.faults.insert(t, f),
            None => st.tenants.faults.remove(&t),
        };
    }

    /// Starts a background task that, every `every`, updates `batch` alerts (at one shared
    /// instant) and creates `new` alerts in each tenant `pick` names. It stops when the returned
    /// handle is dropped.
    pub fn spawn_tenant_mutator(
        &self,
        every: Duration,
        pick: TenantPick,
        batch: usize,
        new: usize,
    ) -> Mutator {
        let state = self.state.clone();
        let mut rng = StdRng::seed_from_u64(self.lock().cfg.seed ^ 0x6d75_7461_7465);
        let handle = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                let chosen: Vec<String> = match &pick {
                    TenantPick::These(ids) => ids.clone(),
                    TenantPick::InUse(k) => {
                        let len = s.tenants.slots.len();
                        (0..*k)
                            .filter(|_| len > 0)
                            .filter_map(|_| {
                                let i = rng.random_range(0..len);
                                s.tenants.slots.keys().nth(i).cloned()
                            })
                            .collect()
                    }
                };
                for t in chosen {
                    let Some(key) = s.tenants.resolve(&s.cfg, &t) else {
                        continue;
                    };
                    s.with_world(&key, None, |cfg, _, w| {
                        w.update_random(cfg, batch);
                        w.create(cfg, new);
                    });
                }
            }
        });
        Mutator(handle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_tenant_ids_are_guids_and_distinct() {
        assert_eq!(tenant_id(42), "5e1a7e0a-0000-4000-8000-000000000042");
        assert!(is_guid(&tenant_id(0)) && is_guid(&tenant_id(999_999)));
        assert_ne!(tenant_id(1), tenant_id(2));
        assert!(is_guid("3F0C1C4E-5D55-4A55-9A0E-5E1D9C0D1E11"));
        for bad in [
            "",
            "contoso",
            "3f0c1c4e-5d55-4a55-9a0e-5e1d9c0d1e1",
            "3f0c1c4e-5d55-4a55-9a0e-5e1d9c0d1e11-",
            "3f0c1c4e55d55-4a55-9a0e-5e1d9c0d1e11",
            "gf0c1c4e-5d55-4a55-9a0e-5e1d9c0d1e11",
        ] {
            assert!(!is_guid(bad), "{bad}");
        }
    }

    #[test]
    fn a_materialized_world_is_put_back_without_its_starting_alerts() {
        let cfg = SimConfig {
            tenants: TenantMode::Many {
                alerts_per_tenant: 20,
            },
            ..SimConfig::default()
        };
        let mut t = Tenants::new(&cfg);
        let a = tenant_id(1);
        let (w, ids) = t.materialize(&cfg, &a, None);
        assert_eq!(w.alerts.len(), 20);
        assert_eq!(ids.alerts.len(), 20);
        t.put_back(&a, w, &ids);
        assert!(t.slots[&a].alerts.is_empty() && t.slots[&a].graph_alerts.is_empty());
        // A change and a new alert are kept, and come back the next time.
        let (mut w, ids) = t.materialize(&cfg, &a, None);
        w.update_random(&cfg, 1);
        w.create(&cfg, 1);
        let changed = w.alerts.clone().into_keys().collect::<Vec<_>>();
        t.put_back(&a, w, &ids);
        assert_eq!(t.slots[&a].alerts.len(), 2);
        let (w, _) = t.materialize(&cfg, &a, None);
        assert_eq!(w.alerts.len(), 21);
        assert_eq!(w.alerts.keys().cloned().collect::<Vec<_>>(), changed);
    }
}
