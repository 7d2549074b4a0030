"""A three-member cluster on loopback: replication, reads from every member, the member
list, failover after a SIGKILL of the leader, catch-up of the member that comes back, and
the leader handing over on SIGTERM.

    /usr/bin/python3 test/cluster/cluster_basic_test.py --kvstore build/bin/kvstore \\
        --stubs build/test/compat/pb

Members are started by test/compat/members.py (free ports, a directory each, killed by
pid). COMPAT_SELF_CHECK=1 runs the same test against a real etcd 3.4 cluster.
"""

import os
import queue
import sys
import threading
import time
import unittest

import grpc

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "compat"))
import members  # noqa: E402

ARGS = None
rpc_pb2 = rpc_pb2_grpc = None

# The whole test stays within this, well inside ctest's timeout.
BUDGET_S = 60
# A leader must be back this soon after the old one was killed (election timeout 500 ms).
FAILOVER_S = 5


def Client(member):
    return members.Client(member, rpc_pb2_grpc)


retry = members.retry


class ClusterBasicTest(unittest.TestCase):
    def setUp(self):
        self.started = time.monotonic()
        kind, binary = ("etcd", ARGS.etcd) if os.environ.get("COMPAT_SELF_CHECK") \
            else ("kvstore", ARGS.kvstore)
        self.cluster = members.Cluster(kind, binary, size=3).start()
        self.clients = {m.name: Client(m) for m in self.cluster.members}

    def tearDown(self):
        for c in self.clients.values():
            c.close()
        self.cluster.close()

    def remaining(self):
        return max(1.0, BUDGET_S - (time.monotonic() - self.started))

    def wait_leader(self, names, timeout):
        """The name of the member that every one of `names` reports as leader."""
        return members.wait_leader(self.cluster, self.clients, names, rpc_pb2, timeout)

    def put(self, name, key, value, timeout=5):
        return retry(f"put {key} through {name}", lambda: self.clients[name].kv.Put(
            rpc_pb2.PutRequest(key=key, value=value), timeout=2), timeout)

    def get(self, name, key, serializable):
        r = self.clients[name].kv.Range(
            rpc_pb2.RangeRequest(key=key, serializable=serializable), timeout=2)
        return r.kvs[0].value if r.kvs else None

    def test_replicates_fails_over_and_catches_up(self):
        names = [m.name for m in self.cluster.members]
        leader = self.wait_leader(names, 10)
        followers = [n for n in names if n != leader]

        # A write through a follower (forwarded to the leader) reads back linearizably
        # from every other member.
        self.put(followers[0], b"k1", b"v1")
        for n in names:
            if n != followers[0]:
                self.assertEqual(self.get(n, b"k1", serializable=False), b"v1", n)

        # The member list: everyone, with etcd's ids, names, peer and client URLs (client
        # URLs arrive once each member's published attributes are applied everywhere).
        ids = self.cluster.ids()
        want = sorted((ids[m.name], m.name, (m.peer_url,), (m.client_url,), False)
                      for m in self.cluster.members)
        want_cluster = members.cluster_id(list(ids.values()))
        for n in names:
            def listed():
                r = self.clients[n].cluster.MemberList(rpc_pb2.MemberListRequest(), timeout=2)
                got = sorted((m.ID, m.name, tuple(m.peerURLs), tuple(m.clientURLs),
                              m.isLearner) for m in r.members)
                return r if got == want else None
            r = retry(f"member list of {n}", listed, 10)
            self.assertEqual(r.header.cluster_id, want_cluster, n)
            self.assertEqual(r.header.member_id, ids[n], n)

        # SIGKILL the leader: the survivors elect another within a few seconds, and
        # writes go on through either of them.
        victim = self.cluster.members[names.index(leader)]
        victim.kill()
        killed_at = time.monotonic()
        new_leader = self.wait_leader(followers, FAILOVER_S)
        failover = time.monotonic() - killed_at
        self.assertNotEqual(new_leader, leader)
        sys.stderr.write(f"leader {leader} killed; {new_leader} leads after {failover:.2f}s\n")
        last = None
        for i in range(20):
            last = self.put(followers[i % 2], f"after/{i}".encode(), f"v{i}".encode())
        revision = last.header.revision
        for n in followers:
            self.assertEqual(self.get(n, b"after/19", serializable=False), b"v19", n)

        # The killed member comes back on its data dir and catches up: a serializable
        # read (its own store, no leader involved) finds what was written without it.
        victim.restart(timeout=self.remaining())
        retry(f"{leader} catching up", lambda: self.get(leader, b"after/19", serializable=True),
              min(10, self.remaining()))
        for i in range(20):
            self.assertEqual(self.get(leader, f"after/{i}".encode(), serializable=True),
                             f"v{i}".encode())

        # Every member holds the same history up to that revision.
        hashes = {}
        for n in names:
            def at_revision():
                r = self.clients[n].kv.Range(
                    rpc_pb2.RangeRequest(key=b"k1", serializable=True), timeout=2)
                return True if r.header.revision >= revision else None
            retry(f"{n} at revision {revision}", at_revision, min(10, self.remaining()))
            h = self.clients[n].maintenance.HashKV(
                rpc_pb2.HashKVRequest(revision=revision), timeout=5)
            hashes[n] = (h.hash, h.compact_revision)
        self.assertEqual(len(set(hashes.values())), 1, hashes)

        # SIGTERM of the leader hands leadership to another member before it exits (etcd's
        # graceful shutdown), and the others go on with the new leader.
        leader = self.wait_leader(names, min(10, self.remaining()))
        stopped = self.cluster.members[names.index(leader)]
        stopped.stop()
        if self.cluster.kind == "kvstore":
            self.assertIn("handed leadership to", stopped.log_tail(400))
        rest = [n for n in names if n != leader]
        self.assertNotEqual(self.wait_leader(rest, FAILOVER_S), leader)
        self.put(rest[0], b"after-stop", b"ok")
        self.assertLess(time.monotonic() - self.started, BUDGET_S + 10)

    def watch_events(self, name, start_revision, events_out, stop):
        """Watches the prefix w/ through `name` from `start_revision`, appending
        (key, mod_revision, type) to events_out until stop is set or the stream ends."""
        requests = queue.Queue()
        requests.put(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
            key=b"w/", range_end=b"w0", start_revision=start_revision)))

        def request_iter():
            while True:
                r = requests.get()
                if r is None:
                    return
                yield r

        call = self.clients[name].watch.Watch(request_iter())
        try:
            for resp in call:
                for e in resp.events:
                    events_out.append((e.kv.key, e.kv.mod_revision, e.type))
                if stop.is_set():
                    break
        except grpc.RpcError:
            pass  # the member was killed, or the stream was canceled
        finally:
            requests.put(None)
            call.cancel()

    def test_watches_on_survivors_go_on_across_a_leader_kill(self):
        """Watchers on the members that survive see every event once, in order, with no
        gap, while the leader is killed mid-stream; the same as a replay from history."""
        names = [m.name for m in self.cluster.members]
        leader = self.wait_leader(names, 10)
        followers = [n for n in names if n != leader]
        start = self.put(followers[0], b"w/start", b"0").header.revision
        seen = {n: [] for n in followers}
        stop = threading.Event()
        threads = [threading.Thread(target=self.watch_events, args=(n, start, seen[n], stop))
                   for n in followers]
        for t in threads:
            t.start()
        for i in range(60):
            if i == 20:
                self.cluster.members[names.index(leader)].kill()
            self.put(followers[i % 2], f"w/{i:03d}".encode(), b"v", timeout=FAILOVER_S)
        last = self.put(followers[0], b"w/end", b"1").header.revision

        # A watch from the same start, replayed from the store's history once it is all
        # written, is what every live watcher must have seen.
        replay, done = [], threading.Event()
        replayer = threading.Thread(target=self.watch_events,
                                    args=(followers[1], start, replay, done))
        replayer.start()
        retry("the replay", lambda: True if replay and replay[-1][1] >= last else None, 10)
        for n in followers:
            retry(f"{n}'s watcher at {last}",
                  lambda n=n: True if seen[n] and seen[n][-1][1] >= last else None, 10)
        stop.set()
        done.set()
        self.put(followers[0], b"w/wake", b"2")  # lets the watch threads see stop
        for t in threads + [replayer]:
            t.join(10)
        want = [e for e in replay if e[1] <= last]
        self.assertEqual(want[0][1], start)
        self.assertGreaterEqual(len(want), 62)
        for n in followers:
            self.assertEqual([e for e in seen[n] if e[1] <= last], want, n)

    def keep_alive(self, name, lease_id):
        """One keep-alive through `name`; the TTL it answers."""
        responses = self.clients[name].lease.LeaseKeepAlive(
            iter([rpc_pb2.LeaseKeepAliveRequest(ID=lease_id)]), timeout=5)
        return next(responses).TTL

    def test_leases_through_followers_and_across_a_leader_change(self):
        names = [m.name for m in self.cluster.members]
        leader = self.wait_leader(names, 10)
        followers = [n for n in names if n != leader]
        f = self.clients[followers[0]]

        # Granted through a follower (through Raft), the key attached; keep-alive and
        # time-to-live through a follower reach the leader's lessor, as etcd forwards them.
        grant = retry("grant", lambda: f.lease.LeaseGrant(
            rpc_pb2.LeaseGrantRequest(TTL=30), timeout=2), 5)
        f.kv.Put(rpc_pb2.PutRequest(key=b"leased", value=b"v", lease=grant.ID), timeout=5)
        self.assertEqual(self.keep_alive(followers[0], grant.ID), 30)
        self.assertEqual(self.keep_alive(followers[1], 12345), 0)  # unknown: TTL 0, as etcd
        ttl = f.lease.LeaseTimeToLive(
            rpc_pb2.LeaseTimeToLiveRequest(ID=grant.ID, keys=True), timeout=5)
        self.assertEqual((ttl.grantedTTL, list(ttl.keys)), (30, [b"leased"]))
        self.assertGreater(ttl.TTL, 25)
        self.assertEqual(f.lease.LeaseTimeToLive(
            rpc_pb2.LeaseTimeToLiveRequest(ID=999), timeout=5).TTL, -1)

        # The leader dies: the lease and its key survive, the new leader tracks it with its
        # full TTL again, and keep-alives through the remaining follower reach it.
        self.cluster.members[names.index(leader)].kill()
        new_leader = self.wait_leader(followers, FAILOVER_S)
        other = [n for n in followers if n != new_leader][0]
        ttl = retry("time-to-live after failover", lambda: self.clients[other].lease.LeaseTimeToLive(
            rpc_pb2.LeaseTimeToLiveRequest(ID=grant.ID, keys=True), timeout=2), 10)
        self.assertEqual(list(ttl.keys), [b"leased"])
        self.assertGreater(ttl.TTL, 25)
        self.assertEqual(retry("keep-alive after failover",
                               lambda: self.keep_alive(other, grant.ID), 10), 30)
        self.assertEqual(self.get(other, b"leased", serializable=False), b"v")

    def test_alarms_are_the_clusters(self):
        names = [m.name for m in self.cluster.members]
        self.wait_leader(names, 10)
        ids = self.cluster.ids()
        a, b, c = (self.clients[n] for n in names)
        AR = rpc_pb2.AlarmRequest

        def listed(client):
            r = client.maintenance.Alarm(AR(action=AR.GET, alarm=rpc_pb2.NONE), timeout=5)
            return sorted((m.memberID, m.alarm) for m in r.alarms)

        # Raised through one member, the alarm is every member's: listed everywhere, and a
        # put through another member is refused as etcd refuses it.
        r = a.maintenance.Alarm(AR(action=AR.ACTIVATE, memberID=ids[names[1]],
                                   alarm=rpc_pb2.NOSPACE), timeout=5)
        self.assertEqual([(m.memberID, m.alarm) for m in r.alarms],
                         [(ids[names[1]], rpc_pb2.NOSPACE)])
        want = [(ids[names[1]], rpc_pb2.NOSPACE)]
        for client in (a, b, c):
            retry("alarm listed", lambda: listed(client) == want or None, 5)
        with self.assertRaises(grpc.RpcError) as refused:
            c.kv.Put(rpc_pb2.PutRequest(key=b"full", value=b"x"), timeout=5)
        self.assertEqual(refused.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertEqual(refused.exception.details(), "etcdserver: mvcc: database space exceeded")
        c.kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"full"), timeout=5)  # deletes still go

        # It survives a restart of every member (persisted), and clearing it anywhere clears
        # it everywhere.
        for m in self.cluster.members:
            m.stop()
        for m in self.cluster.members:
            m.spawn(keep_ports=True)
        for c2 in self.clients.values():
            c2.close()
        self.clients = {m.name: Client(m) for m in self.cluster.members}
        a, b, c = (self.clients[n] for n in names)
        retry("alarm after restart", lambda: listed(b) == want or None, 20)
        r = c.maintenance.Alarm(AR(action=AR.DEACTIVATE, memberID=ids[names[1]],
                                   alarm=rpc_pb2.NOSPACE), timeout=5)
        self.assertEqual(len(r.alarms), 1)
        for client in (a, b, c):
            retry("alarm cleared", lambda: listed(client) == [] or None, 5)
        self.put(names[0], b"full", b"x")


def main():
    global ARGS, rpc_pb2, rpc_pb2_grpc
    ARGS = members.parse_args(__doc__)
    _, rpc_pb2, rpc_pb2_grpc = members.import_stubs(ARGS.stubs)
    unittest.main(verbosity=2)


if __name__ == "__main__":
    main()
