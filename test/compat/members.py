"""Members for the compatibility and cluster tests: one kvstore or one real etcd 3.4, or
a cluster of them, started on free 127.0.0.1 ports with a data directory each, and always
cleaned up.

    with members.Member.kvstore(args.kvstore) as ours, members.Member.etcd(args.etcd) as ref:
        ours.endpoint  # "127.0.0.1:PORT"

    with members.Cluster("kvstore", args.kvstore, size=3).start() as c:
        c.members[0].endpoint; c.leader(); c.members[1].kill(); c.members[1].restart()

A member's process is started in a session of its own, with the kernel asked to
SIGKILL it when the thread that started it ends (so that a ctest timeout leaks no
member; start members from the main thread), and is stopped by its pid only. Its data
directory and log live in one temporary directory that is removed when the member is
closed (set COMPAT_KEEP=1 to keep it).

COMPAT_SELF_CHECK=1 runs a real etcd where our member would be: every test must then
pass, which checks the tests themselves (tests of `kvstore restore` and its command
line excepted).

Every test script takes the same leading arguments (see parse_args): the paths of
kvstore, etcd, etcdctl and the directory of the Python stubs generated from our
protos; what follows goes to unittest.
"""

import argparse
import fcntl
import hashlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import grpc

# A RangeRequest{key: "health"} on the wire, so that waiting for a member needs no
# generated code: field 1 (bytes), length 6.
_HEALTH_RANGE = b"\x0a\x06health"

_SETPRIV = "/usr/bin/setpriv"  # util-linux

# What etcd 3.4's learners answer every client call but Maintenance.Status and a
# serializable Range (gRPC status UNAVAILABLE).
LEARNER_ERROR = "etcdserver: rpc not supported for learner"


def die_with_parent(cmd):
    """cmd, run so that the kernel SIGKILLs it when the thread that started it ends.
    setpriv sets that up between fork and exec; a Python preexec_fn would run Python in
    the child of a process with gRPC's threads, which can deadlock or crash."""
    if os.access(_SETPRIV, os.X_OK):
        return [_SETPRIV, "--pdeathsig", "KILL", "--", *cmd]
    return list(cmd)


# Ports for members come from below the kernel's ephemeral range (32768-60999 by default),
# and above the port bases test/cluster/cluster_sh_test.py uses: a port in the ephemeral
# range, freed when a member is killed, can be taken meanwhile by any outgoing connection
# and the member could not listen on it again when it restarts.
PORT_RANGE = (29500, 32768)
_port_rng = random.Random()  # its own: tests seed the global one
# Every port this process has handed out, each with a lock file held until the process
# ends. A port is handed out once, and only if no other test process holds its lock: two
# members (ours and etcd side by side, or members of tests ctest runs at once) must never
# get the same port. Otherwise a member restarted on its port finds it taken by a member
# of another test that picked it while the first was down; or the second member cannot
# listen, and the first answers its health check and then all of its requests.
_handed_out = {}
_LOCK_DIR = os.path.join(tempfile.gettempdir(), f"kvstore-test-ports-{os.getuid()}")


def _reserve(port):
    """Takes port's lock file for the rest of this process; False if another holds it."""
    os.makedirs(_LOCK_DIR, exist_ok=True)
    fd = os.open(os.path.join(_LOCK_DIR, str(port)), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    _handed_out[port] = fd
    return True


def free_ports(n):
    """n distinct ports outside the ephemeral range that were free on 127.0.0.1 a moment
    ago and that no test process has handed out before (see _handed_out)."""
    if len(_handed_out) + n > (PORT_RANGE[1] - PORT_RANGE[0]) // 2:
        raise MemberError(f"this test has used {len(_handed_out)} ports; no more to hand out")
    ports = []
    while len(ports) < n:
        port = _port_rng.randrange(*PORT_RANGE)
        if port in _handed_out or not _reserve(port):
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # stays reserved: someone else, not a test, holds it
        ports.append(port)
    return ports


def listens_on(pid, port):
    """Whether process pid holds a socket listening on TCP port `port` (Linux /proc).
    Another process can hold a port that was free when it was chosen (a member of
    another test running at the same time): then the member exits, but until it does, a
    health check on that port reaches someone else."""
    inodes = set()
    for table in ("tcp", "tcp6"):  # tcp6 is missing where IPv6 is off
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, state, inode = fields[1], fields[3], fields[9]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        inodes.add(f"socket:[{inode}]")
        except OSError:
            continue
    if not inodes:
        return False
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
        except OSError:
            continue
    return False


def retry(what, fn, timeout, interval=0.05):
    """fn() until it returns something other than None without an RPC error, or fail
    after timeout seconds with the last error."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            out = fn()
            if out is not None:
                return out
        except grpc.RpcError as e:
            last = f"{e.code()}: {e.details()}"
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last error: {last})")
        time.sleep(interval)


class Client:
    """A stub for each etcd service of one member, over a channel of its own.
    `rpc_pb2_grpc` is the generated module (import_stubs)."""

    def __init__(self, member, rpc_pb2_grpc, options=None):
        self.member = member
        self.channel = grpc.insecure_channel(member.endpoint, options=options)
        self.kv = rpc_pb2_grpc.KVStub(self.channel)
        self.cluster = rpc_pb2_grpc.ClusterStub(self.channel)
        self.maintenance = rpc_pb2_grpc.MaintenanceStub(self.channel)
        self.lease = rpc_pb2_grpc.LeaseStub(self.channel)
        self.watch = rpc_pb2_grpc.WatchStub(self.channel)

    def close(self):
        self.channel.close()


def wait_leader(cluster, clients, names, rpc_pb2, timeout):
    """The name of the member that every one of `names` reports as leader, asked through
    `clients` (by name, Client objects); fails after timeout seconds."""
    by_id = {v: k for k, v in cluster.ids().items()}

    def agreed():
        leaders = {clients[n].maintenance.Status(rpc_pb2.StatusRequest(), timeout=1).leader
                   for n in names}
        if len(leaders) == 1 and 0 not in leaders:
            leader = by_id.get(leaders.pop())
            return leader if leader in names else None
        return None

    return retry(f"one leader among {list(names)}", agreed, timeout)


class MemberError(Exception):
    pass


class Member:
    """One member process. Use Member.kvstore(...) or Member.etcd(...); the object is a
    context manager whose exit stops the process and removes its directory."""

    def __init__(self, kind, binary, name="default", max_request_bytes=None,
                 max_txn_ops=None, heartbeat_ms=25, election_ms=250, extra_flags=(),
                 dir_prefix=None):
        if not binary or not os.path.isfile(binary) or not os.access(binary, os.X_OK):
            raise MemberError(
                f"{kind} binary {binary!r} is missing: build it, or run deploy/install-deps.sh")
        self.kind = kind
        self.binary = binary
        self.name = name
        self.max_request_bytes = max_request_bytes
        self.max_txn_ops = max_txn_ops
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.extra_flags = list(extra_flags)
        self.dir = tempfile.mkdtemp(prefix=dir_prefix or f"compat-{kind}-")
        self.data_dir = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "member.log")
        self.proc = None
        self.client_port = None
        self.peer_port = None
        # Set by Cluster: every member's name=peer-url, and the cluster token.
        self.initial_cluster = None
        self.cluster_token = None
        self._log = None

    @classmethod
    def kvstore(cls, binary, **kw):
        return cls("kvstore", binary, **kw).start()

    @classmethod
    def etcd(cls, binary, **kw):
        return cls("etcd", binary, **kw).start()

    # --- addresses ---------------------------------------------------------

    @property
    def endpoint(self):
        return f"127.0.0.1:{self.client_port}"

    @property
    def client_url(self):
        return f"http://{self.endpoint}"

    @property
    def peer_url(self):
        return f"http://127.0.0.1:{self.peer_port}"

    # --- life cycle --------------------------------------------------------

    def _command(self):
        cmd = [
            self.binary,
            "--name", self.name,
            "--data-dir", self.data_dir,
            "--listen-client-urls", self.client_url,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", self.initial_cluster or f"{self.name}={self.peer_url}",
            "--heartbeat-interval", str(self.heartbeat_ms),
            "--election-timeout", str(self.election_ms),
        ]
        if self.max_request_bytes is not None:
            cmd += ["--max-request-bytes", str(self.max_request_bytes)]
        if self.max_txn_ops is not None:
            cmd += ["--max-txn-ops", str(self.max_txn_ops)]
        if self.cluster_token is not None:
            cmd += ["--initial-cluster-token", self.cluster_token]
        if self.kind == "etcd":
            cmd += ["--logger", "zap", "--log-outputs", "stderr"]
        return cmd + self.extra_flags

    def spawn(self, keep_ports=False):
        """Starts the process without waiting for it. The thread that calls this must
        outlive the member: the kernel kills the member when that thread ends."""
        if not keep_ports or self.client_port is None:
            self.client_port, self.peer_port = free_ports(2)
        self._log = open(self.log_path, "ab")
        self._log.write(f"==== start {' '.join(self._command())}\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(
            die_with_parent(self._command()), stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait_exit(self, timeout):
        """Waits up to timeout for the process to exit; returns its exit code or None."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def start(self, timeout=30.0, keep_ports=False):
        """Starts the process and waits until it answers a linearizable Range. Retries on
        new ports when the first ones were taken meanwhile (unless keep_ports, as for a
        restart on the same data dir, where the ports must stay)."""
        attempts = 1 if keep_ports else 3
        last = None
        for _ in range(attempts):
            self.spawn(keep_ports)
            try:
                self.wait_healthy(timeout)
                return self
            except MemberError as e:
                last = e
                self.kill()
        self.close()
        raise last

    def wait_healthy(self, timeout=30.0):
        """Waits until the member answers a linearizable Range (so it has a leader), or,
        for a learner, refuses it as etcd 3.4's learners do (so it serves)."""
        deadline = time.monotonic() + timeout
        last = "not listening"
        while True:
            if self.proc.poll() is not None:
                raise MemberError(
                    f"{self.kind} exited with {self.proc.returncode} while starting:\n"
                    + self.log_tail())
            if time.monotonic() > deadline:
                raise MemberError(f"{self.kind} on {self.endpoint} not healthy after "
                                  f"{timeout}s ({last}):\n" + self.log_tail())
            # Only once this process holds the port: before, the port may answer for
            # someone else (see listens_on). A fresh channel each time: a channel that
            # failed to connect backs off for seconds before it tries again.
            if not listens_on(self.proc.pid, self.client_port):
                last = f"not listening on {self.client_port}"
                time.sleep(0.05)
                continue
            try:
                with grpc.insecure_channel(self.endpoint) as ch:
                    ch.unary_unary("/etcdserverpb.KV/Range")(_HEALTH_RANGE, timeout=2.0)
                return
            except grpc.RpcError as e:
                if e.details() == LEARNER_ERROR:
                    return
                last = f"{e.code()}: {e.details()}"
            time.sleep(0.05)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL by pid, and reap."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self._reap(10.0)

    def stop(self, timeout=10.0):
        """SIGTERM by pid; SIGKILL if it has not exited within timeout."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
        self._reap(10.0)

    def restart(self, timeout=30.0):
        """Starts again on the same data dir and ports (after stop() or kill())."""
        self.stop()
        return self.start(timeout, keep_ports=True)

    def _reap(self, timeout):
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self):
        try:
            self.stop()
        finally:
            if os.environ.get("COMPAT_KEEP"):
                sys.stderr.write(f"kept {self.kind} dir {self.dir}\n")
            else:
                shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def member_id(peer_urls, token):
    """etcd's member id: SHA-1 of the sorted peer URLs joined, then the token; first 8
    bytes, big-endian."""
    digest = hashlib.sha1(("".join(sorted(peer_urls)) + token).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def cluster_id(member_ids):
    """etcd's cluster id: SHA-1 of the sorted member ids (8 bytes each, big-endian)."""
    data = b"".join(i.to_bytes(8, "big") for i in sorted(member_ids))
    return int.from_bytes(hashlib.sha1(data).digest()[:8], "big")


class Cluster:
    """`size` members of one new cluster (kind "kvstore" or "etcd"), named n1..nN, on free
    127.0.0.1 ports. start() starts them all and waits until each answers a linearizable
    Range; the members stay Member objects (kill, stop, restart each by pid). A context
    manager: exit stops every member and removes its directory."""

    def __init__(self, kind, binary, size=3, token="cluster-test", heartbeat_ms=50,
                 election_ms=500, extra_flags=()):
        self.kind = kind
        self.token = token
        self.members = [
            Member(kind, binary, name=f"n{i + 1}", heartbeat_ms=heartbeat_ms,
                   election_ms=election_ms, extra_flags=extra_flags,
                   dir_prefix=f"cluster-{kind}-n{i + 1}-")
            for i in range(size)]

    def _assign_ports(self):
        ports = free_ports(2 * len(self.members))
        for i, m in enumerate(self.members):
            m.client_port, m.peer_port = ports[2 * i], ports[2 * i + 1]
            m.cluster_token = self.token
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for m in self.members:
            m.initial_cluster = initial

    def start(self, timeout=30.0, prepare=None):
        """Starts every member and waits until each is healthy. The ports are part of the
        ids, so a start that fails (a port taken meanwhile) starts over on new ports with
        empty data directories, up to three times. prepare(cluster), if given, runs each
        time after the ports are assigned and before any member starts (to restore each
        member's data directory from a snapshot, say)."""
        last = None
        for _ in range(3):
            self._assign_ports()
            try:
                if prepare is not None:
                    prepare(self)
                for m in self.members:
                    m.spawn(keep_ports=True)
                for m in self.members:
                    m.wait_healthy(timeout)
                return self
            except MemberError as e:
                last = e
                for m in self.members:
                    m.kill()
                    shutil.rmtree(m.data_dir, ignore_errors=True)
        self.close()
        raise last

    @property
    def endpoints(self):
        return [m.endpoint for m in self.members]

    def ids(self):
        """Each member's etcd id, computed from its peer URL and the token."""
        return {m.name: member_id([m.peer_url], self.token) for m in self.members}

    def close(self):
        for m in self.members:
            m.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def ours(args, **kw):
    """Our member, not started. With COMPAT_SELF_CHECK=1 a real etcd stands in for it, to
    check the tests themselves: every test must then pass."""
    if os.environ.get("COMPAT_SELF_CHECK"):
        return Member("etcd", args.etcd, **kw)
    return Member("kvstore", args.kvstore, **kw)


def start_pair(args, **kw):
    """Our member and a real etcd with the same settings, started one after the other.
    Returns (ours, etcd); if either fails to start, both are closed."""
    mine = ours(args, **kw)
    ref = Member("etcd", args.etcd, **kw)
    try:
        mine.start()
        ref.start()
        return mine, ref
    except BaseException:
        mine.close()
        ref.close()
        raise


def parse_args(description, extra=None):
    """Parses the leading arguments every compat test takes and leaves the rest in
    sys.argv for unittest. `extra(parser)` may add the script's own options."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--kvstore", required=True, help="path of build/bin/kvstore")
    p.add_argument("--etcd", default="/usr/bin/etcd")
    p.add_argument("--etcdctl", default="/usr/bin/etcdctl")
    p.add_argument("--stubs", default="",
                   help="directory of the Python stubs generated from proto/")
    if extra is not None:
        extra(p)
    args, rest = p.parse_known_args()
    sys.argv = [sys.argv[0]] + rest
    return args


def import_stubs(stub_dir):
    """Imports the Python code generated from our protos (see test/compat/CMakeLists.txt)
    and returns (kv_pb2, rpc_pb2, rpc_pb2_grpc)."""
    if not stub_dir or not os.path.isfile(
            os.path.join(stub_dir, "etcd", "etcdserverpb", "rpc_pb2_grpc.py")):
        raise MemberError(f"no generated stubs in {stub_dir!r}: build the target "
                          "compat_python_stubs (part of `cmake --build build`)")
    if stub_dir not in sys.path:
        sys.path.insert(0, stub_dir)
    from etcd.mvccpb import kv_pb2  # noqa: E402
    from etcd.etcdserverpb import rpc_pb2, rpc_pb2_grpc  # noqa: E402
    return kv_pb2, rpc_pb2, rpc_pb2_grpc
