"""Backup and restore of a three-member cluster: `etcdctl snapshot save` from one member
of a live cluster (a client keeps writing meanwhile), then `kvstore restore` of that one
file for each member of a new three-member cluster (new peer URLs, a new token), which
then starts and must:

  - hold exactly the source's key space at the snapshot's revision, leases and their
    keys included: a lease keeps its granted TTL and can be revoked, and one that nobody
    keeps alive expires (its TTL counted again in full from the new leader's election);
  - agree: every member at the same revision with the same HashKV, before and after a
    new write;
  - list the new members, with etcd's ids (from the new peer URLs and token) and the
    cluster id computed from them;
  - answer a watch from a revision below the restored one with a cancel carrying
    compact_revision, so that watchers re-list.

The same scenario runs against real etcd 3.4 (`etcdctl snapshot restore`), to confirm
that the expectations are etcd's: the same key space, member ids and agreement, and the
same compacted-watch answer (created, then canceled with compact_revision). The one
difference is the revision: etcd 3.4 keeps the snapshot's revision and compaction mark,
whereas `kvstore restore` moves the revision forward (--bump-revision, a billion by
default) and marks everything below it compacted, as etcdutl 3.5's --bump-revision
--mark-compacted does.

    /usr/bin/python3 test/cluster/cluster_restore_test.py --kvstore build/bin/kvstore \\
        --stubs build/test/compat/pb

Members are started by test/compat/members.py (free ports, a directory each, killed by
pid).
"""

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "compat"))
import members  # noqa: E402

ARGS = None
rpc_pb2 = rpc_pb2_grpc = None

SOURCE_TOKEN = "restore-source"
RESTORED_TOKEN = "restore-target"
KEYS = 200
LEASE_TTL = 600
# A lease in the snapshot that nobody keeps alive: it must expire after the restore.
SHORT_TTL = 8
# `kvstore restore`'s default --bump-revision.
KVSTORE_BUMP = 1_000_000_000


def Client(member):
    return members.Client(member, rpc_pb2_grpc)


retry = members.retry


def run(cmd, env_extra=None, timeout=30):
    env = dict(os.environ, ETCDCTL_API="3", **(env_extra or {}))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited with {r.returncode}:\n"
                             f"{r.stdout}\n{r.stderr}")
    return r.stdout + r.stderr


def kv_tuples(kvs):
    return [(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease)
            for kv in kvs]


def watch_responses(client, create, count, timeout=5):
    """The first `count` responses of a Watch stream that sends `create`."""
    requests = queue.Queue()
    requests.put(rpc_pb2.WatchRequest(create_request=create))
    call = client.watch.Watch(iter(requests.get, None), timeout=timeout)
    out = []
    try:
        for r in call:
            out.append(r)
            if len(out) == count:
                break
    finally:
        requests.put(None)
        call.cancel()
    return out


class Writer(threading.Thread):
    """Puts live/NNNNN through one member until stopped, so the snapshot is taken from a
    cluster that is being written."""

    def __init__(self, member):
        super().__init__(daemon=True)
        self.client = Client(member)
        self.stop_event = threading.Event()
        self.written = 0
        self.error = None

    def run(self):
        try:
            while not self.stop_event.is_set():
                self.client.kv.Put(rpc_pb2.PutRequest(
                    key=f"live/{self.written:05d}".encode(), value=b"x" * 64), timeout=5)
                self.written += 1
        except grpc.RpcError as e:
            self.error = f"{e.code()}: {e.details()}"

    def finish(self):
        self.stop_event.set()
        self.join(10)
        self.client.close()


class ClusterRestoreTest(unittest.TestCase):
    def setUp(self):
        self.started = time.monotonic()
        self.dir = tempfile.mkdtemp(prefix="cluster-restore-")
        self.to_close = []

    def tearDown(self):
        for c in reversed(self.to_close):
            c.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        sys.stderr.write(f"{self.id()}: {time.monotonic() - self.started:.1f}s\n")

    def clients(self, cluster):
        out = {m.name: Client(m) for m in cluster.members}
        self.to_close.extend(out.values())
        return out

    def wait_leader(self, cluster, clients, timeout=10):
        return members.wait_leader(cluster, clients, list(clients), rpc_pb2, timeout)

    # --- the source cluster ------------------------------------------------

    def build_source(self, kind, binary):
        """A live three-member cluster with KEYS keys, a compaction, a lease with a key,
        and a client writing while `etcdctl snapshot save` runs. Returns (snapshot path,
        compacted revision, lease id, the key space at the snapshot's revision, that
        revision); the source cluster is closed."""
        source = members.Cluster(kind, binary, size=3, token=SOURCE_TOKEN).start()
        try:
            clients = self.clients(source)
            first = clients[source.members[0].name]
            for i in range(KEYS):
                first.kv.Put(rpc_pb2.PutRequest(key=f"k/{i:04d}".encode(),
                                                value=f"v{i}".encode()), timeout=5)
            # Overwrite some, so the history below the compaction holds older versions.
            for i in range(0, KEYS, 10):
                first.kv.Put(rpc_pb2.PutRequest(key=f"k/{i:04d}".encode(),
                                                value=f"w{i}".encode()), timeout=5)
            compacted = first.kv.Range(rpc_pb2.RangeRequest(key=b"k/0000"),
                                       timeout=5).header.revision
            first.kv.Compact(rpc_pb2.CompactionRequest(revision=compacted, physical=True),
                             timeout=10)
            lease = first.lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=LEASE_TTL),
                                           timeout=5).ID
            first.kv.Put(rpc_pb2.PutRequest(key=b"leased", value=b"l", lease=lease), timeout=5)
            short = first.lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=SHORT_TTL),
                                           timeout=5).ID
            first.kv.Put(rpc_pb2.PutRequest(key=b"expiring", value=b"e", lease=short),
                         timeout=5)

            writer = Writer(source.members[0])
            writer.start()
            retry("the writer to get going", lambda: True if writer.written >= 20 else None, 10)
            snapshot = os.path.join(self.dir, f"{kind}.db")
            saved = run([ARGS.etcdctl, "--endpoints", source.members[1].endpoint,
                         "snapshot", "save", snapshot])
            writer.finish()
            self.assertIsNone(writer.error)
            self.assertIn("Snapshot saved", saved)
            if kind == "etcd":
                status = json.loads(run([ARGS.etcdctl, "snapshot", "status", snapshot,
                                         "-w", "json"]))
                revision = status["revision"]
            else:
                revision = self.kvstore_snapshot_revision(snapshot)
            self.assertGreater(revision, compacted + 2)
            sys.stderr.write(f"{kind}: snapshot from {source.members[1].name} at revision "
                             f"{revision} (compacted at {compacted}); {writer.written} puts "
                             f"by a client meanwhile\n")
            # The key space at the snapshot's revision, as the source saw it.
            at = first.kv.Range(rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0",
                                                     revision=revision), timeout=10)
            self.assertGreater(len(at.kvs), KEYS)
            self.assertIn(b"expiring", [kv.key for kv in at.kvs])
            return snapshot, compacted, lease, kv_tuples(at.kvs), revision
        finally:
            source.close()

    def kvstore_snapshot_revision(self, snapshot):
        """The snapshot's revision, from a throw-away `kvstore restore` (etcdctl snapshot
        status reads only bbolt files)."""
        scratch = os.path.join(self.dir, "probe")
        out = run([ARGS.kvstore, "restore", snapshot, "--data-dir", scratch])
        shutil.rmtree(scratch, ignore_errors=True)
        m = re.search(r"\(revision (\d+)\)", out)
        self.assertIsNotNone(m, out)
        return int(m.group(1))

    # --- restore and check ---------------------------------------------------

    def restore_cluster(self, kind, binary, snapshot):
        """A new three-member cluster, each member restored from `snapshot`, started."""
        def restore_each(cluster):
            for m in cluster.members:
                shutil.rmtree(m.data_dir, ignore_errors=True)
                cmd = ([ARGS.kvstore, "restore"] if kind == "kvstore"
                       else [ARGS.etcdctl, "snapshot", "restore"])
                out = run(cmd + [snapshot, "--name", m.name,
                                 "--initial-cluster", m.initial_cluster,
                                 "--initial-cluster-token", cluster.token,
                                 "--initial-advertise-peer-urls", m.peer_url,
                                 "--data-dir", m.data_dir])
                if kind == "kvstore":
                    want_id = members.member_id([m.peer_url], cluster.token)
                    self.assertIn(f"member {want_id:x} of cluster", out)

        restored = members.Cluster(kind, binary, size=3, token=RESTORED_TOKEN)
        self.to_close.append(restored)
        return restored.start(prepare=restore_each)

    def check_restored(self, restored, want_kvs, want_revision, want_compacted,
                       old_compacted, lease):
        clients = self.clients(restored)
        names = [m.name for m in restored.members]
        self.wait_leader(restored, clients)

        # Every member holds the snapshot's key space, at the restored revision.
        for n in names:
            for serializable in (False, True):
                r = clients[n].kv.Range(rpc_pb2.RangeRequest(
                    key=b"\0", range_end=b"\0", serializable=serializable), timeout=5)
                self.assertEqual(r.header.revision, want_revision, n)
                self.assertEqual(kv_tuples(r.kvs), want_kvs, n)

        # Every member agrees: the same HashKV at the same revision. Asked at the current
        # revision (0): a restored kvstore is compacted at its revision, and HashKV at the
        # compacted revision fails as compacted, in etcd too.
        def same_hash(revision):
            hashes = {}
            for n in names:
                h = clients[n].maintenance.HashKV(rpc_pb2.HashKVRequest(revision=0),
                                                  timeout=5)
                self.assertEqual(h.header.revision, revision, n)
                hashes[n] = (h.hash, h.compact_revision)
            self.assertEqual(len(set(hashes.values())), 1, hashes)
            self.assertEqual(next(iter(hashes.values()))[1], want_compacted)

        same_hash(want_revision)

        # The member list is the new one: etcd's ids from the new URLs and token.
        ids = restored.ids()
        want_members = sorted((ids[m.name], m.name, (m.peer_url,), (m.client_url,), False)
                              for m in restored.members)
        for n in names:
            def listed():
                r = clients[n].cluster.MemberList(rpc_pb2.MemberListRequest(), timeout=2)
                got = sorted((m.ID, m.name, tuple(m.peerURLs), tuple(m.clientURLs),
                              m.isLearner) for m in r.members)
                return r if got == want_members else None
            r = retry(f"member list of {n}", listed, 10)
            self.assertEqual(r.header.cluster_id, members.cluster_id(list(ids.values())), n)
            self.assertEqual(r.header.member_id, ids[n], n)

        # A read or a watch from below the compacted revision: the read fails as
        # compacted; the watch is created, then canceled with the compacted revision, so
        # the watcher re-lists.
        for n in names:
            with self.assertRaises(grpc.RpcError) as raised:
                clients[n].kv.Range(rpc_pb2.RangeRequest(key=b"k/0000",
                                                         revision=old_compacted - 1), timeout=5)
            self.assertEqual(raised.exception.code(), grpc.StatusCode.OUT_OF_RANGE, n)
            self.assertEqual(raised.exception.details(),
                             "etcdserver: mvcc: required revision has been compacted", n)
            got = watch_responses(clients[n], rpc_pb2.WatchCreateRequest(
                key=b"k/", range_end=b"k0", start_revision=old_compacted - 1), 2)
            self.assertEqual(len(got), 2, (n, got))
            self.assertTrue(got[0].created, (n, got[0]))
            self.assertFalse(got[0].canceled, (n, got[0]))
            self.assertTrue(got[1].canceled, (n, got[1]))
            self.assertEqual(got[1].compact_revision, want_compacted, n)
            self.assertEqual(got[1].watch_id, got[0].watch_id, n)
            self.assertFalse(got[1].events, n)

        # The lease survived with its granted TTL and its key.
        for n in names:
            ttl = retry(f"lease on {n}", lambda: clients[n].lease.LeaseTimeToLive(
                rpc_pb2.LeaseTimeToLiveRequest(ID=lease, keys=True), timeout=5), 10)
            self.assertEqual(ttl.grantedTTL, LEASE_TTL, n)
            self.assertGreater(ttl.TTL, 0, n)
            self.assertEqual(list(ttl.keys), [b"leased"], n)

        # A watch from the restored revision on sees the next write; the write replicates
        # and every member agrees again.
        w = clients[names[1]]
        requests = queue.Queue()
        requests.put(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
            key=b"after", start_revision=want_revision + 1)))
        call = w.watch.Watch(iter(requests.get, None), timeout=10)
        try:
            self.assertTrue(next(call).created)
            put = clients[names[0]].kv.Put(rpc_pb2.PutRequest(key=b"after", value=b"a"),
                                           timeout=5)
            self.assertEqual(put.header.revision, want_revision + 1)
            event = next(call)
            self.assertEqual([(e.kv.key, e.kv.mod_revision) for e in event.events],
                             [(b"after", want_revision + 1)])
        finally:
            requests.put(None)
            call.cancel()
        for n in names:
            retry(f"{n} at {want_revision + 1}", lambda: True if clients[n].kv.Range(
                rpc_pb2.RangeRequest(key=b"after", serializable=True),
                timeout=2).header.revision == want_revision + 1 else None, 10)
        same_hash(want_revision + 1)

        # Revoking the restored lease deletes its key on every member; the lease nobody
        # keeps alive expires on its own (its whole TTL counted from the election).
        clients[names[2]].lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=lease), timeout=5)
        for key, timeout in ((b"leased", 10), (b"expiring", SHORT_TTL + 10)):
            for n in names:
                retry(f"{key} gone on {n}", lambda: True if not clients[n].kv.Range(
                    rpc_pb2.RangeRequest(key=key), timeout=2).kvs else None, timeout)
        leases = clients[names[0]].lease.LeaseLeases(rpc_pb2.LeaseLeasesRequest(), timeout=5)
        self.assertEqual(list(leases.leases), [])

    # --- the tests -------------------------------------------------------------

    def test_kvstore_restores_a_three_member_cluster(self):
        snapshot, compacted, lease, kvs, revision = self.build_source("kvstore", ARGS.kvstore)
        restored = self.restore_cluster("kvstore", ARGS.kvstore, snapshot)
        self.check_restored(restored, kvs, want_revision=revision + KVSTORE_BUMP,
                            want_compacted=revision + KVSTORE_BUMP,
                            old_compacted=compacted, lease=lease)

    def test_etcd_restores_a_three_member_cluster(self):
        """The reference: the same with etcd 3.4, which keeps the revision and its
        compaction mark."""
        if not (ARGS.etcd and os.access(ARGS.etcd, os.X_OK)):
            self.skipTest("no etcd binary")
        snapshot, compacted, lease, kvs, revision = self.build_source("etcd", ARGS.etcd)
        restored = self.restore_cluster("etcd", ARGS.etcd, snapshot)
        self.check_restored(restored, kvs, want_revision=revision,
                            want_compacted=compacted, old_compacted=compacted, lease=lease)


if __name__ == "__main__":
    ARGS = members.parse_args(__doc__.splitlines()[0])
    if not ARGS.etcdctl or not os.access(ARGS.etcdctl, os.X_OK):
        sys.stderr.write(f"etcdctl {ARGS.etcdctl!r} is missing\n")
        sys.exit(1)
    _, rpc_pb2, rpc_pb2_grpc = members.import_stubs(ARGS.stubs)
    unittest.main(verbosity=2)
