"""Bad input: requests etcd refuses, sent to our kvstore and to a real etcd 3.4 started
with the same small limits (--max-request-bytes 8192, --max-txn-ops 16). For each: the
same gRPC code and message, and neither store changed (same revision, same keys, same
leases). A request etcd accepts (a size right at the limit) must be accepted by ours too,
with the same response and the same resulting store.

    /usr/bin/python3 test/compat/bad_input_test.py --kvstore build/bin/kvstore \\
        --stubs build/test/compat/pb
"""

import contextlib
import os
import subprocess
import sys
import tempfile
import unittest

import grpc
from google.protobuf import text_format

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import members  # noqa: E402

ARGS = None
kv_pb2 = rpc_pb2 = rpc_pb2_grpc = None

MAX_REQUEST_BYTES = 8192
MAX_TXN_OPS = 16
INVALID = grpc.StatusCode.INVALID_ARGUMENT
OUT_OF_RANGE = grpc.StatusCode.OUT_OF_RANGE
NOT_FOUND = grpc.StatusCode.NOT_FOUND

EMPTY_KEY = (INVALID, "etcdserver: key is not provided")
TOO_MANY_OPS = (INVALID, "etcdserver: too many operations in txn request")
DUPLICATE = (INVALID, "etcdserver: duplicate key given in txn request")
TOO_LARGE = (INVALID, "etcdserver: request is too large")
KEY_NOT_FOUND = (INVALID, "etcdserver: key not found")
VALUE_PROVIDED = (INVALID, "etcdserver: value is provided")
LEASE_PROVIDED = (INVALID, "etcdserver: lease is provided")
LEASE_NOT_FOUND = (NOT_FOUND, "etcdserver: requested lease not found")
LEASE_EXISTS = (grpc.StatusCode.FAILED_PRECONDITION, "etcdserver: lease already exists")
TTL_TOO_LARGE = (OUT_OF_RANGE, "etcdserver: too large lease TTL")
COMPACTED = (OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted")
FUTURE = (OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision")

# Keys the fixture puts (revisions 2 to 6), then it compacts at revision 3.
FIXTURE = [(b"a", b"1"), (b"b", b"2"), (b"b/1", b"3"), (b"c", b"4"), (b"a", b"5")]
LEASE = 77  # granted by test_leases, with ID chosen by the client


def put(key, value=b"", **kw):
    return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value, **kw))


def delete(key, range_end=b""):
    return rpc_pb2.RequestOp(
        request_delete_range=rpc_pb2.DeleteRangeRequest(key=key, range_end=range_end))


def get(key, **kw):
    return rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key, **kw))


def txn(compare=(), success=(), failure=()):
    return rpc_pb2.TxnRequest(compare=list(compare), success=list(success),
                              failure=list(failure))


def nested(compare=(), success=(), failure=()):
    return rpc_pb2.RequestOp(request_txn=txn(compare, success, failure))


def cmp_version(key, version=0):
    return rpc_pb2.Compare(key=key, target=rpc_pb2.Compare.VERSION, version=version)


def show(x):
    if isinstance(x, tuple):
        return f"error {x[0]}: {x[1]!r}"
    return f"{x.DESCRIPTOR.name} {{\n{text_format.MessageToString(x)}}}"


class Side:
    def __init__(self, member):
        self.member = member
        self.channel = grpc.insecure_channel(
            member.endpoint, options=[("grpc.max_send_message_length", 64 << 20)])
        self.kv = rpc_pb2_grpc.KVStub(self.channel)
        self.lease = rpc_pb2_grpc.LeaseStub(self.channel)

    def call(self, method, request):
        try:
            r = getattr(self, method[0]).__getattribute__(method[1])(request, timeout=20)
        except grpc.RpcError as e:
            return (e.code(), e.details())
        clear = getattr(r, "header", None)
        if clear is not None:
            r.header.cluster_id = r.header.member_id = r.header.raft_term = 0
        return r

    def state(self):
        """(revision, every kv, lease ids): what must not change."""
        r = self.kv.Range(rpc_pb2.RangeRequest(key=b"\x00", range_end=b"\x00"), timeout=20)
        try:
            leases = sorted(l.ID for l in self.lease.LeaseLeases(
                rpc_pb2.LeaseLeasesRequest(), timeout=20).leases)
        except grpc.RpcError as e:
            leases = (e.code(), e.details())  # kept apart so that KV checks still run
        return (r.header.revision, [kv.SerializeToString() for kv in r.kvs], leases)

    def close(self):
        self.channel.close()


@contextlib.contextmanager
def fresh_pair():
    """[ours, etcd] as Sides on new members without the fixture; closed on exit."""
    ours_m, ref_m = members.start_pair(ARGS)
    sides = [Side(ours_m), Side(ref_m)]
    try:
        yield sides
    finally:
        for s in sides:
            s.close()
        ours_m.close()
        ref_m.close()


class BadInputTest(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        """A fresh pair for each test: one test that leaves the two stores apart does
        not fail the next."""
        cls = self
        cls.ours_m, cls.ref_m = members.start_pair(
            ARGS, max_request_bytes=MAX_REQUEST_BYTES, max_txn_ops=MAX_TXN_OPS)
        cls.ours, cls.ref = Side(cls.ours_m), Side(cls.ref_m)
        try:
            for side in (cls.ours, cls.ref):
                for k, v in FIXTURE:
                    side.kv.Put(rpc_pb2.PutRequest(key=k, value=v), timeout=20)
                side.kv.Compact(rpc_pb2.CompactionRequest(revision=3), timeout=20)
        except BaseException:
            self.tearDown()
            raise

    def tearDown(self):
        for side in (self.ours, self.ref):
            side.close()
        self.ours_m.close()
        self.ref_m.close()

    def check(self, name, method, request, expect):
        """Sends `request` to both. `expect`: the (code, message) etcd must answer, or
        None when etcd must accept it."""
        with self.subTest(name):
            before = (self.ours.state(), self.ref.state())
            self.assertEqual(before[0][:2], before[1][:2],
                             f"{name}: members differ before the call")
            ours = self.ours.call(method, request)
            ref = self.ref.call(method, request)
            req = (show(request) if request.ByteSize() < 4096
                   else f"{request.DESCRIPTOR.name} of {request.ByteSize()} bytes")
            shown = f"{name}\nrequest: {req}\nours: {show(ours)}\netcd: {show(ref)}"
            if expect is not None:
                self.assertEqual(ref, expect, "etcd itself: " + shown)
            else:
                self.assertNotIsInstance(ref, tuple, "etcd itself refused: " + shown)
            self.assertEqual(ours, ref, "ours vs etcd: " + shown)
            after = (self.ours.state(), self.ref.state())
            if expect is not None:
                self.assertEqual(after[1], before[1], "etcd's store changed: " + shown)
                self.assertEqual(after[0], before[0], "our store changed: " + shown)
            else:
                self.assertEqual(after[0][:2], after[1][:2], "stores differ afterwards: " + shown)
                if isinstance(after[0][2], list):
                    self.assertEqual(after[0][2], after[1][2], "leases differ: " + shown)

    # --- empty keys ---------------------------------------------------------------

    def test_empty_keys(self):
        self.check("Put", ("kv", "Put"), rpc_pb2.PutRequest(key=b"", value=b"v"), EMPTY_KEY)
        self.check("Range", ("kv", "Range"), rpc_pb2.RangeRequest(key=b""), EMPTY_KEY)
        self.check("Range with range_end", ("kv", "Range"),
                   rpc_pb2.RangeRequest(key=b"", range_end=b"z"), EMPTY_KEY)
        self.check("DeleteRange", ("kv", "DeleteRange"), rpc_pb2.DeleteRangeRequest(key=b""),
                   EMPTY_KEY)
        self.check("DeleteRange from-key", ("kv", "DeleteRange"),
                   rpc_pb2.DeleteRangeRequest(key=b"", range_end=b"\x00"), EMPTY_KEY)
        self.check("Txn compare", ("kv", "Txn"), txn(compare=[cmp_version(b"")]), EMPTY_KEY)
        self.check("Txn put", ("kv", "Txn"), txn(success=[put(b"ok"), put(b"")]), EMPTY_KEY)
        self.check("Txn failure range", ("kv", "Txn"), txn(failure=[get(b"")]), EMPTY_KEY)
        self.check("Txn nested delete", ("kv", "Txn"),
                   txn(success=[nested(success=[delete(b"")])]), EMPTY_KEY)
        self.check("Txn nested compare", ("kv", "Txn"),
                   txn(failure=[nested(compare=[cmp_version(b"")])]), EMPTY_KEY)

    # --- sizes ----------------------------------------------------------------------

    def test_oversized(self):
        big = b"v" * (MAX_REQUEST_BYTES + 1)
        self.check("Put over the limit", ("kv", "Put"), rpc_pb2.PutRequest(key=b"big", value=big),
                   TOO_LARGE)
        self.check("Txn over the limit", ("kv", "Txn"),
                   txn(success=[put(b"t%d" % i, b"v" * 1024) for i in range(9)]), TOO_LARGE)
        huge_compare = rpc_pb2.Compare(key=b"a", target=rpc_pb2.Compare.VALUE, value=big)
        self.check("Txn compare over the limit", ("kv", "Txn"),
                   txn(compare=[huge_compare], failure=[put(b"k")]), TOO_LARGE)
        # A txn without writes is served as a read, not proposed: no limit.
        self.check("read-only Txn compare over the limit", ("kv", "Txn"),
                   txn(compare=[huge_compare], failure=[get(b"a")]), None)
        # A linearizable read is not proposed through Raft: no limit applies.
        self.check("Range with a huge key", ("kv", "Range"), rpc_pb2.RangeRequest(key=big), None)
        self.check("Put well under the limit", ("kv", "Put"),
                   rpc_pb2.PutRequest(key=b"small", value=b"v" * (MAX_REQUEST_BYTES // 2)), None)

    def test_oversized_transport(self):
        """Past --max-request-bytes plus gRPC's allowance (512 KiB) the transport refuses
        the message. The message text is gRPC's own (Go's and C++'s differ in case), so
        the code is compared and the text only for what both say."""
        huge = b"v" * (MAX_REQUEST_BYTES + 600 * 1024)
        before = (self.ours.state(), self.ref.state())
        req = rpc_pb2.PutRequest(key=b"huge", value=huge)
        ours = self.ours.call(("kv", "Put"), req)
        ref = self.ref.call(("kv", "Put"), req)
        self.assertIsInstance(ref, tuple)
        self.assertEqual(ref[0], grpc.StatusCode.RESOURCE_EXHAUSTED, show(ref))
        self.assertIsInstance(ours, tuple, show(ours))
        self.assertEqual(ours[0], ref[0], f"ours: {show(ours)}\netcd: {show(ref)}")
        self.assertIn("larger than max", ours[1].lower())
        self.assertEqual((self.ours.state(), self.ref.state()), before)

    # --- leases ---------------------------------------------------------------------

    def test_leases(self):
        self.check("LeaseGrant with a chosen id", ("lease", "LeaseGrant"),
                   rpc_pb2.LeaseGrantRequest(ID=LEASE, TTL=3600), None)
        self.check("Put with the lease", ("kv", "Put"),
                   rpc_pb2.PutRequest(key=b"leased", value=b"x", lease=LEASE), None)
        self.check("ignore_lease with a lease", ("kv", "Put"),
                   rpc_pb2.PutRequest(key=b"leased", lease=LEASE, ignore_lease=True),
                   LEASE_PROVIDED)
        self.check("Put with an unknown lease", ("kv", "Put"),
                   rpc_pb2.PutRequest(key=b"k", value=b"v", lease=12345), LEASE_NOT_FOUND)
        self.check("Txn put with an unknown lease", ("kv", "Txn"),
                   txn(success=[put(b"k", b"v", lease=12345)]), LEASE_NOT_FOUND)
        self.check("Txn failure put with an unknown lease", ("kv", "Txn"),
                   txn(compare=[cmp_version(b"a", 0)], failure=[put(b"k", lease=12345)]),
                   LEASE_NOT_FOUND)
        self.check("LeaseRevoke unknown", ("lease", "LeaseRevoke"),
                   rpc_pb2.LeaseRevokeRequest(ID=12345), LEASE_NOT_FOUND)
        self.check("LeaseGrant existing id", ("lease", "LeaseGrant"),
                   rpc_pb2.LeaseGrantRequest(ID=LEASE, TTL=60), LEASE_EXISTS)
        self.check("LeaseGrant too large TTL", ("lease", "LeaseGrant"),
                   rpc_pb2.LeaseGrantRequest(ID=4242, TTL=9000000001), TTL_TOO_LARGE)
        self.check("LeaseTimeToLive unknown (TTL -1, no error)", ("lease", "LeaseTimeToLive"),
                   rpc_pb2.LeaseTimeToLiveRequest(ID=12345, keys=True), None)

    def test_ignore_flags(self):
        self.check("ignore_value on a missing key", ("kv", "Put"),
                   rpc_pb2.PutRequest(key=b"missing", ignore_value=True), KEY_NOT_FOUND)
        self.check("ignore_lease on a missing key", ("kv", "Put"),
                   rpc_pb2.PutRequest(key=b"missing", value=b"v", ignore_lease=True),
                   KEY_NOT_FOUND)
        self.check("ignore_value with a value", ("kv", "Put"),
                   rpc_pb2.PutRequest(key=b"a", value=b"v", ignore_value=True), VALUE_PROVIDED)
        self.check("ignore_lease with a lease", ("kv", "Put"),
                   rpc_pb2.PutRequest(key=b"a", lease=12345, ignore_lease=True), LEASE_PROVIDED)
        self.check("Txn ignore_value on a missing key", ("kv", "Txn"),
                   txn(success=[put(b"ok", b"v"), put(b"missing", ignore_value=True)]),
                   KEY_NOT_FOUND)
        self.check("Txn nested ignore_value with a value", ("kv", "Txn"),
                   txn(success=[nested(failure=[put(b"a", b"v", ignore_value=True)])]),
                   VALUE_PROVIDED)

    # --- revisions --------------------------------------------------------------------

    def test_revisions(self):
        rev = self.ref.state()[0]
        self.check("Range in the future", ("kv", "Range"),
                   rpc_pb2.RangeRequest(key=b"a", revision=rev + 1), FUTURE)
        self.check("Range far in the future", ("kv", "Range"),
                   rpc_pb2.RangeRequest(key=b"a", revision=1 << 40), FUTURE)
        self.check("Range below the compaction", ("kv", "Range"),
                   rpc_pb2.RangeRequest(key=b"a", revision=2), COMPACTED)
        self.check("Range at the compaction", ("kv", "Range"),
                   rpc_pb2.RangeRequest(key=b"a", revision=3), None)
        self.check("Compact in the future", ("kv", "Compact"),
                   rpc_pb2.CompactionRequest(revision=rev + 1), FUTURE)
        self.check("Compact at the compacted revision", ("kv", "Compact"),
                   rpc_pb2.CompactionRequest(revision=3), COMPACTED)
        self.check("Compact below it", ("kv", "Compact"),
                   rpc_pb2.CompactionRequest(revision=1), COMPACTED)
        self.check("Compact negative", ("kv", "Compact"),
                   rpc_pb2.CompactionRequest(revision=-5), COMPACTED)
        self.check("Txn range in the future", ("kv", "Txn"),
                   txn(success=[put(b"k", b"v"), get(b"a", revision=rev + 1)]), FUTURE)
        self.check("Txn range below the compaction", ("kv", "Txn"),
                   txn(failure=[get(b"a", revision=1)], compare=[cmp_version(b"a", 0)]),
                   COMPACTED)
        self.check("Txn nested range in the future", ("kv", "Txn"),
                   txn(success=[nested(success=[get(b"a", revision=rev + 5)])]), FUTURE)

    # --- malformed txns ------------------------------------------------------------------

    def test_compact_zero_before_any_compaction(self):
        """Compact(0) on a store never compacted is accepted by etcd (its compacted
        revision starts below 0); a second one is then below the compacted revision."""
        with fresh_pair() as sides:
            got = [s.call(("kv", "Compact"), rpc_pb2.CompactionRequest(revision=0))
                   for s in sides]
            self.assertEqual(got[1], rpc_pb2.CompactionResponse(
                header=rpc_pb2.ResponseHeader(revision=1)), "etcd itself")
            self.assertEqual(got[0], got[1], "ours vs etcd: Compact(0) on a fresh store")

    def test_error_precedence(self):
        """Requests with two faults: etcd reports a particular one; clients match on it."""
        rev = self.ref.state()[0]
        # A plain put checks its lease before ignore_value's need for an existing key.
        self.check("Put: unknown lease and ignore_value on a missing key", ("kv", "Put"),
                   rpc_pb2.PutRequest(key=b"missing", lease=12345, ignore_value=True),
                   LEASE_NOT_FOUND)
        # In a txn, every put of the branch taken is checked before any range.
        self.check("Txn: compacted range, then a put on a missing key with ignore_lease",
                   ("kv", "Txn"),
                   txn(success=[get(b"a", revision=1), put(b"missing", b"v", ignore_lease=True)]),
                   KEY_NOT_FOUND)
        self.check("Txn: future range, then a put with an unknown lease", ("kv", "Txn"),
                   txn(success=[get(b"a", revision=rev + 3), put(b"k", b"v", lease=12345)]),
                   LEASE_NOT_FOUND)
        # ... and in a txn put, the missing key before the lease.
        self.check("Txn put: ignore_value on a missing key and an unknown lease", ("kv", "Txn"),
                   txn(success=[put(b"missing", ignore_value=True, lease=12345)]),
                   KEY_NOT_FOUND)
        # Only the branch taken is checked.
        self.check("Txn: a future range in the branch not taken", ("kv", "Txn"),
                   txn(compare=[cmp_version(b"a", 2)], success=[get(b"a")],
                       failure=[get(b"a", revision=rev + 3)]), None)
        # Every op of both branches is validated before any duplicate-key check.
        self.check("Txn: nested duplicate, then an empty key in the failure branch",
                   ("kv", "Txn"),
                   txn(success=[nested(success=[put(b"k"), put(b"k")])], failure=[get(b"")]),
                   EMPTY_KEY)
        self.check("Txn: nested duplicate, then ignore_value with a value", ("kv", "Txn"),
                   txn(success=[nested(failure=[put(b"k"), delete(b"k")]),
                                put(b"a", b"v", ignore_value=True)]), VALUE_PROVIDED)
        # A negative revision in a txn's range is below every revision: compacted (a plain
        # Range reads it as the current revision).
        self.check("Txn range at revision -1", ("kv", "Txn"),
                   txn(success=[get(b"a", revision=-1)]), COMPACTED)
        self.check("Range at revision -1", ("kv", "Range"),
                   rpc_pb2.RangeRequest(key=b"a", revision=-1), None)

    def test_txn_at_a_negative_revision_follows_the_compaction_mark(self):
        """etcd checks a txn's range revision against its compactMainRev, -1 until the
        first compaction: a negative revision reads the current one before any
        compaction, and is compacted after one, even a Compact(0)."""
        request = txn(success=[get(b"a", revision=-1)])
        with fresh_pair() as sides:
            for s in sides:
                s.kv.Put(rpc_pb2.PutRequest(key=b"a", value=b"1"), timeout=20)
            before = [s.call(("kv", "Txn"), request) for s in sides]
            self.assertNotIsInstance(before[1], tuple, show(before[1]))
            self.assertEqual(before[0], before[1], "before any compaction")
            for s in sides:
                s.kv.Compact(rpc_pb2.CompactionRequest(revision=0), timeout=20)
            after = [s.call(("kv", "Txn"), request) for s in sides]
            self.assertEqual(after[1], COMPACTED)
            self.assertEqual(after[0], after[1], "after Compact(0)")

    def test_too_many_ops(self):
        n = MAX_TXN_OPS + 1
        self.check("success", ("kv", "Txn"), txn(success=[get(b"a")] * n), TOO_MANY_OPS)
        self.check("failure", ("kv", "Txn"), txn(failure=[put(b"k%d" % i) for i in range(n)]),
                   TOO_MANY_OPS)
        self.check("compare", ("kv", "Txn"), txn(compare=[cmp_version(b"a", 1)] * n),
                   TOO_MANY_OPS)
        self.check("exactly the limit is fine", ("kv", "Txn"),
                   txn(success=[put(b"k%d" % i) for i in range(MAX_TXN_OPS)]), None)
        self.check("nested", ("kv", "Txn"),
                   txn(success=[nested(success=[get(b"a")] * n)]), TOO_MANY_OPS)
        # etcd gives a nested txn what its parent left: the limit less the parent's
        # largest list.
        self.check("nested within what the parent leaves", ("kv", "Txn"),
                   txn(success=[get(b"a")] * 9 +
                       [nested(success=[get(b"b")] * (MAX_TXN_OPS - 10))]), None)
        self.check("nested over what the parent leaves", ("kv", "Txn"),
                   txn(success=[get(b"a")] * 9 +
                       [nested(success=[get(b"b")] * (MAX_TXN_OPS - 9))]), TOO_MANY_OPS)

    def test_duplicate_keys(self):
        self.check("put twice", ("kv", "Txn"), txn(success=[put(b"k"), put(b"k", b"2")]),
                   DUPLICATE)
        self.check("put twice in failure", ("kv", "Txn"),
                   txn(compare=[cmp_version(b"a", 0)], failure=[put(b"a"), put(b"a")]), DUPLICATE)
        self.check("delete and put", ("kv", "Txn"), txn(success=[delete(b"k"), put(b"k")]),
                   DUPLICATE)
        self.check("put and delete", ("kv", "Txn"), txn(success=[put(b"k"), delete(b"k")]),
                   DUPLICATE)
        self.check("put inside a deleted range", ("kv", "Txn"),
                   txn(success=[delete(b"b", b"c"), put(b"b/9")]), DUPLICATE)
        self.check("put in nested txn and outside", ("kv", "Txn"),
                   txn(success=[nested(success=[put(b"k")]), put(b"k")]), DUPLICATE)
        self.check("delete in nested txn, put outside", ("kv", "Txn"),
                   txn(success=[nested(failure=[delete(b"k")]), put(b"k")]), DUPLICATE)
        self.check("put in nested txn inside an outer delete", ("kv", "Txn"),
                   txn(success=[delete(b"a", b"z"), nested(success=[put(b"k")])]), DUPLICATE)
        self.check("put twice in one nested branch", ("kv", "Txn"),
                   txn(success=[nested(failure=[put(b"k"), put(b"k")])]), DUPLICATE)
        # Not duplicates: the two branches exclude each other; different branches of
        # the outer txn; a delete range that ends before the key.
        self.check("same key in then and else of a nested txn", ("kv", "Txn"),
                   txn(success=[nested(compare=[cmp_version(b"a", 0)],
                                       success=[put(b"n", b"then")],
                                       failure=[put(b"n", b"else")])]), None)
        self.check("same key in success and failure", ("kv", "Txn"),
                   txn(compare=[cmp_version(b"a", 0)], success=[put(b"s", b"1")],
                       failure=[put(b"s", b"2")]), None)
        self.check("delete [b, b/1) and put b/1", ("kv", "Txn"),
                   txn(success=[delete(b"b", b"b/1"), put(b"b/1", b"new")]), None)

    def test_from_key_delete_and_put(self):
        """etcd 3.4 reads a delete's range_end "\\0" literally in its duplicate check, so
        deleting from a key and putting a later key in one txn is accepted (and applied:
        the delete runs first). Clients can rely on that; ours must accept it too."""
        self.check("delete from-key then put", ("kv", "Txn"),
                   txn(success=[delete(b"c", b"\x00"), put(b"d", b"after")]), None)

    # --- the command line ------------------------------------------------------------------

    def test_bad_flags(self):
        """A bad flag or an unusable data dir: a message and a non-zero exit, at once."""
        with tempfile.TemporaryDirectory(prefix="compat-flags-") as d:
            not_a_dir = os.path.join(d, "file")
            with open(not_a_dir, "w") as f:
                f.write("x")
            port = members.free_ports(1)[0]
            url = f"http://127.0.0.1:{port}"
            for args, what in [(["--no-such-flag"], "unknown flag"),
                               (["--heartbeat-interval", "abc"], "non-numeric value"),
                               (["--data-dir", not_a_dir, "--listen-client-urls", url,
                                 "--advertise-client-urls", url], "data dir is a file")]:
                with self.subTest(what):
                    p = subprocess.run([ARGS.kvstore, *args], capture_output=True, text=True,
                                       timeout=30, stdin=subprocess.DEVNULL, cwd=d)
                    self.assertNotEqual(p.returncode, 0, f"{what}: {p.stdout}{p.stderr}")
                    self.assertTrue(p.stderr.strip(), f"{what}: no message")


def main():
    global ARGS, kv_pb2, rpc_pb2, rpc_pb2_grpc
    ARGS = members.parse_args(__doc__)
    kv_pb2, rpc_pb2, rpc_pb2_grpc = members.import_stubs(ARGS.stubs)
    unittest.main(verbosity=2)


if __name__ == "__main__":
    main()
