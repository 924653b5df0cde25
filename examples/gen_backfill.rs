//! Writes a realistic backfill file for the benchmark:
//! `cargo run --release --example gen_backfill -- OUT [ELEMENTS] [DUP_FRACTION]`.

use std::io::BufWriter;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = args.next().unwrap_or_else(|| "backfill.json".into());
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let dup: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0.2);
    let f = std::fs::File::create(&out)?;
    mde_sim::backfill(BufWriter::with_capacity(1 << 20, f), n, dup, 7)?;
    eprintln!(
        "wrote {n} alerts ({:.0} % other versions) to {out}",
        dup * 100.0
    );
    Ok(())
}
