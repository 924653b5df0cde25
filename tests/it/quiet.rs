//! A quiet service costs nothing: under `run`, an interval in which nothing changed writes no
//! export file, logs no line per tenant (one summary line for all), and adds no row per tenant
//! per poll. Driven in-process with ticks the test sends, so no test waits for a clock.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::service::InProcess;
use crate::support::*;

/// Every JSON log line of this test binary at INFO and above (a global subscriber: the service's
/// tasks run on every worker thread). Lines are told apart by their tenants' names.
fn log_lines() -> Arc<Mutex<Vec<u8>>> {
    static LINES: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LINES
        .get_or_init(|| {
            let lines = Arc::new(Mutex::new(Vec::new()));
            #[derive(Clone)]
            struct Sink(Arc<Mutex<Vec<u8>>>);
            impl std::io::Write for Sink {
                fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                    self.0.lock().unwrap().extend_from_slice(b);
                    Ok(b.len())
                }
                fn flush(&mut self) -> std::io::Result<()> {
                    Ok(())
                }
            }
            let sink = Sink(lines.clone());
            let subscriber = tracing_subscriber::fmt()
                .json()
                .with_max_level(tracing::Level::INFO)
                .with_writer(move || sink.clone())
                .finish();
            // Another test may have set one first: then this test reads nothing and says so.
            let _ = tracing::subscriber::set_global_default(subscriber);
            lines
        })
        .clone()
}

/// Every file under `dir` with its size and modification time.
fn files(dir: &std::path::Path) -> BTreeMap<String, (u64, std::time::SystemTime)> {
    std::fs::read_dir(dir)
        .map(|r| {
            r.map(|e| {
                let e = e.unwrap();
                let m = e.metadata().unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    (m.len(), m.modified().unwrap()),
                )
            })
            .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_interval_under_run_writes_no_file_logs_no_line_per_tenant_adds_no_row() {
    const TENANTS: u64 = 12;
    let lines = log_lines();
    let env = Env::many_tenants(
        8,
        TENANTS,
        91,
        Opts {
            exports: true,
            ..Opts::default()
        },
    )
    .await;
    // Names no other test uses, to tell this test's log lines apart.
    env.edit_config(|c| {
        for t in &mut c.tenants {
            t.name = Some(t.name.as_deref().unwrap().replace("sim-", "quiet-"));
        }
    });
    let mut service = InProcess::start(&env, |_| {}).await;
    let n = TENANTS as usize;
    assert!(
        service.poll_n(n).await,
        "the first interval polls every tenant"
    );
    // One more to settle what the first read (its overlap), then the quiet ones.
    assert!(service.poll_n(n).await);
    let exports = env.path().join("exports");
    let files_before = files(&exports);
    assert!(!files_before.is_empty());
    let rows_before = mde_alerts::store::Store::open_read_only(&env.store_path())
        .unwrap()
        .runs(None, 10_000)
        .unwrap()
        .len();
    let logged_before = lines.lock().unwrap().len();
    // The database and its write-ahead log (the shared-memory index is not data).
    let store_name = env
        .store_path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let store_files = || {
        let mut f = files(env.store_path().parent().unwrap());
        f.retain(|name, _| *name == store_name || *name == format!("{store_name}-wal"));
        assert!(f.contains_key(&store_name));
        f
    };
    let store_before = store_files();
    for _ in 0..3 {
        assert!(service.poll_n(n).await);
    }
    // Not a byte: the quiet polls' bookkeeping waits in memory (see `store::quiet`).
    assert_eq!(store_files(), store_before, "the store is not written");
    service.stop().await;
    assert_eq!(files(&exports), files_before, "no file written or touched");
    let runs = mde_alerts::store::Store::open_read_only(&env.store_path())
        .unwrap()
        .runs(None, 10_000)
        .unwrap();
    // Each tenant's quiet streak is one row, beside its first read's: written by the streak's
    // first poll, and brought up to date (every quiet poll counted) when the service stopped.
    assert_eq!(rows_before, 2 * n, "{runs:#?}");
    assert_eq!(
        runs.len(),
        2 * n,
        "one row per tenant's quiet streak: {runs:#?}"
    );
    for t in runs
        .iter()
        .filter(|r| r.counts.new == 0 && r.tenant.starts_with("quiet-"))
    {
        assert_eq!((t.outcome.as_str(), t.polls), ("ok", 4), "{t:#?}");
    }
    // `status` says what its store size counts: the database and the WAL apart.
    let out = run(&env, &["status", "--json"]).await;
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (all, wal) = (
        st[0]["store_bytes"].as_u64().unwrap(),
        st[0]["store_wal_bytes"].as_u64().unwrap(),
    );
    assert!(all > 0 && wal <= all, "{all} {wal}");
    let out = run(&env, &["status", "--all"]).await;
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("(database "), "{shown}");
    assert!(shown.contains(", write-ahead log "), "{shown}");
    let text = String::from_utf8(lines.lock().unwrap()[logged_before..].to_vec()).unwrap();
    let ours: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v.to_string().contains("quiet-"))
        .collect();
    if text.is_empty() {
        eprintln!("another subscriber was set first: the log is not checked here");
        return;
    }
    let per_tenant: Vec<&serde_json::Value> = ours
        .iter()
        .filter(|v| v["fields"]["tenant"].is_string())
        .collect();
    assert!(
        per_tenant.is_empty(),
        "a line per quiet tenant: {per_tenant:?}"
    );
    let summaries = ours
        .iter()
        .filter(|v| v["fields"]["polled"] == TENANTS)
        .count();
    assert_eq!(
        summaries, 3,
        "one summary line per quiet interval: {ours:?}"
    );
}
