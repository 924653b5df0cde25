//! A year of a service's bookkeeping, for the figure in benches/README.md: 1,000 tenants polled
//! every five minutes, most of them quiet, some with alerts; what the store holds besides alerts
//! (runs, the budget's calls, each tenant's API choice, the exports' state) after the service's own
//! daily retention. Run: `benches/year_bookkeeping.sh` (or `cargo run --release --example
//! year_bookkeeping -- DIR [TENANTS] [DAYS]`).
//!
//! A year is 105 million polls: running each through `begin_run`/`finish_run` would take hours.
//! So the simulation writes what those leave behind, row for row as they write it: a poll that
//! stored alerts is a run row of its own, and a streak of quiet polls after it is one row (what
//! `finish_run` folds it into), whose `polls` counts them; the budget keeps the last hour of
//! calls. Each simulated day ends with `store::retention::prune` as the service runs it, at that
//! day's instant. Alerts themselves are left out: they are the history, measured by
//! `benches/store_floor.sh`.
//!
//! The world: tenant `i` is "busy" when `i % 10 == 0` (10 %: a poll stores alerts with
//! probability 1/30, about ten a day), else "quiet" (1/2,000: about one a week).

use std::time::Duration;

use mde_alerts::alert::time::ApiTime;
use mde_alerts::store::Store;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(
        args.next()
            .expect("usage: year_bookkeeping DIR [TENANTS] [DAYS]"),
    );
    let tenants: u64 = args.next().map_or(1_000, |a| a.parse().unwrap());
    let days: u64 = args.next().map_or(365, |a| a.parse().unwrap());
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("year.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let mut store = Store::open(&path).unwrap();
    let polls_per_day = 24 * 60 / 5;
    let start = ApiTime::now().minus(Duration::from_secs(days * 86_400));
    // A small deterministic generator (xorshift): the same world on every run.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let t0 = std::time::Instant::now();
    let mut eventful_total = 0u64;
    for day in 0..days {
        let day_start = start.plus(Duration::from_secs(day * 86_400));
        {
            let c = store.connection();
            c.execute_batch("BEGIN").unwrap();
            let mut run = c
                .prepare(
                    "INSERT INTO runs (tenant, kind, started_at, finished_at, outcome, api_calls, pages, new, updated, unchanged, polls, last_started_at) \
                     VALUES (?1, 'poll', ?2, ?3, 'ok', ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .unwrap();
            for t in 0..tenants {
                let name = format!("tenant-{t:04}");
                let odds = if t % 10 == 0 { 30 } else { 2_000 };
                // The polls of the day that stored alerts; each is followed by one quiet streak
                // row up to the next (a streak is one row whatever its length).
                let mut eventful: Vec<u64> =
                    (0..polls_per_day).filter(|_| rand() % odds == 0).collect();
                eventful.sort_unstable();
                for (k, &p) in eventful.iter().enumerate() {
                    let at = |poll: u64| {
                        day_start
                            .plus(Duration::from_secs(poll * 300))
                            .to_api_string()
                    };
                    run.execute(rusqlite::params![
                        name,
                        at(p),
                        at(p),
                        2,
                        2,
                        (1 + rand() % 20) as i64,
                        (rand() % 10) as i64,
                        40,
                        1,
                        Option::<String>::None
                    ])
                    .unwrap();
                    let next = eventful.get(k + 1).copied().unwrap_or(polls_per_day);
                    let quiet = next.saturating_sub(p + 1);
                    if quiet > 0 {
                        run.execute(rusqlite::params![
                            name,
                            at(p + 1),
                            at(next - 1),
                            quiet as i64,
                            quiet as i64,
                            0,
                            0,
                            40 * quiet as i64,
                            quiet as i64,
                            Some(at(next - 1))
                        ])
                        .unwrap();
                    }
                }
                eventful_total += eventful.len() as u64;
            }
            drop(run);
            // The budget's calls: the last hour's, one a quiet poll (what it keeps at any time).
            c.execute("DELETE FROM api_calls", []).unwrap();
            let mut call = c
                .prepare("INSERT INTO api_calls (tenant, at_ms) VALUES (?1, ?2)")
                .unwrap();
            let day_end_ms = (day_start.ticks() / 10_000) + 86_400_000;
            for t in 0..tenants {
                for k in 0..12 {
                    call.execute(rusqlite::params![
                        format!("tenant-{t:04}"),
                        day_end_ms - k * 300_000
                    ])
                    .unwrap();
                }
            }
            drop(call);
            c.execute_batch("COMMIT").unwrap();
        }
        let now = day_start.plus(Duration::from_secs(86_400));
        mde_alerts::store::retention::prune(&mut store, Duration::from_secs(400 * 86_400), now)
            .unwrap();
    }
    // Each tenant's API choice and an export set per tenant: one row each.
    for t in 0..tenants {
        let name = format!("tenant-{t:04}");
        store
            .record_api_choice(
                &name,
                "graph",
                "graph_permitted",
                "the app holds Microsoft Graph's SecurityAlert.Read.All",
            )
            .unwrap();
        store
            .set_export_written_from(
                &format!("alerts-{name}"),
                "v1 0123456789abcdef rev 123456 oldest - day ",
            )
            .unwrap();
    }
    store
        .connection()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM;")
        .unwrap();
    let rows: i64 = store
        .connection()
        .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .unwrap();
    let bytes = std::fs::metadata(&path).unwrap().len();
    println!(
        "{tenants} tenants, {days} days of 5-minute polls ({} polls, {eventful_total} of them storing alerts): {rows} runs rows kept; bookkeeping store {:.1} MiB; {:.0} s",
        tenants * days * polls_per_day,
        bytes as f64 / 1_048_576.0,
        t0.elapsed().as_secs_f64()
    );
}
