#!/usr/bin/env bash
# kv_bench.sh: our kvstore and a real etcd 3.4, one member each or a local cluster of each,
# side by side in one run, under the same kvbench workloads; medians over several
# repetitions and the ratio ours/etcd go to a markdown table, printed and written to
# docs/benchmarks-kv.md (one member) or docs/benchmarks-cluster.md (a cluster).
#
#   test/bench/kv_bench.sh                                  # 5 repetitions, 10 s per case
#   KV_BENCH_QUICK=1 test/bench/kv_bench.sh                 # 3 repetitions, 3 s per case
#   KV_BENCH_MEMBERS=3 test/bench/kv_bench.sh               # 3-member clusters, + failover
#
# Environment:
#   KV_BENCH_MEMBERS=N    members per cluster (default 1); clients spread over all of them,
#                         and each repetition ends by timing a leader failover
#                         (test/bench/failover.py: SIGKILL the leader, time to the first
#                         successful write through a survivor)
#   KV_BENCH_QUICK=1      quick mode (3 repetitions, 3 s per case)
#   KV_BENCH_REPS=N       repetitions (default 5, quick 3)
#   KV_BENCH_DURATION=D   measured time per case, kvbench syntax (default 10s, quick 3s)
#   KV_BENCH_BUILD=DIR    build directory holding bin/kvbench and bin/kvstore (default build/)
#   KV_BENCH_TMP=DIR      where both members keep their data (default /tmp; same disk for both)
#   KV_BENCH_OUT=FILE     the markdown file (default docs/benchmarks-kv.md; "-" for none); a
#                         hand-written part after the marker line (see the end) is kept
#   KV_BENCH_ONLY=REGEX   only the cases (and failover) whose name matches, e.g. 'put-1'
#   KV_BENCH_KEEP=1       keep the work directory (raw JSON results, server logs)
#   ETCD=PATH             the etcd binary (default /usr/bin/etcd)
#   ETCDCTL=PATH          etcdctl, to find the leader for put-1-leader (default /usr/bin/etcdctl)
#
# Each repetition starts both servers afresh (new data directories, default heartbeat and
# election settings), runs every case against one and then the other (ours first in odd
# repetitions, etcd first in even ones), times failover on each, and stops them. Ports are
# picked free at run time on 127.0.0.1. Never part of CI.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${KV_BENCH_BUILD:-$ROOT/build}
KVBENCH=$BUILD/bin/kvbench
KVSTORE=$BUILD/bin/kvstore
ETCD=${ETCD:-/usr/bin/etcd}
ETCDCTL=${ETCDCTL:-/usr/bin/etcdctl}
QUICK=${KV_BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then
  REPS=${KV_BENCH_REPS:-3}
  DURATION=${KV_BENCH_DURATION:-3s}
else
  REPS=${KV_BENCH_REPS:-5}
  DURATION=${KV_BENCH_DURATION:-10s}
fi
MEMBERS=${KV_BENCH_MEMBERS:-1}
if ((MEMBERS == 1)); then
  OUT=${KV_BENCH_OUT:-$ROOT/docs/benchmarks-kv.md}
else
  OUT=${KV_BENCH_OUT:-$ROOT/docs/benchmarks-cluster.md}
fi
STUBS=$BUILD/test/compat/pb
PYTHON=$(command -v python3)

if ((MEMBERS > 1)) && [[ ! -f $STUBS/etcd/etcdserverpb/rpc_pb2_grpc.py ]]; then
  echo "kv_bench: no Python stubs in $STUBS (cmake --build $BUILD builds them)" >&2
  exit 2
fi
for bin in "$KVBENCH" "$KVSTORE" "$ETCD"; do
  if [[ ! -x $bin ]]; then
    echo "kv_bench: $bin not found; build first:" >&2
    echo "  cmake -S $ROOT -B $BUILD -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo" >&2
    echo "  cmake --build $BUILD --target kvbench kvstore" >&2
    exit 2
  fi
done

WORK=$(mktemp -d "${KV_BENCH_TMP:-/tmp}/kv-bench.XXXXXX")
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
# Per server (ours, etcd): its members' pids (space-separated), client addresses
# (comma-separated) and endpoint=pid list.
declare -A PIDS=([ours]="" [etcd]="") ENDPOINTS=() MEMBER_LISTS=()

cleanup() {
  local pid
  for pid in ${PIDS[ours]} ${PIDS[etcd]}; do kill -KILL "$pid" 2>/dev/null || true; done
  if [[ ${KV_BENCH_KEEP:-0} == 1 ]]; then
    echo "kv_bench: results and logs kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The cases: name, then kvbench flags (besides --endpoints, --duration and --json).
# With several members, the single client's connection goes to the leader in one case and
# to a follower in the other (a follower forwards the write: one more round trip).
if ((MEMBERS > 1)); then
  PUT1=("put-1-leader|--workload put --conns 1 --clients 1 --key-space 100000"
    "put-1-follower|--workload put --conns 1 --clients 1 --key-space 100000")
else
  PUT1=("put-1|--workload put --conns 1 --clients 1 --key-space 100000")
fi
CASES=(
  "${PUT1[@]}"
  "put-256|--workload put --conns 16 --clients 256 --key-space 100000"
  "get-linearizable|--workload get --conns 16 --clients 256 --key-space 10000"
  "get-serializable|--workload get-serializable --conns 16 --clients 256 --key-space 10000"
  "txn-cas|--workload txn-cas --conns 16 --clients 256 --key-space 1000"
  "watch-latency|--workload watch-latency --conns 4 --clients 16 --key-space 10000"
)
# KV_BENCH_ONLY: only the cases (and failover) whose name matches this extended regex.
ONLY=${KV_BENCH_ONLY:-}
if [[ -n $ONLY ]]; then
  kept=()
  for entry in "${CASES[@]}"; do
    if [[ ${entry%%|*} =~ $ONLY ]]; then kept+=("$entry"); fi
  done
  CASES=("${kept[@]}")
fi
COMMON_FLAGS="--key-size 8 --val-size 256"

free_ports() {
  "$PYTHON" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# start_server ours|etcd DATA_DIR LOG -> sets PIDS, ENDPOINTS and MEMBER_LISTS of it
start_server() {
  local which=$1 data=$2 log=$3 i ports initial="" eps=() peers=() pids=()
  read -r -a ports <<<"$(free_ports $((2 * MEMBERS)))"
  for ((i = 0; i < MEMBERS; i++)); do
    eps+=("127.0.0.1:${ports[2 * i]}")
    peers+=("http://127.0.0.1:${ports[2 * i + 1]}")
    initial+="${initial:+,}m$((i + 1))=${peers[i]}"
  done
  ENDPOINTS[$which]=$(IFS=,; echo "${eps[*]}")
  MEMBER_LISTS[$which]=""
  for ((i = 0; i < MEMBERS; i++)); do
    local flags=(--name "m$((i + 1))" --data-dir "$data/m$((i + 1))"
      --listen-client-urls "http://${eps[i]}" --advertise-client-urls "http://${eps[i]}"
      --listen-peer-urls "${peers[i]}" --initial-advertise-peer-urls "${peers[i]}"
      --initial-cluster "$initial" --initial-cluster-token bench)
    if [[ $which == ours ]]; then
      "$KVSTORE" "${flags[@]}" >"$log.m$((i + 1))" 2>&1 &
    else
      "$ETCD" "${flags[@]}" --quota-backend-bytes $((8 * 1024 * 1024 * 1024)) \
        >"$log.m$((i + 1))" 2>&1 &
    fi
    pids+=($!)
    MEMBER_LISTS[$which]+="${MEMBER_LISTS[$which]:+,}${eps[i]}=$!"
  done
  PIDS[$which]="${pids[*]}"
  # Ready once a read succeeds on every member, and still our processes (not someone
  # else's on those ports).
  for ((i = 0; i < MEMBERS; i++)); do
    local ready=0
    for _ in $(seq 1 150); do
      if ! kill -0 "${pids[i]}" 2>/dev/null; then
        echo "kv_bench: $which member m$((i + 1)) exited at start-up; log $log.m$((i + 1)):" >&2
        tail -5 "$log.m$((i + 1))" >&2
        exit 1
      fi
      if "$KVBENCH" --endpoints "${eps[i]}" --workload get --total 1 --fill=false \
        --connect-timeout 200ms --timeout 1s >/dev/null 2>&1; then
        ready=1
        break
      fi
      sleep 0.2
    done
    if ((!ready)); then
      echo "kv_bench: $which member m$((i + 1)) did not become ready; log $log.m$((i + 1))" >&2
      exit 1
    fi
  done
}

# member_endpoint ours|etcd leader|follower: the client address of that server's leader or
# of one of its followers, as Maintenance.Status on every member tells.
member_endpoint() {
  local ep
  for _ in $(seq 1 50); do
    ep=$(ETCDCTL_API=3 "$ETCDCTL" --endpoints "${ENDPOINTS[$1]}" endpoint status -w json \
      2>/dev/null | "$PYTHON" -c '
import json, sys
for s in json.load(sys.stdin):
    st = s["Status"]
    if (st["leader"] == st["header"]["member_id"]) == (sys.argv[1] == "leader"):
        print(s["Endpoint"])
        break
' "$2" 2>/dev/null)
    if [[ -n $ep ]]; then
      echo "$ep"
      return
    fi
    sleep 0.2
  done
  echo "kv_bench: $1 has no $2 among ${ENDPOINTS[$1]}" >&2
  exit 1
}

stop_server() {
  local pid
  for pid in ${PIDS[$1]}; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in ${PIDS[$1]}; do
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
  done
  PIDS[$1]=""
}

# CPU seconds a server's members have used so far (user + system, all threads).
server_cpu() {
  local pid files=()
  for pid in ${PIDS[$1]}; do files+=("/proc/$pid/stat"); done
  awk -v hz="$(getconf CLK_TCK)" '{t += $14 + $15} END {printf "%.2f", t / hz}' "${files[@]}"
}

# run_case ours|etcd REP CASE-ENTRY: one measured run of one case against one server.
run_case() {
  local which=$1 rep=$2 entry=$3 name flags out="" rc=0 cpu0 cpu1 endpoint
  name=${entry%%|*}
  flags=${entry#*|}
  endpoint=${ENDPOINTS[$which]}
  case $name in
    *-leader) endpoint=$(member_endpoint "$which" leader) ;;
    *-follower) endpoint=$(member_endpoint "$which" follower) ;;
  esac
  # The key space is written by a run of its own, so that the server's CPU time below
  # covers the measured operations only.
  if [[ $flags =~ --workload\ (get|get-serializable|txn-cas) ]]; then
    # shellcheck disable=SC2086  # the flags are meant to split
    if ! "$KVBENCH" --endpoints "${ENDPOINTS[$which]}" $flags $COMMON_FLAGS --fill-only \
      >>"$WORK/kvbench.err" 2>&1; then
      out='{"failed": "filling the key space failed (see kvbench.err)"}'
      rc=1
    fi
  fi
  if [[ -z $out ]]; then
    cpu0=$(server_cpu "$which")
    # shellcheck disable=SC2086
    out=$("$KVBENCH" --endpoints "$endpoint" $flags $COMMON_FLAGS --fill=false \
      --duration "$DURATION" --json 2>>"$WORK/kvbench.err") && rc=0 || rc=$?
    cpu1=$(server_cpu "$which")
    if [[ -z $out ]]; then out='{"failed": "kvbench printed nothing"}'; fi
  fi
  "$PYTHON" -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(server=sys.argv[2], rep=int(sys.argv[3]), case=sys.argv[4], rc=int(sys.argv[5]), server_cpu_s=float(sys.argv[7])-float(sys.argv[6])); print(json.dumps(d))' \
    "$out" "$which" "$rep" "$name" "$rc" "${cpu0:-0}" "${cpu1:-0}" >>"$RESULTS"
  printf '  rep %d %-5s %-17s %s\n' "$rep" "$which" "$name" \
    "$("$PYTHON" -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["failed"] if "failed" in d else "%.0f req/s, p99 %.2f ms, %d errors" % (d["throughput"], (d.get("watch") or d)["latency_ms"]["p99"], d["errors"]))' "$out")" >&2
}

# run_failover ours|etcd REP: SIGKILL the server's leader, time the first write through a
# survivor.
run_failover() {
  local which=$1 rep=$2 out
  out=$(/usr/bin/python3 "$ROOT/test/bench/failover.py" --stubs "$STUBS" \
    --members "${MEMBER_LISTS[$which]}" 2>>"$WORK/kvbench.err") ||
    out='{"failed": "failover.py failed"}'
  "$PYTHON" -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(server=sys.argv[2], rep=int(sys.argv[3]), case="failover"); print(json.dumps(d))' \
    "$out" "$which" "$rep" >>"$RESULTS"
  printf '  rep %d %-5s %-17s %s\n' "$rep" "$which" failover "$out" >&2
}

# The machine, for the record.
NPROC=$(nproc)
CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
MEM=$(free -g | awk '/^Mem:/ {print $2 " GiB"}')
DEV=$(findmnt -n -o SOURCE -T "$WORK" || echo "?")
FSTYPE=$(findmnt -n -o FSTYPE -T "$WORK" || echo "?")
ROTA=$(lsblk -d -n -o ROTA "$DEV" 2>/dev/null | tr -d ' ' || true)
DSYNC=$("$PYTHON" - "$WORK/dsync" <<'EOF'
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_DSYNC, 0o600)
block, n = b"x" * 4096, 500
start = time.monotonic()
for _ in range(n):
    os.write(fd, block)
print("%.3f ms" % ((time.monotonic() - start) / n * 1e3))
os.close(fd)
os.unlink(sys.argv[1])
EOF
)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?")
if [[ -n $(git -C "$ROOT" status --porcelain -- kvstore common proto 2>/dev/null) ]]; then
  COMMIT="$COMMIT (with uncommitted changes under kvstore/, common/ or proto/)"
fi
ETCD_VERSION=$("$ETCD" --version | sed -n 's/^etcd Version: //p')

echo "kv_bench: $REPS repetitions, $DURATION per case, data under $WORK" >&2
# Both servers run at once, and each case runs against one right after the other, so that
# both see the machine in the same state (shared hosts change speed from minute to minute);
# the idle one costs only its heartbeats.
for rep in $(seq 1 "$REPS"); do
  if ((rep % 2 == 1)); then order="ours etcd"; else order="etcd ours"; fi
  for which in $order; do start_server "$which" "$WORK/$which-$rep" "$WORK/$which-$rep.log"; done
  for entry in "${CASES[@]}"; do
    for which in $order; do run_case "$which" "$rep" "$entry"; done
  done
  if ((MEMBERS > 1)) && [[ -z $ONLY || failover =~ $ONLY ]]; then
    for which in $order; do run_failover "$which" "$rep"; done
  fi
  for which in $order; do stop_server "$which"; done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

export KV_BENCH_CASES
KV_BENCH_CASES=$(printf '%s\n' "${CASES[@]}")
TABLE=$("$PYTHON" - "$RESULTS" <<'EOF'
import json, os, statistics, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cases = [c.split("|")[0] for c in os.environ["KV_BENCH_CASES"].splitlines() if c]

def runs(server, case):
    return [r for r in rows if r["server"] == server and r["case"] == case]

def ok_runs(server, case):
    return [r for r in runs(server, case) if "failed" not in r]

def latency(r):
    # watch-latency: the event latency (put sent -> event received).
    return (r.get("watch") or r)["latency_ms"]

def med(vals):
    return statistics.median(vals) if vals else None

def cell(v, fmt):
    return "n/a" if v is None else fmt % v

def ratio(a, b):
    return "n/a" if a is None or b is None or b == 0 else "%.2f" % (a / b)

def failure(server, case):
    f = [r["failed"].replace("|", "\\|") for r in runs(server, case) if "failed" in r]
    return f[0] if f else None

out = []
out.append("| case | ours req/s | etcd req/s | ours/etcd | ours runs (req/s) | etcd runs (req/s) |")
out.append("|---|---:|---:|---:|---|---|")
for c in cases:
    t = {s: med([r["throughput"] for r in ok_runs(s, c)]) for s in ("ours", "etcd")}
    spread = {s: ", ".join("%.0f" % r["throughput"] for r in ok_runs(s, c)) or
              "failed: " + (failure(s, c) or "?") for s in ("ours", "etcd")}
    out.append("| %s | %s | %s | %s | %s | %s |" % (
        c, cell(t["ours"], "%.0f"), cell(t["etcd"], "%.0f"), ratio(t["ours"], t["etcd"]),
        spread["ours"], spread["etcd"]))
out.append("")
out.append("Latency in milliseconds, medians over the repetitions (lower is better):")
out.append("")
out.append("| case | ours p50 | etcd p50 | ours/etcd | ours p99 | etcd p99 | ours/etcd "
           "| ours p99.9 | etcd p99.9 | ours/etcd | ours max | etcd max |")
out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for c in cases:
    cols = [c]
    for key in ("p50", "p99", "p999"):
        m = {s: med([latency(r)[key] for r in ok_runs(s, c)]) for s in ("ours", "etcd")}
        cols += [cell(m["ours"], "%.2f"), cell(m["etcd"], "%.2f"), ratio(m["ours"], m["etcd"])]
    for s in ("ours", "etcd"):
        cols.append(cell(med([latency(r)["max"] for r in ok_runs(s, c)]), "%.1f"))
    out.append("| " + " | ".join(cols) + " |")
out.append("")
out.append("Server CPU time (user + system, all threads) per successful operation in microseconds, "
           "medians (lower is better):")
out.append("")
out.append("| case | ours us/op | etcd us/op | ours/etcd |")
out.append("|---|---:|---:|---:|")
for c in cases:
    m = {s: med([r["server_cpu_s"] * 1e6 / r["ops"] for r in ok_runs(s, c) if r["ops"] > 0])
         for s in ("ours", "etcd")}
    out.append("| %s | %s | %s | %s |" % (c, cell(m["ours"], "%.0f"), cell(m["etcd"], "%.0f"),
                                          ratio(m["ours"], m["etcd"])))
out.append("")
fo = {s: [r["failover_ms"] for r in rows
          if r["server"] == s and r["case"] == "failover" and "failed" not in r]
      for s in ("ours", "etcd")}
if fo["ours"] or fo["etcd"]:
    out.append("Leader failover (SIGKILL the leader, time until the first write through a "
               "survivor succeeds), milliseconds (lower is better):")
    out.append("")
    out.append("| | ours | etcd | ours/etcd | ours runs | etcd runs |")
    out.append("|---|---:|---:|---:|---|---|")
    m = {s: med(fo[s]) for s in ("ours", "etcd")}
    out.append("| failover | %s | %s | %s | %s | %s |" % (
        cell(m["ours"], "%.0f"), cell(m["etcd"], "%.0f"), ratio(m["ours"], m["etcd"]),
        ", ".join("%.0f" % v for v in fo["ours"]), ", ".join("%.0f" % v for v in fo["etcd"])))
    out.append("")
notes = []
for c in cases:
    for s in ("ours", "etcd"):
        rs = ok_runs(s, c)
        errs = sum(r["errors"] for r in rs)
        kinds = {}
        for r in rs:
            for k, n in r["error_kinds"].items():
                kinds[k] = kinds.get(k, 0) + n
        if errs:
            notes.append("- %s, %s: %d failed calls over %d runs: %s" % (
                c, s, errs, len(rs),
                "; ".join("%s (%d)" % (k.replace("|", "\\|"), n) for k, n in sorted(kinds.items()))))
        f = failure(s, c)
        if f:
            notes.append("- %s, %s: the run could not happen: %s" % (c, s, f))
        misses = sum(r.get("get_misses", 0) for r in rs)
        if misses:
            notes.append("- %s, %s: %d reads found no key although the key space was written" % (
                c, s, misses))
        if c == "txn-cas" and rs:
            conflicts = sum(r["cas"]["conflicts"] for r in rs)
            total = conflicts + sum(r["cas"]["succeeded"] for r in rs)
            notes.append("- txn-cas, %s: %.1f%% of compare-and-swaps lost the race (conflicts, "
                         "not errors); Txn call alone p99 %.2f ms" % (
                             s, 100.0 * conflicts / max(total, 1),
                             med([r["cas"]["txn_latency_ms"]["p99"] for r in rs])))
        if c == "watch-latency" and rs:
            notes.append("- watch-latency, %s: put p50 %.2f ms; put ack -> event p50 %.2f ms, "
                         "p99 %.2f ms; %d events missing" % (
                             s, med([r["latency_ms"]["p50"] for r in rs]),
                             med([r["watch"]["ack_to_event_ms"]["p50"] for r in rs]),
                             med([r["watch"]["ack_to_event_ms"]["p99"] for r in rs]),
                             sum(r["watch"]["missing"] for r in rs)))
if notes:
    out.append("Notes from the runs:")
    out.append("")
    out += notes
print("\n".join(out))
EOF
)

QUICK_NOTE="" QUICK_ENV="" ROTA_NOTE=""
if ((MEMBERS == 1)); then SHAPE="one member each"; else SHAPE="a $MEMBERS-member cluster each"; fi
if ((MEMBERS > 1)); then QUICK_ENV="KV_BENCH_MEMBERS=$MEMBERS "; fi
if [[ $QUICK == 1 ]]; then QUICK_NOTE=" (quick mode)" QUICK_ENV="KV_BENCH_QUICK=1 "; fi
if [[ -n ${KV_BENCH_REPS:-} ]]; then QUICK_ENV="${QUICK_ENV}KV_BENCH_REPS=$REPS "; fi
if [[ -n ${KV_BENCH_DURATION:-} ]]; then QUICK_ENV="${QUICK_ENV}KV_BENCH_DURATION=$DURATION "; fi
if [[ $ROTA == 1 ]]; then ROTA_NOTE=", which the kernel reports as rotational"; fi
CASE_LINES=$(for entry in "${CASES[@]}"; do
  if [[ ${entry#*|} =~ --workload\ (get|get-serializable|txn-cas) ]]; then
    printf '    build/bin/kvbench --endpoints ENDPOINT %s %s --fill-only\n' \
      "${entry#*|}" "$COMMON_FLAGS"
  fi
  printf '    build/bin/kvbench --endpoints ENDPOINT %s %s --fill=false --duration %s --json\n' \
    "${entry#*|}" "$COMMON_FLAGS" "$DURATION"
done)

DOC=$(cat <<EOF
# kvstore vs etcd 3.4: $SHAPE (kvbench)

Measured $STARTED on commit $COMMIT, against etcd $ETCD_VERSION (Debian's etcd-server).
$REPS repetitions of $DURATION per case$QUICK_NOTE; each
repetition starts both servers afresh and runs each case against one right after the other
(ours first in odd repetitions), so that both meet the machine in the same state.
Clients spread their connections over every member (each connection goes to one member;
followers forward writes and linearizable reads' ReadIndex to the leader).
Throughput: successful operations per second, medians over the repetitions; ours/etcd above 1
means ours is faster. Latencies: ours/etcd below 1 means ours is faster.

$TABLE

Cases: \`put-1\` one client on one connection (with several members \`put-1-leader\` to the
leader's address and \`put-1-follower\` to a follower's); \`put-256\` 256 clients over 16 connections
(random keys among 100,000); \`get-linearizable\` and \`get-serializable\` one random key of
10,000 written beforehand, 256 clients over 16 connections; \`txn-cas\` a Range for the key's
mod_revision then Txn(mod_revision equal, put), one operation being both calls, 256 clients
over 16 connections on 1,000 keys; \`watch-latency\` one watcher on the key prefix and 16
writers over 4 connections whose values carry the send time, latency = event receipt - send
time (req/s is the writers' puts). Keys 8 bytes, values 256 bytes. Server CPU time is read
from /proc/PID/stat just before and after each measured run (the key space is written by a
separate kvbench run first).

## Machine

- $NPROC CPUs ($CPU), $MEM memory; load average $LOAD_BEFORE before, $LOAD_AFTER after.
- Data directories on $DEV ($FSTYPE$ROTA_NOTE), both
  servers on the same disk; one 4 KiB O_DSYNC write there takes $DSYNC on average.
- The machine is shared with other work and kvbench runs on the same CPUs as the server,
  so absolute figures are noisy; ratios from one run, side by side, are what to compare.
  The spread of the repetitions is in the first table.

## Reproduce

    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
    cmake --build build --target kvbench kvstore
    ${QUICK_ENV}test/bench/kv_bench.sh

The script starts each member i of each server like this (ports picked free at run time;
one member unless KV_BENCH_MEMBERS says more):

    build/bin/kvstore --name mI --data-dir DIR --listen-client-urls http://127.0.0.1:C \\
      --advertise-client-urls http://127.0.0.1:C --listen-peer-urls http://127.0.0.1:P \\
      --initial-advertise-peer-urls http://127.0.0.1:P --initial-cluster m1=...,m2=... \\
      --initial-cluster-token bench
    etcd (the same flags) --quota-backend-bytes 8589934592

and runs, against each:

$CASE_LINES
EOF
)

echo "$DOC"
if [[ $OUT != "-" ]]; then
  # A hand-written analysis below the marker line survives a new run.
  MARKER='<!-- hand-written below this line; kv_bench.sh keeps it -->'
  KEPT=""
  if [[ -f $OUT ]] && grep -qxF "$MARKER" "$OUT"; then
    KEPT=$(sed -n "\|^$MARKER\$|,\$p" "$OUT")
  fi
  { echo "$DOC"; if [[ -n $KEPT ]]; then echo; echo "$KEPT"; fi; } >"$OUT"
  echo "kv_bench: wrote $OUT" >&2
fi
