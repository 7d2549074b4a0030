"""etcdctl 3.4 (ETCDCTL_API=3) against our kvstore, side by side with a real etcd 3.4.

Every command runs against both members. A test asserts three things: etcd prints
what the test expects (computed from the sequence of commands, never copied from a
run, so a wrong expectation shows up against etcd), and our member prints exactly
what etcd prints after normalizing what legitimately differs: cluster and member
ids, the raft term, ports, lease ids (random in etcd; mapped to L1, L2, ... in the
order the test granted them) and durations.

etcdctl 3.4 has no `get --count-only` (added in 3.5) and its `txn` parser panics on
any lease("k") compare (clientv3.Compare is handed a string): count_only and lease
compares are covered by differential_test.py and python_etcd3_test.py instead.

    /usr/bin/python3 test/compat/etcdctl_test.py --kvstore build/bin/kvstore [-k pattern]
"""

import base64
import hashlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import members  # noqa: E402

ARGS = None

COMPACTED = "etcdserver: mvcc: required revision has been compacted"
FUTURE = "etcdserver: mvcc: required revision is a future revision"


def b64(s):
    return base64.b64encode(s.encode()).decode()


class Result:
    def __init__(self, rc, out, err):
        self.rc = rc
        self.out = out
        # etcdctl's client logs JSON lines on stderr ("retrying of unary invoker
        # failed", snapshot progress); what it says to the user is the rest.
        self.err = "\n".join(l for l in err.splitlines() if not l.startswith("{"))

    def __repr__(self):
        return f"rc={self.rc}\nstdout:\n{self.out}\nstderr:\n{self.err}"


class Etcdctl:
    """Runs etcdctl against one member and normalizes what it prints."""

    def __init__(self, binary, member):
        self.binary = binary
        self.member = member
        self.member_id = None
        self.cluster_id = None
        self.leases = {}  # lease id -> label

    def command(self, *args):
        return [self.binary, f"--endpoints={self.member.endpoint}", "--dial-timeout=5s",
                "--command-timeout=15s", *args]

    def env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
        env["ETCDCTL_API"] = "3"
        return env

    def run(self, *args, stdin=None, timeout=30):
        p = subprocess.run(self.command(*args), input=stdin, capture_output=True, text=True,
                           env=self.env(), timeout=timeout)
        return Result(p.returncode, p.stdout, p.stderr)

    def popen(self, *args):
        return subprocess.Popen(members.die_with_parent(self.command(*args)),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=self.env(), stdin=subprocess.DEVNULL)

    # --- normalization -----------------------------------------------------

    def text(self, s):
        s = s.replace(f"127.0.0.1:{self.member.client_port}", "127.0.0.1:CLIENT")
        s = s.replace(f"127.0.0.1:{self.member.peer_port}", "127.0.0.1:PEER")

        def hex_id(m):
            v = int(m.group(0), 16)
            if v == self.member_id:
                return "MEMBER"
            if v == self.cluster_id:
                return "CLUSTER"
            return self.leases.get(v, m.group(0))

        s = re.sub(r"\b[0-9a-f]{8,16}\b", hex_id, s)
        s = re.sub(r"took = \S+", "took = T", s)
        return s

    def json(self, s):
        return self.json_value(json.loads(s), None)

    def json_value(self, v, key):
        if isinstance(v, list):
            return [self.json_value(x, key) for x in v]
        if isinstance(v, dict):
            return {k: self.json_value(x, k) for k, x in v.items()
                    if k not in ("cluster_id", "member_id", "raft_term", "took")}
        if isinstance(v, int) and not isinstance(v, bool):
            if v == self.member_id and key in ("ID", "leader", "memberID"):
                return "MEMBER"
            if key in ("ID", "id", "lease") and v in self.leases:
                return self.leases[v]
        if isinstance(v, str):
            return self.text(v)
        return v


class WatchProcess:
    """`etcdctl watch ...` as a child process whose stdout lines are read with a timeout."""

    def __init__(self, ctl, *args):
        self.proc = ctl.popen("watch", *args)
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def read(self, n, timeout=10.0):
        """Up to n lines; fewer if the process ends or the timeout passes."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            out.append(line)
        return out

    def read_for(self, seconds):
        """Whatever arrives within `seconds` (to show that nothing more came)."""
        return self.read(1 << 30, timeout=seconds)

    def wait(self, timeout=10.0):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        return self.proc.returncode

    def close(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.reader.join(5)
        err = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return "\n".join(l for l in err.splitlines() if not l.startswith("{"))


class Model:
    """What the key space must hold: key -> dict(value, create, mod, version, lease)."""

    def __init__(self):
        self.rev = 1
        self.kvs = {}
        self.history = {}  # revision -> copy of kvs after it

    def put(self, key, value=None, lease=0):
        """value None: --ignore-value; lease None: --ignore-lease."""
        self.rev += 1
        old = self.kvs.get(key)
        kv = {"value": value if value is not None else old["value"],
              "create": old["create"] if old else self.rev, "mod": self.rev,
              "version": old["version"] + 1 if old else 1,
              "lease": lease if lease is not None else old["lease"]}
        self.kvs[key] = kv
        self._record()
        return old

    def delete(self, keys):
        keys = [k for k in keys if k in self.kvs]
        if keys:
            self.rev += 1
            olds = [self.kvs.pop(k) | {"key": k} for k in sorted(keys)]
            self._record()
            return olds
        return []

    def txn_writes(self, puts=(), deletes=()):
        """One revision for all of a txn's writes."""
        self.rev += 1
        for key, value in puts:
            old = self.kvs.get(key)
            self.kvs[key] = {"value": value, "create": old["create"] if old else self.rev,
                             "mod": self.rev, "version": old["version"] + 1 if old else 1,
                             "lease": 0}
        for key in deletes:
            self.kvs.pop(key, None)
        self._record()

    def revoke(self, lease):
        return self.delete([k for k, kv in self.kvs.items() if kv["lease"] == lease])

    def _record(self):
        self.history[self.rev] = {k: dict(v) for k, v in self.kvs.items()}

    def at(self, rev):
        return self.history[rev] if rev in self.history else {}

    def keys(self, prefix=None, start=None, end=None, rev=None):
        kvs = self.at(rev) if rev else self.kvs
        out = []
        for k in sorted(kvs):
            if prefix is not None and not k.startswith(prefix):
                continue
            if start is not None and k < start:
                continue
            if end is not None and k >= end:
                continue
            out.append(k)
        return out, kvs

    @staticmethod
    def kv_json(key, kv, lease_label=None, keys_only=False):
        d = {"key": b64(key), "create_revision": kv["create"], "mod_revision": kv["mod"],
             "version": kv["version"]}
        if kv["value"] and not keys_only:
            d["value"] = b64(kv["value"])
        if kv["lease"]:
            d["lease"] = lease_label(kv["lease"])
        return d


class EtcdctlTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.ours, cls.ref = members.start_pair(ARGS)
        try:
            cls.ctl_ours = Etcdctl(ARGS.etcdctl, cls.ours)
            cls.ctl_ref = Etcdctl(ARGS.etcdctl, cls.ref)
            for ctl in (cls.ctl_ours, cls.ctl_ref):
                r = ctl.run("get", "no-such-key", "-w", "json")
                if r.rc != 0:
                    raise AssertionError(f"{ctl.member.kind}: get failed: {r}")
                header = json.loads(r.out)["header"]
                ctl.member_id, ctl.cluster_id = header["member_id"], header["cluster_id"]
            cls.model = Model()
            cls.lease_count = 0
            cls.lease_ttls = {}  # label -> granted TTL
            cls.live_leases = set()  # labels
            cls.lease_label_ids = {}  # label -> (our id, etcd id)
        except BaseException:
            cls.ours.close()
            cls.ref.close()
            raise

    @classmethod
    def tearDownClass(cls):
        for m in (cls.ours, cls.ref):
            m.close()

    def setUp(self):
        for m in (self.ours, self.ref):
            if not m.running():
                raise unittest.SkipTest(f"{m.kind} is not running:\n{m.log_tail()}")
        self.realign()

    def tearDown(self):
        for m in (self.ours, self.ref):
            if not m.running():
                self.fail(f"{m.kind} died:\n{m.log_tail()}")

    def realign(self):
        """Brings both members back to the same revision and key space after a failed
        test left them apart (so that one failure does not fail every later test), and
        reloads the model from etcd. A no-op when they agree."""
        def state(ctl):
            r = ctl.run("get", "", "--from-key", "-w", "json")
            if r.rc != 0:
                raise AssertionError(f"{ctl.member.kind}: cannot read: {r}")
            j = ctl.json(r.out)
            return j["header"]["revision"], {kv["key"]: kv for kv in j.get("kvs", [])}

        (rev_o, kvs_o), (rev_e, kvs_e) = state(self.ctl_ours), state(self.ctl_ref)
        if (rev_o, kvs_o) != (rev_e, kvs_e):
            sys.stderr.write(f"\nrealigning members: revisions {rev_o} (ours) and {rev_e}\n")
            for k in sorted(set(kvs_o) | set(kvs_e)):
                if kvs_o.get(k) != kvs_e.get(k):
                    key = base64.b64decode(k).decode()
                    for ctl in (self.ctl_ours, self.ctl_ref):
                        ctl.run("del", key)
            (rev_o, _), (rev_e, _) = state(self.ctl_ours), state(self.ctl_ref)
            lower = self.ctl_ours if rev_o < rev_e else self.ctl_ref
            for _ in range(abs(rev_o - rev_e)):
                lower.run("put", "~~pad", "x")
            for ctl in (self.ctl_ours, self.ctl_ref):
                ctl.run("put", "~~pad", "x")
                ctl.run("del", "~~pad")
            (rev_o, kvs_o), (rev_e, kvs_e) = state(self.ctl_ours), state(self.ctl_ref)
            if (rev_o, kvs_o) != (rev_e, kvs_e):
                raise AssertionError(f"cannot realign the members: {rev_o} vs {rev_e}")
        self.resync_model()

    # --- running on both ---------------------------------------------------

    def both(self, *args, stdin=None, expect=None, rc=0, err=None):
        """Runs etcdctl on both members. `expect`: what etcd must print (normalized);
        `err`: the user-facing stderr etcd must print. Ours must print the same."""
        ours = self.ctl_ours.run(*args, stdin=stdin)
        ref = self.ctl_ref.run(*args, stdin=stdin)
        cmd = "etcdctl " + " ".join(args) + (f" <<< {stdin!r}" if stdin else "")
        ref_n = (ref.rc, self.ctl_ref.text(ref.out), self.ctl_ref.text(ref.err))
        ours_n = (ours.rc, self.ctl_ours.text(ours.out), self.ctl_ours.text(ours.err))
        self.assertEqual(ref.rc, rc, f"etcd itself: {cmd}\n{ref}")
        if expect is not None:
            self.assertEqual(ref_n[1], expect, f"etcd itself: {cmd}")
        if err is not None:
            self.assertEqual(ref_n[2], err, f"etcd itself: {cmd}")
        self.assertEqual(ours_n, ref_n, f"ours vs etcd: {cmd}\nours: {ours}\netcd: {ref}")
        return ours, ref

    def both_json(self, *args, stdin=None, expect=None):
        """Like both() for -w json: equal objects after normalization."""
        ours = self.ctl_ours.run(*args, "-w", "json", stdin=stdin)
        ref = self.ctl_ref.run(*args, "-w", "json", stdin=stdin)
        cmd = "etcdctl " + " ".join(args) + " -w json"
        self.assertEqual(ref.rc, 0, f"etcd itself: {cmd}\n{ref}")
        ref_j = self.ctl_ref.json(ref.out)
        if expect is not None:
            self.assertEqual(ref_j, expect, f"etcd itself: {cmd}")
        self.assertEqual(ours.rc, 0, f"ours: {cmd}\n{ours}")
        ours_j = self.ctl_ours.json(ours.out)
        self.assertEqual(ours_j, ref_j, f"ours vs etcd: {cmd}")
        return ours_j

    # --- helpers that keep the model in step -------------------------------

    def put(self, key, value, *flags, prev=None):
        expect = "OK\n"
        if prev is not None:
            old = self.model.kvs.get(key)
            expect += f"{key}\n{old['value']}\n" if old else ""
        self.both("put", key, value, *flags, expect=expect)
        return self.model.put(key, value)

    def grant(self, ttl):
        """Grants a lease on both; returns its label (L1, L2, ...)."""
        ours = self.ctl_ours.run("lease", "grant", str(ttl))
        ref = self.ctl_ref.run("lease", "grant", str(ttl))
        pattern = re.compile(r"^lease ([0-9a-f]{16}) granted with TTL\((\d+)s\)\n$")
        m_ref = pattern.match(ref.out)
        self.assertIsNotNone(m_ref, f"etcd itself: lease grant {ttl}: {ref}")
        m_ours = pattern.match(ours.out)
        self.assertIsNotNone(m_ours, f"ours: lease grant {ttl}: {ours}\netcd: {ref}")
        self.assertEqual(m_ours.group(2), m_ref.group(2), f"granted TTL\nours: {ours}")
        cls = type(self)
        cls.lease_count += 1
        label = f"L{cls.lease_count}"
        ours_id, ref_id = int(m_ours.group(1), 16), int(m_ref.group(1), 16)
        self.assertNotIn(ours_id, self.ctl_ours.leases, "ours: lease id granted twice")
        self.ctl_ours.leases[ours_id] = label
        self.ctl_ref.leases[ref_id] = label
        cls.lease_label_ids[label] = (ours_id, ref_id)
        cls.lease_ttls[label] = ttl
        cls.live_leases.add(label)
        return label

    def lease_ids(self, label):
        return self.lease_label_ids[label]

    def both_with_lease(self, label, make_args, **kw):
        """Runs a command that names a lease: each member gets its own id."""
        ours_id, ref_id = self.lease_ids(label)
        ours = self.ctl_ours.run(*make_args(format(ours_id, "x")))
        ref = self.ctl_ref.run(*make_args(format(ref_id, "x")))
        cmd = "etcdctl " + " ".join(make_args(label))
        self.assertEqual(ref.rc, kw.get("rc", 0), f"etcd itself: {cmd}\n{ref}")
        ref_n = (ref.rc, self.ctl_ref.text(ref.out), self.ctl_ref.text(ref.err))
        ours_n = (ours.rc, self.ctl_ours.text(ours.out), self.ctl_ours.text(ours.err))
        if kw.get("expect") is not None:
            self.assertEqual(ref_n[1], kw["expect"], f"etcd itself: {cmd}")
        if kw.get("err") is not None:
            self.assertEqual(ref_n[2], kw["err"], f"etcd itself: {cmd}")
        self.assertEqual(ours_n, ref_n, f"ours vs etcd: {cmd}\nours: {ours}\netcd: {ref}")
        return ours_n, ref_n

    def lease_label(self, ref_id):
        return self.ctl_ref.leases[ref_id]

    def header(self, rev):
        return {"header": {"revision": rev}}

    def range_json(self, keys, kvs, count=None, more=False, keys_only=False, rev=None):
        d = self.header(rev if rev is not None else self.model.rev)
        if keys:
            d["kvs"] = [Model.kv_json(k, kvs[k], self.lease_label, keys_only) for k in keys]
        n = len(keys) if count is None else count
        if more:
            d["more"] = True
        if n:
            d["count"] = n
        return d

    @staticmethod
    def simple(keys, kvs, keys_only=False):
        if keys_only:
            return "".join(f"{k}\n\n" for k in keys)
        return "".join(f"{k}\n{kvs[k]['value']}\n" for k in keys)

    def current_revision(self):
        j = self.both_json("get", "no-such-key")
        return j["header"]["revision"]

    # --- put ---------------------------------------------------------------

    def test_put(self):
        self.assertEqual(self.current_revision(), self.model.rev)
        self.put("put/a", "1")
        self.put("put/a", "2", "--prev-kv", prev=True)
        self.put("put/b", "x", "--prev-kv", prev=True)  # no previous: just OK
        # --ignore-value keeps the value and makes a new revision and version.
        self.both("put", "put/a", "--ignore-value", expect="OK\n")
        self.model.put("put/a")
        self.both_json("get", "put/a",
                       expect=self.range_json(["put/a"], self.model.kvs))
        self.assertEqual(self.model.kvs["put/a"]["version"], 3)
        # ... and fails on a missing key, changing nothing.
        self.both("put", "put/none", "--ignore-value", rc=1, expect="",
                  err="Error: etcdserver: key not found")
        # Leases: attach, keep with --ignore-lease, keep value and lease together.
        lease = self.grant(600)
        self.both_with_lease(lease, lambda l: ["put", "put/l", "v1", f"--lease={l}"],
                             expect="OK\n")
        self.model.put("put/l", "v1", self.lease_ids(lease)[1])
        self.both("put", "put/l", "v2", "--ignore-lease", expect="OK\n")
        self.model.put("put/l", "v2", lease=None)
        self.both("put", "put/l", "--ignore-value", "--ignore-lease", expect="OK\n")
        self.model.put("put/l", None, lease=None)
        self.assertEqual(self.model.kvs["put/l"]["lease"], self.lease_ids(lease)[1])
        self.both_json("get", "put/", "--prefix",
                       expect=self.range_json(["put/a", "put/b", "put/l"], self.model.kvs))
        self.both("put", "put/x", "v", "--lease=1234abcd", rc=1, expect="",
                  err="Error: etcdserver: requested lease not found")
        # An empty value is a value.
        self.both("put", "put/empty", "", expect="OK\n")
        self.model.put("put/empty", "")
        self.both_json("put", "put/empty", "e", "--prev-kv",
                       expect={**self.header(self.model.rev + 1),
                               "prev_kv": Model.kv_json("put/empty", self.model.kvs["put/empty"])})
        self.model.put("put/empty", "e")
        self.assertEqual(self.current_revision(), self.model.rev)

    # --- get ---------------------------------------------------------------

    def test_get(self):
        # Distinct values, versions, create and mod revisions so every sort is total.
        for key, value, times in [("get/c", "b", 1), ("get/a", "d", 2), ("get/d", "a", 3),
                                  ("get/b", "c", 4)]:
            for i in range(times):
                self.put(key, value if i == times - 1 else f"{value}{i}")
        kvs = self.model.kvs
        keys, _ = self.model.keys(prefix="get/")
        self.both("get", "get/a", expect=self.simple(["get/a"], kvs))
        self.both("get", "get/none", expect="")
        self.both("get", "get/", "--prefix", expect=self.simple(keys, kvs))
        self.both("get", "get/b", "get/d", expect=self.simple(["get/b", "get/c"], kvs))
        self.both_json("get", "get/", "--prefix", expect=self.range_json(keys, kvs))
        self.both("get", "get/", "--prefix", "--keys-only",
                  expect=self.simple(keys, kvs, keys_only=True))
        self.both_json("get", "get/", "--prefix", "--keys-only",
                       expect=self.range_json(keys, kvs, keys_only=True))
        self.both("get", "get/", "--prefix", "--consistency=s", expect=self.simple(keys, kvs))
        # Sorted by value even though the values are not returned.
        by_value = sorted(keys, key=lambda k: kvs[k]["value"])
        self.both("get", "get/", "--prefix", "--keys-only", "--sort-by=VALUE",
                  expect=self.simple(by_value, kvs, keys_only=True))
        self.both_json("get", "get/", "--prefix", "--keys-only", "--sort-by=VALUE",
                       "--order=DESCEND",
                       expect=self.range_json(by_value[::-1], kvs, keys_only=True))
        self.both_json("get", "get/", "--prefix", "--limit=2",
                       expect=self.range_json(keys[:2], kvs, count=4, more=True))
        self.both("get", "get/", "--prefix", "--limit=2", expect=self.simple(keys[:2], kvs))
        self.both("get", "get/", "--prefix", "--order=DESCEND",
                  expect=self.simple(keys[::-1], kvs))
        targets = {"KEY": lambda k: k, "VALUE": lambda k: kvs[k]["value"],
                   "VERSION": lambda k: kvs[k]["version"], "CREATE": lambda k: kvs[k]["create"],
                   "MODIFY": lambda k: kvs[k]["mod"]}
        for target, sort_key in targets.items():
            for order in ("ASCEND", "DESCEND"):
                want = sorted(keys, key=sort_key, reverse=order == "DESCEND")
                self.both("get", "get/", "--prefix", f"--sort-by={target}", f"--order={order}",
                          expect=self.simple(want, kvs))
            want = sorted(keys, key=sort_key)
            self.both("get", "get/", "--prefix", f"--sort-by={target}", "--limit=3",
                      expect=self.simple(want[:3], kvs))
        # Reads in the past: every revision of this test's writes.
        first = min(kv["create"] for k, kv in kvs.items() if k.startswith("get/"))
        for rev in range(first, self.model.rev + 1):
            past_keys, past = self.model.keys(prefix="get/", rev=rev)
            self.both("get", "get/", "--prefix", f"--rev={rev}",
                      expect=self.simple(past_keys, past))
            self.both_json("get", "get/", "--prefix", f"--rev={rev}",
                           expect=self.range_json(past_keys, past, rev=self.model.rev))
        self.both("get", "get/a", f"--rev={self.model.rev + 5}", rc=1, expect="",
                  err=f"Error: {FUTURE}")

    def test_get_from_key(self):
        # "~" sorts above every other test's keys, so --from-key sees only these.
        for k in ("~f/a", "~f/b", "~f/c", "~g"):
            self.put(k, k.upper())
        keys, kvs = self.model.keys(start="~f/b")
        self.assertEqual(keys, ["~f/b", "~f/c", "~g"])
        self.both("get", "~f/b", "--from-key", expect=self.simple(keys, kvs))
        self.both("get", "~f/b", "--from-key", "--limit=1", "--keys-only",
                  expect=self.simple(keys[:1], kvs, keys_only=True))
        self.both_json("get", "~f/b", "--from-key", "--limit=2",
                       expect=self.range_json(keys[:2], kvs, count=3, more=True))
        self.both("del", "~f/c", "--from-key", "--prev-kv",
                  expect="2\n" + self.simple(["~f/c", "~g"], kvs))
        self.model.delete(["~f/c", "~g"])
        keys, kvs = self.model.keys(start="~")
        self.both("get", "~", "--from-key", expect=self.simple(keys, kvs))

    # --- del ---------------------------------------------------------------

    def test_del(self):
        for k in ("del/a", "del/b", "del/b/1", "del/b/2", "del/c"):
            self.put(k, "v-" + k)
        self.both("del", "del/a", expect="1\n")
        self.model.delete(["del/a"])
        rev = self.model.rev
        self.both("del", "del/a", expect="0\n")  # nothing deleted: no new revision
        self.assertEqual(self.current_revision(), rev)
        kvs = dict(self.model.kvs)
        self.both("del", "del/b/", "--prefix", "--prev-kv",
                  expect="2\n" + self.simple(["del/b/1", "del/b/2"], kvs))
        self.model.delete(["del/b/1", "del/b/2"])
        self.both_json("del", "del/", "--prefix", "--prev-kv",
                       expect={**self.header(self.model.rev + 1), "deleted": 2,
                               "prev_kvs": [Model.kv_json(k, kvs[k]) for k in
                                            ("del/b", "del/c")]})
        self.model.delete(["del/b", "del/c"])
        self.both("get", "del/", "--prefix", expect="")
        self.assertEqual(self.current_revision(), self.model.rev)

    # --- txn ---------------------------------------------------------------

    @staticmethod
    def txn_text(compares, success, failure):
        """etcdctl txn's non-interactive input: each section's lines, then an empty line."""
        return "".join("".join(line + "\n" for line in section) + "\n"
                       for section in (compares, success, failure))

    def test_txn(self):
        self.put("txn/k1", "v1")
        k1 = dict(self.model.kvs["txn/k1"])
        self.put("txn/k2", "v2")
        self.put("txn/k3", "v3")
        compares = ['value("txn/k1") = "v1"', 'version("txn/k1") = "1"',
                    f'create("txn/k1") = "{k1["create"]}"', f'mod("txn/k1") = "{k1["mod"]}"',
                    'version("txn/none") = "0"', 'value("txn/k2") != "x"',
                    f'mod("txn/k3") > "{k1["mod"]}"', f'create("txn/k2") < "{self.model.rev}"']
        kvs = dict(self.model.kvs)
        self.both("txn", stdin=self.txn_text(
            compares, ["put txn/k1 v1b", "get txn/k2", "del txn/k3"], ["put txn/fail x"]),
            expect="SUCCESS\n\nOK\n\n" + self.simple(["txn/k2"], kvs) + "\n1\n")
        self.model.txn_writes(puts=[("txn/k1", "v1b")], deletes=["txn/k3"])
        # Any one false compare takes the failure branch.
        for bad in ['value("txn/k1") = "v1"', 'version("txn/k1") = "1"',
                    f'create("txn/k1") > "{k1["create"]}"', f'mod("txn/k1") = "{k1["mod"]}"',
                    'version("txn/k3") > "0"', 'value("txn/k2") < "v2"']:
            kvs = dict(self.model.kvs)
            self.both("txn", stdin=self.txn_text(
                ['value("txn/k2") = "v2"', bad], ["put txn/wrong x"],
                ["get txn/k1", "put txn/k4 v4"]),
                expect="FAILURE\n\n" + self.simple(["txn/k1"], kvs) + "\nOK\n")
            self.model.txn_writes(puts=[("txn/k4", "v4")])
        # Only reads: no new revision.
        rev = self.model.rev
        self.both("txn", stdin=self.txn_text([], ["get txn/k4"], []),
                  expect="SUCCESS\n\n" + self.simple(["txn/k4"], self.model.kvs))
        self.assertEqual(self.current_revision(), rev)
        kvs = dict(self.model.kvs)
        ranged = self.model.keys(prefix="txn/")[0]
        self.both_json("txn", stdin=self.txn_text(
            [f'mod("txn/k4") = "{kvs["txn/k4"]["mod"]}"'],
            ["get txn/ --prefix", "put txn/k5 v5", "del txn/k4"], []),
            expect={**self.header(self.model.rev + 1), "succeeded": True, "responses": [
                {"Response": {"ResponseRange": {
                    "header": {"revision": self.model.rev},
                    "kvs": [Model.kv_json(k, kvs[k]) for k in ranged], "count": len(ranged)}}},
                {"Response": {"ResponsePut": {"header": {"revision": self.model.rev + 1}}}},
                {"Response": {"ResponseDeleteRange": {
                    "header": {"revision": self.model.rev + 1}, "deleted": 1}}}]})
        self.model.txn_writes(puts=[("txn/k5", "v5")], deletes=["txn/k4"])
        keys, kvs = self.model.keys(prefix="txn/")
        self.both_json("get", "txn/", "--prefix", expect=self.range_json(keys, kvs))
        # A txn that writes one key twice is refused whole.
        self.both("txn", stdin=self.txn_text([], ["put txn/d 1", "put txn/d 2"], []), rc=1,
                  expect="", err="Error: etcdserver: duplicate key given in txn request")
        self.assertEqual(self.current_revision(), self.model.rev)

    # --- watch -------------------------------------------------------------

    @staticmethod
    def event_lines(events, prev_kv):
        lines = []
        for typ, key, value, prev in events:
            lines.append(typ)
            if prev_kv and prev is not None:
                lines += [key, prev]
            lines += [key, value]
        return lines

    def watch_both(self, args, n_lines, expect):
        """Starts `etcdctl watch args` on both, reads n_lines, checks a short while that
        nothing more comes, and compares with each other and with `expect`."""
        watches = [WatchProcess(self.ctl_ours, *args), WatchProcess(self.ctl_ref, *args)]
        try:
            got = [w.read(n_lines) + w.read_for(0.5) for w in watches]
        finally:
            errs = [w.close() for w in watches]
        cmd = "etcdctl watch " + " ".join(args)
        got_n = [[c.text(l) for l in g] for c, g in zip((self.ctl_ours, self.ctl_ref), got)]
        self.assertEqual(got_n[1], expect, f"etcd itself: {cmd}\nstderr: {errs[1]}")
        self.assertEqual(got_n[0], got_n[1], f"ours vs etcd: {cmd}\nours stderr: {errs[0]}")

    def test_watch_history(self):
        start = self.model.rev + 1
        events = []
        for key, value in [("watch/a", "1"), ("watch/b", "2"), ("watch/a", "3")]:
            old = self.model.kvs.get(key)
            self.put(key, value)
            events.append(("PUT", key, value, old["value"] if old else None))
        old = self.model.kvs["watch/a"]
        self.both("del", "watch/a", expect="1\n")
        self.model.delete(["watch/a"])
        events.append(("DELETE", "watch/a", "", old["value"]))
        self.put("other/a", "not watched")
        self.put("watch/a", "4")
        events.append(("PUT", "watch/a", "4", None))

        lines = self.event_lines(events, prev_kv=False)
        self.watch_both(["--prefix", "watch/", f"--rev={start}"], len(lines), lines)
        lines = self.event_lines(events, prev_kv=True)
        self.watch_both(["--prefix", "watch/", f"--rev={start}", "--prev-kv"], len(lines),
                        lines)
        only_a = [e for e in events if e[1] == "watch/a"]
        lines = self.event_lines(only_a, prev_kv=False)
        self.watch_both(["watch/a", f"--rev={start}"], len(lines), lines)
        # From the middle of the history: starts at that revision's event.
        lines = self.event_lines(events[2:], prev_kv=False)
        self.watch_both(["--prefix", "watch/", f"--rev={start + 2}"], len(lines), lines)
        # A range [watch/b, watch/c).
        lines = self.event_lines([e for e in events if e[1] == "watch/b"], prev_kv=False)
        self.watch_both(["watch/b", "watch/c", f"--rev={start}"], len(lines), lines)

    def test_watch_future_revision(self):
        """A watch from a revision not yet written sees exactly the writes from there."""
        start = self.model.rev + 1
        watches = [WatchProcess(c, "--prefix", "future/", f"--rev={start}", "--prev-kv")
                   for c in (self.ctl_ours, self.ctl_ref)]
        try:
            time.sleep(0.3)
            self.put("future/a", "1")
            self.put("future/a", "2")
            self.both("del", "future/", "--prefix", expect="1\n")
            self.model.delete(["future/a"])
            expect = ["PUT", "future/a", "1", "PUT", "future/a", "1", "future/a", "2",
                      "DELETE", "future/a", "2", "future/a", ""]
            got = [w.read(len(expect)) + w.read_for(0.5) for w in watches]
        finally:
            errs = [w.close() for w in watches]
        self.assertEqual(got[1], expect, f"etcd itself\nstderr: {errs[1]}")
        self.assertEqual(got[0], got[1], f"ours vs etcd\nours stderr: {errs[0]}")

    def test_watch_live(self):
        """A watch from now on (no --rev): probe puts until it sees one; the writes that
        follow must then show up exactly. Each member gets its own number of probes, so
        the revisions are evened out afterwards."""
        writes = {}
        for ctl in (self.ctl_ours, self.ctl_ref):
            who = ctl.member.kind
            w = WatchProcess(ctl, "--prefix", "live/", "--prev-kv")
            try:
                probes = 0
                seen = []
                while not seen and probes < 100:
                    self.assertEqual(ctl.run("put", "live/probe", str(probes)).rc, 0, who)
                    probes += 1
                    seen = w.read(1, timeout=0.2)
                self.assertTrue(seen, f"{who}: the watch saw none of {probes} probes")
                first = seen + w.read_for(0.5)
                last = str(probes - 1)
                # The first probe seen is the last one made: PUT, key, [prev], value.
                self.assertEqual(first[:2], ["PUT", "live/probe"], f"{who}: {first}")
                self.assertEqual(first[-1], last, f"{who}: {first}")
                self.assertIn(len(first), (3, 5), f"{who}: {first}")
                for args in (["put", "live/x", "1"], ["put", "live/x", "2"],
                             ["del", "live/", "--prefix"]):
                    self.assertEqual(ctl.run(*args).rc, 0, who)
                expect = ["PUT", "live/x", "1",
                          "PUT", "live/x", "1", "live/x", "2",
                          "DELETE", "live/probe", last, "live/probe", "",
                          "DELETE", "live/x", "2", "live/x", ""]
                got = w.read(len(expect)) + w.read_for(0.5)
                self.assertEqual(got, expect, f"{who}: events after the probe")
                writes[who] = probes + 3
            finally:
                w.close()
        # Even out the revisions: pad both, the one with fewer writes more, then drop
        # the pad key on both.
        most = max(writes.values())
        for ctl in (self.ctl_ours, self.ctl_ref):
            for _ in range(most - writes[ctl.member.kind] + 1):
                self.assertEqual(ctl.run("put", "live/pad", "x").rc, 0)
            self.assertEqual(ctl.run("del", "live/pad").rc, 0)
        self.resync_model()
        self.assertEqual(self.current_revision(), self.model.rev)

    def resync_model(self):
        """After writes made outside the model (live watch probes), reload it from etcd."""
        j = self.ctl_ref.json(self.ctl_ref.run("get", "", "--from-key", "-w", "json").out)
        m = type(self).model
        m.rev = j["header"]["revision"]
        m.kvs = {}
        for kv in j.get("kvs", []):
            lease = kv.get("lease", 0)
            if isinstance(lease, str):
                lease = self.lease_ids(lease)[1]
            m.kvs[base64.b64decode(kv["key"]).decode()] = {
                "value": base64.b64decode(kv.get("value", "")).decode(),
                "create": kv["create_revision"], "mod": kv["mod_revision"],
                "version": kv["version"], "lease": lease}
        m._record()

    # --- leases ------------------------------------------------------------

    def test_lease(self):
        a = self.grant(300)
        b = self.grant(400)
        self.both_with_lease(a, lambda l: ["put", "lease/k1", "v", f"--lease={l}"], expect="OK\n")
        self.model.put("lease/k1", "v", self.lease_ids(a)[1])
        self.both_with_lease(a, lambda l: ["put", "lease/k2", "v", f"--lease={l}"], expect="OK\n")
        self.model.put("lease/k2", "v", self.lease_ids(a)[1])

        ttl_re = re.compile(r"remaining\((\d+)s\)")
        keys_re = re.compile(r"attached keys\(\[([^\]]*)\]\)")

        def timetolive(label, keys, granted):
            args = lambda l: ["lease", "timetolive", l] + (["--keys"] if keys else [])
            ours_id, ref_id = self.lease_ids(label)
            outs = []
            for ctl, lid in ((self.ctl_ours, ours_id), (self.ctl_ref, ref_id)):
                r = ctl.run(*args(format(lid, "x")))
                self.assertEqual(r.rc, 0, f"{ctl.member.kind}: {r}")
                m = ttl_re.search(r.out)
                self.assertIsNotNone(m, f"{ctl.member.kind}: {r}")
                self.assertTrue(granted - 10 <= int(m.group(1)) <= granted,
                                f"{ctl.member.kind}: remaining TTL: {r}")
                text = ttl_re.sub("remaining(R)", ctl.text(r.out))
                # etcd lists a lease's keys in no fixed order: compare them sorted.
                text = keys_re.sub(
                    lambda k: "attached keys([%s])" % " ".join(sorted(k.group(1).split())), text)
                outs.append(text)
            return outs

        ours, ref = timetolive(a, True, 300)
        self.assertEqual(
            ref, f"lease {a} granted with TTL(300s), remaining(R), "
                 f"attached keys([lease/k1 lease/k2])\n")
        self.assertEqual(ours, ref)
        ours, ref = timetolive(b, False, 400)
        self.assertEqual(ref, f"lease {b} granted with TTL(400s), remaining(R)\n")
        self.assertEqual(ours, ref)
        ours, ref = timetolive(b, True, 400)
        self.assertEqual(ref, f"lease {b} granted with TTL(400s), remaining(R), "
                              f"attached keys([])\n")
        self.assertEqual(ours, ref)

        # The list comes in no particular order.
        ours = self.ctl_ours.run("lease", "list")
        ref = self.ctl_ref.run("lease", "list")
        live = sorted(self.live_leases)

        def listed(ctl, r):
            lines = ctl.text(r.out).splitlines()
            return lines[0], sorted(lines[1:])

        self.assertEqual(listed(self.ctl_ref, ref), (f"found {len(live)} leases", live))
        self.assertEqual(listed(self.ctl_ours, ours), listed(self.ctl_ref, ref), f"{ours}")

        self.both_with_lease(a, lambda l: ["lease", "keep-alive", "--once", l],
                             expect=f"lease {a} keepalived with TTL(300)\n")

        # Revoking deletes the attached keys in one revision.
        self.both_with_lease(a, lambda l: ["lease", "revoke", l], expect=f"lease {a} revoked\n")
        self.model.revoke(self.lease_ids(a)[1])
        type(self).live_leases.discard(a)
        self.both("get", "lease/", "--prefix", expect="")
        self.assertEqual(self.current_revision(), self.model.rev)
        self.both_with_lease(a, lambda l: ["lease", "timetolive", l, "--keys"],
                             expect=f"lease {a} already expired\n")
        self.both_with_lease(a, lambda l: ["lease", "revoke", l], rc=1, expect="",
                             err="Error: failed to revoke lease "
                                 "(etcdserver: requested lease not found)")
        self.both_with_lease(a, lambda l: ["lease", "keep-alive", "--once", l], rc=2,
                             expect="", err="Error: etcdserver: requested lease not found")
        self.both_with_lease(b, lambda l: ["lease", "revoke", l], expect=f"lease {b} revoked\n")
        type(self).live_leases.discard(b)
        # Revoking a lease with no keys makes no revision.
        self.assertEqual(self.current_revision(), self.model.rev)

    # --- compaction --------------------------------------------------------

    def test_compaction(self):
        revs = []
        for v in ("1", "2", "3"):
            self.put("compact/k", v)
            revs.append(self.model.rev)
        self.both("compaction", str(revs[1]), expect=f"compacted revision {revs[1]}\n")
        self.both("get", "compact/k", f"--rev={revs[0]}", rc=1, expect="",
                  err=f"Error: {COMPACTED}")
        self.both("get", "compact/k", f"--rev={revs[1]}", expect="compact/k\n2\n")
        self.both("get", "compact/k", f"--rev={revs[1]}", "--consistency=s",
                  expect="compact/k\n2\n")
        self.both("compaction", str(revs[0]), rc=1, expect="", err=f"Error: {COMPACTED}")
        self.both("compaction", str(self.model.rev + 10), rc=1, expect="",
                  err=f"Error: {FUTURE}")
        # A watch from below the compacted revision is canceled by the server.
        watches = [WatchProcess(c, "compact/k", f"--rev={revs[0]}")
                   for c in (self.ctl_ours, self.ctl_ref)]
        try:
            outs = [w.read(5, timeout=10) for w in watches]
            rcs = [w.wait() for w in watches]
        finally:
            errs = [w.close() for w in watches]
        self.assertEqual((outs[1], rcs[1], errs[1]),
                         ([], 5, f"watch was canceled ({COMPACTED})\n"
                                 "Error: watch is canceled by the server"), "etcd itself")
        self.assertEqual((outs[0], rcs[0], errs[0]), (outs[1], rcs[1], errs[1]),
                         "ours vs etcd: watch below the compacted revision")
        self.put("compact/k", "4")
        self.both("compaction", str(self.model.rev), "--physical",
                  expect=f"compacted revision {self.model.rev}\n")
        self.both("get", "compact/k", expect="compact/k\n4\n")
        self.both("get", "compact/k", f"--rev={revs[2]}", rc=1, expect="",
                  err=f"Error: {COMPACTED}")

    # --- maintenance and cluster --------------------------------------------

    def test_endpoint_status(self):
        before = {}
        for ctl in (self.ctl_ref, self.ctl_ours):  # etcd first: checks the checks
            who = ctl.member.kind
            r = ctl.run("endpoint", "status")
            self.assertEqual(r.rc, 0, f"{who}: {r}")
            f = r.out.rstrip("\n").split(", ")
            self.assertEqual(len(f), 10, f"{who}: {r}")
            self.assertEqual(f[0], ctl.member.endpoint, who)
            self.assertEqual(f[1], format(ctl.member_id, "x"), who)
            self.assertRegex(f[2], r"^3\.4\.\d+$", who)
            self.assertRegex(f[3], r"^\d+(\.\d+)? [kMG]?B$", who)
            self.assertEqual(f[4:6], ["true", "false"], f"{who}: leader, learner")
            term, index, applied = int(f[6]), int(f[7]), int(f[8])
            self.assertGreaterEqual(term, 1, who)
            self.assertGreaterEqual(index, applied, who)
            self.assertGreaterEqual(applied, 1, who)
            self.assertEqual(f[9], "", f"{who}: errors")

            r = ctl.run("endpoint", "status", "-w", "json")
            self.assertEqual(r.rc, 0, f"{who}: {r}")
            j = json.loads(r.out)
            self.assertEqual(len(j), 1, who)
            self.assertEqual(j[0]["Endpoint"], ctl.member.endpoint)
            s = j[0]["Status"]
            self.assertEqual(s["header"]["member_id"], ctl.member_id, who)
            self.assertEqual(s["header"]["cluster_id"], ctl.cluster_id, who)
            self.assertEqual(s["header"]["revision"], self.model.rev, who)
            self.assertEqual(s["leader"], ctl.member_id, who)
            self.assertEqual(s["raftTerm"], s["header"]["raft_term"], who)
            self.assertGreaterEqual(s["raftIndex"], s["raftAppliedIndex"], who)
            self.assertGreater(s["dbSize"], 0, who)
            self.assertRegex(s["version"], r"^3\.4\.\d+$", who)
            self.assertNotIn("isLearner", s, who)
            self.assertNotIn("errors", s, who)
            before[who] = s
        # Every write moves the raft index and applied index on.
        self.put("status/k", "v")
        for ctl in (self.ctl_ref, self.ctl_ours):
            who = ctl.member.kind
            r = ctl.run("endpoint", "status", "-w", "json")
            self.assertEqual(r.rc, 0, f"{who}: {r}")
            s = json.loads(r.out)[0]["Status"]
            self.assertGreater(s["raftAppliedIndex"], before[who]["raftAppliedIndex"], who)
            self.assertEqual(s["header"]["revision"], self.model.rev, who)

    def test_endpoint_health(self):
        # etcdctl 3.4 reports health on stderr.
        self.both("endpoint", "health", expect="",
                  err="127.0.0.1:CLIENT is healthy: successfully committed proposal: took = T")
        ours = self.ctl_ours.run("endpoint", "health", "-w", "json")
        ref = self.ctl_ref.run("endpoint", "health", "-w", "json")
        for ctl, r in ((self.ctl_ref, ref), (self.ctl_ours, ours)):
            self.assertEqual(r.rc, 0, f"{ctl.member.kind}: {r}")
            self.assertEqual(ctl.json(r.out), [{"endpoint": "127.0.0.1:CLIENT", "health": True}],
                             ctl.member.kind)

    def test_member_list(self):
        self.both("member", "list",
                  expect="MEMBER, started, default, http://127.0.0.1:PEER, "
                         "http://127.0.0.1:CLIENT, false\n")
        self.both_json("member", "list", expect={"header": {}, "members": [
            {"ID": "MEMBER", "name": "default", "peerURLs": ["http://127.0.0.1:PEER"],
             "clientURLs": ["http://127.0.0.1:CLIENT"]}]})
        # Column widths follow the ids (a hex id may have 15 digits): compare the cells.
        cmd = ("member", "list", "-w", "table")
        ours, ref = self.ctl_ours.run(*cmd), self.ctl_ref.run(*cmd)

        def cells(ctl, r):
            return r.rc, re.sub(r"[- ]+", " ", ctl.text(r.out))

        self.assertEqual(cells(self.ctl_ours, ours), cells(self.ctl_ref, ref))

    def test_alarm_list_and_defrag(self):
        self.both("alarm", "list", expect="")
        self.both("defrag", expect="Finished defragmenting etcd member[127.0.0.1:CLIENT]\n")
        # Still serving, nothing lost.
        keys, kvs = self.model.keys()
        self.both_json("get", "", "--from-key", expect=self.range_json(keys, kvs))

    def test_snapshot_save(self):
        self.put("snap/a", "1")
        self.put("snap/b", "2")
        with tempfile.TemporaryDirectory(prefix="compat-snap-") as d:
            paths = {}
            for ctl, who in ((self.ctl_ref, "etcd"), (self.ctl_ours, "ours")):
                path = os.path.join(d, f"{who}.db")
                r = ctl.run("snapshot", "save", path)
                self.assertEqual((r.rc, r.out), (0, f"Snapshot saved at {path}\n"), f"{who}: {r}")
                with open(path, "rb") as f:
                    data = f.read()
                # etcd's format: the database, then the SHA-256 of it.
                self.assertEqual(len(data) % 512, 32, f"{who}: size {len(data)}")
                self.assertEqual(hashlib.sha256(data[:-32]).digest(), data[-32:],
                                 f"{who}: checksum trailer")
                paths[who] = path
            self.restore_and_check(paths["ours"])

    def restore_and_check(self, snapshot):
        """`kvstore restore` makes a member whose key space is the snapshot's."""
        m = members.Member("kvstore", ARGS.kvstore, name="restored")
        try:
            m.client_port, m.peer_port = members.free_ports(2)
            r = subprocess.run(
                [ARGS.kvstore, "restore", "--snapshot", snapshot, "--data-dir", m.data_dir,
                 "--name", m.name, "--initial-cluster", f"{m.name}={m.peer_url}",
                 "--initial-advertise-peer-urls", m.peer_url],
                capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, f"kvstore restore: {r.stdout}\n{r.stderr}")
            m.start(keep_ports=True)
            ctl = Etcdctl(ARGS.etcdctl, m)
            got = json.loads(ctl.run("get", "", "--from-key", "-w", "json").out)
            want = json.loads(self.ctl_ours.run("get", "", "--from-key", "-w", "json").out)
            self.assertEqual(got.get("kvs"), want.get("kvs"), "restored key space")
            # The revision moves on and what is below it reads as compacted, so that
            # watchers re-list rather than miss events.
            snap_rev = want["header"]["revision"]
            self.assertGreater(got["header"]["revision"], snap_rev)
            r = ctl.run("get", "snap/a", f"--rev={snap_rev}")
            self.assertEqual((r.rc, r.err), (1, f"Error: {COMPACTED}"), f"{r}")
        finally:
            m.close()


def main():
    global ARGS
    ARGS = members.parse_args(__doc__)
    unittest.main(verbosity=2)


if __name__ == "__main__":
    main()
