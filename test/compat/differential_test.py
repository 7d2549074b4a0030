"""Differential test: one seeded random sequence of etcd v3 calls run against our kvstore
and against a real etcd 3.4, both fresh for each seed; every response must be equal once
the header's cluster_id, member_id and raft_term are cleared. Errors must match in gRPC
code and message.

The sequence: puts (prev_kv, leases, ignore_value, ignore_lease), deletes of keys,
prefixes and ranges (prev_kv), ranges (limit, revision, sort target and order,
count_only, keys_only, serializable, min/max mod and create revision), txns with random
compares (every target, range compares) and nested branches, compactions at past,
current and future revisions, leases with client-chosen ids (grant, revoke, time to
live, keep-alive, list) and watches from past, present and future revisions (prev_kv,
filters, cancel, progress requests). Keys come from a small set so that they collide.

It uses gRPC stubs generated from OUR protos (test/compat/CMakeLists.txt).

What is timing and not protocol is not compared: the batching of watch events into
responses and the header revision of event responses (etcd syncs slow watchers every
100 ms), the order between the responses of different watches on one stream, the
remaining TTL of a lease (checked to be within its granted TTL), the order of
LeaseLeases and of the keys in LeaseTimeToLive, and the changes at the compacted
revision that etcd still sends until its backend commits a compaction
(Sequence.settle_events). Watch responses are compared per watch id, in order, as one
list of creates, events and cancels, at checkpoints that wait until etcd's watchers are
idle: before a cancel, a compaction and at the end. Cancels, creates and progress
requests wait for their answer before the sequence goes on.

A few inputs crash etcd 3.4 itself and are not generated (see avoid_etcd_txn_panic).
--avoid leaves out known differences, to hunt for others; CI uses none.

    /usr/bin/python3 test/compat/differential_test.py --kvstore build/bin/kvstore \\
        --stubs build/test/compat/pb --seeds 20 --first-seed 1 --ops 200   # CI
    ... --seed 1234 --ops 200 --verbose                           # replay one seed
"""

import concurrent.futures
import os
import queue
import random
import sys
import threading
import time
import traceback

import grpc
from google.protobuf import text_format

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import members  # noqa: E402

kv_pb2 = rpc_pb2 = rpc_pb2_grpc = None  # set by main() from --stubs

KEYS = [b"a", b"a/x", b"a/y", b"ab", b"b", b"b/x", b"c", b"d\xff", b"e"]
PREFIXES = [b"a", b"a/", b"b", b"d", b"d\xff", b"\xff", b"c"]
LEASE_IDS = [1, 2, 3, 0x7fffffff]
UNKNOWN_LEASE = 99


def prefix_end(p):
    """etcd's GetPrefixRangeEnd."""
    b = bytearray(p)
    for i in range(len(b) - 1, -1, -1):
        if b[i] < 0xFF:
            b[i] += 1
            return bytes(b[:i + 1])
    return b"\x00"


class Mismatch(Exception):
    pass


def clear_headers(msg):
    """Clears cluster_id, member_id and raft_term in every ResponseHeader inside msg."""
    for field, value in msg.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        values = value if field.label == field.LABEL_REPEATED else [value]
        for v in values:
            if v.DESCRIPTOR.name == "ResponseHeader":
                v.cluster_id = 0
                v.member_id = 0
                v.raft_term = 0
            else:
                clear_headers(v)
    return msg


def show(x):
    if isinstance(x, tuple):
        return f"error {x[0]}: {x[1]!r}"
    if hasattr(x, "DESCRIPTOR"):
        return f"{x.DESCRIPTOR.name} {{\n{text_format.MessageToString(x)}}}"
    return repr(x)


class WatchStream:
    """One Watch stream: requests go in through a queue; a thread collects responses."""

    def __init__(self, channel):
        self.requests = queue.Queue()
        self.responses = []
        self.cond = threading.Condition()
        self.error = None
        self.call = rpc_pb2_grpc.WatchStub(channel).Watch(iter(self.requests.get, None))
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for r in self.call:
                with self.cond:
                    self.responses.append((time.monotonic(), r))
                    self.cond.notify_all()
        except grpc.RpcError as e:
            with self.cond:
                if e.code() != grpc.StatusCode.CANCELLED:
                    self.error = (e.code(), e.details())
                self.cond.notify_all()

    def send(self, req):
        self.requests.put(req)

    def wait_for(self, pred, timeout):
        """Waits until pred(responses) holds; returns whether it did."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred(self.responses):
                left = deadline - time.monotonic()
                if left <= 0 or self.error is not None:
                    return pred(self.responses)
                self.cond.wait(left)
            return True

    def idle_for(self, seconds, timeout=10.0):
        """Waits until no response came for `seconds`, counted from now at the earliest
        (an event for the write just made may not have left the server yet)."""
        start = time.monotonic()
        deadline = start + timeout
        while time.monotonic() < deadline:
            with self.cond:
                last = max(start, self.responses[-1][0] if self.responses else 0.0)
            quiet = time.monotonic() - last
            if quiet >= seconds:
                return
            time.sleep(seconds - quiet)

    def close(self):
        self.requests.put(None)
        self.call.cancel()
        self.thread.join(5)


def watch_items(responses):
    """The stream's responses as comparable items per watch id; timing left out (see
    the module doc)."""
    per_watch = {}
    progress = []
    for _, r in responses:
        if r.watch_id == -1 and not r.created and not r.events:
            progress.append(r.header.revision)
            continue
        items = per_watch.setdefault(r.watch_id, [])
        if r.created:
            items.append(("created", r.header.revision, r.canceled, r.compact_revision,
                          r.cancel_reason))
            continue
        for ev in r.events:
            items.append(("event", ev.SerializeToString(deterministic=True)))
        if r.canceled or r.compact_revision:
            items.append(("canceled", r.compact_revision, r.cancel_reason))
        elif not r.events:
            items.append(("empty", r.header.revision))
    return per_watch, progress


def describe_item(item):
    if item[0] == "event":
        ev = kv_pb2.Event()
        ev.ParseFromString(item[1])
        return "event " + text_format.MessageToString(ev, as_one_line=True)
    return repr(item)


class Target:
    """One member as the sequence sees it: stubs and watch streams."""

    def __init__(self, member):
        self.member = member
        self.channel = grpc.insecure_channel(member.endpoint)
        self.kv = rpc_pb2_grpc.KVStub(self.channel)
        self.lease = rpc_pb2_grpc.LeaseStub(self.channel)
        self.watch_stub_channel = self.channel
        self.stream = None

    def call(self, method, request):
        try:
            return method(self)(request, timeout=20)
        except grpc.RpcError as e:
            return (e.code(), e.details())

    def keep_alive_once(self, request):
        try:
            it = self.lease.LeaseKeepAlive(iter([request]), timeout=20)
            return next(iter(it))
        except grpc.RpcError as e:
            return (e.code(), e.details())
        except StopIteration:
            return ("no response",)

    def watch(self):
        if self.stream is None:
            self.stream = WatchStream(self.channel)
        return self.stream

    def close(self):
        if self.stream is not None:
            self.stream.close()
        self.channel.close()


class Sequence:
    """Generates and runs one seed's calls against both targets."""

    def __init__(self, seed, ours, ref, verbose=False, services=("kv", "lease", "watch"),
                 avoid=(), keep_going=False):
        self.rng = random.Random(seed)
        self.seed = seed
        self.ours = ours
        self.ref = ref
        self.verbose = verbose
        self.services = services
        self.avoid = avoid
        self.keep_going = keep_going
        self.found = []  # mismatches noted with keep_going
        self.rev = 1
        self.compacted = 0
        self.compaction_settled = True  # the last compaction was physical (see settle_events)
        self.leases = {}  # id -> granted TTL (as etcd answered)
        self.values = [b""]
        self.open_watches = []  # watch ids (etcd's numbering; ours must match)
        self.watch_log = {}  # watch id -> the log line of the request that created it
        # watch id -> (compacted revision it starts at, whether it drops no deletes), for the
        # watches that start at a compacted revision etcd may not have settled yet
        self.unsettled_starts = {}
        self.watch_creates = 0
        self.progress_requests = 0
        self.pool = concurrent.futures.ThreadPoolExecutor(2)
        self.op_index = 0
        self.log = []

    # --- running and comparing ------------------------------------------------

    def both(self, fn):
        """Runs fn(target) on both at once; returns (ours, ref)."""
        fo = self.pool.submit(fn, self.ours)
        fr = self.pool.submit(fn, self.ref)
        return fo.result(), fr.result()

    def unary(self, name, method, request, normalize=None):
        self.note(name, request)
        ours, ref = self.both(lambda t: t.call(method, request))
        for r in (ours, ref):
            if not isinstance(r, tuple):
                clear_headers(r)
                if normalize is not None:
                    normalize(r)
        if isinstance(ref, tuple) and ref[0] == grpc.StatusCode.UNAVAILABLE:
            raise Mismatch(f"etcd itself is unavailable: {ref}")
        if ours != ref:
            # Both refused, or a read: the stores are still alike and the run can go on.
            safe = (isinstance(ours, tuple) and isinstance(ref, tuple)) or name in (
                "Range", "LeaseTimeToLive", "LeaseLeases")
            self.mismatch(name, request, ours, ref, safe=safe)
        if not isinstance(ref, tuple) and ref.HasField("header") and ref.header.revision:
            self.rev = ref.header.revision
        return ref

    def note(self, name, request):
        self.op_index += 1
        line = f"[{self.op_index}] {name} " + (text_format.MessageToString(
            request, as_one_line=True) if request is not None else "")
        self.log.append(line)
        if self.verbose:
            print(line, flush=True)

    def mismatch(self, name, request, ours, ref, safe=False):
        """Raises Mismatch; with --keep-going, only notes it when the stores cannot have
        drifted apart (safe)."""
        req = show(request) if request is not None else ""
        text = (f"seed {self.seed}, op {self.op_index}: {name} differs\n"
                f"request: {req}\nours: {show(ours)}\netcd: {show(ref)}")
        if self.keep_going and safe:
            self.found.append(text)
            print(text, flush=True)
            return
        raise Mismatch(text)

    # --- random pieces ------------------------------------------------------------

    def key(self):
        return self.rng.choice(KEYS)

    def value(self):
        if self.rng.random() < 0.3:
            return self.rng.choice(self.values)
        v = bytes(self.rng.choice(b"xyz01") for _ in range(self.rng.randint(0, 6)))
        self.values.append(v)
        return v

    def key_range(self, allow_empty_key=True):
        """(key, range_end) for one key, a prefix, from a key, a range or everything."""
        c = self.rng.random()
        if allow_empty_key and c < 0.02:
            return b"", b""
        if c < 0.4:
            return self.key(), b""
        if c < 0.65:
            p = self.rng.choice(PREFIXES)
            return p, prefix_end(p)
        if c < 0.75:
            return self.key(), b"\x00"
        if c < 0.95:
            return self.key(), self.key()
        return b"\x00", b"\x00"

    def revision(self):
        """0 mostly; otherwise around the compacted and current revisions."""
        if self.rng.random() < 0.6:
            return 0
        return max(0, self.rng.choice([
            self.compacted - 1, self.compacted, self.compacted + 1, self.rev, self.rev + 1,
            self.rev + 2, self.rng.randint(1, self.rev), self.rng.randint(1, self.rev)]))

    def lease_id(self):
        c = self.rng.random()
        if c < 0.6:
            return 0
        if c < 0.95 and self.leases:
            return self.rng.choice(sorted(self.leases))
        return self.rng.choice(LEASE_IDS + [UNKNOWN_LEASE])

    def range_request(self):
        key, end = self.key_range()
        r = rpc_pb2.RangeRequest(key=key, range_end=end)
        if self.rng.random() < 0.4:
            r.limit = self.rng.randint(-1, 4)
        r.revision = self.revision() if self.rng.random() > 0.03 else -1
        if self.rng.random() < 0.4:
            r.sort_order = self.rng.randint(0, 2)
        if self.rng.random() < 0.4:
            r.sort_target = self.rng.randint(0, 4)
        r.serializable = self.rng.random() < 0.3
        r.keys_only = self.rng.random() < 0.2
        r.count_only = self.rng.random() < 0.15
        if self.rng.random() < 0.15:
            pick = lambda: self.rng.randint(0, self.rev + 1)
            for f in ("min_mod_revision", "max_mod_revision", "min_create_revision",
                      "max_create_revision"):
                if self.rng.random() < 0.5:
                    setattr(r, f, pick())
        return r

    def put_request(self):
        r = rpc_pb2.PutRequest(key=self.key() if self.rng.random() > 0.01 else b"",
                               value=self.value(), prev_kv=self.rng.random() < 0.4)
        if "lease" in self.services:
            r.lease = self.lease_id()
        if self.rng.random() < 0.1:
            r.ignore_value = True
            if self.rng.random() < 0.8:
                r.value = b""
        if self.rng.random() < 0.1:
            r.ignore_lease = True
            if self.rng.random() < 0.8:
                r.lease = 0
        return r

    def delete_request(self):
        key, end = self.key_range()
        return rpc_pb2.DeleteRangeRequest(key=key, range_end=end,
                                          prev_kv=self.rng.random() < 0.5)

    def compare(self):
        key, end = self.key_range(allow_empty_key=False)
        if self.rng.random() < 0.7:
            end = b""
        c = rpc_pb2.Compare(key=key, range_end=end, result=self.rng.randint(0, 3))
        target = self.rng.randint(0, 4 if "lease" in self.services else 3)
        c.target = target
        if target == rpc_pb2.Compare.VERSION:
            c.version = self.rng.randint(0, 3)
        elif target == rpc_pb2.Compare.CREATE:
            c.create_revision = self.rng.randint(0, self.rev)
        elif target == rpc_pb2.Compare.MOD:
            c.mod_revision = self.rng.randint(0, self.rev)
        elif target == rpc_pb2.Compare.VALUE:
            c.value = self.rng.choice(self.values)
        else:
            c.lease = self.lease_id()
        if self.rng.random() < 0.05:
            # A union member that does not match the target: etcd compares as if equal.
            setattr(c, self.rng.choice(["version", "create_revision", "mod_revision",
                                        "lease"]), self.rng.randint(0, self.rev))
        return c

    def request_ops(self, depth):
        ops = []
        for _ in range(self.rng.randint(0, 3)):
            c = self.rng.random()
            if c < 0.3:
                r = self.range_request()
                if r.revision < 0 and "negrev" in self.avoid:
                    r.revision = 0
                ops.append(rpc_pb2.RequestOp(request_range=r))
            elif c < 0.65:
                ops.append(rpc_pb2.RequestOp(request_put=self.put_request()))
            elif c < 0.9 or depth >= 2:
                ops.append(rpc_pb2.RequestOp(request_delete_range=self.delete_request()))
            else:
                ops.append(rpc_pb2.RequestOp(request_txn=self.txn_request(depth + 1)))
        return ops

    def txn_request(self, depth=0):
        t = rpc_pb2.TxnRequest(
            compare=[self.compare() for _ in range(self.rng.randint(0, 3))],
            success=self.request_ops(depth), failure=self.request_ops(depth))
        if depth == 0 and self.avoid_etcd_txn_panic(t) and "fromkeytxn" in self.avoid:
            return self.txn_request(depth)
        return t

    @staticmethod
    def avoid_etcd_txn_panic(txn):
        """etcd 3.4's duplicate-key check reads a delete's range_end "\\0" (to the end of
        the key space) as the literal byte, so a txn may delete a key from-key and put it
        after; a put with ignore_value or ignore_lease on such a key then fails while the
        txn is applied and etcd panics ("unexpected error during txn"). So no txn here
        has both a from-key delete and such a put."""
        puts, from_key = [], False

        def walk(ops):
            nonlocal from_key
            for op in ops:
                kind = op.WhichOneof("request")
                if kind == "request_put":
                    puts.append(op.request_put)
                elif kind == "request_delete_range":
                    from_key |= op.request_delete_range.range_end == b"\x00"
                elif kind == "request_txn":
                    walk(op.request_txn.success)
                    walk(op.request_txn.failure)

        walk(txn.success)
        walk(txn.failure)
        if from_key:
            for p in puts:
                p.ignore_value = p.ignore_lease = False
        return from_key and puts

    # --- operations -----------------------------------------------------------------

    def op_put(self):
        self.unary("Put", lambda t: t.kv.Put, self.put_request())

    def op_range(self):
        self.unary("Range", lambda t: t.kv.Range, self.range_request())

    def op_delete(self):
        self.unary("DeleteRange", lambda t: t.kv.DeleteRange, self.delete_request())

    def op_txn(self):
        self.unary("Txn", lambda t: t.kv.Txn, self.txn_request())

    def op_compact(self):
        rev = max(0, self.rng.choice([self.compacted - 1, self.compacted, self.compacted + 1,
                                      self.rev, self.rev + 1,
                                      self.rng.randint(self.compacted, self.rev)]))
        self.checkpoint("before compaction")
        physical = self.rng.random() < 0.5
        r = self.unary("Compact", lambda t: t.kv.Compact,
                       rpc_pb2.CompactionRequest(revision=rev, physical=physical))
        if not isinstance(r, tuple):
            self.compacted = rev
            self.compaction_settled = physical

    def op_lease_grant(self):
        lid = self.rng.choice(LEASE_IDS)
        ttl = self.rng.choice([600, 1000, 3600])
        r = self.unary("LeaseGrant", lambda t: t.lease.LeaseGrant,
                       rpc_pb2.LeaseGrantRequest(ID=lid, TTL=ttl))
        if not isinstance(r, tuple) and not r.error:
            self.leases[r.ID] = r.TTL

    def op_lease_revoke(self):
        lid = self.lease_id() or self.rng.choice(LEASE_IDS)
        r = self.unary("LeaseRevoke", lambda t: t.lease.LeaseRevoke,
                       rpc_pb2.LeaseRevokeRequest(ID=lid))
        if not isinstance(r, tuple):
            self.leases.pop(lid, None)

    def normalize_ttl(self, r):
        """The remaining TTL depends on time: check it, then set it to the granted one."""
        granted = self.leases.get(r.ID)
        if granted is not None and 0 < r.TTL:
            if granted - 30 <= r.TTL <= granted:
                r.TTL = granted
            else:
                r.TTL = -1000 - r.TTL  # keeps a wrong TTL visible in the diff

    def normalize_time_to_live(self, r):
        self.normalize_ttl(r)
        keys = sorted(r.keys)  # etcd lists them from a map: in no order
        del r.keys[:]
        r.keys.extend(keys)

    def op_lease_ttl(self):
        lid = self.lease_id() or self.rng.choice(LEASE_IDS + [UNKNOWN_LEASE])
        self.unary("LeaseTimeToLive", lambda t: t.lease.LeaseTimeToLive,
                   rpc_pb2.LeaseTimeToLiveRequest(ID=lid, keys=self.rng.random() < 0.7),
                   normalize=self.normalize_time_to_live)

    def op_lease_leases(self):
        def sort(r):
            ids = sorted(l.ID for l in r.leases)
            del r.leases[:]
            for i in ids:
                r.leases.add(ID=i)
        self.unary("LeaseLeases", lambda t: t.lease.LeaseLeases, rpc_pb2.LeaseLeasesRequest(),
                   normalize=sort)

    def op_lease_keepalive(self):
        lid = self.lease_id() or self.rng.choice(LEASE_IDS + [UNKNOWN_LEASE])
        req = rpc_pb2.LeaseKeepAliveRequest(ID=lid)
        self.note("LeaseKeepAlive", req)
        ours, ref = self.both(lambda t: t.keep_alive_once(req))
        for r in (ours, ref):
            if not isinstance(r, tuple):
                clear_headers(r)
        if ours != ref:
            self.mismatch("LeaseKeepAlive", req, ours, ref)

    def op_watch_create(self):
        if len(self.open_watches) >= 5:
            return self.op_watch_cancel()
        key, end = self.key_range(allow_empty_key=False)
        c = rpc_pb2.WatchCreateRequest(key=key, range_end=end, prev_kv=self.rng.random() < 0.4)
        s = self.rng.random()
        if s < 0.3:
            c.start_revision = 0
        elif s < 0.9:
            c.start_revision = max(1, self.rng.choice([
                self.compacted - 1, self.compacted, self.compacted + 1,
                self.rng.randint(1, self.rev), self.rng.randint(1, self.rev)]))
        else:
            c.start_revision = self.rev + self.rng.randint(1, 3)
        if self.rng.random() < 0.2:
            c.filters.append(self.rng.randint(0, 1))
        req = rpc_pb2.WatchRequest(create_request=c)
        self.note("Watch.create", req)
        self.watch_creates += 1
        n = self.watch_creates

        def create(t):
            st = t.watch()
            st.send(req)
            ok = st.wait_for(lambda rs: sum(1 for _, r in rs if r.created) >= n, 10)
            return ok, st.error

        ours, ref = self.both(create)
        if not ref[0]:
            raise Mismatch(f"etcd itself did not answer a watch create: {ref}")
        if not ours[0]:
            self.mismatch("Watch.create", req, f"no created response (stream error {ours[1]})",
                          "created")
        created = [r for _, r in self.ref.stream.responses if r.created][n - 1]
        if not created.canceled:
            self.open_watches.append(created.watch_id)
            self.watch_log[created.watch_id] = self.log[-1]
            if c.start_revision == self.compacted > 0 and not self.compaction_settled:
                self.unsettled_starts[created.watch_id] = (
                    self.compacted, rpc_pb2.WatchCreateRequest.NODELETE in c.filters)

    def op_watch_cancel(self):
        if not self.open_watches:
            return self.op_watch_create()
        wid = self.rng.choice(self.open_watches)
        self.checkpoint("before cancel")
        self.open_watches.remove(wid)
        req = rpc_pb2.WatchRequest(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=wid))
        self.note("Watch.cancel", req)

        def cancel(t):
            # Wait for the answer: a write sent before the server read the cancel could
            # still reach the watch on one member and not on the other.
            st = t.watch()
            st.send(req)
            return st.wait_for(
                lambda rs: any(r.canceled and r.watch_id == wid and not r.created and
                               not r.compact_revision for _, r in rs), 10)

        ours, ref = self.both(cancel)
        if not ref:
            raise Mismatch(f"etcd itself did not confirm the cancel of watch {wid}")
        if not ours:
            self.mismatch("Watch.cancel", req, "no canceled response", "canceled")

    def op_watch_progress(self):
        if self.ref.stream is None:
            return self.op_watch_create()
        req = rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest())
        self.note("Watch.progress", req)
        self.progress_requests += 1
        n = self.progress_requests

        def progress(t):
            st = t.watch()
            st.send(req)
            return st.wait_for(lambda rs: len(watch_items(rs)[1]) >= n, 10)

        ours, ref = self.both(progress)
        if not ref:
            raise Mismatch("etcd itself did not answer a progress request")
        if not ours:
            self.mismatch("Watch.progress", req, "no progress response", "a progress response")

    def checkpoint(self, why):
        """Waits until etcd's watchers are idle, then (bounded) until both sides sent as
        many items for every watch, and compares what each watch received so far."""
        if self.ref.stream is None:
            return
        self.ref.stream.idle_for(0.2)
        self.ours.watch()

        def compared():
            ref_items, ref_progress = watch_items(list(self.ref.stream.responses))
            ours_items, ours_progress = watch_items(list(self.ours.stream.responses))
            self.settle_events(ref_items, ours_items)
            return ours_items, ours_progress, ref_items, ref_progress

        def counts_differ():
            ours_items, ours_progress, ref_items, ref_progress = compared()
            return ({w: len(i) for w, i in ours_items.items()}, len(ours_progress)) != \
                ({w: len(i) for w, i in ref_items.items()}, len(ref_progress))

        # A loaded machine can delay either side: wait (bounded) until both sent as much.
        deadline = time.monotonic() + 5
        while counts_differ() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.ours.stream.idle_for(0.05, timeout=2)
        ours_items, ours_progress, ref_items, ref_progress = compared()
        if self.ref.stream.error or self.ours.stream.error:
            if self.ref.stream.error != self.ours.stream.error:
                raise Mismatch(f"seed {self.seed}, {why}: watch stream errors differ\n"
                               f"ours: {self.ours.stream.error}\netcd: {self.ref.stream.error}")
        if (ours_items, ours_progress) != (ref_items, ref_progress):
            lines = [f"seed {self.seed}, op {self.op_index} ({why}): watch responses differ"]
            if ours_progress != ref_progress:
                lines.append(f"progress revisions: ours {ours_progress}, etcd {ref_progress}")
            for w in sorted(set(ours_items) | set(ref_items)):
                a, b = ours_items.get(w, []), ref_items.get(w, [])
                if a == b:
                    continue
                i = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]),
                         min(len(a), len(b)))
                lines.append(f"watch {w}: first difference at item {i} "
                             f"(ours has {len(a)}, etcd {len(b)})")
                lines.append("  ours: " + (describe_item(a[i]) if i < len(a) else "(nothing)"))
                lines.append("  etcd: " + (describe_item(b[i]) if i < len(b) else "(nothing)"))
                if w in self.watch_log:
                    lines.append(f"  created by: {self.watch_log[w]}")
            raise Mismatch("\n".join(lines))

    def settle_events(self, ref_items, ours_items):
        """A watch from exactly the compacted revision C reads C's changes from etcd's
        backend, where the deletions of a compaction that was not physical show only after
        the backend's next commit (its batch interval is 100 ms): until then etcd also sends
        the changes at C that compaction drops, a key's deletes and puts overwritten within
        C. Ours sends what the finished compaction leaves; so do both, once etcd's commit is
        done or after a physical compaction. Takes those changes out of etcd's answer. A
        watch that drops deletes cannot tell an overwritten put from a kept one: its puts
        at C are not compared."""
        for wid, (c, no_delete) in self.unsettled_starts.items():
            for items in (ref_items, ours_items) if no_delete else (ref_items,):
                if wid not in items:
                    continue
                events = [(i, kv_pb2.Event.FromString(item[1]))
                          for i, item in enumerate(items[wid]) if item[0] == "event"]
                at_c = [(i, e) for i, e in events if e.kv.mod_revision == c]
                dropped = set()
                for j, (i, e) in enumerate(at_c):
                    overwritten = any(later.kv.key == e.kv.key for _, later in at_c[j + 1:])
                    if e.type == kv_pb2.Event.DELETE or overwritten or no_delete:
                        dropped.add(i)
                items[wid] = [item for i, item in enumerate(items[wid]) if i not in dropped]

    def run(self, n_ops):
        ops = [(self.op_put, 25), (self.op_range, 25), (self.op_delete, 10),
               (self.op_txn, 20), (self.op_compact, 3)]
        if "lease" in self.services:
            ops += [(self.op_lease_grant, 4), (self.op_lease_revoke, 2), (self.op_lease_ttl, 2),
                    (self.op_lease_leases, 1), (self.op_lease_keepalive, 1)]
        if "watch" in self.services:
            ops += [(self.op_watch_create, 5), (self.op_watch_cancel, 2),
                    (self.op_watch_progress, 1)]
        fns, weights = zip(*ops)
        try:
            for _ in range(n_ops):
                self.rng.choices(fns, weights)[0]()
            self.checkpoint("at the end")
            if self.found:
                raise Mismatch(f"seed {self.seed}: {len(self.found)} differences (above)")
        finally:
            self.pool.shutdown()


def start_both(args):
    """Starts our member and etcd side by side: both boot at once."""
    pair = [members.ours(args), members.Member("etcd", args.etcd)]
    try:
        for m in pair:
            m.spawn()
        for m in pair:
            try:
                m.wait_healthy()
            except members.MemberError:
                m.kill()
                m.start()  # once more, on new ports
        return pair
    except BaseException:
        for m in pair:
            m.close()
        raise


def run_seed(args, seed):
    ours_m, ref_m = start_both(args)
    ours = ref = None
    try:
        ours, ref = Target(ours_m), Target(ref_m)
        Sequence(seed, ours, ref, verbose=args.verbose, services=args.services,
                 avoid=args.avoid, keep_going=args.keep_going).run(args.ops)
        for m in (ours_m, ref_m):
            if not m.running():
                raise Mismatch(f"{m.kind} died:\n{m.log_tail()}")
    finally:
        for t in (ours, ref):
            if t is not None:
                t.close()
        ours_m.close()
        ref_m.close()


def main():
    global kv_pb2, rpc_pb2, rpc_pb2_grpc

    def extra(p):
        p.add_argument("--seeds", type=int, default=20, help="how many seeds")
        p.add_argument("--first-seed", type=int, default=None,
                       help="first seed (default: from the time; printed)")
        p.add_argument("--seed", type=int, default=None, help="run just this seed")
        p.add_argument("--ops", type=int, default=200, help="operations per seed")
        p.add_argument("--services", default="kv,lease,watch",
                       help="comma-separated subset of kv,lease,watch")
        p.add_argument("--verbose", action="store_true", help="print every operation")
        p.add_argument("--keep-going", action="store_true",
                       help="after a difference that leaves both stores alike (both "
                            "refused, or a read), note it and go on")
        p.add_argument("--time-budget", type=float, default=0,
                       help="seconds (0: none); seeds not started by then count as failed")
        p.add_argument("--avoid", default="",
                       help="comma-separated known differences not to generate while "
                            "hunting for others: fromkeytxn (a txn deleting from-key "
                            "and putting), negrev (negative revision of a range in a txn)")

    args = members.parse_args(__doc__, extra)
    args.services = tuple(args.services.split(","))
    args.avoid = tuple(a for a in args.avoid.split(",") if a)
    kv_pb2, rpc_pb2, rpc_pb2_grpc = members.import_stubs(args.stubs)
    if args.seed is not None:
        seeds = [args.seed]
    else:
        first = args.first_seed if args.first_seed is not None else int(time.time()) % 100000
        seeds = list(range(first, first + args.seeds))
    print(f"differential: seeds {seeds[0]}..{seeds[-1]}, {args.ops} ops each, "
          f"services {','.join(args.services)}", flush=True)
    passed, failed = 0, 0
    started = time.monotonic()
    for seed in seeds:
        t0 = time.monotonic()
        if args.time_budget and t0 - started > args.time_budget:
            failed += 1
            print(f"seed {seed}: FAILED: not run, the time budget of {args.time_budget:.0f}s "
                  "is spent (the members are too slow)", flush=True)
            continue
        try:
            run_seed(args, seed)
            passed += 1
            print(f"seed {seed}: ok ({time.monotonic() - t0:.1f}s)", flush=True)
        except Exception as e:
            failed += 1
            print(f"seed {seed}: FAILED\n{e}", flush=True)
            if not isinstance(e, Mismatch):
                traceback.print_exc()
            print("replay: /usr/bin/python3 " + os.path.abspath(__file__) +
                  f" --kvstore {args.kvstore} --etcd {args.etcd} --stubs {args.stubs}"
                  f" --seed {seed} --ops {args.ops} --services {','.join(args.services)}"
                  + (f" --avoid {','.join(args.avoid)}" if args.avoid else "")
                  + " --verbose", flush=True)
    print(f"differential: {time.monotonic() - started:.0f}s")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
