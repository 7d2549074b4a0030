"""Shared pieces of the failure tests (issue 4): a history recorder that runs concurrent
clients against a cluster while a test injects faults, the lincheck run over what it
recorded, and the end-of-scenario checks (every member converges on the same keys and the
same HashKV at one revision).

    with failure_lib.Recorder(cluster, stubs, clients=6) as rec:
        ...  # kill, pause, partition members
    failure_lib.check_linearizable(test, rec, args.lincheck)
    failure_lib.check_converged(test, cluster, stubs, rec.keys)

A write whose outcome the client cannot know (deadline, Unavailable after sending, any
other error) is recorded "unknown": lincheck may place it anywhere after its call or
leave it out. One gRPC never sent (no connection to the member) is "fail", as is a read
that fails: neither says anything.
"""

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

import grpc

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "compat"))
import members  # noqa: E402

# Channels that reconnect quickly to a member that comes back.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]


def parse_args(description):
    def extra(p):
        p.add_argument("--lincheck", required=True, help="path of build/bin/lincheck")
        p.add_argument("--seed", type=int, default=None)
    args = members.parse_args(description, extra)
    if args.seed is None:
        args.seed = int(os.environ.get("FAILURE_SEED", random.randrange(1 << 30)))
    sys.stderr.write(f"seed {args.seed} (FAILURE_SEED={args.seed} repeats it)\n")
    return args


class Stubs:
    def __init__(self, stub_dir):
        self.kv_pb2, self.rpc_pb2, self.rpc_pb2_grpc = members.import_stubs(stub_dir)


def Client(stubs, member):
    return members.Client(member, stubs.rpc_pb2_grpc, options=CHANNEL_OPTIONS)


def rounds(default):
    """How many fault rounds a test runs: `default`, or FAILURE_ROUNDS to soak."""
    return int(os.environ.get("FAILURE_ROUNDS", default))


def new_cluster(args, size, peer_faults=False, extra_flags=()):
    """A cluster of `size` kvstore members with short election settings (heartbeat 50 ms,
    election 500 ms), not started. With peer_faults, each member reads the file
    `m.faults_path` (see write_faults) through the test-only --test-peer-faults flag."""
    c = members.Cluster("kvstore", args.kvstore, size=size, heartbeat_ms=50, election_ms=500,
                        extra_flags=extra_flags)
    for m in c.members:
        m.faults_path = os.path.join(m.dir, "peer-faults")
        if peer_faults:
            m.extra_flags = list(extra_flags) + ["--test-peer-faults", m.faults_path]
    return c


def write_faults(member, blocked_ids):
    """Makes `member` drop Raft messages to and from the members `blocked_ids` (atomically:
    the member never reads half a file)."""
    tmp = member.faults_path + ".tmp"
    with open(tmp, "w") as f:
        f.write("".join(f"{i:x}\n" for i in blocked_ids))
    os.replace(tmp, member.faults_path)


retry = members.retry


def find_leader(cluster, stubs, among, timeout):
    """The member among `among` (running members) that all of them report as leader."""
    by_id = {v: k for k, v in cluster.ids().items()}
    names = {m.name for m in among}

    def agreed():
        leaders = set()
        for m in among:
            with grpc.insecure_channel(m.endpoint) as ch:
                st = stubs.rpc_pb2_grpc.MaintenanceStub(ch).Status(
                    stubs.rpc_pb2.StatusRequest(), timeout=1)
            leaders.add(st.leader)
        if len(leaders) != 1 or 0 in leaders:
            return None
        name = by_id.get(leaders.pop())
        if name not in names:
            return None
        return next(m for m in among if m.name == name)

    return retry(f"one leader among {sorted(names)}", agreed, timeout)


def write_outcome(e):
    """The status of a write that failed with RpcError e: "fail" when gRPC never sent it
    (no connection to the member: the channel failed the pick, so the request never left
    the client), else "unknown" (it may have taken effect: deadline, reset, no leader
    after forwarding, ...). Marking never-sent writes unknown is sound but makes the
    search explode when a member is down for long."""
    if (e.code() == grpc.StatusCode.UNAVAILABLE
            and "failed to connect to all addresses" in (e.details() or "")):
        return "fail"
    return "unknown"


class Recorder:
    """`clients` threads doing puts of unique values, a few deletes, linearizable gets
    and compare-and-swap txns on `keys` keys, each through one member at a time (the next one
    after an error), recording every operation in lincheck's format. The first `sticky`
    clients stay on their member whatever happens (so that a member cut off or paused keeps
    being asked). A context manager: the threads run between enter and exit (or start()
    and stop())."""

    def __init__(self, cluster, stubs, clients=6, keys=5, op_timeout=2.0, seed=0,
                 pause_s=0.002, sticky=0):
        self.cluster = cluster
        self.stubs = stubs
        self.n_clients = clients
        self.keys = [f"k{i}" for i in range(keys)]
        self.op_timeout = op_timeout
        self.seed = seed
        self.pause_s = pause_s
        self.sticky = sticky
        self.ops = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = []
        self.errors = []
        # The last value some client saw per key, for cas to expect (racy on purpose).
        self.seen = {}

    def start(self):
        for c in range(self.n_clients):
            t = threading.Thread(target=self._run, args=(c,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(self.op_timeout + 5)
            if t.is_alive():
                raise AssertionError("a recorder client did not stop")
        if self.errors:
            raise AssertionError("recorder client failed: " + self.errors[0])

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if not self.stopping.is_set():
            self.stopping.set()
            for t in self.threads:
                t.join(self.op_timeout + 5)
        return False

    def counts(self):
        with self.lock:
            out = {}
            for op in self.ops:
                k = f"{op['op']}/{op['status']}"
                out[k] = out.get(k, 0) + 1
            return out

    def _run(self, client):
        try:
            self._loop(client)
        except Exception as e:  # a bug in the recorder itself: fail the test
            import traceback
            self.errors.append(f"client {client}: {e!r}\n{traceback.format_exc()}")

    @staticmethod
    def timed(op, outcome, call):
        """Runs call() for `op`: records its call and return times and the header revision,
        or on an RPC error the status outcome(error) and the error. The response, or None."""
        op["call"] = time.monotonic_ns()
        try:
            resp = call()
        except grpc.RpcError as e:
            op.update(status=outcome(e), error=f"{e.code()}: {e.details()}")
            return None
        op["return"] = time.monotonic_ns()
        op.update(status="ok", revision=resp.header.revision)
        return resp

    def _loop(self, client):
        rng = random.Random(self.seed * 1000 + client)
        pb = self.stubs.rpc_pb2
        ms = self.cluster.members
        at = client % len(ms)
        conns = {}
        seq = 0
        try:
            while not self.stopping.is_set():
                m = ms[at]
                if m.name not in conns:
                    conns[m.name] = Client(self.stubs, m)
                kv = conns[m.name].kv
                key = rng.choice(self.keys)
                r = rng.random()
                seq += 1
                value = f"c{client}-{seq}"
                op = {"client": client, "key": key, "member": m.name}
                if r < 0.4:
                    op.update(op="put", value=value)
                    resp = self.timed(op, write_outcome, lambda: kv.Put(
                        pb.PutRequest(key=key.encode(), value=value.encode()),
                        timeout=self.op_timeout))
                elif r < 0.45:
                    op.update(op="delete")
                    resp = self.timed(op, write_outcome, lambda: kv.DeleteRange(
                        pb.DeleteRangeRequest(key=key.encode()), timeout=self.op_timeout))
                    if resp is not None:
                        self.seen[key] = None
                elif r < 0.7:
                    op.update(op="get")
                    resp = self.timed(op, lambda e: "fail", lambda: kv.Range(
                        pb.RangeRequest(key=key.encode()), timeout=self.op_timeout))
                    if resp is not None:
                        op["result"] = resp.kvs[0].value.decode() if resp.kvs else None
                        self.seen[key] = op["result"]
                else:
                    expect = self.seen.get(key)
                    op.update(op="cas", expect=expect, value=value)
                    if expect is None:
                        cmp = pb.Compare(result=pb.Compare.EQUAL, target=pb.Compare.CREATE,
                                         key=key.encode(), create_revision=0)
                    else:
                        cmp = pb.Compare(result=pb.Compare.EQUAL, target=pb.Compare.VALUE,
                                         key=key.encode(), value=expect.encode())
                    req = pb.TxnRequest(compare=[cmp], success=[pb.RequestOp(
                        request_put=pb.PutRequest(key=key.encode(), value=value.encode()))])
                    resp = self.timed(op, write_outcome,
                                      lambda: kv.Txn(req, timeout=self.op_timeout))
                    if resp is not None:
                        op["result"] = bool(resp.succeeded)
                        if resp.succeeded:
                            self.seen[key] = value
                failed = resp is None
                with self.lock:
                    self.ops.append(op)
                if failed:
                    if client >= self.sticky:
                        at = (at + 1) % len(ms)  # try another member
                    time.sleep(0.02)
                elif self.pause_s:
                    time.sleep(self.pause_s)
        finally:
            for c in conns.values():
                c.close()

    def write(self, path):
        with self.lock, open(path, "w") as f:
            for op in self.ops:
                f.write(json.dumps(op) + "\n")


def check_linearizable(test, rec, lincheck, timeout_s=60):
    """Writes the history and runs lincheck on it; fails the test (keeping the file) unless
    lincheck says linearizable."""
    fd, path = tempfile.mkstemp(prefix="failure-history-", suffix=".jsonl")
    os.close(fd)
    rec.write(path)
    check_revisions(test, rec)
    started = time.monotonic()
    p = subprocess.run([lincheck, path, "--timeout-seconds", str(timeout_s)],
                       capture_output=True, text=True, timeout=timeout_s + 30)
    took = time.monotonic() - started
    sys.stderr.write(f"history: {len(rec.ops)} ops {rec.counts()}; lincheck exit "
                     f"{p.returncode} in {took:.1f}s\n")
    if p.returncode != 0:
        verdict = {1: "NOT LINEARIZABLE", 2: "undecided or bad input"}.get(
            p.returncode, f"exit {p.returncode}")
        test.fail(f"lincheck: {verdict}; history kept in {path}\n{p.stdout}\n{p.stderr}")
    os.unlink(path)
    ok_writes = sum(1 for op in rec.ops
                    if op["op"] in ("put", "cas", "delete") and op["status"] == "ok")
    test.assertGreater(ok_writes, 0, "no write was acknowledged: the test tested nothing")


def check_revisions(test, rec):
    """A cheaper, sharper check beside lincheck: revisions only grow, so an operation
    answered "ok" must carry a header revision at least that of every operation answered
    before it was called. A linearizable read below that is stale."""
    done = sorted((op for op in rec.ops if op["status"] == "ok"), key=lambda op: op["return"])
    calls = sorted((op for op in rec.ops if op["status"] == "ok"), key=lambda op: op["call"])
    stale = []
    i, seen_max, seen_op = 0, 0, None
    for op in calls:
        while i < len(done) and done[i]["return"] < op["call"]:
            if done[i]["revision"] > seen_max:
                seen_max, seen_op = done[i]["revision"], done[i]
            i += 1
        if op["revision"] < seen_max:
            stale.append((op, seen_op))
    for op, before in stale[:5]:
        sys.stderr.write(f"STALE: {json.dumps(op)}\n  called after {json.dumps(before)}\n")
    test.assertEqual(len(stale), 0, f"{len(stale)} operations answered from the past "
                     "(header revision below that of an operation finished before their call)")


def check_converged(test, cluster, stubs, keys, timeout=20.0):
    """Every member (all must be running) applies up to one common revision R (that of a
    linearizable write made now), then has the same values for `keys` at R and the same
    HashKV at R."""
    pb = stubs.rpc_pb2
    clients = [Client(stubs, m) for m in cluster.members]
    try:
        put = retry("a write after healing", lambda: clients[0].kv.Put(
            pb.PutRequest(key=b"converged", value=b"yes"), timeout=2), timeout)
        rev = put.header.revision
        deadline = time.monotonic() + timeout
        hashes, values = {}, {}
        for c in clients:
            def at_rev():
                h = c.maintenance.HashKV(pb.HashKVRequest(revision=rev), timeout=2)
                r = c.kv.Range(pb.RangeRequest(key=b"k", range_end=b"l", revision=rev,
                                               serializable=True), timeout=2)
                return h, r
            h, r = retry(f"{c.member.name} at revision {rev}", at_rev,
                         max(1.0, deadline - time.monotonic()))
            hashes[c.member.name] = h.hash
            values[c.member.name] = {kv.key.decode(): (kv.value.decode(), kv.mod_revision)
                                     for kv in r.kvs}
        want = values[clients[0].member.name]
        for name, got in values.items():
            test.assertEqual(got, want, f"{name}'s keys at revision {rev} differ")
        test.assertEqual(len(set(hashes.values())), 1,
                         f"HashKV at revision {rev} differs: {hashes}")
        sys.stderr.write(f"converged at revision {rev}: hash {hashes[clients[0].member.name]:x}, "
                         f"values {want}\n")
    finally:
        for c in clients:
            c.close()


def pause(member):
    os.kill(member.proc.pid, signal.SIGSTOP)


def resume(member):
    os.kill(member.proc.pid, signal.SIGCONT)
