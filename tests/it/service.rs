//! `mde-alerts run`: schedules, sd_notify, watchdog, signals, and the unit files.
//!
//! The scheduling behaviour is driven in-process ([`daemon::serve`] with ticks the test sends and
//! the events it watches), so no test waits for a clock; the real binary is run only for what
//! needs a process: sd_notify over the socket, SIGTERM, SIGHUP, exit codes, the unit files.

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;
use mde_alerts::daemon::{self, Control, Driver, Event, JobKey, Remote};
use mde_sim::{FaultKind, Hazards};

/// A fake systemd notify socket that records every message.
struct Notify {
    path: std::path::PathBuf,
    messages: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Notify {
    fn new(dir: &std::path::Path) -> Notify {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let m = messages.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match sock.recv(&mut buf) {
                    Ok(n) => m.lock().unwrap().push((
                        Instant::now(),
                        String::from_utf8_lossy(&buf[..n]).into_owned(),
                    )),
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut =>
                    {
                        if Arc::strong_count(&m) == 1 {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        Notify { path, messages }
    }
    fn all(&self) -> Vec<(Instant, String)> {
        self.messages.lock().unwrap().clone()
    }
    fn has(&self, what: &str) -> bool {
        self.all().iter().any(|(_, m)| m.contains(what))
    }
    /// Waits up to 5 s for a message containing `what`.
    async fn wait_for(&self, what: &str, count: usize) {
        let start = Instant::now();
        while self.all().iter().filter(|(_, m)| m.contains(what)).count() < count {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "no {count}× {what} in {:?}",
                self.all()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The service running in this process, driven by the test.
pub(crate) struct InProcess {
    remote: Remote,
    task: tokio::task::JoinHandle<Result<(), mde_alerts::error::Error>>,
    schedule: croner::Cron,
    tenants: usize,
    pub(crate) seen: Vec<Event>,
}

impl InProcess {
    /// Starts the loop on `env`'s config; `tune` sets the watchdog or the grace.
    pub(crate) async fn start(env: &Env, tune: impl FnOnce(&mut Driver)) -> InProcess {
        let config = env.config();
        let schedule = config.poll.schedule.clone();
        let tenants = config.tenants.len();
        let (mut driver, remote) = Driver::manual();
        tune(&mut driver);
        let path = env.config_path.clone();
        let task = tokio::spawn(async move { daemon::serve(&path, config, driver).await });
        let mut service = InProcess {
            remote,
            task,
            schedule,
            tenants,
            seen: Vec::new(),
        };
        service
            .until(|e| e == &Event::Notify("READY=1".into()))
            .await;
        service
    }

    /// Fires the poll schedule now.
    pub(crate) fn tick(&self) {
        self.remote.fire(&self.schedule, self.tenants);
    }

    /// Reads events until `done` says so (at most 10 s); returns those read.
    pub(crate) async fn until(&mut self, done: impl Fn(&Event) -> bool) -> Vec<Event> {
        let mut read = Vec::new();
        loop {
            let e = tokio::time::timeout(Duration::from_secs(10), self.remote.events.recv())
                .await
                .unwrap_or_else(|_| panic!("waited 10 s; saw {read:?}"))
                .expect("the loop ended");
            self.seen.push(e.clone());
            read.push(e.clone());
            if done(&e) {
                return read;
            }
        }
    }

    /// Fires the schedule and waits for the poll of `t1` to finish; returns whether it succeeded.
    pub(crate) async fn poll(&mut self) -> bool {
        self.tick();
        let events = self
            .until(|e| {
                matches!(
                    e,
                    Event::Finished {
                        key: JobKey::Poll(_),
                        ..
                    }
                )
            })
            .await;
        matches!(events.last(), Some(Event::Finished { ok: true, .. }))
    }

    /// Fires the schedule and waits for `n` polls to finish; returns whether all succeeded.
    pub(crate) async fn poll_n(&mut self, n: usize) -> bool {
        self.tick();
        let mut ok = true;
        for _ in 0..n {
            let events = self
                .until(|e| {
                    matches!(
                        e,
                        Event::Finished {
                            key: JobKey::Poll(_),
                            ..
                        }
                    )
                })
                .await;
            ok &= matches!(events.last(), Some(Event::Finished { ok: true, .. }));
        }
        ok
    }

    async fn reload(&mut self) -> Event {
        self.remote.control.send(Control::Reload).unwrap();
        self.until(|e| matches!(e, Event::Reloaded | Event::ReloadRejected(_)))
            .await
            .pop()
            .unwrap()
    }

    /// Stops the loop: it must return Ok within 5 s. Returns every event seen.
    pub(crate) async fn stop(mut self) -> Vec<Event> {
        self.remote.control.send(Control::Stop).unwrap();
        let result = tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("no stop within 5 s")
            .unwrap();
        assert!(result.is_ok(), "{result:?}");
        while let Ok(e) = self.remote.events.try_recv() {
            self.seen.push(e);
        }
        self.seen
    }
}

fn notified(events: &[Event], what: &str) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::Notify(m) if m.contains(what)))
}

async fn status_json(env: &Env) -> serde_json::Value {
    let out = run(env, &["status", "--json"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn spawn_run(env: &Env, notify: &Notify, watchdog_usec: u64) -> tokio::process::Child {
    tokio::process::Command::new(bin())
        .arg("--config")
        .arg(&env.config_path)
        .arg("run")
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", watchdog_usec.to_string())
        .env_remove("WATCHDOG_PID")
        .env("RUST_LOG", "mde_alerts=info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Sends SIGTERM, asserts exit status 0 within 5 s, and returns what the service logged.
async fn stop(child: &mut tokio::process::Child) -> String {
    use tokio::io::AsyncReadExt;
    signal(child, "-TERM");
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("no exit within 5 s")
        .unwrap();
    assert!(status.success(), "{status:?}");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    err
}

/// Polls repeat, each followed by the exports and the metrics; one token serves them all;
/// `status` sees the running service; the stop is clean and leaves complete files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_polls_exports_publishes_and_stops_cleanly() {
    let env = Env::new(
        sim_config(200, 61, Hazards::default()),
        Opts {
            exports: true,
            ..Opts::default()
        },
    )
    .await;
    env.edit_config(|c| c.metrics.textfile = Some("metrics/mde_alerts.prom".into()));
    std::fs::create_dir_all(env.path().join("metrics")).unwrap();
    let mut service = InProcess::start(&env, |_| {}).await;
    let mutator = env.sim.spawn_mutator(Duration::from_millis(100), 2, 1);
    for _ in 0..3 {
        assert!(service.poll().await, "{:?}", service.seen);
        // The world moves on before the next poll.
        let updates = env.sim.stats().updates;
        let start = Instant::now();
        while env.sim.stats().updates == updates {
            assert!(start.elapsed() < Duration::from_secs(5), "no update");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // status works while the service runs, and knows the next poll.
    let s = status_json(&env).await;
    assert_eq!(s[0]["daemon_running"], true);
    assert!(s[0]["next_poll"].is_string(), "{s}");
    assert_eq!(s[0]["healthy"], true);
    // In words, to the second: "next poll 2026-12-06 00:01:01 UTC", not RFC 3339 nanoseconds.
    let plain = run(&env, &["status"]).await;
    let plain = String::from_utf8_lossy(&plain.stdout).into_owned();
    let next = plain
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("next poll "))
        .and_then(|l| l.strip_suffix(" (daemon running)"))
        .unwrap_or_else(|| panic!("{plain}"));
    assert!(
        chrono::NaiveDateTime::parse_from_str(next, "%Y-%m-%d %H:%M:%S UTC").is_ok(),
        "{next}"
    );
    drop(mutator);
    let stamped = std::fs::read_dir(env.path().join("exports"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("alerts-2")
        })
        .count();
    assert!(stamped >= 2, "exports repeat: {stamped}");
    let stats = env.sim.stats();
    assert!(stats.alert_calls >= 3, "polled repeatedly: {stats:?}");
    assert_eq!(
        stats.tokens_issued, 1,
        "one token serves many polls: {stats:?}"
    );
    let prom = std::fs::read_to_string(env.path().join("metrics/mde_alerts.prom")).unwrap();
    assert!(
        prom.contains("mde_alerts_last_success_timestamp_seconds{tenant=\"t1\"}"),
        "{prom}"
    );
    assert!(
        prom.contains("mde_alerts_token_expiry_timestamp_seconds{tenant=\"t1\"}"),
        "{prom}"
    );
    let events = service.stop().await;
    for what in ["READY=1", "STATUS=", "STOPPING=1"] {
        assert!(notified(&events, what), "no {what} in {events:?}");
    }
    assert!(notified(&events, "ok: "), "STATUS after a run: {events:?}");
    assert!(
        !daemon::state_path(&env.store_path()).exists(),
        "the state file goes with the service"
    );
    let leftovers = temp_files(&env.path().join("exports"));
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Every -latest file is complete.
    let json: Vec<serde_json::Value> = serde_json::from_slice(
        &std::fs::read(env.path().join("exports/alerts-json-latest.json")).unwrap(),
    )
    .unwrap();
    assert!(json.len() >= 200);
}

/// The real binary under systemd's eyes: tokio-cron-scheduler fires the schedule, sd_notify
/// carries READY, STATUS after a poll, WATCHDOG and STOPPING, `status` sees it running, and
/// SIGTERM ends it with 0 within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_notifies_systemd_and_stops_on_sigterm() {
    let env = Env::new(sim_config(50, 66, Hazards::default()), Opts::default()).await;
    env.edit_config(|c| c.poll.schedule = Some("* * * * * *".into()));
    let notify = Notify::new(env.path());
    let mut child = spawn_run(&env, &notify, 1_000_000);
    notify.wait_for("ok: ", 1).await;
    let s = status_json(&env).await;
    assert_eq!(s[0]["daemon_running"], true);
    assert!(s[0]["next_poll"].is_string(), "{s}");
    assert_eq!(s[0]["healthy"], true);
    let stopped = Instant::now();
    stop(&mut child).await;
    assert!(stopped.elapsed() < Duration::from_secs(5));
    notify.wait_for("STOPPING=1", 1).await;
    for what in ["READY=1", "STATUS=", "WATCHDOG=1", "STOPPING=1"] {
        assert!(notify.has(what), "no {what} in {:?}", notify.all());
    }
}

/// A wedged poll (the API hangs) stops the watchdog pings, and the ticks that find it running are
/// skipped, not doubled; the stop closes its run as interrupted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wedged_poll_starves_the_watchdog_and_overlapping_ticks_are_skipped() {
    let hazards = Hazards {
        fault_rate: 1.0,
        fault_kinds: vec![FaultKind::Slow],
        slow_delay: Duration::from_secs(60),
        ..Hazards::default()
    };
    let env = Env::new(sim_config(50, 62, hazards), Opts::default()).await;
    env.edit_config(|c| c.poll.schedule = Some("* * * * * *".into()));
    env.edit_config(|c| c.poll.request_timeout = Some(config::duration("120s")));
    // The poll's deadline is its next tick, 1 s away; a 300 ms grace stands in for 5 s.
    let mut service = InProcess::start(&env, |d| {
        d.watchdog = Some(Duration::from_millis(50));
        d.wedge_grace = Duration::from_millis(300);
    })
    .await;
    let t1 = JobKey::Poll("t1".into());
    service.tick();
    service.until(|e| e == &Event::Started(t1.clone())).await;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        service.tick();
        service.until(|e| e == &Event::Skipped(t1.clone())).await;
    }
    let before = service.until(|e| matches!(e, Event::Wedged(_))).await;
    assert_eq!(before.last(), Some(&Event::Wedged(t1.clone())));
    assert!(
        service
            .seen
            .iter()
            .any(|e| e == &Event::Notify("WATCHDOG=1".into())),
        "pings before the wedge: {:?}",
        service.seen
    );
    // Every watchdog period withholds its ping: four more of them.
    for _ in 0..4 {
        service.until(|e| matches!(e, Event::Wedged(_))).await;
    }
    assert_eq!(
        service
            .seen
            .iter()
            .filter(|e| matches!(e, Event::Started(_)))
            .count(),
        1,
        "overlapping ticks must not start another poll: {:?}",
        service.seen
    );
    assert_eq!(env.sim.stats().alert_calls, 1);
    let events = service.stop().await;
    let wedged_at = events
        .iter()
        .position(|e| matches!(e, Event::Wedged(_)))
        .unwrap();
    let pings_after = events[wedged_at..]
        .iter()
        .filter(|e| *e == &Event::Notify("WATCHDOG=1".into()))
        .count();
    assert_eq!(
        pings_after, 0,
        "the watchdog is still fed while the poll is wedged"
    );
    let store = mde_alerts::store::Store::open_read_only(&env.store_path()).unwrap();
    let runs = store.runs(Some("t1"), 1).unwrap();
    assert_eq!(runs[0].outcome, "interrupted", "{runs:?}");
}

/// SIGHUP with a broken config keeps the running one polling; a good one is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_with_a_broken_config_keeps_the_old_one_running() {
    let env = Env::new(sim_config(50, 63, Hazards::default()), Opts::default()).await;
    let mut service = InProcess::start(&env, |_| {}).await;
    assert!(service.poll().await);
    let good = std::fs::read_to_string(&env.config_path).unwrap();
    std::fs::write(&env.config_path, good.replace("page_size", "pagesize")).unwrap();
    match service.reload().await {
        Event::ReloadRejected(why) => {
            assert!(
                why.contains("new config is invalid; keeping the running one"),
                "{why}"
            );
            assert!(why.contains("poll.pagesize"), "the log says why: {why}");
        }
        other => panic!("{other:?}"),
    }
    let calls = env.sim.stats().alert_calls;
    assert!(service.poll().await);
    assert!(
        env.sim.stats().alert_calls > calls,
        "polling goes on with the old config"
    );
    std::fs::write(&env.config_path, &good).unwrap();
    assert_eq!(service.reload().await, Event::Reloaded);
    assert!(service.poll().await, "and with the new one");
    service.stop().await;
}

/// The real binary's SIGHUP: RELOADING=1 then READY=1, a broken config logged and kept out, a
/// good one taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_real_service() {
    let env = Env::new(sim_config(5, 63, Hazards::default()), Opts::default()).await;
    let notify = Notify::new(env.path());
    let mut child = spawn_run(&env, &notify, 0);
    notify.wait_for("READY=1", 1).await;
    let good = std::fs::read_to_string(&env.config_path).unwrap();
    std::fs::write(&env.config_path, good.replace("page_size", "pagesize")).unwrap();
    signal(&child, "-HUP");
    notify.wait_for("READY=1", 2).await;
    std::fs::write(&env.config_path, &good).unwrap();
    signal(&child, "-HUP");
    notify.wait_for("READY=1", 3).await;
    assert!(notify.has("RELOADING=1"), "{:?}", notify.all());
    let err = stop(&mut child).await;
    assert!(
        err.contains("new config is invalid; keeping the running one"),
        "{err}"
    );
    assert!(err.contains("poll.pagesize"), "the log says why: {err}");
    assert!(err.contains("configuration reloaded"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_on_a_read_only_path_fails_run_at_start_with_78() {
    let env = Env::new(sim_config(5, 64, Hazards::default()), Opts::default()).await;
    env.edit_config(|c| c.store.path = Some("/sys/mde-alerts.db".into()));
    let out = run(&env, &["run"]).await;
    let t = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{t}");
    assert!(t.contains("store.path"), "{t}");
}

/// A second service on a store another process holds exits 78 (the unit's
/// `RestartPreventExitStatus`), naming the holder, instead of 1, which systemd restarts for
/// ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_service_on_a_held_store_exits_78_naming_the_holder() {
    let env = Env::new(sim_config(5, 65, Hazards::default()), Opts::default()).await;
    let _held = mde_alerts::store::WriterLock::acquire(&env.store_path(), Duration::ZERO).unwrap();
    let out = run(&env, &["run"]).await;
    let t = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{t}");
    assert!(t.contains(&format!("pid {}", std::process::id())), "{t}");
    assert!(t.contains("another mde-alerts"), "{t}");
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/mde-alerts.service"),
    )
    .unwrap();
    assert!(unit.contains("RestartPreventExitStatus=78"), "{unit}");
}

/// The unit passes `systemd-analyze verify`, and `security` rates its exposure 2.0 or lower.
#[test]
fn the_unit_verifies_and_is_hardened() {
    let Ok(version) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        eprintln!("systemd-analyze is not installed; skipping the unit checks");
        return;
    };
    assert!(version.status.success());
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd");
    // The unit names /usr/bin/mde-alerts; point it at the binary under test.
    for unit in [
        "mde-alerts.service",
        "mde-alerts-poll.service",
        "mde-alerts-poll.timer",
    ] {
        let text = std::fs::read_to_string(root.join(unit))
            .unwrap()
            .replace("/usr/bin/mde-alerts", bin());
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    let verify = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("mde-alerts.service"))
        .arg(dir.path().join("mde-alerts-poll.service"))
        .arg(dir.path().join("mde-alerts-poll.timer"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&verify.stderr).into_owned()
        + &String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success() && text.trim().is_empty(), "{text}");
    for unit in ["mde-alerts.service", "mde-alerts-poll.service"] {
        let out = std::process::Command::new("systemd-analyze")
            .args(["security", "--offline=true"])
            .arg(dir.path().join(unit))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or_else(|| panic!("{text}"));
        let level: f64 = line
            .split("level for")
            .nth(1)
            .unwrap()
            .split(':')
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(level <= 2.0, "{unit}: {line}");
        eprintln!("{unit}: {line}");
    }
}

/// SIGHUP builds new token providers, so a client secret rotated in place is picked up without a
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_picks_up_a_rotated_secret() {
    let mut cfg = sim_config(30, 65, Hazards::default());
    cfg.token_lifetime = Duration::from_secs(2);
    let env = Env::new(cfg, Opts::default()).await;
    let mut service = InProcess::start(&env, |_| {}).await;
    assert!(service.poll().await);
    let rotated_at = mde_alerts::alert::time::ApiTime::now();
    env.sim.set_client_secret("rotated-secret-value");
    std::fs::write(env.path().join("secret"), "rotated-secret-value\n").unwrap();
    // The old token is still valid: only a new provider asks for a new one.
    assert_eq!(service.reload().await, Event::Reloaded);
    let issued = env.sim.stats().tokens_issued;
    assert!(service.poll().await, "{:?}", service.seen);
    assert!(
        env.sim.stats().tokens_issued > issued,
        "new tokens with the rotated secret"
    );
    service.stop().await;
    let s = status_json(&env).await;
    let last_success =
        mde_alerts::alert::time::ApiTime::parse(s[0]["last_success"].as_str().unwrap()).unwrap();
    assert!(
        last_success > rotated_at,
        "a success after the rotation: {s}"
    );
}
