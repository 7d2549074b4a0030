#!/usr/bin/env bash
# ab_cluster.sh: two kvstore binaries against each other on a local 3-member cluster
# (deploy/cluster.sh), under one kvbench workload, in alternating rounds; prints each run
# and the median req/s of each binary. For telling whether a change to the server helps
# on a host whose speed drifts from minute to minute: every round starts each binary's
# cluster afresh and runs it right after the other's, A first in odd rounds.
#
#   test/bench/ab_cluster.sh OLD_KVSTORE NEW_KVSTORE [KVBENCH FLAGS...]
#
# e.g. the binary of an older commit against the current build:
#   test/bench/ab_cluster.sh /tmp/kvstore.old build/bin/kvstore
# Default flags: put-256 (256 clients over 16 connections, 100,000 keys). Environment:
# AB_ROUNDS (default 3), AB_RUNS runs per cluster and round (default 3), AB_DURATION per run
# (default 5s), AB_PORT_BASE (default 3000; the cluster's ports as deploy/cluster.sh's
# CLUSTER_PORT_BASE), AB_TARGET=leader or follower to send everything to that member
# (single-client latency: AB_TARGET=leader test/bench/ab_cluster.sh OLD NEW --workload put).
# deploy/cluster.sh starts each member in a session of its own (setsid), so with Linux's
# autogroups every member is a scheduling group of its own, as under a service manager;
# kv_bench.sh starts everything in one session, where context switches cost less.
# Never part of CI.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if (($# < 2)); then
  sed -n '2,20p' "$0" >&2
  exit 2
fi
BINS=("$1" "$2")
shift 2
FLAGS=("$@")
if ((${#FLAGS[@]} == 0)); then
  FLAGS=(--workload put --conns 16 --clients 256 --key-space 100000 --val-size 256)
fi
ROUNDS=${AB_ROUNDS:-3}
RUNS=${AB_RUNS:-3}
DURATION=${AB_DURATION:-5s}
KVBENCH=$ROOT/build/bin/kvbench
for bin in "${BINS[@]}" "$KVBENCH"; do
  [[ -x $bin ]] || { echo "ab_cluster: $bin is not an executable" >&2; exit 2; }
done

export CLUSTER_RUN_DIR
CLUSTER_RUN_DIR=$(mktemp -d /tmp/ab-cluster.XXXXXX)
export CLUSTER_PORT_BASE=${AB_PORT_BASE:-3000}
cluster() { "$ROOT/deploy/cluster.sh" "$@" >/dev/null 2>&1; }
cleanup() {
  cluster down || true
  rm -rf "$CLUSTER_RUN_DIR"
}
trap cleanup EXIT

declare -A RESULTS=([A]="" [B]="")
run_cluster() {
  local label=$1 bin=$2 endpoints out
  cluster down || true
  cluster clean || true
  KVSTORE_BIN=$bin cluster up
  endpoints=$("$ROOT/deploy/cluster.sh" endpoints)
  if [[ -n ${AB_TARGET:-} ]]; then
    endpoints=$("$ROOT/deploy/cluster.sh" status | awk -v t="$AB_TARGET" '$5 == t {print $2}' |
      head -1)
  fi
  # A short warm-up run: connections, the first leader's no-op, RocksDB's first files.
  "$KVBENCH" --endpoints "$endpoints" "${FLAGS[@]}" --duration 2s >/dev/null 2>&1 || true
  for _ in $(seq 1 "$RUNS"); do
    out=$("$KVBENCH" --endpoints "$endpoints" "${FLAGS[@]}" --duration "$DURATION" 2>&1 |
      grep -o '[0-9.]* requests/s' | cut -d' ' -f1 || true)
    echo "  $label $bin: ${out:-failed} req/s" >&2
    [[ -n $out ]] && RESULTS[$label]+="$out "
  done
  cluster down
}

for round in $(seq 1 "$ROUNDS"); do
  echo "round $round" >&2
  if ((round % 2 == 1)); then order="A B"; else order="B A"; fi
  for label in $order; do
    if [[ $label == A ]]; then run_cluster A "${BINS[0]}"; else run_cluster B "${BINS[1]}"; fi
  done
done

median() { tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{v[NR]=$1} END {if (NR == 0) print "-"; else if (NR % 2) print v[(NR+1)/2]; else printf "%.1f\n", (v[NR/2]+v[NR/2+1])/2}'; }
a=$(echo "${RESULTS[A]}" | median)
b=$(echo "${RESULTS[B]}" | median)
echo "A ${BINS[0]}: median $a req/s over $((ROUNDS * RUNS)) runs"
echo "B ${BINS[1]}: median $b req/s over $((ROUNDS * RUNS)) runs"
if [[ $a != - && $b != - ]]; then
  awk -v a="$a" -v b="$b" 'BEGIN {printf "B/A: %.3f\n", b / a}'
fi
