//! `tenants_dir`: tenants from a directory of `*.toml` files, at scale, and
//! reloaded by SIGHUP under `run` without disturbing the other tenants.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::config::to_toml;
use crate::support::*;
use mde_alerts::config::Config;
use mde_alerts::config::raw::{RawConfig, RawTenant};
use mde_alerts::daemon::{self, Control, Event, JobKey};
use mde_sim::Hazards;

/// The text of a tenants file holding `blocks`.
fn tenants_file(blocks: Vec<RawTenant>) -> String {
    to_toml(&RawConfig {
        tenants: blocks,
        ..RawConfig::default()
    })
}

/// `n` files of one tenant each (with a per-file secret path, a schedule and Graph settings, so
/// the validation does its usual work), loaded; returns how long the load took.
fn load_many(dir: &Path, n: usize) -> Duration {
    let tenants = dir.join("tenants.d");
    std::fs::create_dir_all(&tenants).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        "tenants_dir = \"tenants.d\"\n[store]\npath = \"alerts.db\"\n",
    )
    .unwrap();
    for i in 0..n {
        let block = RawTenant {
            name: Some(format!("customer-{i:05}")),
            tenant_id: Some(format!("{i:08x}-2222-3333-4444-555555555555")),
            client_id: Some("11111111-2222-3333-4444-555555555555".into()),
            client_secret_file: Some(format!("secrets/customer-{i:05}")),
            schedule: Some("0 */5 * * * *".into()),
            source: Some(mde_alerts::config::SourceChoice::Graph),
            ..RawTenant::default()
        };
        std::fs::write(
            tenants.join(format!("customer-{i:05}.toml")),
            tenants_file(vec![block]),
        )
        .unwrap();
    }
    let start = Instant::now();
    let c = Config::load(&dir.join("config.toml")).unwrap();
    let took = start.elapsed();
    assert_eq!(c.tenants.len(), n);
    assert_eq!(c.tenants[n - 1].name, format!("customer-{:05}", n - 1));
    eprintln!("{n} tenants files loaded in {took:?}");
    took
}

/// 2,000 files load in well under a second, even in a debug build (the figure is printed).
#[test]
fn two_thousand_tenants_files_load_fast() {
    let dir = tempfile::tempdir().unwrap();
    let took = load_many(dir.path(), 2_000);
    assert!(took < Duration::from_secs(2), "{took:?}");
}

/// The brief's scale: 10,000 files (run with `--ignored`, ideally `--release`).
#[test]
#[ignore = "a scale figure: cargo test --release --test it ten_thousand -- --ignored --nocapture"]
fn ten_thousand_tenants_files_load_in_under_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let took = load_many(dir.path(), 10_000);
    assert!(took < Duration::from_secs(1), "{took:?}");
}

/// The service in this process, driven by ticks the test sends (no clock is waited for).
struct Service {
    remote: daemon::Remote,
    task: tokio::task::JoinHandle<Result<(), mde_alerts::error::Error>>,
    schedule: croner::Cron,
}

impl Service {
    async fn start(env: &Env) -> Service {
        let config = env.config();
        let schedule = config.poll.schedule.clone();
        let (driver, remote) = daemon::Driver::manual();
        let path = env.config_path.clone();
        let task = tokio::spawn(async move { daemon::serve(&path, config, driver).await });
        let mut s = Service {
            remote,
            task,
            schedule,
        };
        s.until(|e| e == &Event::Notify("READY=1".into())).await;
        s
    }

    /// Reads events until `done` says so (at most 10 s); returns those read.
    async fn until(&mut self, done: impl Fn(&Event) -> bool) -> Vec<Event> {
        let mut read = Vec::new();
        loop {
            let e = tokio::time::timeout(Duration::from_secs(10), self.remote.events.recv())
                .await
                .unwrap_or_else(|_| panic!("waited 10 s; saw {read:?}"))
                .expect("the loop ended");
            read.push(e.clone());
            if done(&e) {
                return read;
            }
        }
    }

    /// Fires the poll schedule and waits for `n` polls to finish; returns the tenants polled
    /// (each must have succeeded), sorted.
    async fn poll(&mut self, n: usize) -> Vec<String> {
        self.remote.fire(&self.schedule, n);
        let mut polled = Vec::new();
        while polled.len() < n {
            match self
                .until(|e| matches!(e, Event::Finished { .. }))
                .await
                .pop()
            {
                Some(Event::Finished {
                    key: JobKey::Poll(t),
                    ok,
                }) => {
                    assert!(ok, "the poll of {t} failed");
                    polled.push(t);
                }
                other => panic!("{other:?}"),
            }
        }
        polled.sort();
        polled
    }

    async fn reload(&mut self) -> Event {
        self.remote.control.send(Control::Reload).unwrap();
        self.until(|e| matches!(e, Event::Reloaded | Event::ReloadRejected(_)))
            .await
            .pop()
            .unwrap()
    }

    async fn stop(self) {
        self.remote.control.send(Control::Stop).unwrap();
        let result = tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("no stop within 5 s")
            .unwrap();
        assert!(result.is_ok(), "{result:?}");
    }
}

/// A tenant of the test's simulator called `name`, as a tenants file holds it: its secret file is
/// the one beside config.toml, named relative to the tenants file's directory.
fn sim_tenant(env: &Env, name: &str) -> String {
    let mut t = env.raw_config().tenants[0].clone();
    // Each its own Entra tenant (the simulator's many-tenant mode): one tenant twice is an error.
    let n: u64 = name.trim_start_matches('t').parse().unwrap();
    t.tenant_id = Some(mde_sim::tenant_id(n));
    t.name = Some(name.into());
    t.client_secret_file = Some("../secret".into());
    tenants_file(vec![t])
}

/// `tenants_dir` under `run`: SIGHUP after adding a tenants file polls the new tenant, after
/// removing one stops its polls (its alerts stay), after changing one signs only that one in
/// afresh; the other tenants keep their tokens (the simulator counts the token requests); a
/// broken file is refused and the running tenants go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_removes_and_changes_tenants_from_the_directory() {
    let env = Env::new(
        many_tenant_sim_config(20, 71, Hazards::default()),
        Opts::default(),
    )
    .await;
    let dir = env.path().join("tenants.d");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("t2.toml"), sim_tenant(&env, "t2")).unwrap();
    env.edit_config(|c| c.tenants_dir = Some("tenants.d".into()));
    let mut service = Service::start(&env).await;
    assert_eq!(service.poll(2).await, ["t1", "t2"]);
    let tokens = env.sim.stats().token_requests;
    assert_eq!(tokens, 2, "one sign-in per tenant");

    // Added: t3 is polled; t1 and t2 keep their tokens.
    std::fs::write(dir.join("t3.toml"), sim_tenant(&env, "t3")).unwrap();
    assert_eq!(service.reload().await, Event::Reloaded);
    assert_eq!(service.poll(3).await, ["t1", "t2", "t3"]);
    assert_eq!(
        env.sim.stats().token_requests,
        tokens + 1,
        "only the new tenant signs in"
    );

    // Removed: t2 is no longer polled, and nobody signs in again.
    std::fs::remove_file(dir.join("t2.toml")).unwrap();
    assert_eq!(service.reload().await, Event::Reloaded);
    assert_eq!(service.poll(2).await, ["t1", "t3"]);
    assert_eq!(service.poll(2).await, ["t1", "t3"]);
    assert_eq!(env.sim.stats().token_requests, tokens + 1);

    // Broken: the reload is refused, naming the file and the key; polling goes on as it was.
    let broken = sim_tenant(&env, "t4").replace("client_id = \"", "client_id = \"x");
    std::fs::write(dir.join("t4.toml"), broken).unwrap();
    match service.reload().await {
        Event::ReloadRejected(why) => {
            assert!(why.contains("t4.toml"), "{why}");
            assert!(why.contains("tenants[0].client_id"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(service.poll(2).await, ["t1", "t3"]);
    // A secret that cannot be read is named in its tenants file too.
    let no_secret = sim_tenant(&env, "t4").replace("../secret", "../no-such-secret");
    std::fs::write(dir.join("t4.toml"), no_secret).unwrap();
    match service.reload().await {
        Event::ReloadRejected(why) => {
            assert!(
                why.contains("t4.toml: tenants[0].client_secret_file"),
                "{why}"
            );
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_file(dir.join("t4.toml")).unwrap();

    // Changed: only t3 signs in afresh (here with the v1 token endpoint).
    let changed = sim_tenant(&env, "t3") + "token_endpoint = \"v1\"\n";
    std::fs::write(dir.join("t3.toml"), changed).unwrap();
    assert_eq!(service.reload().await, Event::Reloaded);
    assert_eq!(service.poll(2).await, ["t1", "t3"]);
    assert_eq!(
        env.sim.stats().token_requests,
        tokens + 2,
        "only the changed tenant signs in again"
    );
    service.stop().await;

    // t2's alerts stay in the store.
    let store = mde_alerts::store::Store::open_read_only(&env.store_path()).unwrap();
    assert_eq!(
        store.runs(Some("t2"), 10).unwrap().len(),
        2,
        "polled twice, then no more"
    );
    let counts = store.alert_counts().unwrap();
    assert!(
        counts.iter().any(|(t, n)| t == "t2" && *n > 0),
        "{counts:?}"
    );
}

/// Waits up to 10 s for `status --json` to show the running service's next poll of `tenant`.
async fn wait_for_next_poll(env: &Env, tenant: &str) {
    let start = Instant::now();
    loop {
        let out = run(env, &["status", "--json"]).await;
        let scheduled = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|s| {
                s.as_array()?
                    .iter()
                    .find(|t| t["tenant"] == tenant)
                    .map(|t| t["next_poll"].is_string())
            });
        if scheduled == Some(true) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no next poll of {tenant}: {}",
            text(&out)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The real binary: `kill -HUP` after a tenants file is added, and the running service schedules
/// the new tenant (its next poll is in `status`) without a restart. The polls themselves are
/// driven in-process above; no tick is waited for here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_service_schedules_a_tenant_added_before_sighup() {
    let env = Env::new(
        many_tenant_sim_config(5, 72, Hazards::default()),
        Opts::default(),
    )
    .await;
    let dir = env.path().join("tenants.d");
    std::fs::create_dir(&dir).unwrap();
    env.edit_config(|c| c.tenants_dir = Some("tenants.d".into()));
    let child = tokio::process::Command::new(bin())
        .arg("--config")
        .arg(&env.config_path)
        .arg("run")
        .env("RUST_LOG", "mde_alerts=info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for_next_poll(&env, "t1").await;
    std::fs::write(dir.join("t2.toml"), sim_tenant(&env, "t2")).unwrap();
    let before = run(&env, &["status", "--json"]).await;
    let before: serde_json::Value = serde_json::from_slice(&before.stdout).unwrap();
    assert!(
        before[1]["tenant"] == "t2" && before[1]["next_poll"].is_null(),
        "a tenants file alone does not reach the running service: {before}"
    );
    signal(&child, "-HUP");
    wait_for_next_poll(&env, "t2").await;
    signal(&child, "-TERM");
    let out = tokio::time::timeout(Duration::from_secs(5), child.wait_with_output())
        .await
        .expect("no exit within 5 s")
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("configuration reloaded"), "{err}");
}
