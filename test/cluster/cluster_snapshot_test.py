"""Snapshots in a three-member cluster on loopback: with a small --snapshot-count every
member compacts its Raft log; a member stopped meanwhile comes back behind the leader's
log, receives a snapshot (a RocksDB checkpoint streamed in checksummed chunks), installs
it and catches up; a member SIGKILLed after compacting its own log replays it from its
durable MVCC index; every member ends with the same HashKV.

    /usr/bin/python3 test/cluster/cluster_snapshot_test.py --kvstore build/bin/kvstore \\
        --stubs build/test/compat/pb

Members are started by test/compat/members.py (free ports, a directory each, killed by
pid). kvstore only: the catch-up flag is etcd 3.5's, not 3.4's.
"""

import os
import re
import sys
import time
import unittest
import urllib.request

import grpc

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "compat"))
import members  # noqa: E402

ARGS = None
rpc_pb2 = rpc_pb2_grpc = None

BUDGET_S = 120
SNAPSHOT_COUNT = 100
CATCHUP = 50
# SNAPSHOT_TEST_KEYS=N measures a bigger snapshot (the leader logs its size and time).
KEYS = int(os.environ.get("SNAPSHOT_TEST_KEYS", "1500"))
FLAGS = (f"--snapshot-count={SNAPSHOT_COUNT}",
         f"--experimental-snapshot-catchup-entries={CATCHUP}")


def Client(member):
    return members.Client(member, rpc_pb2_grpc)


retry = members.retry


class ClusterSnapshotTest(unittest.TestCase):
    def setUp(self):
        self.started = time.monotonic()
        self.cluster = members.Cluster("kvstore", ARGS.kvstore, size=3, extra_flags=FLAGS)
        self.metrics = {}  # name -> the URL of its /metrics
        for m, port in zip(self.cluster.members, members.free_ports(3)):
            m.extra_flags = list(FLAGS) + ["--metrics-addr", f"127.0.0.1:{port}"]
            self.metrics[m.name] = f"http://127.0.0.1:{port}/metrics"
        self.cluster.start()
        self.names = [m.name for m in self.cluster.members]
        self.clients = {}
        for m in self.cluster.members:
            self.clients[m.name] = Client(m)

    def tearDown(self):
        for c in self.clients.values():
            c.close()
        self.cluster.close()

    def member(self, name):
        return self.cluster.members[self.names.index(name)]

    def reconnect(self, name):
        self.clients[name].close()
        self.clients[name] = Client(self.member(name))

    def remaining(self):
        return max(1.0, BUDGET_S - (time.monotonic() - self.started))

    def wait_leader(self, names, timeout):
        return members.wait_leader(self.cluster, self.clients, names, rpc_pb2, timeout)

    def put_many(self, name, prefix, count, window=64):
        """Puts prefix/0..count-1 through `name`, `window` requests in flight; returns the
        last response."""
        kv = self.clients[name].kv
        last = None
        for start in range(0, count, window):
            futures = [kv.Put.future(rpc_pb2.PutRequest(key=f"{prefix}/{i:05d}".encode(),
                                                        value=f"value-{i}".encode() * 4),
                                     timeout=10)
                       for i in range(start, min(count, start + window))]
            for f in futures:
                r = f.result()
                if last is None or r.header.revision > last.header.revision:
                    last = r
        return last

    def count(self, name, prefix):
        r = self.clients[name].kv.Range(rpc_pb2.RangeRequest(
            key=prefix + b"/", range_end=prefix + b"0", serializable=True, count_only=True),
            timeout=5)
        return r.count, r.header.revision

    def scrape(self, name):
        """name -> {metric line's name with labels: value}."""
        with urllib.request.urlopen(self.metrics[name], timeout=5) as r:
            lines = r.read().decode().splitlines()
        return {k: float(v) for k, v in
                (line.rsplit(" ", 1) for line in lines if line and not line.startswith("#"))}

    def assert_same_hash(self, revision):
        hashes = {}
        for n in self.names:
            def at_revision():
                _, rev = self.count(n, b"k")
                return True if rev >= revision else None
            retry(f"{n} at revision {revision}", at_revision, min(20, self.remaining()))
            h = self.clients[n].maintenance.HashKV(
                rpc_pb2.HashKVRequest(revision=revision), timeout=10)
            hashes[n] = (h.hash, h.compact_revision)
        self.assertEqual(len(set(hashes.values())), 1, hashes)

    def test_lagging_member_gets_a_snapshot_and_compacted_member_restarts(self):
        leader = self.wait_leader(self.names, 10)
        followers = [n for n in self.names if n != leader]
        lagging, other = followers

        # A follower stops; the others write far past what the leader's log keeps.
        self.member(lagging).stop()
        t0 = time.monotonic()
        last = self.put_many(leader, "k", KEYS)
        sys.stderr.write(f"{KEYS} puts in {time.monotonic() - t0:.2f}s\n")
        leader_log = self.member(leader).log_tail(2000)
        self.assertIn("snapshot at index", leader_log)
        starts = [int(x) for x in re.findall(r"raft log starts at (\d+)", leader_log)]
        self.assertTrue(starts and starts[-1] > 100, starts)

        # It comes back behind the leader's first index: a snapshot brings it up to date.
        t0 = time.monotonic()
        self.member(lagging).start(timeout=self.remaining(), keep_ports=True)
        self.reconnect(lagging)
        got = retry(f"{lagging} catching up",
                    lambda: (lambda c: c if c[0] == KEYS else None)(self.count(lagging, b"k")),
                    min(30, self.remaining()))
        sys.stderr.write(f"{lagging} caught up in {time.monotonic() - t0:.2f}s\n")
        self.assertEqual(got[0], KEYS)
        self.assertIn("installed the snapshot at index", self.member(lagging).log_tail(400))
        sent = re.findall(r"sent the snapshot at index \d+ to \w+: .*",
                          self.member(leader).log_tail(2000))
        self.assertTrue(sent, "the leader never sent a snapshot")
        sys.stderr.write(f"leader: {sent[-1]}\n")
        metrics = self.scrape(leader)
        self.assertGreaterEqual(metrics["etcd_network_snapshot_send_success_total"], 1)
        ids = self.cluster.ids()
        for f in followers:
            rtt = f'etcd_network_peer_round_trip_time_seconds_count{{To="{ids[f]:x}"}}'
            self.assertGreater(metrics.get(rtt, 0), 0, f"{rtt} on the leader")
        r = self.clients[lagging].kv.Range(rpc_pb2.RangeRequest(
            key=f"k/{KEYS - 1:05d}".encode(), serializable=True), timeout=5)
        self.assertEqual(r.kvs[0].value, f"value-{KEYS - 1}".encode() * 4)
        self.assert_same_hash(last.header.revision)

        # Writes after the snapshot reach it through the log again.
        last = self.put_many(leader, "k2", 200)
        retry(f"{lagging} after the snapshot",
              lambda: True if self.count(lagging, b"k2")[0] == 200 else None,
              min(20, self.remaining()))

        # A member whose own log is compacted crashes (its MVCC store loses what was not
        # flushed) and restarts: it replays from its durable index and catches up.
        self.assertIn("snapshot at index", self.member(other).log_tail(2000))
        self.member(other).kill()
        last = self.put_many(leader, "k3", 300)
        self.member(other).start(timeout=self.remaining(), keep_ports=True)
        self.reconnect(other)
        retry(f"{other} after its restart",
              lambda: True if self.count(other, b"k3")[0] == 300 else None,
              min(20, self.remaining()))
        self.assertEqual(self.count(other, b"k")[0], KEYS)

        # And the leader itself, SIGKILLed: another leads, it rejoins from its own log.
        self.member(leader).kill()
        new_leader = self.wait_leader(followers, 10)
        last = self.put_many(new_leader, "k4", 100)
        self.member(leader).start(timeout=self.remaining(), keep_ports=True)
        self.reconnect(leader)
        retry(f"{leader} after its restart",
              lambda: True if self.count(leader, b"k4")[0] == 100 else None,
              min(20, self.remaining()))
        self.assert_same_hash(last.header.revision)

    def test_snapshot_carries_the_member_list(self):
        """A member down while a learner moves to a new peer URL learns of it from the
        snapshot it receives: the new URL is in its member list, and once it leads, it
        replicates to the learner there."""
        leader = self.wait_leader(self.names, 10)
        lagging = next(n for n in self.names if n != leader)
        cluster = rpc_pb2_grpc.ClusterStub(self.clients[leader].channel)

        learner = members.Member("kvstore", ARGS.kvstore, name="learner",
                                 extra_flags=list(FLAGS) + ["--initial-cluster-state",
                                                            "existing"],
                                 dir_prefix="cluster-snapshot-learner-")
        learner.client_port, learner.peer_port = members.free_ports(2)
        learner.cluster_token = self.cluster.token
        self.addCleanup(learner.close)
        added = retry("adding a learner", lambda: cluster.MemberAdd(rpc_pb2.MemberAddRequest(
            peerURLs=[learner.peer_url], isLearner=True), timeout=10), 10, interval=0.5)
        learner_id = added.member.ID
        learner.initial_cluster = ",".join(
            f"{m.name}={m.peer_url}" for m in self.cluster.members + [learner])
        learner.spawn(keep_ports=True)
        learner.wait_healthy(30)

        # With `lagging` down, the learner moves to a new peer port.
        self.member(lagging).stop()
        learner.stop()
        learner.peer_port = members.free_ports(1)[0]
        cluster.MemberUpdate(rpc_pb2.MemberUpdateRequest(ID=learner_id,
                                                         peerURLs=[learner.peer_url]),
                             timeout=10)
        learner.start(timeout=self.remaining(), keep_ports=True)

        self.put_many(leader, "k", 400)  # past the leader's log: `lagging` needs a snapshot
        self.member(lagging).start(timeout=self.remaining(), keep_ports=True)
        self.reconnect(lagging)
        retry(f"{lagging} catching up",
              lambda: True if self.count(lagging, b"k")[0] == 400 else None,
              min(30, self.remaining()))
        self.assertIn("installed the snapshot at index", self.member(lagging).log_tail(400))
        listed = rpc_pb2_grpc.ClusterStub(self.clients[lagging].channel).MemberList(
            rpc_pb2.MemberListRequest(), timeout=5).members
        mine = [m for m in listed if m.ID == learner_id]
        self.assertEqual(len(mine), 1, listed)
        self.assertEqual(list(mine[0].peerURLs), [learner.peer_url])
        self.assertTrue(mine[0].isLearner)

        # `lagging` leads: the learner still gets new entries, from it, at its new URL.
        self.clients[leader].maintenance.MoveLeader(
            rpc_pb2.MoveLeaderRequest(targetID=self.cluster.ids()[lagging]), timeout=10)
        self.assertEqual(self.wait_leader(self.names, 10), lagging)
        self.put_many(lagging, "k5", 50)
        channel = grpc.insecure_channel(learner.endpoint)
        self.addCleanup(channel.close)
        learner_kv = rpc_pb2_grpc.KVStub(channel)
        retry("the learner after the leader change",
              lambda: True if learner_kv.Range(rpc_pb2.RangeRequest(
                  key=b"k5/", range_end=b"k50", serializable=True, count_only=True),
                  timeout=5).count == 50 else None,
              min(20, self.remaining()))


def main():
    global ARGS, rpc_pb2, rpc_pb2_grpc
    ARGS = members.parse_args(__doc__)
    _, rpc_pb2, rpc_pb2_grpc = members.import_stubs(ARGS.stubs)
    unittest.main(verbosity=2)


if __name__ == "__main__":
    main()
