//! Measures the pages a poll reads, to size the page cap on real shapes:
//! `cargo run --release --example largest_page -- [ALERTS]`. Builds ALERTS realistic alerts with
//! evidence (the simulator's generator), and prints the largest page of 1,000 and of 10,000 as
//! the MDE API serves them (`$expand=evidence`) and the largest page of 1,000 as Graph's
//! `alerts_v2` serves them (evidence always inline): both of pages in the order served and of the
//! largest alerts taken together.

use serde_json::Value;

fn main() -> std::io::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50_000);
    let mut file = Vec::new();
    mde_sim::backfill(&mut file, n, 0.0, 7)?;
    let page: Value = serde_json::from_slice(&file)?;
    let mde: Vec<Value> = page["value"].as_array().cloned().unwrap_or_default();
    let graph: Vec<Value> = mde.iter().map(mde_sim::graph_view).collect();
    let sizes = |alerts: &[Value]| -> Vec<usize> {
        alerts
            .iter()
            .map(|a| serde_json::to_vec(a).map_or(0, |v| v.len()))
            .collect()
    };
    // The envelope a real page carries around its `value` (context and nextLink).
    let envelope = r#"{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#security/alerts_v2","value":[],"@odata.nextLink":"https://graph.microsoft.com/v1.0/security/alerts_v2?$top=1000&$skiptoken=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}"#.len();
    let report = |name: &str, sizes: &[usize], per_page: usize| {
        let largest_served = sizes
            .chunks(per_page)
            .filter(|c| c.len() == per_page)
            .map(|c| c.iter().sum::<usize>() + c.len())
            .max()
            .unwrap_or(0)
            + envelope;
        let mut sorted = sizes.to_vec();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let largest_possible = sorted.iter().take(per_page).sum::<usize>() + per_page + envelope;
        let mean = sizes.iter().sum::<usize>() / sizes.len().max(1);
        let max = sorted.first().copied().unwrap_or(0);
        println!(
            "{name}: {per_page} alerts a page; an alert {mean} bytes on average, {max} at most; \
             largest page served {largest_served} bytes; the {per_page} largest alerts together {largest_possible} bytes"
        );
    };
    let (m, g) = (sizes(&mde), sizes(&graph));
    report("MDE $expand=evidence", &m, 1_000);
    report("MDE $expand=evidence", &m, 10_000);
    report("Graph alerts_v2", &g, 1_000);
    Ok(())
}
