//! Benchmark: a 100,000-alert backfill from the simulator at the API's real quotas, with evidence:
//! the MDE API (100 calls a minute, 1,500 an hour, 10,000-alert pages) or Graph's alerts_v2 (150
//! calls a minute, 1,000-alert pages). Prints API calls, 429s, tokens, wall time, and the
//! theoretical minimum of calls (⌈N / page_size⌉ plus the final short page).
//!
//! `cargo run --release --example backfill_bench -- [ALERTS] [PAGE_SIZE] [mde|graph]`

use std::time::{Duration, Instant};

use mde_sim::{Hazards, SimConfig, Simulator};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let page: Option<u32> = args.next().and_then(|a| a.parse().ok());
    let graph = args.next().as_deref() == Some("graph");
    let page = page.unwrap_or(if graph { 1_000 } else { 10_000 });
    let quota = if graph { (150, 9_000) } else { (100, 1_500) };
    let t0 = Instant::now();
    let sim = Simulator::start(
        SimConfig {
            initial_alerts: n,
            history: Duration::from_secs(29 * 86_400),
            seed: 99,
            hazards: Hazards {
                rate_limit: Some(quota),
                ..Hazards::default()
            },
            ..SimConfig::default()
        },
        0,
    )
    .await?;
    eprintln!(
        "simulator ready with {n} alerts in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("secret"), mde_sim::DEMO_CLIENT_SECRET)?;
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[[tenants]]\nname = \"bench\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret_file = \"secret\"\nlogin_url = \"{url}\"\napi_url = \"{url}\"\n{source}\n[poll]\nschedule = \"0 0 0 * * *\"\npage_size = {page}\nexpand_evidence = true\ninitial_lookback = \"30d\"\n\n[store]\npath = \"alerts.db\"\n",
            mde_sim::DEMO_TENANT_ID,
            mde_sim::DEMO_CLIENT_ID,
            url = sim.url(),
            source = if graph {
                format!("source = \"graph\"\ngraph_url = \"{}\"\n", sim.url())
            } else {
                String::new()
            },
        ),
    )?;
    let config = mde_alerts::config::Config::load(&config)?;
    let started = Instant::now();
    let summary = mde_alerts::poll_job::poll(&config, None, false).await?;
    let took = started.elapsed();
    let stats = sim.stats();
    let report = summary
        .ok
        .first()
        .ok_or_else(|| anyhow::anyhow!("the poll failed: {:?}", summary.failed))?;
    let minimum = (n as u64).div_ceil(u64::from(page)) + 1;
    println!("{report}");
    println!(
        "{} backfill of {n} alerts, pages of {page}: {} API calls (theoretical minimum {minimum}), {} answered 429, {} token(s), {:.1}s wall time",
        if graph { "Graph alerts_v2" } else { "MDE API" },
        stats.alert_calls + stats.graph_calls,
        stats.throttled + stats.graph_throttled,
        stats.tokens_issued,
        took.as_secs_f64()
    );
    Ok(())
}
