#!/usr/bin/env bash
# Benchmark: import 100,000 realistic alerts (~2.6 KB each, 20 % of them other versions of alerts
# in the file) into an empty store, then export them to CSV. Reports wall time and peak memory
# (max RSS) of each step. Not part of CI.
#
#   benches/import_export.sh [ELEMENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
work=$(mktemp -d /tmp/mde-alerts-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet --bin mde-alerts --example gen_backfill
bin=target/release/mde-alerts
target/release/examples/gen_backfill "$work/backfill.json" "$n" 0.2
echo "input: $(du -m "$work/backfill.json" | cut -f1) MB"
cat > "$work/config.toml" <<TOML
[[tenants]]
name = "bench"
tenant_id = "3f0c1c4e-5d55-4a55-9a0e-5e1d9c0d1e11"
client_id = "8d4c7b2a-1e3f-4a5b-9c6d-7e8f9a0b1c2d"
client_secret_env = "UNUSED_FOR_IMPORT"
[store]
path = "alerts.db"
TOML

# Runs a command and prints its wall time and max RSS (of the child, via wait4).
measure() {
    python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
r = subprocess.run(sys.argv[1:])
dt = time.monotonic() - t
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"  -> {dt:.2f} s, peak memory {rss:.0f} MB", file=sys.stderr)
sys.exit(r.returncode)
PY
}

# Each step runs three times (the import into a fresh store each time): disk write-back from
# the previous step makes single runs noisy on a shared 2-core machine.
for i in 1 2 3; do
    rm -f "$work"/alerts.db*
    sync
    echo "import, run $i:"
    measure "$bin" --config "$work/config.toml" import "$work/backfill.json"
done
for i in 1 2 3; do
    echo "export csv, run $i:"
    measure "$bin" --config "$work/config.toml" export --format csv --out "$work/alerts.csv"
done
echo "export json:"
measure "$bin" --config "$work/config.toml" export --format json --out "$work/alerts.json"
echo "store: $(du -m "$work/alerts.db" | cut -f1) MB, csv: $(du -m "$work/alerts.csv" | cut -f1) MB, csv rows: $(($(python3 -c "import csv,sys; print(sum(1 for _ in csv.reader(open(sys.argv[1], encoding='utf-8-sig', newline=''))))" "$work/alerts.csv") - 1))"
