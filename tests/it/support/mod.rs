//! Shared test helpers: a simulator, a config pointing at it, the oracle comparison.

pub mod config;
pub mod smtp;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mde_alerts::alert::time::ApiTime;
use mde_alerts::config::Config;
use mde_alerts::store::Store;
use mde_sim::{Hazards, SimConfig, Simulator, TruthAlert};
use serde_json::Value;

/// A test's own directory and simulator.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub sim: Simulator,
    pub config_path: PathBuf,
}

#[derive(Clone)]
pub struct Opts {
    /// `[poll] calls_per_minute`; unset, the quotas are far above Defender's.
    pub calls_per_minute: Option<i64>,
    pub page_size: u32,
    pub overlap: &'static str,
    pub expand: bool,
    pub exports: bool,
    /// Read Graph's `alerts_v2` (`source = "graph"`) instead of the MDE API.
    pub graph: bool,
    /// Leave `source` out (`auto`): Graph when the app may, else the MDE API. Without it, a test
    /// tenant is pinned (`graph`, or the MDE API).
    pub auto: bool,
    /// `services` for a Graph tenant; `None` leaves the key out (endpoint alerts only).
    pub services: Option<Vec<String>>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            calls_per_minute: None,
            page_size: 100,
            overlap: "10m",
            expand: false,
            exports: false,
            graph: false,
            auto: false,
            services: None,
        }
    }
}

pub fn sim_config(initial: usize, seed: u64, hazards: Hazards) -> SimConfig {
    SimConfig {
        initial_alerts: initial,
        seed,
        hazards,
        ..SimConfig::default()
    }
}

impl Env {
    pub async fn new(sim: SimConfig, opts: Opts) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, format!("{}\n", sim.client_secret)).unwrap();
        let sim = Simulator::start(sim, 0).await.unwrap();
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config_text(&sim, &opts)).unwrap();
        Env {
            dir,
            sim,
            config_path,
        }
    }

    pub fn config(&self) -> Config {
        Config::load(&self.config_path).unwrap()
    }

    pub fn rewrite(&self, opts: &Opts) {
        std::fs::write(&self.config_path, config_text(&self.sim, opts)).unwrap();
    }

    pub fn store_path(&self) -> PathBuf {
        self.dir.path().join("alerts.db")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// The text of the config `opts` describe (see [`config::base`]).
pub fn config_text(sim: &Simulator, o: &Opts) -> String {
    config::to_toml(&config::base(sim, o))
}

/// The store's latest state: id → (lastUpdateTime, JSON).
pub fn stored(path: &Path) -> HashMap<String, (ApiTime, Value)> {
    let store = Store::open(path).unwrap();
    let mut out = HashMap::new();
    let mut dups = 0;
    store
        .for_each_alert(|_, raw| {
            let v: Value = serde_json::from_str(raw).unwrap();
            let id = v["id"].as_str().unwrap().to_owned();
            // Either API's shape: the MDE API's `lastUpdateTime`, Graph's `lastUpdateDateTime`.
            let time = v
                .get("lastUpdateTime")
                .or_else(|| v.get("lastUpdateDateTime"))
                .and_then(Value::as_str)
                .unwrap();
            let t = ApiTime::parse(time).unwrap();
            if out.insert(id, (t, v)).is_some() {
                dups += 1;
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(dups, 0, "an alert is stored twice");
    let ok: String = store
        .connection()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    out
}

#[derive(Default, PartialEq, Eq)]
pub struct Diff {
    pub missing: Vec<String>,
    pub stale: Vec<String>,
    pub extra: Vec<String>,
}

impl std::fmt::Debug for Diff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let few = |v: &Vec<String>| v.iter().take(5).cloned().collect::<Vec<_>>();
        write!(
            f,
            "{} missing {:?}…, {} stale {:?}…, {} extra {:?}…",
            self.missing.len(),
            few(&self.missing),
            self.stale.len(),
            few(&self.stale),
            self.extra.len(),
            few(&self.extra)
        )
    }
}

impl Diff {
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.stale.is_empty() && self.extra.is_empty()
    }
}

/// Compares the store with the simulator's truth.
pub fn diff(stored: &HashMap<String, (ApiTime, Value)>, truth: &[TruthAlert]) -> Diff {
    let mut d = Diff::default();
    let mut ids = std::collections::HashSet::new();
    for t in truth {
        ids.insert(t.id.as_str());
        match stored.get(&t.id) {
            None => d.missing.push(t.id.clone()),
            Some((time, json)) => {
                if *time != ApiTime::from_ticks(t.last_update) || *json != t.json {
                    d.stale.push(t.id.clone());
                }
            }
        }
    }
    for id in stored.keys() {
        if !ids.contains(id.as_str()) {
            d.extra.push(id.clone());
        }
    }
    d
}

/// Asserts that the store holds every alert of the simulator exactly once, in its latest state.
#[track_caller]
pub fn assert_matches_truth(env: &Env) {
    let d = diff(&stored(&env.store_path()), &env.sim.truth(false));
    assert!(d.is_clean(), "{d:?}");
}

/// The temp files (`.mde-alerts-tmp-…`) left in `dir`.
pub fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f.starts_with(mde_alerts::export::TEMP_PREFIX))
        .collect()
}

/// Waits until every late version is visible.
pub async fn settle(sim: &Simulator) {
    for _ in 0..200 {
        if sim.all_visible() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("late alerts never became visible");
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mde-alerts")
}

/// A command's standard output and error, as one text.
pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs the real binary with the env's config.
pub async fn run(env: &Env, args: &[&str]) -> std::process::Output {
    run_with(env, args, |_| {}).await
}

/// Runs the real binary with the env's config, after `tweak` (environment changes) on the command.
pub async fn run_with(
    env: &Env,
    args: &[&str],
    tweak: impl FnOnce(&mut tokio::process::Command),
) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(bin());
    cmd.arg("--config")
        .arg(&env.config_path)
        .args(args)
        .env("RUST_LOG", "mde_alerts=debug");
    tweak(&mut cmd);
    cmd.output().await.unwrap()
}

/// Reads the store at `path` every 100 ms until `read` finds what it looks for, for at most
/// `limit`: for tests that watch a running process's progress. A read that fails (no store yet,
/// a table not made yet) counts as not found.
pub async fn store_until<T>(
    path: &Path,
    limit: Duration,
    read: impl Fn(&rusqlite::Connection) -> rusqlite::Result<Option<T>>,
) -> Option<T> {
    let start = std::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(Some(found)) = rusqlite::Connection::open(path).and_then(|c| read(&c)) {
            return Some(found);
        }
        if start.elapsed() > limit {
            return None;
        }
    }
}

/// Sends `sig` (`-TERM`, `-INT`, `-HUP`) to a child process.
pub fn signal(child: &tokio::process::Child, sig: &str) {
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success()
    );
}

/// A simulator config in the many-tenant mode ([`mde_sim::TenantMode::Many`]): any GUID a tenant
/// with `per_tenant` alerts of its own; the home tenant (`t1` of [`config::base`]) keeps
/// `initial_alerts` (5 here).
pub fn many_tenant_sim_config(per_tenant: usize, seed: u64, hazards: Hazards) -> SimConfig {
    SimConfig {
        tenants: mde_sim::TenantMode::Many {
            alerts_per_tenant: per_tenant,
        },
        ..sim_config(5, seed, hazards)
    }
}

/// `n` tenant blocks for the numbered tenants `mde_sim::tenant_id(0..n)`, named `sim-0000` …,
/// each a copy of `template` (the home tenant's block of [`config::base`]: same app, secret file,
/// URLs and source) with its own name and tenant id.
pub fn tenant_blocks(
    template: &mde_alerts::config::raw::RawTenant,
    n: u64,
) -> Vec<mde_alerts::config::raw::RawTenant> {
    (0..n)
        .map(|i| mde_alerts::config::raw::RawTenant {
            name: Some(format!("sim-{i:04}")),
            tenant_id: Some(mde_sim::tenant_id(i)),
            ..template.clone()
        })
        .collect()
}

impl Env {
    /// An env whose simulator serves many tenants and whose config lists `n` of them (in place
    /// of `t1`): [`many_tenant_sim_config`], [`tenant_blocks`].
    pub async fn many_tenants(per_tenant: usize, n: u64, seed: u64, opts: Opts) -> Env {
        let env = Env::new(
            many_tenant_sim_config(per_tenant, seed, Hazards::default()),
            opts,
        )
        .await;
        let mut raw = env.raw_config();
        raw.tenants = tenant_blocks(&raw.tenants[0], n);
        env.write_config(&raw);
        env
    }
}
