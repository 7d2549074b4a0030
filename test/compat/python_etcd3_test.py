"""python3-etcd3 (Debian's, 0.12) against our kvstore.

Every scenario runs twice: against our member (OursTest) and against a real etcd 3.4
(EtcdTest). The expectations are computed from the sequence of calls; the etcd run
shows that they are etcd's behaviour, so a failure only in OursTest is ours.

Gaps of this client version, covered elsewhere (differential_test.py): its range
builder accepts limit, revision and count_only but never sets them, and its watch
filters cannot be set (assignment to a repeated field). Reads at a revision therefore
go through the client's own KV stub.

    /usr/bin/python3 test/compat/python_etcd3_test.py --kvstore build/bin/kvstore
"""

import hashlib
import io
import os
import queue
import sys
import threading
import time
import unittest

import etcd3
import etcd3.etcdrpc as etcdrpc
import etcd3.events
import etcd3.exceptions
import etcd3.transactions
import grpc

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import members  # noqa: E402

ARGS = None
COMPACTED = "etcdserver: mvcc: required revision has been compacted"
FUTURE = "etcdserver: mvcc: required revision is a future revision"


class LeaseCompare(etcd3.transactions.BaseCompare):
    """The LEASE compare target (etcd 3.3+), which this client version lacks."""

    def build_compare(self, compare):
        compare.target = etcdrpc.Compare.LEASE
        compare.lease = int(self.value)


class Collector:
    """A watch callback that queues what it gets, read back with a timeout."""

    def __init__(self):
        self.q = queue.Queue()

    def __call__(self, response):
        self.q.put(response)

    def events(self, n, timeout=10.0):
        """The next n events (fewer on timeout); errors are returned in the list."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            try:
                r = self.q.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if isinstance(r, Exception):
                out.append(r)
            else:
                out.extend(r.events)
        return out

    def quiet(self, seconds=0.5):
        """Whatever else arrives within `seconds`."""
        return self.events(1 << 30, timeout=seconds)


def describe(ev):
    """An event as a comparable tuple."""
    kind = "PUT" if isinstance(ev, etcd3.events.PutEvent) else "DELETE"
    return (kind, ev.key, ev.value, ev.mod_revision)


class Scenarios:
    """The tests; a subclass says which member they run against."""

    maxDiff = None
    kind = None

    @classmethod
    def setUpClass(cls):
        cls.member = cls.make_member()
        try:
            cls.client = etcd3.client(host="127.0.0.1", port=cls.member.client_port,
                                      timeout=15)
            header = cls.client.get_response("x").header
            cls.member_id, cls.cluster_id = header.member_id, header.cluster_id
        except BaseException:
            cls.member.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.client.close()
        finally:
            cls.member.close()

    def tearDown(self):
        if not self.member.running():
            self.fail(f"{self.member.kind} died:\n{self.member.log_tail()}")

    def rev(self):
        return self.client.get_response("no-such-key").header.revision

    def range_at(self, key, revision, range_end=b""):
        req = etcdrpc.RangeRequest(key=key.encode(), range_end=range_end, revision=revision)
        return self.client.kvstub.Range(req, 15)

    def assert_rpc_error(self, code, message, fn, *args, **kw):
        with self.assertRaises(grpc.RpcError) as cm:
            fn(*args, **kw)
        self.assertEqual((cm.exception.code(), cm.exception.details()), (code, message))

    # --- KV ------------------------------------------------------------------

    def test_put_get(self):
        r0 = self.rev()
        resp = self.client.put("pg/a", "1")
        self.assertEqual(resp.header.revision, r0 + 1)
        self.assertEqual(resp.header.member_id, self.member_id)
        self.assertEqual(resp.header.cluster_id, self.cluster_id)
        self.assertFalse(resp.HasField("prev_kv"))
        resp = self.client.put("pg/a", b"2", prev_kv=True)
        self.assertEqual(resp.header.revision, r0 + 2)
        self.assertEqual((resp.prev_kv.key, resp.prev_kv.value, resp.prev_kv.version,
                          resp.prev_kv.create_revision, resp.prev_kv.mod_revision),
                         (b"pg/a", b"1", 1, r0 + 1, r0 + 1))
        value, meta = self.client.get("pg/a")
        self.assertEqual(value, b"2")
        self.assertEqual((meta.key, meta.create_revision, meta.mod_revision, meta.version,
                          meta.lease_id), (b"pg/a", r0 + 1, r0 + 2, 2, 0))
        self.assertEqual(meta.response_header.revision, r0 + 2)
        self.assertEqual(self.client.get("pg/none"), (None, None))
        value, meta = self.client.get("pg/a", serializable=True)
        self.assertEqual((value, meta.mod_revision), (b"2", r0 + 2))
        # Binary keys and values, and an empty value.
        self.client.put(b"pg/\x00\xff", b"\x01\x00\x02")
        self.assertEqual(self.client.get(b"pg/\x00\xff")[0], b"\x01\x00\x02")
        self.client.put("pg/empty", b"")
        value, meta = self.client.get("pg/empty")
        self.assertEqual((value, meta.version), (b"", 1))
        self.assertEqual(self.rev(), r0 + 4)

    def test_get_prefix_range_all(self):
        r0 = self.rev()
        # Distinct values, versions, create and mod revisions: every sort is total.
        writes = [("gp/c", "b"), ("gp/a", "x"), ("gp/a", "d"), ("gp/d", "0"), ("gp/d", "1"),
                  ("gp/d", "a"), ("gp/b", "0"), ("gp/b", "1"), ("gp/b", "2"), ("gp/b", "c"),
                  ("gpz", "outside")]
        for k, v in writes:
            self.client.put(k, v)
        rev = {k: r0 + 1 + i for i, (k, _) in enumerate(writes)}  # last write of each
        create = {}
        for i, (k, _) in enumerate(writes):
            create.setdefault(k, r0 + 1 + i)
        value = dict(writes)
        version = {k: sum(1 for w, _ in writes if w == k) for k in value}
        keys = ["gp/a", "gp/b", "gp/c", "gp/d"]

        def got(results):
            return [(m.key.decode(), v.decode(), m.create_revision, m.mod_revision, m.version)
                    for v, m in results]

        def want(ks):
            return [(k, value[k], create[k], rev[k], version[k]) for k in ks]

        self.assertEqual(got(self.client.get_prefix("gp/")), want(keys))
        targets = {"key": lambda k: k, "value": lambda k: value[k],
                   "version": lambda k: version[k], "create": lambda k: create[k],
                   "mod": lambda k: rev[k]}
        for target, sort_key in targets.items():
            for order in ("ascend", "descend"):
                self.assertEqual(
                    got(self.client.get_prefix("gp/", sort_order=order, sort_target=target)),
                    want(sorted(keys, key=sort_key, reverse=order == "descend")),
                    f"sort by {target} {order}")
        only = [(m.key, v) for v, m in self.client.get_prefix("gp/", keys_only=True)]
        self.assertEqual(only, [(k.encode(), b"") for k in keys])
        self.assertEqual(got(self.client.get_range("gp/b", "gp/d")), want(["gp/b", "gp/c"]))
        self.assertEqual(got(self.client.get_range("gp/b", "gp/d", sort_order="descend")),
                         want(["gp/c", "gp/b"]))
        resp = self.client.get_prefix_response("gp/")
        self.assertEqual((resp.count, resp.more, resp.header.revision), (4, False, r0 + 11))
        everything = got(self.client.get_all())
        self.assertEqual([e for e in everything if e[0].startswith("gp")],
                         want(keys + ["gpz"]))
        self.assertEqual([e[0] for e in everything], sorted(e[0] for e in everything))
        # Reads in the past through the client's stub (its get ignores revision).
        for i, (k, _) in enumerate(writes):
            resp = self.range_at("gp/", r0 + 1 + i, range_end=b"gp0")
            self.assertEqual(resp.header.revision, r0 + 11)
            seen = {kv.key.decode(): kv.value.decode() for kv in resp.kvs}
            expect = {}
            for w, v in writes[:i + 1]:
                if w.startswith("gp/"):
                    expect[w] = v
            self.assertEqual(seen, expect, f"at revision {r0 + 1 + i}")
        self.assert_rpc_error(grpc.StatusCode.OUT_OF_RANGE, FUTURE, self.range_at, "gp/a",
                              r0 + 100)

    def test_delete(self):
        for k in ("dl/a", "dl/b", "dl/b/1", "dl/b/2", "dl/c"):
            self.client.put(k, "v" + k)
        r0 = self.rev()
        self.assertTrue(self.client.delete("dl/a"))
        self.assertEqual(self.rev(), r0 + 1)
        self.assertFalse(self.client.delete("dl/a"))
        self.assertEqual(self.rev(), r0 + 1, "deleting nothing makes no revision")
        resp = self.client.delete("dl/c", prev_kv=True, return_response=True)
        self.assertEqual(resp.deleted, 1)
        self.assertEqual([(kv.key, kv.value) for kv in resp.prev_kvs], [(b"dl/c", b"vdl/c")])
        self.assertEqual(resp.header.revision, r0 + 2)
        resp = self.client.delete_prefix("dl/b/")
        self.assertEqual((resp.deleted, resp.header.revision), (2, r0 + 3))
        self.assertEqual([m.key for _, m in self.client.get_prefix("dl/")], [b"dl/b"])
        resp = self.client.delete_prefix("dl/")
        self.assertEqual((resp.deleted, resp.header.revision), (1, r0 + 4))
        resp = self.client.delete_prefix("dl/")
        self.assertEqual((resp.deleted, resp.header.revision), (0, r0 + 4))

    def test_transactions(self):
        t = self.client.transactions
        self.client.put("tx/k1", "v1")
        _, m1 = self.client.get("tx/k1")
        self.client.put("tx/k2", "v2")
        r0 = self.rev()
        ok, responses = self.client.transaction(
            compare=[t.value("tx/k1") == "v1", t.version("tx/k1") == 1,
                     t.create("tx/k1") == m1.create_revision, t.mod("tx/k1") == m1.mod_revision,
                     t.version("tx/none") == 0, t.value("tx/k2") != "x",
                     t.mod("tx/k2") > m1.mod_revision, t.create("tx/k2") < r0 + 1,
                     LeaseCompare("tx/k1") == 0],
            success=[t.put("tx/k1", "v1b"), t.get("tx/k2"), t.delete("tx/k2"),
                     t.put("tx/k3", "v3", prev_kv=True)],
            failure=[t.put("tx/fail", "x")])
        self.assertTrue(ok)
        self.assertEqual(len(responses), 4)
        self.assertEqual(responses[0].response_put.header.revision, r0 + 1)
        self.assertEqual([(v, m.key) for v, m in responses[1]], [(b"v2", b"tx/k2")])
        self.assertEqual(responses[2].response_delete_range.deleted, 1)
        self.assertFalse(responses[3].response_put.HasField("prev_kv"))
        self.assertEqual(self.rev(), r0 + 1, "a txn is one revision")
        self.assertEqual(self.client.get("tx/fail"), (None, None))

        for bad in (t.value("tx/k1") == "v1", t.version("tx/k1") > 2,
                    t.create("tx/k1") != m1.create_revision, t.mod("tx/k1") < r0 + 1,
                    t.version("tx/k2") > 0, LeaseCompare("tx/k1") > 0):
            before = self.rev()
            ok, responses = self.client.transaction(
                compare=[t.value("tx/k3") == "v3", bad],
                success=[t.put("tx/wrong", "x")],
                failure=[t.get("tx/k1"), t.put("tx/k4", "v4")])
            self.assertFalse(ok, repr(bad))
            self.assertEqual([v for v, _ in responses[0]], [b"v1b"])
            self.assertEqual(self.rev(), before + 1)
        self.assertEqual(self.client.get("tx/wrong"), (None, None))
        self.assertEqual(self.client.get("tx/k4")[1].version, 6)

        # Nested txn: the inner branch follows its own compares.
        before = self.rev()
        ok, responses = self.client.transaction(
            compare=[t.version("tx/k4") == 6],
            success=[t.txn(compare=[t.value("tx/k4") == "nope"],
                           success=[t.put("tx/inner", "then")],
                           failure=[t.put("tx/inner", "else"), t.get("tx/k3")]),
                     t.put("tx/outer", "o")],
            failure=[])
        self.assertTrue(ok)
        inner = responses[0].response_txn
        self.assertFalse(inner.succeeded)
        self.assertEqual(len(inner.responses), 2)
        self.assertEqual([kv.value for kv in inner.responses[1].response_range.kvs], [b"v3"])
        self.assertEqual(self.client.get("tx/inner")[0], b"else")
        self.assertEqual(self.client.get("tx/outer")[0], b"o")
        self.assertEqual(self.rev(), before + 1)

        # replace and put_if_not_exists are txns too.
        self.assertTrue(self.client.replace("tx/k1", "v1b", "v1c"))
        self.assertFalse(self.client.replace("tx/k1", "v1b", "v1d"))
        self.assertEqual(self.client.get("tx/k1")[0], b"v1c")
        self.assertTrue(self.client.put_if_not_exists("tx/new", "n"))
        self.assertFalse(self.client.put_if_not_exists("tx/new", "m"))
        self.assertEqual(self.client.get("tx/new")[0], b"n")
        # A key written twice in one txn: refused, store unchanged.
        before = self.rev()
        self.assert_rpc_error(grpc.StatusCode.INVALID_ARGUMENT,
                              "etcdserver: duplicate key given in txn request",
                              self.client.transaction, compare=[],
                              success=[t.put("tx/d", "1"), t.put("tx/d", "2")], failure=[])
        self.assertEqual(self.rev(), before)

    def test_compact(self):
        self.client.put("cp/k", "1")
        r1 = self.rev()
        self.client.put("cp/k", "2")
        r2 = self.rev()
        self.client.compact(r2)
        self.assert_rpc_error(grpc.StatusCode.OUT_OF_RANGE, COMPACTED, self.range_at, "cp/k", r1)
        self.assertEqual([kv.value for kv in self.range_at("cp/k", r2).kvs], [b"2"])
        self.assert_rpc_error(grpc.StatusCode.OUT_OF_RANGE, COMPACTED, self.client.compact, r1)
        self.assert_rpc_error(grpc.StatusCode.OUT_OF_RANGE, FUTURE, self.client.compact,
                              r2 + 100)
        # A watch from below the compacted revision: the callback gets the error.
        c = Collector()
        self.client.add_watch_callback("cp/k", c, start_revision=r1)
        got = c.events(1)
        self.assertEqual(len(got), 1, got)
        self.assertIsInstance(got[0], etcd3.exceptions.RevisionCompactedError)
        self.assertEqual(got[0].compacted_revision, r2)
        self.assert_rpc_error(grpc.StatusCode.OUT_OF_RANGE, COMPACTED, self.client.compact, r2,
                              physical=True)
        self.client.put("cp/k", "3")
        self.client.compact(r2 + 1, physical=True)
        self.assertEqual([kv.value for kv in self.range_at("cp/k", r2 + 1).kvs], [b"3"])

    # --- watch -----------------------------------------------------------------

    def test_watch_iterator(self):
        start = self.rev() + 1
        events, cancel = self.client.watch_prefix("wi/", start_revision=start, prev_kv=True)
        timer = threading.Timer(20, cancel)  # bounds the test if events never come
        timer.start()
        try:
            self.client.put("wi/a", "1")
            self.client.put("wi/b", "2")
            self.client.put("other", "x")
            self.client.put("wi/a", "3")
            self.client.delete("wi/a")
            got = []
            for ev in events:
                got.append(describe(ev) + (ev.prev_value,))
                if len(got) == 4:
                    break
        finally:
            cancel()
            timer.cancel()
        self.assertEqual(got, [("PUT", b"wi/a", b"1", start, b""),
                               ("PUT", b"wi/b", b"2", start + 1, b""),
                               ("PUT", b"wi/a", b"3", start + 3, b"1"),
                               ("DELETE", b"wi/a", b"", start + 4, b"3")])
        # From the past: the same history again, on one key.
        events, cancel = self.client.watch("wi/a", start_revision=start)
        timer = threading.Timer(20, cancel)
        timer.start()
        try:
            got = []
            for ev in events:
                got.append(describe(ev))
                if len(got) == 3:
                    break
        finally:
            cancel()
            timer.cancel()
        self.assertEqual(got, [("PUT", b"wi/a", b"1", start), ("PUT", b"wi/a", b"3", start + 3),
                               ("DELETE", b"wi/a", b"", start + 4)])
        ev = self.client.watch_once("wi/b", timeout=10, start_revision=start)
        self.assertEqual(describe(ev), ("PUT", b"wi/b", b"2", start + 1))
        with self.assertRaises(etcd3.exceptions.WatchTimedOut):
            self.client.watch_once("wi/none", timeout=0.5)

    def test_watch_callback(self):
        key_cb, prefix_cb, range_cb = Collector(), Collector(), Collector()
        key_id = self.client.add_watch_callback("wc/a", key_cb)
        prefix_id = self.client.add_watch_prefix_callback("wc/", prefix_cb, prev_kv=True)
        range_id = self.client.add_watch_callback("wc/b", range_cb, range_end="wc/c")
        self.assertEqual(len({key_id, prefix_id, range_id}), 3)
        try:
            start = self.rev() + 1
            self.client.put("wc/a", "1")
            self.client.put("wc/b", "2")
            self.client.put("wc/bb", "3")
            self.client.put("wc/c", "4")
            self.client.delete_prefix("wc/")  # one revision, four DELETE events
            self.assertEqual([describe(e) for e in key_cb.events(2)],
                             [("PUT", b"wc/a", b"1", start), ("DELETE", b"wc/a", b"", start + 4)])
            got = prefix_cb.events(8)
            self.assertEqual([describe(e) + (e.prev_value,) for e in got],
                             [("PUT", b"wc/a", b"1", start, b""),
                              ("PUT", b"wc/b", b"2", start + 1, b""),
                              ("PUT", b"wc/bb", b"3", start + 2, b""),
                              ("PUT", b"wc/c", b"4", start + 3, b""),
                              ("DELETE", b"wc/a", b"", start + 4, b"1"),
                              ("DELETE", b"wc/b", b"", start + 4, b"2"),
                              ("DELETE", b"wc/bb", b"", start + 4, b"3"),
                              ("DELETE", b"wc/c", b"", start + 4, b"4")])
            self.assertEqual([describe(e) for e in range_cb.events(4)],
                             [("PUT", b"wc/b", b"2", start + 1),
                              ("PUT", b"wc/bb", b"3", start + 2),
                              ("DELETE", b"wc/b", b"", start + 4),
                              ("DELETE", b"wc/bb", b"", start + 4)])
            # After cancel, a callback hears nothing more; the others go on.
            self.client.cancel_watch(key_id)
            time.sleep(0.2)
            self.client.put("wc/a", "5")
            self.assertEqual([describe(e) for e in prefix_cb.events(1)],
                             [("PUT", b"wc/a", b"5", start + 5)])
            for c in (key_cb, prefix_cb, range_cb):
                self.assertEqual(c.quiet(), [])
        finally:
            for wid in (key_id, prefix_id, range_id):
                self.client.cancel_watch(wid)

    # --- leases ---------------------------------------------------------------

    def test_lease(self):
        lease = self.client.lease(300)
        self.assertNotEqual(lease.id, 0)
        self.assertEqual(lease.ttl, 300)
        chosen = self.client.lease(400, lease_id=0x1234567)
        self.assertEqual((chosen.id, chosen.ttl), (0x1234567, 400))
        with self.assertRaises(etcd3.exceptions.PreconditionFailedError):
            self.client.lease(400, lease_id=0x1234567)  # "etcdserver: lease already exists"
        self.client.put("ls/a", "1", lease=lease)
        self.client.put("ls/b", "2", lease=lease.id)
        self.client.put("ls/c", "3", lease=chosen)
        self.assertEqual(self.client.get("ls/a")[1].lease_id, lease.id)
        self.assertEqual(sorted(lease.keys), [b"ls/a", b"ls/b"])
        self.assertEqual(lease.granted_ttl, 300)
        self.assertTrue(290 <= lease.remaining_ttl <= 300, lease.remaining_ttl)
        refreshed = lease.refresh()
        self.assertEqual([(r.ID, r.TTL) for r in refreshed], [(lease.id, 300)])
        r0 = self.rev()
        lease.revoke()
        self.assertEqual(self.rev(), r0 + 1, "a revocation deleting keys is one revision")
        self.assertEqual([m.key for _, m in self.client.get_prefix("ls/")], [b"ls/c"])
        info = self.client.get_lease_info(lease.id)
        self.assertEqual((info.ID, info.TTL, list(info.keys)), (lease.id, -1, []))
        self.assert_rpc_error(grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found",
                              self.client.revoke_lease, lease.id)
        self.assert_rpc_error(grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found",
                              self.client.put, "ls/x", "v", lease=lease.id)
        self.assertEqual([(r.ID, r.TTL) for r in lease.refresh()], [(lease.id, 0)])
        chosen.revoke()
        self.assertEqual(list(self.client.get_prefix("ls/")), [])

    def test_lease_refresh_and_expiry(self):
        """A short lease kept alive by refresh outlives its TTL; once refreshing stops it
        expires, its keys go, and a watcher sees the DELETE."""
        lease = self.client.lease(2)
        self.client.put("le/k", "v", lease=lease)
        c = Collector()
        wid = self.client.add_watch_callback("le/k", c)
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                self.assertEqual([r.TTL for r in lease.refresh()], [2])
                time.sleep(0.5)
            self.assertEqual(self.client.get("le/k")[0], b"v", "refreshed lease expired")
            stopped = time.monotonic()
            got = c.events(1, timeout=15)
            gone = time.monotonic() - stopped
            self.assertEqual([type(e).__name__ for e in got], ["DeleteEvent"], got)
            self.assertEqual(got[0].key, b"le/k")
            self.assertGreater(gone, 1.0, "expired long before its TTL")
            self.assertEqual(self.client.get("le/k"), (None, None))
            self.assertEqual(self.client.get_lease_info(lease.id).TTL, -1)
        finally:
            self.client.cancel_watch(wid)

    def test_lock(self):
        """The client's lock recipe: a lease plus a create-revision txn. (A contended
        acquire is not tried: with Debian's tenacity the client's retry crashes.)"""
        lock = self.client.lock("compat", ttl=30)
        other = self.client.lock("compat", ttl=30)
        self.assertTrue(lock.acquire(timeout=10))
        self.assertTrue(lock.is_acquired())
        self.assertFalse(other.is_acquired())
        self.assertEqual([r.TTL for r in lock.refresh()], [30])
        self.assertFalse(other.release(), "released a lock it does not hold")
        self.assertTrue(lock.release())
        self.assertFalse(lock.is_acquired())
        self.assertTrue(other.acquire(timeout=10))
        self.assertTrue(other.is_acquired())
        self.assertTrue(other.release())

    # --- cluster and maintenance -------------------------------------------------

    def test_members_and_status(self):
        ms = list(self.client.members)
        self.assertEqual(len(ms), 1)
        m = ms[0]
        self.assertEqual((m.id, m.name, list(m.peer_urls), list(m.client_urls)),
                         (self.member_id, "default", [self.member.peer_url],
                          [self.member.client_url]))
        st = self.client.status()
        self.assertRegex(st.version, r"^3\.4\.\d+$")
        self.assertGreater(st.db_size, 0)
        self.assertIsNotNone(st.leader)
        self.assertEqual(st.leader.id, self.member_id)
        self.assertGreaterEqual(st.raft_term, 1)
        index = st.raft_index
        self.client.put("st/k", "v")
        self.assertGreater(self.client.status().raft_index, index)

    def test_maintenance(self):
        self.assertEqual(list(self.client.list_alarms()), [])
        self.client.defragment()
        self.client.put("mt/k", "v")
        self.assertIsInstance(self.client.hash(), int)
        buf = io.BytesIO()
        self.client.snapshot(buf)
        data = buf.getvalue()
        self.assertEqual(len(data) % 512, 32, f"snapshot size {len(data)}")
        self.assertEqual(hashlib.sha256(data[:-32]).digest(), data[-32:], "checksum trailer")
        self.assertEqual(self.client.get("mt/k")[0], b"v")


class OursTest(Scenarios, unittest.TestCase):
    @staticmethod
    def make_member():
        return members.ours(ARGS).start()


class EtcdTest(Scenarios, unittest.TestCase):
    """The same scenarios against etcd 3.4: shows the expectations are etcd's."""

    @staticmethod
    def make_member():
        return members.Member.etcd(ARGS.etcd)


def main():
    global ARGS
    ARGS = members.parse_args(__doc__)
    unittest.main(verbosity=2)


if __name__ == "__main__":
    main()
