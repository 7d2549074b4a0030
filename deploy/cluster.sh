#!/usr/bin/env bash
# Starts and manages a local kvstore cluster on loopback (see README.md).
#
#   deploy/cluster.sh up [--members 1|3|5|7]  build if needed, start n1..nN, wait until each
#                                             answers, print the endpoints (default: 3)
#   deploy/cluster.sh status                  each member's health, role, raft term and index
#   deploy/cluster.sh endpoints               the client endpoints, comma-separated (etcdctl's
#                                             --endpoints)
#   deploy/cluster.sh leader                  the name of the member that leads, waiting up to
#                                             CLUSTER_WAIT_S for one to be elected
#   deploy/cluster.sh kill NAME               SIGKILL NAME (by its pid file)
#   deploy/cluster.sh stop NAME               SIGTERM NAME and wait for it to exit
#   deploy/cluster.sh restart NAME            start NAME again on its data dir, same flags
#                                             (stops it first if it runs)
#   deploy/cluster.sh down [--purge]          stop every member, keep the data (--purge: remove
#                                             the run directory too)
#   deploy/cluster.sh clean                   down --purge
#
# Member i listens on 127.0.0.1: client port BASE + 1000*i + 379, peer port BASE + 1000*i + 380,
# with BASE 20000 (n1 21379/21380, n2 22379/22380, ... n7 27379/27380). Everything a member
# has lives in the run directory: <name>/data, <name>.log, <name>.pid, and <name>.args (its
# command line, which restart reuses with --initial-cluster-state existing).
#
# Environment:
#   CLUSTER_PORT_BASE     BASE above (default 20000); tests pick one whose ports are free
#   CLUSTER_RUN_DIR       the run directory (default: run/ in the repository)
#   KVSTORE_BIN           the kvstore binary; default build/bin/kvstore, built if needed with
#                         the flags test/run.sh uses
#   ETCDCTL               etcdctl 3.4 (default: etcdctl on PATH, else /usr/bin/etcdctl)
#   CLUSTER_HEARTBEAT_MS, CLUSTER_ELECTION_MS   Raft timers (default 100 and 1000, etcd's)
#   CLUSTER_WAIT_S        how long up and restart wait for members to answer (default 60)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BASE="${CLUSTER_PORT_BASE:-20000}"
RUN="${CLUSTER_RUN_DIR:-$ROOT/run}"
HEARTBEAT_MS="${CLUSTER_HEARTBEAT_MS:-100}"
ELECTION_MS="${CLUSTER_ELECTION_MS:-1000}"
WAIT_S="${CLUSTER_WAIT_S:-60}"
TOKEN="kvstore-local-cluster"
PYTHON=/usr/bin/python3
export ETCDCTL_API=3

die() {
  echo "cluster.sh: $*" >&2
  exit 1
}

usage() {
  sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

client_port() { echo $((BASE + 1000 * $1 + 379)); }
peer_port() { echo $((BASE + 1000 * $1 + 380)); }
endpoint() { echo "127.0.0.1:$(client_port "$1")"; }

etcdctl_bin() {
  if [ -n "${ETCDCTL:-}" ]; then
    echo "$ETCDCTL"
  elif command -v etcdctl >/dev/null; then
    command -v etcdctl
  else
    echo /usr/bin/etcdctl
  fi
}

# The kvstore binary, built first unless KVSTORE_BIN names one.
kvstore_bin() {
  if [ -n "${KVSTORE_BIN:-}" ]; then
    [ -x "$KVSTORE_BIN" ] || die "KVSTORE_BIN=$KVSTORE_BIN is not an executable"
    echo "$KVSTORE_BIN"
    return
  fi
  (
    cd "$ROOT"
    if ! command -v cmake >/dev/null || [ ! -f build/CMakeCache.txt ]; then
      ./deploy/install-deps.sh >&2
    fi
    export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
    if [ ! -f build/CMakeCache.txt ]; then
      GENERATOR=()
      if command -v ninja >/dev/null; then GENERATOR=(-G Ninja); fi
      cmake -S . -B build "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo >&2
    fi
    cmake --build build --target kvstore -j "${JOBS:-$(nproc)}" >&2
  ) || die "building kvstore failed"
  echo "$ROOT/build/bin/kvstore"
}

# The cluster's shape, written by up: MEMBERS and BASE.
load_config() {
  [ -f "$RUN/cluster.env" ] || die "no cluster in $RUN (run: cluster.sh up)"
  # shellcheck disable=SC1091
  . "$RUN/cluster.env"
}

member_index() {
  local name="$1"
  [[ "$name" =~ ^n([1-9])$ ]] || die "no member named '$name' (members are n1..n$MEMBERS)"
  local i="${BASH_REMATCH[1]}"
  [ "$i" -le "$MEMBERS" ] || die "no member named '$name' (members are n1..n$MEMBERS)"
  echo "$i"
}

# The pid of NAME if it runs (and is a kvstore: a stale pid file may name another process).
running_pid() {
  local pidfile="$RUN/$1.pid" pid
  [ -f "$pidfile" ] || return 1
  pid="$(cat "$pidfile")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--name $1 " || return 1
  echo "$pid"
}

# Dies if something already listens on member I's client or peer port: the member could not
# bind it, and whatever holds it would answer the health check in its place.
require_free_ports() {
  local i="$1" addr
  for addr in "$(endpoint "$i")" "127.0.0.1:$(peer_port "$i")"; do
    # A connect that succeeds means a listener; bounded, in case its backlog is full.
    if timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "${addr%:*}" "${addr##*:}" 2>/dev/null; then
      die "$addr is in use by another process (another cluster? see CLUSTER_PORT_BASE)"
    fi
  done
}

spawn() {
  local name="$1"
  local -a cmd
  mapfile -t cmd <"$RUN/$name.args"
  echo "==== $(date '+%F %T') start ${cmd[*]}" >>"$RUN/$name.log"
  # A session of its own: the member outlives this script and a Ctrl-C in its terminal.
  setsid "${cmd[@]}" >>"$RUN/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

# Waits until NAME answers a linearizable read (so it has a leader and has published itself).
wait_member() {
  local name="$1" deadline=$((SECONDS + WAIT_S)) etcdctl
  etcdctl="$(etcdctl_bin)"
  local ep
  ep="$(endpoint "$(member_index "$name")")"
  until "$etcdctl" --endpoints="$ep" --dial-timeout=1s --command-timeout=2s \
    endpoint health >/dev/null 2>&1; do
    if ! running_pid "$name" >/dev/null; then
      echo "cluster.sh: $name exited while starting; the end of $RUN/$name.log:" >&2
      tail -n 20 "$RUN/$name.log" >&2
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "cluster.sh: $name ($ep) does not answer after ${WAIT_S}s; the end of its log:" >&2
      tail -n 20 "$RUN/$name.log" >&2
      exit 1
    fi
    sleep 0.2
  done
}

cmd_up() {
  local members=3
  while [ $# -gt 0 ]; do
    case "$1" in
      --members) members="${2:-}"; shift 2 || usage ;;
      --members=*) members="${1#--members=}"; shift ;;
      *) usage ;;
    esac
  done
  case "$members" in 1 | 3 | 5 | 7) ;; *) die "--members must be 1, 3, 5 or 7" ;; esac
  [ -x "$(etcdctl_bin)" ] || "$ROOT/deploy/install-deps.sh"
  if [ -f "$RUN/cluster.env" ]; then
    # shellcheck disable=SC1091
    local want_base="$BASE"
    . "$RUN/cluster.env"
    if [ "$MEMBERS" != "$members" ] || [ "$BASE" != "$want_base" ]; then
      die "$RUN holds a $MEMBERS-member cluster on port base $BASE; run 'cluster.sh clean' first"
    fi
  fi
  local i
  for i in $(seq 1 "$members"); do
    running_pid "n$i" >/dev/null || require_free_ports "$i"
  done
  local kvstore
  kvstore="$(kvstore_bin)"
  mkdir -p "$RUN"
  printf 'MEMBERS=%s\nBASE=%s\n' "$members" "$BASE" >"$RUN/cluster.env"
  MEMBERS="$members"
  local initial=""
  for i in $(seq 1 "$members"); do
    initial="${initial:+$initial,}n$i=http://127.0.0.1:$(peer_port "$i")"
  done
  for i in $(seq 1 "$members"); do
    local name="n$i"
    if running_pid "$name" >/dev/null; then
      echo "$name already runs (pid $(running_pid "$name"))"
      continue
    fi
    local state=new
    [ -d "$RUN/$name/data" ] && state=existing
    printf '%s\n' "$kvstore" --name "$name" --data-dir "$RUN/$name/data" \
      --listen-client-urls "http://$(endpoint "$i")" \
      --advertise-client-urls "http://$(endpoint "$i")" \
      --listen-peer-urls "http://127.0.0.1:$(peer_port "$i")" \
      --initial-advertise-peer-urls "http://127.0.0.1:$(peer_port "$i")" \
      --initial-cluster "$initial" --initial-cluster-state "$state" \
      --initial-cluster-token "$TOKEN" \
      --heartbeat-interval "$HEARTBEAT_MS" --election-timeout "$ELECTION_MS" \
      >"$RUN/$name.args"
    mkdir -p "$RUN/$name"
    spawn "$name"
  done
  for i in $(seq 1 "$members"); do wait_member "n$i"; done
  local endpoints=""
  echo "kvstore cluster of $members up (run directory $RUN):"
  for i in $(seq 1 "$members"); do
    printf '  n%s  client http://%s  peer http://127.0.0.1:%s  pid %s  log %s\n' "$i" \
      "$(endpoint "$i")" "$(peer_port "$i")" "$(running_pid "n$i")" "$RUN/n$i.log"
    endpoints="${endpoints:+$endpoints,}$(endpoint "$i")"
  done
  echo
  echo "  export ETCDCTL_API=3"
  echo "  etcdctl --endpoints=$endpoints put greeting hello"
  echo "  etcdctl --endpoints=$endpoints endpoint status -w table"
  echo "  $0 status | kill n1 | restart n1 | down"
}

cmd_status() {
  load_config
  local etcdctl i
  etcdctl="$(etcdctl_bin)"
  printf '%-4s %-16s %-8s %-9s %-9s %6s %8s %8s\n' NAME ENDPOINT PID HEALTH ROLE TERM INDEX APPLIED
  for i in $(seq 1 "$MEMBERS"); do
    local name="n$i" ep pid json health
    ep="$(endpoint "$i")"
    if ! pid="$(running_pid "$name")"; then
      printf '%-4s %-16s %-8s %-9s %-9s %6s %8s %8s\n' "$name" "$ep" - down - - - -
      continue
    fi
    health=unhealthy
    if "$etcdctl" --endpoints="$ep" --dial-timeout=1s --command-timeout=2s endpoint health \
      >/dev/null 2>&1; then
      health=healthy
    fi
    json="$("$etcdctl" --endpoints="$ep" --dial-timeout=1s --command-timeout=2s \
      endpoint status -w json 2>/dev/null || true)"
    STATUS_JSON="$json" "$PYTHON" - "$name" "$ep" "$pid" "$health" <<'EOF'
import json, os, sys
name, ep, pid, health = sys.argv[1:]
role, term, index, applied = "-", "-", "-", "-"
try:
    st = json.loads(os.environ["STATUS_JSON"])[0]["Status"]
    leader, me = st.get("leader", 0), st["header"]["member_id"]
    role = "leader" if leader == me else ("follower" if leader else "no-leader")
    term, index = st.get("raftTerm", 0), st.get("raftIndex", 0)
    applied = st.get("raftAppliedIndex", 0)
except (ValueError, KeyError, IndexError):
    role = "no-answer"
print(f"{name:<4} {ep:<16} {pid:<8} {health:<9} {role:<9} {term:>6} {index:>8} {applied:>8}")
EOF
  done
}

cmd_endpoints() {
  load_config
  local i endpoints=""
  for i in $(seq 1 "$MEMBERS"); do endpoints="${endpoints:+$endpoints,}$(endpoint "$i")"; done
  echo "$endpoints"
}

# The member whose own status says it leads (one that lost its quorum still thinks it
# leads until its election timeout passes; the others then elect another).
current_leader() {
  local etcdctl i json
  etcdctl="$(etcdctl_bin)"
  for i in $(seq 1 "$MEMBERS"); do
    running_pid "n$i" >/dev/null || continue
    json="$("$etcdctl" --endpoints="$(endpoint "$i")" --dial-timeout=1s --command-timeout=2s \
      endpoint status -w json 2>/dev/null)" || continue
    if STATUS_JSON="$json" "$PYTHON" -c '
import json, os, sys
st = json.loads(os.environ["STATUS_JSON"])[0]["Status"]
sys.exit(0 if st.get("leader", 0) == st["header"]["member_id"] else 1)' 2>/dev/null; then
      echo "n$i"
      return 0
    fi
  done
  return 1
}

cmd_leader() {
  load_config
  local deadline=$((SECONDS + WAIT_S))
  until current_leader; do
    [ "$SECONDS" -lt "$deadline" ] || die "no member leads (waited ${WAIT_S}s)"
    sleep 0.2
  done
}

cmd_kill() {
  load_config
  local name="$1" pid
  member_index "$name" >/dev/null
  pid="$(running_pid "$name")" || die "$name is not running"
  kill -KILL "$pid"
  wait_gone "$pid" 10 || die "$name (pid $pid) did not die"
  echo "killed $name (pid $pid)"
}

# Waits up to $2 seconds for pid $1 to be gone.
wait_gone() {
  local pid="$1" deadline=$((SECONDS + $2))
  while kill -0 "$pid" 2>/dev/null; do
    # A zombie is gone for our purposes: its ports and files are released.
    if [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ]; then return 0; fi
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

stop_member() {
  local name="$1" pid
  pid="$(running_pid "$name")" || return 0
  kill -TERM "$pid"
  if ! wait_gone "$pid" 15; then
    echo "cluster.sh: $name (pid $pid) ignored SIGTERM for 15s; SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 5 || true
  fi
  echo "stopped $name (pid $pid)"
}

cmd_stop() {
  load_config
  member_index "$1" >/dev/null
  running_pid "$1" >/dev/null || die "$1 is not running"
  stop_member "$1"
}

cmd_restart() {
  load_config
  local name="$1"
  member_index "$name" >/dev/null
  [ -f "$RUN/$name.args" ] && [ -d "$RUN/$name/data" ] || die "$name has no data in $RUN"
  stop_member "$name"
  require_free_ports "$(member_index "$name")"
  # The same flags; its data dir exists, so the member restarts from it (etcd's "existing").
  sed -i 's/^new$/existing/' "$RUN/$name.args"
  spawn "$name"
  wait_member "$name"
  echo "restarted $name (pid $(running_pid "$name"))"
}

cmd_down() {
  local purge=0
  case "${1:-}" in
    --purge) purge=1 ;;
    "") ;;
    *) usage ;;
  esac
  if [ -f "$RUN/cluster.env" ]; then
    load_config
    local i
    for i in $(seq 1 "$MEMBERS"); do stop_member "n$i"; done
  fi
  if [ "$purge" = 1 ]; then
    rm -rf "$RUN"
    echo "removed $RUN"
  fi
}

[ $# -ge 1 ] || usage
command="$1"
shift
case "$command" in
  up) cmd_up "$@" ;;
  status) [ $# -eq 0 ] || usage; cmd_status ;;
  endpoints) [ $# -eq 0 ] || usage; cmd_endpoints ;;
  leader) [ $# -eq 0 ] || usage; cmd_leader ;;
  kill) [ $# -eq 1 ] || usage; cmd_kill "$1" ;;
  stop) [ $# -eq 1 ] || usage; cmd_stop "$1" ;;
  restart) [ $# -eq 1 ] || usage; cmd_restart "$1" ;;
  down) [ $# -le 1 ] || usage; cmd_down "$@" ;;
  clean) [ $# -eq 0 ] || usage; cmd_down --purge ;;
  -h | --help | help) usage ;;
  *) usage ;;
esac
