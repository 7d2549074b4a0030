#!/usr/bin/env bash
# thread_cpu.sh: server CPU time per operation, by process and by thread name, during one
# kvbench run against running servers (ours or etcd). Where a member's CPU goes (the Raft
# driver, gRPC's threads, the reply threads) is what decides throughput on a small machine.
#
#   test/bench/thread_cpu.sh "PID PID PID" ENDPOINTS [KVBENCH FLAGS...]
#
# e.g. against the local cluster of deploy/cluster.sh:
#   test/bench/thread_cpu.sh "$(cat run/n?.pid)" "$(deploy/cluster.sh endpoints)" \
#     --workload put --conns 1 --clients 1 --total 3000
# Default flags: a single-client put, 3000 operations. Keys 8 bytes, values 256 bytes.
# Prints kvbench's latency line, then per process: microseconds of CPU (user + system) per
# operation in total and per thread name, and context switches per operation (voluntary:
# the thread waited; involuntary: it was preempted). Never part of CI.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KVBENCH=${KVBENCH:-$ROOT/build/bin/kvbench}
if (($# < 2)); then
  sed -n '2,13p' "$0" >&2
  exit 2
fi
PIDS=$1
ENDPOINTS=$2
shift 2
FLAGS=("$@")
if ((${#FLAGS[@]} == 0)); then
  FLAGS=(--workload put --conns 1 --clients 1 --total 3000)
fi

# One line per thread: pid, thread name (spaces made _), clock ticks used, tid, voluntary
# and involuntary context switches.
snapshot() {
  local pid task
  for pid in $PIDS; do
    for task in /proc/"$pid"/task/*; do
      echo "$pid $(tr ' ' _ <"$task/comm") $(awk '{print $14 + $15}' "$task/stat") ${task##*/}" \
        "$(awk '/^(non)?voluntary_ctxt_switches/ {printf "%s ", $2}' "$task/status")"
    done
  done
}

BEFORE=$(mktemp)
AFTER=$(mktemp)
trap 'rm -f "$BEFORE" "$AFTER"' EXIT
snapshot >"$BEFORE"
OUT=$("$KVBENCH" --endpoints "$ENDPOINTS" --key-size 8 --val-size 256 --fill=false \
  "${FLAGS[@]}" --json)
snapshot >"$AFTER"
OPS=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["ops"])' "$OUT")
python3 - "$BEFORE" "$AFTER" "$OPS" "$(getconf CLK_TCK)" "$OUT" <<'EOF'
import collections, json, sys
before_file, after_file, ops, hz, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
r = json.loads(out)
print(f"{ops} ops, p50 {r['latency_ms']['p50']:.3f} ms, p99 {r['latency_ms']['p99']:.3f} ms")
before = {}
for line in open(before_file):
    pid, _, ticks, tid, vol, invol = line.split()
    before[(pid, tid)] = (int(ticks), int(vol), int(invol))
by_name = collections.defaultdict(lambda: [0, 0, 0])
total = collections.defaultdict(lambda: [0, 0, 0])
for line in open(after_file):
    pid, name, ticks, tid, vol, invol = line.split()
    now = (int(ticks), int(vol), int(invol))
    was = before.get((pid, tid), (0, 0, 0))
    for i in range(3):
        by_name[(pid, name)][i] += now[i] - was[i]
        total[pid][i] += now[i] - was[i]
us = lambda t: t * 1e6 / hz / max(ops, 1)
per_op = lambda n: n / max(ops, 1)
for pid in sorted(total):
    parts = sorted(((n, t) for (p, n), t in by_name.items() if p == pid and t[0] > 0), key=lambda x: -x[1][0])
    print(f"pid {pid}: {us(total[pid][0]):.0f} us/op (" + ", ".join(f"{n} {us(t[0]):.0f}" for n, t in parts) + ")")
    print(f"  context switches/op {per_op(total[pid][1]):.2f} voluntary, {per_op(total[pid][2]):.2f} involuntary ("
          + ", ".join(f"{n} {per_op(t[1]):.2f}/{per_op(t[2]):.2f}" for n, t in parts) + ")")
EOF
