#!/usr/bin/env bash
# Benchmark: `import` and CSV export of a backfill, against SQLite's own insert floor
# measured in the same run on the same disk, plus `scope = "open"`, the report, `store check`,
# `backup` and `store prune` on the result. Prints wall time and peak memory (max RSS) of each
# step, the ratios to the floor, and the bytes the store holds per stored version. Not part of CI.
#
#   benches/store_floor.sh [ELEMENTS] [DUP_FRACTION]
#
#   ELEMENTS      alerts in the file, versions included (default 100000)
#   DUP_FRACTION  share of elements that are other versions of an alert in the file (default 0.2;
#                 0.8 gives ~5 versions per alert: `benches/store_floor.sh 5000000 0.8` is the
#                 1,000,000 alerts × 5 versions of benches/README.md, ~13 GB of JSON and ~15 GB of store)
#   BENCH_DIR     where to work (default a new directory under /tmp, removed at the end)
#   SKIP          space-separated steps to skip: floor check backup prune report open
#
# The floor: one `INSERT … SELECT` over a recursive series, in one transaction, of ELEMENTS rows of
# the file's average element size into a table with an integer key and the text (no other index),
# 16 KiB pages, WAL with synchronous=FULL: what SQLite itself needs to put that many bytes durably
# on this disk, with no per-row work outside SQLite. `import` does more (parse, hash,
# dedup, two tables, three indexes), so the ratio says how close to the floor that work is.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
dup=${2:-0.2}
skip=" ${SKIP:-} "
if [[ -n "${BENCH_DIR:-}" ]]; then
    work=$BENCH_DIR
    mkdir -p "$work"
else
    work=$(mktemp -d /tmp/mde-alerts-floor.XXXXXX)
    trap 'rm -rf "$work"' EXIT
fi

cargo build --release --quiet --bin mde-alerts --example gen_backfill
bin=$PWD/target/release/mde-alerts
if [[ ! -s "$work/backfill-$n-$dup.json" ]]; then
    target/release/examples/gen_backfill "$work/backfill-$n-$dup.json" "$n" "$dup"
fi
input=$work/backfill-$n-$dup.json
bytes=$(stat -c %s "$input")
echo "input: $n elements, $((bytes / 1024 / 1024)) MiB, $((bytes / n)) bytes per element"
cat > "$work/config.toml" <<TOML
[[tenants]]
name = "bench"
tenant_id = "3f0c1c4e-5d55-4a55-9a0e-5e1d9c0d1e11"
client_id = "8d4c7b2a-1e3f-4a5b-9c6d-7e8f9a0b1c2d"
client_secret_env = "UNUSED_FOR_IMPORT"
[store]
path = "alerts.db"
keep_revisions = "400d"
[[exports]]
name = "open"
format = "csv"
dir = "open"
scope = "open"
TOML
mkdir -p "$work/open"

# Runs a command; prints its wall time and max RSS (of the child, via wait4) and appends
# "NAME SECONDS MIB" to $work/figures.
measure() {
    local name=$1
    shift
    python3 - "$work/figures" "$name" "$@" <<'PY'
import resource, subprocess, sys, time
figures, name, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
t = time.monotonic()
r = subprocess.run(cmd, stdout=subprocess.DEVNULL)
dt = time.monotonic() - t
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"  {name}: {dt:.2f} s, peak memory {rss:.0f} MiB", file=sys.stderr)
open(figures, "a").write(f"{name} {dt:.3f} {rss:.0f}\n")
sys.exit(r.returncode)
PY
}

: > "$work/figures"
if [[ "$skip" != *" floor "* ]]; then
    rm -f "$work"/floor.db*
    sync
    # The script goes to a file: `measure` runs its own Python from stdin, so a heredoc here
    # would reach nobody and the "floor" would time an empty script.
    cat > "$work/floor.py" <<'PY'
import os, sqlite3, sys
path, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = sqlite3.connect(path, isolation_level=None)
# The store's own settings: 16 KiB pages, WAL, synchronous=FULL.
c.execute("PRAGMA page_size=16384")
c.execute("PRAGMA journal_mode=WAL")
c.execute("PRAGMA synchronous=FULL")
c.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, raw TEXT NOT NULL)")
# One statement: SQLite's own loop (a recursive series) inserts every row, so no Python runs per
# row and the figure is SQLite's. Rows are slices of one random text, so none repeats and none
# costs a random number generator.
# The text is bound as a blob, so that substr() slices bytes in constant time (on text it would
# walk the UTF-8 from the start on every row).
block = os.urandom(size * 32).hex().encode()
c.execute("BEGIN")
c.execute(
    """WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < ?1)
       INSERT INTO t (raw) SELECT CAST(substr(?2, (i * 7919) % (?4 - ?3) + 1, ?3) AS TEXT) FROM s""",
    (n, block, size, len(block)),
)
c.execute("COMMIT")
c.close()
PY
    measure floor python3 "$work/floor.py" "$work/floor.db" "$n" "$((bytes / n))"
    rows=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM t").fetchone()[0])' "$work/floor.db")
    if [[ "$rows" != "$n" ]]; then
        echo "the floor wrote $rows rows, not $n" >&2
        exit 1
    fi
    rm -f "$work"/floor.db*
fi
rm -f "$work"/alerts.db*
sync
echo "import:"
measure import "$bin" --config "$work/config.toml" import "$input"
echo "export csv (all):"
measure export "$bin" --config "$work/config.toml" export --format csv --out "$work/all.csv"
if [[ "$skip" != *" open "* ]]; then
    echo "export scope = \"open\":"
    measure open "$bin" --config "$work/config.toml" export --name open
fi
if [[ "$skip" != *" report "* ]]; then
    echo "report (24h window):"
    measure report "$bin" --config "$work/config.toml" report --window 24h --out "$work/report"
fi
if [[ "$skip" != *" check "* ]]; then
    echo "store check:"
    measure check "$bin" --config "$work/config.toml" store check
fi
if [[ "$skip" != *" backup "* ]]; then
    echo "backup:"
    measure backup "$bin" --config "$work/config.toml" backup "$work/backup.db"
    rm -f "$work/backup.db"
fi
if [[ "$skip" != *" prune "* ]]; then
    echo "store prune (nothing is old enough: the cost of the daily pass):"
    measure prune "$bin" --config "$work/config.toml" store prune
fi

python3 - "$work" <<'PY'
import os, sqlite3, sys
work = sys.argv[1]
f = {}
for line in open(os.path.join(work, "figures")):
    name, secs, mib = line.split()
    f[name] = (float(secs), int(mib))
db = os.path.join(work, "alerts.db")
c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
alerts = c.execute("SELECT count(*) FROM alerts").fetchone()[0]
revs = c.execute("SELECT count(*) FROM alert_revisions").fetchone()[0]
size = os.path.getsize(db) + (os.path.getsize(db + "-wal") if os.path.exists(db + "-wal") else 0)
print(f"store: {alerts} alerts, {revs} versions, {size / 2**20:.0f} MiB, {size / max(revs, 1):.0f} bytes per stored version")
if "floor" in f:
    fl = f["floor"][0]
    imp, exp = f["import"][0], f["export"][0]
    print(f"floor {fl:.2f} s; import {imp:.2f} s = {imp / fl:.2f}x the floor; "
          f"import + CSV export {imp + exp:.2f} s = {(imp + exp) / fl:.2f}x the floor")
print("peak memory: " + ", ".join(f"{k} {v[1]} MiB" for k, v in f.items() if k != "floor"))
PY
