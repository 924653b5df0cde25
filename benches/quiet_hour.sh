#!/usr/bin/env bash
# What a quiet service costs: `run` polling many tenants (`mde-alerts simulate --tenants N`, 20
# alerts each, nothing changing) on a one-minute schedule, with an export that follows the polls
# and the metrics textfile. After the first polls (each tenant's first read, which stores its
# alerts), it measures whole quiet intervals:
#   - bytes the daemon wrote to disk (`/proc/PID/io` write_bytes: the store, its WAL, files),
#   - lines it logged at INFO,
#   - rows added to the store's runs table,
#   - export files written,
# and prints them per interval and per hour on a five-minute schedule (twelve intervals).
#
#   benches/quiet_hour.sh [TENANTS]            (default: 1000)
#   BIN=target/debug/mde-alerts INTERVALS=3 benches/quiet_hour.sh 200
#   METRICS=0 benches/quiet_hour.sh            (without the metrics textfile)
#
# Not part of CI: at 1,000 tenants it takes about six minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
intervals=${INTERVALS:-3}
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet --bin mde-alerts
    BIN=$PWD/target/release/mde-alerts
fi

python3 - "$BIN" "$n" "$intervals" <<'PY'
import os, re, signal, socket, sqlite3, subprocess, sys, tempfile, time

bin, n, intervals = os.path.abspath(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
# The simulator's app secret (a simulator credential, worthless anywhere else).
SECRET = "sim-secret-Qx7~not-a-real-secret"
env = dict(os.environ, MDE_ALERTS_CLIENT_SECRET=SECRET,
           NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
PERIOD = 60

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def written(pid):
    for line in open(f"/proc/{pid}/io"):
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0

work = tempfile.mkdtemp(prefix="mde-alerts-quiet-")
os.makedirs(f"{work}/exports")
port = free_port()
sim = subprocess.Popen([bin, "simulate", "--port", str(port), "--tenants", str(n),
                        "--alerts-per-tenant", "20", "--mutate-every", "0",
                        "--write-tenants", f"{work}/tenants.toml"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
for _ in range(600):
    if os.path.exists(f"{work}/tenants.toml"):
        break
    time.sleep(0.1)
time.sleep(0.5)
with open(f"{work}/config.toml", "w") as c:
    c.write(open(f"{work}/tenants.toml").read())
    c.write('\n[poll]\nschedule = "0 * * * * *"\n[store]\npath = "alerts.db"\n'
            '[log]\nlevel = "info"\n' +
            ('[metrics]\ntextfile = "metrics.prom"\n' if os.environ.get("METRICS", "1") != "0" else "") +
            '[[exports]]\nname = "all"\nformat = "csv"\ndir = "exports"\n')
cfg = f"{work}/config.toml"
log = open(f"{work}/run.log", "w")
run = subprocess.Popen([bin, "--config", cfg, "run"], stdout=log, stderr=subprocess.STDOUT,
                       env=env, cwd=work)
# The first ticks read every tenant's alerts. Measure from just before the tick after every
# tenant has had a quiet poll (one that stored nothing new).
for _ in range(1800):
    time.sleep(2)
    if not os.path.exists(f"{work}/alerts.db"):
        continue
    db = sqlite3.connect(f"{work}/alerts.db", timeout=30)
    (k,) = db.execute("SELECT COUNT(DISTINCT tenant) FROM runs WHERE kind = 'poll' AND "
                      "outcome = 'ok' AND new = 0 AND updated = 0").fetchone()
    if k == n:
        break
else:
    sys.exit(f"not every tenant had a quiet poll; files kept in {work}")
now = time.time()
start = (int(now) // PERIOD + 1) * PERIOD - 5
if start < now:
    start += PERIOD
time.sleep(max(0, start - time.time()))
def runs_rows():
    return db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
def files():
    return len(os.listdir(f"{work}/exports"))
w0, l0, r0, f0 = written(run.pid), sum(1 for _ in open(f"{work}/run.log")), runs_rows(), files()
time.sleep(max(0, start + PERIOD * intervals - time.time()))
w1, l1, r1, f1 = written(run.pid), sum(1 for _ in open(f"{work}/run.log")), runs_rows(), files()
run.send_signal(signal.SIGTERM)
run.wait(timeout=60)
sim.send_signal(signal.SIGINT)
try:
    sim.wait(timeout=10)
except subprocess.TimeoutExpired:
    sim.kill()
(polled,) = db.execute("SELECT COUNT(DISTINCT tenant) FROM runs WHERE outcome = 'ok'").fetchone()
per = lambda v: v / intervals
print(f"{n} tenants, {intervals} quiet one-minute intervals ({polled} tenants polled ok)")
print(f"{'':18} {'per interval':>14} {'per hour at 5 min':>18}")
for name, v, fmt in [("bytes written", w1 - w0, lambda x: f"{x / 1e6:.2f} MB"),
                     ("log lines", l1 - l0, lambda x: f"{x:.0f}"),
                     ("runs rows added", r1 - r0, lambda x: f"{x:.0f}"),
                     ("export files", f1 - f0, lambda x: f"{x:.0f}")]:
    print(f"{name:18} {fmt(per(v)):>14} {fmt(per(v) * 12):>18}")
# What was logged in the measured intervals, by message (the first words after the level).
msgs = {}
for line in open(f"{work}/run.log").readlines()[l0:l1]:
    m = re.search(r"(TRACE|DEBUG|INFO|WARN|ERROR)\s+(?:\S+:\s+)?(.{0,60})", line)
    key = f"{m.group(1)} {m.group(2)}" if m else line[:70]
    msgs[key] = msgs.get(key, 0) + 1
for k, v in sorted(msgs.items(), key=lambda kv: -kv[1])[:8]:
    print(f"  {v:>6}  {k}")
subprocess.run(["rm", "-rf", work])
PY
