//! Regression tests, one per defect found in review, named after what went wrong.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;
use mde_alerts::alert::Alert;
use mde_alerts::alert::time::ApiTime;
use mde_alerts::config::{ExportConfig, ExportFormat};
use mde_alerts::poll::{PollSettings, poll_tenant};
use mde_alerts::poll_job;
use mde_alerts::source::{AlertSource, Bound, Created, Page, PageRequest, SourceError};
use mde_alerts::store::Store;
use mde_sim::Hazards;

/// Review #1: an alert sharing a timestamp with more alerts than fit on a page was skipped by
/// every `$skip` pass while other alerts of the instant were being updated, and lost for good.
/// (id, lastUpdateTime, alertCreationTime)
type FakeAlert = (String, ApiTime, ApiTime);

struct Fake {
    state: Mutex<(u64, Vec<FakeAlert>)>,
    later: ApiTime,
}

impl AlertSource for Fake {
    fn name(&self) -> &'static str {
        "fake"
    }
    async fn fetch(&self, r: &PageRequest) -> Result<Page, SourceError> {
        let mut g = self.state.lock().unwrap();
        g.0 += 1;
        let call = g.0;
        // Three alerts of the shared instant are updated while the pager reads it.
        let depart = match call {
            5 => Some(("a01", 0)),
            7 => Some(("a02", 1)),
            9 => Some(("a03", 2)),
            _ => None,
        };
        if let Some((id, k)) = depart {
            for a in g.1.iter_mut().filter(|a| a.0 == id) {
                a.1 = self.later.plus(Duration::from_secs(k));
            }
        }
        let mut hits: Vec<_> =
            g.1.iter()
                .filter(|(_, t, _)| match r.bound {
                    Bound::AtOrAfter(b) => *t >= b,
                    Bound::After(b) => *t > b,
                    Bound::Exactly(b) => *t == b,
                })
                .filter(|(_, t, _)| r.before.is_none_or(|b| *t < b))
                .filter(|(_, _, c)| match r.created {
                    Some(Created::Within(a, b)) => {
                        a.is_none_or(|a| *c >= a) && b.is_none_or(|b| *c < b)
                    }
                    Some(Created::Missing) => false,
                    None => true,
                })
                .cloned()
                .collect();
        hits.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        let alerts: Vec<Alert> = hits
            .into_iter()
            .skip(r.skip as usize)
            .take(r.top as usize)
            .map(|(id, t, c)| {
                Alert::parse(&format!(
                    r#"{{"id":"{id}","lastUpdateTime":"{}","alertCreationTime":"{}"}}"#,
                    t.to_api_string(),
                    c.to_api_string()
                ))
                .unwrap()
            })
            .collect();
        Ok(Page {
            received: alerts.len(),
            alerts,
            rejected: vec![],
            ..Page::default()
        })
    }
    fn calls(&self) -> u64 {
        self.state.lock().unwrap().0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_1_an_alert_at_a_shared_instant_is_not_lost_while_others_leave_it() {
    for page_size in [2u32, 3, 4] {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Mutex::new(Store::open(&dir.path().join("a.db")).unwrap()));
        let now = ApiTime::now();
        let t = now.minus(Duration::from_secs(7_200));
        let alerts = (1..=10)
            .map(|i| (format!("a{i:02}"), t, t.minus(Duration::from_secs(60 * i))))
            .collect();
        let fake = Fake {
            state: Mutex::new((0, alerts)),
            later: now.minus(Duration::from_secs(3_600)),
        };
        let settings = PollSettings {
            overlap: Duration::from_secs(600),
            initial_lookback: Duration::from_secs(86_400),
            page_size,
        };
        poll_tenant(&fake, &store, "t", settings).await.unwrap();
        poll_tenant(&fake, &store, "t", settings).await.unwrap();
        let n: i64 = store
            .lock()
            .unwrap()
            .connection()
            .query_row("SELECT count(*) FROM alerts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 10, "page size {page_size}: an alert was lost");
    }
}

/// Review #2: a store error in the middle of a large import left the parser thread blocked on a
/// full channel, and `import` hung forever holding the write transaction.
#[test]
fn review_2_a_store_error_mid_import_returns_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("a.db")).unwrap();
    store
        .connection()
        .execute_batch("PRAGMA max_page_count = 300")
        .unwrap();
    let file = dir.path().join("big.ndjson");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    let pad = "x".repeat(600);
    for i in 0..30_000 {
        writeln!(
            f,
            r#"{{"id":"a{i}","lastUpdateTime":"2024-01-01T00:00:00Z","title":"{pad}"}}"#
        )
        .unwrap();
    }
    drop(f);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = mde_alerts::import::import(&mut store, "t", &[file]);
        let _ = tx.send(r.map(|r| r.elements).map_err(|e| e.to_string()));
    });
    let r = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("import hung after a store error");
    let e = r.unwrap_err();
    assert!(e.contains("could not be written"), "{e}");
}

/// Review #3: `@odata.nextLink` was dropped, so a short page the server cut was taken for the last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_3_a_short_page_with_a_next_link_is_not_the_end() {
    for orderby in [true, false] {
        let hazards = Hazards {
            server_page: Some(40),
            orderby_supported: orderby,
            ..Hazards::default()
        };
        let env = Env::new(sim_config(500, 41, hazards), Opts::default()).await;
        let s = poll_job::poll(&env.config(), None, false).await.unwrap();
        assert!(s.failed.is_empty(), "{:?}", s.failed);
        let d = diff(&stored(&env.store_path()), &env.sim.truth(false));
        assert!(d.is_clean(), "orderby={orderby}: {d:?}");
    }
}

/// Review #4: pruning export `alerts` deleted the files of export `alerts-1d` in the same directory.
#[test]
fn review_4_pruning_one_export_leaves_another_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("a.db")).unwrap();
    let out = dir.path().join("out");
    let other = ExportConfig {
        name: "alerts-1d".into(),
        dir: out.clone(),
        ..ExportConfig::ad_hoc(ExportFormat::Csv)
    };
    let main = ExportConfig {
        name: "alerts".into(),
        dir: out.clone(),
        ..ExportConfig::ad_hoc(ExportFormat::Csv)
    };
    mde_alerts::export::run_export(&store, &other, &[]).unwrap();
    for _ in 0..12 {
        mde_alerts::export::run_export(&store, &main, &[]).unwrap();
    }
    assert!(out.join("alerts-1d-latest.csv").exists());
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let own = names
        .iter()
        .filter(|n| n.starts_with("alerts-2") && n.ends_with(".csv"))
        .count();
    assert_eq!(own, main.keep, "{names:?}");
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("alerts-1d-2"))
            .count(),
        1,
        "{names:?}"
    );
}

/// Review, residual risk: one alert stamped in the future must not carry the cursor past every
/// alert still to come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timestamp_from_the_future_does_not_stop_polling() {
    let env = Env::new(sim_config(50, 42, Hazards::default()), Opts::default()).await;
    let mut odd = env.sim.truth(false)[0].json.clone();
    let future = ApiTime::now().plus(Duration::from_secs(2 * 86_400));
    odd["id"] = "da-from-the-future_1".into();
    odd["lastUpdateTime"] = future.to_api_string().into();
    env.sim.put_alert(odd);
    let config = env.config();
    poll_job::poll(&config, None, false).await.unwrap();
    let cursor = Store::open(&env.store_path())
        .unwrap()
        .cursor("t1")
        .unwrap()
        .unwrap();
    assert!(
        cursor < ApiTime::now().plus(Duration::from_secs(600)),
        "cursor {cursor}"
    );
    env.sim.create(5);
    env.sim.update_random(5);
    poll_job::poll(&config, None, false).await.unwrap();
    assert_matches_truth(&env);
}

/// Review #2-1: a `changed` export chose its rows by wall-clock time, so an alert stored with an
/// earlier timestamp than the last export's (stored during that export, or after the clock stepped
/// back) was never in any `changed` file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_2_1_changed_exports_do_not_depend_on_the_clock() {
    let env = Env::new(sim_config(40, 43, Hazards::default()), Opts::default()).await;
    let text = std::fs::read_to_string(&env.config_path).unwrap()
        + "\n[[exports]]\nname = \"c\"\nformat = \"json\"\ndir = \"out\"\nscope = \"changed\"\n";
    std::fs::write(&env.config_path, text).unwrap();
    let config = env.config();
    poll_job::poll(&config, None, true).await.unwrap();
    env.sim.create(3);
    poll_job::poll(&config, None, false).await.unwrap();
    // The three new rows look as if they had been stored an hour ago.
    let store = Store::open(&env.store_path()).unwrap();
    let an_hour_ago = ApiTime::now()
        .minus(Duration::from_secs(3_600))
        .to_api_string();
    store
        .connection()
        .execute("UPDATE alerts SET updated_at = ?1", [an_hour_ago])
        .unwrap();
    drop(store);
    // A manual export writes the delta to a timestamped file (issue 9 #23: -latest is the
    // schedule's).
    let written = mde_alerts::configured_exports::run(&config, Some("c")).unwrap();
    let rows: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&written[0].path).unwrap()).unwrap();
    assert_eq!(rows.len(), 3, "the alerts stored since the last export");
}
