//! The metrics textfile after polls against the simulator: counters that add up every poll (a
//! quiet streak stored as one row still counts each poll), the store's size and the build.

use std::collections::HashMap;

use crate::support::*;
use mde_alerts::store::Store;
use mde_sim::Hazards;

/// The samples of a textfile: `name{labels}` → value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_owned(), v.parse().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_add_up_every_poll_and_the_alerts_stored() {
    let env = Env::new(sim_config(20, 5, Hazards::default()), Opts::default()).await;
    env.edit_config(|c| c.metrics.textfile = Some("metrics.prom".into()));
    let file = env.path().join("metrics.prom");
    for _ in 0..3 {
        let out = run(&env, &["poll"]).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(&file).unwrap();
    let m = samples(&text);
    let t = |name: &str| m[&format!("{name}{{tenant=\"t1\"}}")];
    let runs = Store::open_read_only(&env.store_path())
        .unwrap()
        .runs(Some("t1"), 1000)
        .unwrap();
    let polls: i64 = runs.iter().map(|r| r.polls).sum();
    assert_eq!(polls, 3);
    assert_eq!(
        t("mde_alerts_polls_total"),
        3.0,
        "every poll, folded or not: {text}"
    );
    assert_eq!(t("mde_alerts_poll_failures_total"), 0.0);
    let calls: i64 = runs.iter().map(|r| r.api_calls).sum();
    assert!(calls >= 3);
    assert_eq!(t("mde_alerts_api_calls_total"), calls as f64);
    assert_eq!(t("mde_alerts_throttled_total"), 0.0);
    assert_eq!(t("mde_alerts_stored_new_total"), 20.0);
    assert_eq!(t("mde_alerts_stored_updated_total"), 0.0);
    let stored: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("mde_alerts_stored{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(stored, 20.0);
    assert!(m["mde_alerts_store_size_bytes{file=\"database\"}"] > 0.0);
    assert!(m.contains_key("mde_alerts_store_size_bytes{file=\"wal\"}"));
    assert_eq!(
        m[&format!(
            "mde_alerts_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        )],
        1.0
    );
    assert!(text.contains("# TYPE mde_alerts_polls_total counter"));

    // More alerts, then a poll: the counters go on from where they were.
    env.sim.create(4);
    settle(&env.sim).await;
    let out = run(&env, &["poll"]).await;
    assert!(out.status.success());
    let m = samples(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(m["mde_alerts_polls_total{tenant=\"t1\"}"], 4.0);
    assert_eq!(m["mde_alerts_stored_new_total{tenant=\"t1\"}"], 24.0);
}
