"""Membership changes with etcdctl on a kvstore cluster: member add (a voter, then a
learner that is promoted), a new member started with --initial-cluster-state existing that
catches up, member remove (a follower, then the leader), member update of a peer URL, a
member with a wiped data dir that rejoins by remove and add, and move-leader. Then the
error messages of refused changes, compared with a real etcd 3.4. Then a learner: what it
refuses and serves, promotion through a follower while it lags (refused) and once it is in
sync, and what it serves once promoted; the same scenario runs on a real etcd 3.4 cluster
and both must answer alike.

    /usr/bin/python3 test/cluster/cluster_membership_test.py --kvstore build/bin/kvstore \\
        --stubs build/test/compat/pb

Members are started by test/compat/members.py (free ports, a directory each, killed by
pid).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "compat"))
import members  # noqa: E402
import grpc  # noqa: E402

ARGS = None
HEARTBEAT_MS = 50
ELECTION_MS = 500


def etcdctl(endpoints, *args, timeout=30, check=True):
    """Runs etcdctl against `endpoints`; returns (returncode, stdout, stderr)."""
    cmd = [ARGS.etcdctl, "--endpoints", ",".join(endpoints), "--command-timeout=10s", *args]
    p = subprocess.run(cmd, env=dict(os.environ, ETCDCTL_API="3"), capture_output=True,
                       text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr}{p.stdout}")
    return p.returncode, p.stdout, p.stderr


def eventually(what, fn, timeout=20, interval=0.1):
    """fn() until it returns a true value (AssertionErrors count as not yet)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            out = fn()
            if out:
                return out
        except (AssertionError, subprocess.TimeoutExpired) as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last: {last})")
        time.sleep(interval)


class MembershipTest(unittest.TestCase):
    def setUp(self):
        self.cluster = members.Cluster("kvstore", ARGS.kvstore, size=3,
                                       heartbeat_ms=HEARTBEAT_MS, election_ms=ELECTION_MS)
        self.extra = []  # members started here, closed at the end
        self.cluster.start()
        self.live = {m.name: m for m in self.cluster.members}

    def tearDown(self):
        for m in self.extra:
            m.close()
        self.cluster.close()

    # --- helpers -----------------------------------------------------------

    def endpoints(self):
        return [m.endpoint for m in self.live.values()]

    def member_list(self):
        _, out, _ = etcdctl(self.endpoints(), "member", "list", "-w", "json")
        return json.loads(out)["members"]

    def ids_by_name(self):
        return {m.get("name", ""): m["ID"] for m in self.member_list()}

    def leader_id(self):
        _, out, _ = etcdctl(self.endpoints(), "endpoint", "status", "-w", "json")
        leaders = {s["Status"].get("leader", 0) for s in json.loads(out)}
        self.assertEqual(len(leaders), 1, f"members disagree on the leader: {out}")
        return leaders.pop()

    def name_of(self, member_id):
        for m in self.member_list():
            if m["ID"] == member_id:
                return m.get("name", "")
        raise AssertionError(f"no member {member_id:x}")

    def serializable_get(self, member, key):
        _, out, _ = etcdctl([member.endpoint], "get", key, "--consistency=s",
                            "--print-value-only")
        return out.strip()

    def new_member(self, name):
        m = members.Member("kvstore", ARGS.kvstore, name=name, heartbeat_ms=HEARTBEAT_MS,
                           election_ms=ELECTION_MS,
                           extra_flags=["--initial-cluster-state", "existing"],
                           dir_prefix=f"cluster-kvstore-{name}-")
        m.client_port, m.peer_port = members.free_ports(2)
        m.cluster_token = self.cluster.token
        self.extra.append(m)
        return m

    def start_joining(self, m):
        """Starts `m` (already added) with --initial-cluster-state existing and every
        current member in --initial-cluster; waits until it serves."""
        m.initial_cluster = ",".join(
            f"{x.name}={x.peer_url}" for x in list(self.live.values()) + [m])
        m.spawn(keep_ports=True)
        m.wait_healthy(30)
        self.live[m.name] = m

    def add(self, m, learner=False):
        args = ["member", "add", m.name, f"--peer-urls={m.peer_url}", "-w", "json"]
        if learner:
            args.append("--learner")
        _, out, _ = etcdctl(self.endpoints(), *args)
        resp = json.loads(out)
        self.assertEqual(resp["member"]["peerURLs"], [m.peer_url])
        self.assertEqual(bool(resp["member"].get("isLearner")), learner)
        self.assertIn(resp["member"]["ID"], [x["ID"] for x in resp["members"]])
        return resp["member"]["ID"]

    def wait_published(self, name, client_url):
        def published():
            for x in self.member_list():
                if x.get("name") == name and x.get("clientURLs") == [client_url]:
                    return True
            return False
        eventually(f"{name} in the member list with its client URL", published)

    def remove(self, member_id):
        etcdctl(self.endpoints(), "member", "remove", f"{member_id:x}")

    def wait_removed_exit(self, m):
        rc = m.wait_exit(15)
        self.assertIsNotNone(rc, f"removed member {m.name} still runs:\n{m.log_tail()}")
        self.assertNotEqual(rc, 0)
        self.assertIn("permanently removed", m.log_tail(60))
        del self.live[m.name]

    def put_everywhere_visible(self, key, value):
        etcdctl(self.endpoints(), "put", key, value)
        for m in self.live.values():
            eventually(f"{key} on {m.name}", lambda m=m: self.serializable_get(m, key) == value)

    # --- the scenario ------------------------------------------------------

    def test_membership_changes(self):
        etcdctl(self.endpoints(), "put", "before", "v0")

        # A new voter joins with --initial-cluster-state existing and catches up.
        n4 = self.new_member("n4")
        n4_id = self.add(n4)
        self.start_joining(n4)
        eventually("n4 caught up", lambda: self.serializable_get(n4, "before") == "v0")
        self.wait_published("n4", n4.client_url)
        self.assertEqual(len(self.member_list()), 4)
        self.assertEqual(self.ids_by_name()["n4"], n4_id)

        # A learner joins and is promoted once it is in sync.
        n5 = self.new_member("n5")
        n5_id = self.add(n5, learner=True)
        self.start_joining(n5)
        self.wait_published("n5", n5.client_url)
        self.assertTrue([x for x in self.member_list() if x["ID"] == n5_id][0]["isLearner"])
        leader = self.leader_id()
        leader_ep = self.live[self.name_of(leader)].endpoint
        eventually("promote n5",
                   lambda: etcdctl([leader_ep], "member", "promote", f"{n5_id:x}",
                                   check=False)[0] == 0)
        # Any member may answer the list from its own view (see the peer URL update below).
        eventually("n5 listed as a voter", lambda: not [
            x for x in self.member_list() if x["ID"] == n5_id][0].get("isLearner"), timeout=5)
        # n5 serves every client call once it applied its own promotion.
        eventually("n5 serves a linearizable get",
                   lambda: etcdctl([n5.endpoint], "get", "before", check=False)[0] == 0)
        self.put_everywhere_visible("after-promote", "v1")

        # A follower is removed: it stops, the others go on.
        leader = self.leader_id()
        follower = next(m for m in self.live.values() if m.name != self.name_of(leader))
        self.remove(self.ids_by_name()[follower.name])
        self.wait_removed_exit(follower)
        eventually("the follower's removal listed", lambda: len(self.member_list()) == 4,
                   timeout=5)
        self.put_everywhere_visible("after-follower-removal", "v2")

        # The leader is removed: it hands over and stops; a new leader serves.
        leader = self.leader_id()
        old_leader = self.live[self.name_of(leader)]
        self.remove(leader)
        self.wait_removed_exit(old_leader)
        eventually("a new leader", lambda: self.leader_id() not in (0, leader))
        eventually("the leader's removal listed", lambda: len(self.member_list()) == 3,
                   timeout=5)
        self.put_everywhere_visible("after-leader-removal", "v3")

        # A member's peer URL changes; restarted there, it rejoins.
        leader = self.leader_id()
        moved = next(m for m in self.live.values() if m.name != self.name_of(leader))
        moved_id = self.ids_by_name()[moved.name]
        new_peer_port = members.free_ports(1)[0]
        new_url = f"http://127.0.0.1:{new_peer_port}"
        etcdctl(self.endpoints(), "member", "update", f"{moved_id:x}", f"--peer-urls={new_url}")

        def updated_at(endpoints):
            for ep in endpoints:
                _, out, _ = etcdctl([ep], "member", "list", "-w", "json")
                m = [x for x in json.loads(out)["members"] if x["ID"] == moved_id][0]
                self.assertEqual(m["peerURLs"], [new_url], ep)
            return True

        # Each member lists members from its own view (etcd 3.4's MemberList is not
        # linearizable): a follower shows the change once the commit reaches it, within a
        # heartbeat or so. Except the moved member itself: once the leader has applied the
        # change it sends to the new URL, where nobody listens yet, so the moved member may
        # learn of its own update only after it is restarted there.
        others = [m.endpoint for m in self.live.values() if m is not moved]
        eventually("the new peer URL in the others' lists", lambda: updated_at(others), timeout=5)
        moved.stop()
        moved.peer_port = new_peer_port
        moved.start(30, keep_ports=True)
        self.put_everywhere_visible("after-update", "v4")
        eventually("the new peer URL in every member's list",
                   lambda: updated_at(self.endpoints()), timeout=5)

        # A member loses its data dir: removed and added again (a new id), it rejoins empty.
        leader = self.leader_id()
        wiped = next(m for m in self.live.values() if m.name != self.name_of(leader))
        old_id = self.ids_by_name()[wiped.name]
        wiped.stop()
        del self.live[wiped.name]
        shutil.rmtree(wiped.data_dir)
        self.remove(old_id)
        eventually("the wiped member's removal applied", lambda: len(self.member_list()) == 2)
        new_id = self.add(wiped)
        self.assertNotEqual(new_id, old_id)
        wiped.extra_flags = ["--initial-cluster-state", "existing"]
        self.start_joining(wiped)
        self.wait_published(wiped.name, wiped.client_url)
        eventually("the wiped member caught up",
                   lambda: self.serializable_get(wiped, "after-update") == "v4")
        self.put_everywhere_visible("after-rejoin", "v5")

        # move-leader to a chosen follower.
        leader = self.leader_id()
        target = next(x["ID"] for x in self.member_list() if x["ID"] != leader)
        etcdctl(self.endpoints(), "move-leader", f"{target:x}")
        eventually("the chosen leader", lambda: self.leader_id() == target)
        self.put_everywhere_visible("after-move", "v6")


class ErrorMessagesTest(unittest.TestCase):
    """Refused membership changes answer as a real etcd 3.4 does."""

    def test_errors_match_etcd(self):
        mine, ref = members.start_pair(ARGS, name="solo")
        try:
            def errors(m):
                out = []
                for args in (["member", "add", "x", f"--peer-urls={m.peer_url}"],
                             ["member", "add", "x", "--peer-urls=not-a-url"],
                             ["member", "remove", "1234"],
                             ["member", "update", "1234", "--peer-urls=http://127.0.0.1:1"],
                             ["member", "promote", "1234"]):
                    rc, _, err = etcdctl([m.endpoint], *args, check=False)
                    out.append((rc, err.strip().splitlines()[-1] if err.strip() else ""))
                _, lst, _ = etcdctl([m.endpoint], "member", "list", "-w", "json")
                me = json.loads(lst)["members"][0]["ID"]
                for args in (["member", "promote", f"{me:x}"], ["member", "remove", f"{me:x}"]):
                    rc, _, err = etcdctl([m.endpoint], *args, check=False)
                    out.append((rc, err.strip().splitlines()[-1] if err.strip() else ""))
                return out

            got, want = errors(mine), errors(ref)
            self.assertEqual(len(got), 7)
            if os.environ.get("MEMBERSHIP_VERBOSE"):
                sys.stderr.write(f"ours: {got}\netcd: {want}\n")
            for g, w in zip(got, want):
                # etcdctl prints the member id, which differs; the message must not.
                self.assertEqual(g[0], w[0], f"{g} vs etcd's {w}")
                self.assertEqual(g[1].split(": ", 1)[-1], w[1].split(": ", 1)[-1],
                                 f"{g} vs etcd's {w}")
        finally:
            mine.close()
            ref.close()


def rpc_outcome(fn):
    """("OK", "") if fn() returns, else the gRPC (code name, details) it failed with."""
    try:
        fn()
        return ("OK", "")
    except grpc.RpcError as e:
        return (e.code().name, e.details())


def last_line(text):
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


class LearnerScenario:
    """A learner's life on a 3-member cluster of `kind` (kvstore or etcd): what it refuses
    and serves, promotion through a follower while it lags and once it is in sync, and
    what it serves once promoted. run() asserts etcd 3.4's behaviour as it goes and returns
    what it saw, so that a kvstore run and an etcd run can be compared."""

    def __init__(self, test, kind, binary):
        self.t = test
        self.kind = kind
        self.binary = binary
        _, self.pb, self.grpc_pb = members.import_stubs(ARGS.stubs)
        self.seen = []
        self.channels = {}  # by endpoint

    def see(self, what, outcome):
        self.seen.append((what, outcome))
        return outcome

    # --- raw calls, to see the exact gRPC status -----------------------------

    def channel(self, endpoint):
        if endpoint not in self.channels:
            self.channels[endpoint] = grpc.insecure_channel(endpoint)
        return self.channels[endpoint]

    def stub(self, endpoint, service):
        return getattr(self.grpc_pb, f"{service}Stub")(self.channel(endpoint))

    def health_check(self, endpoint):
        """gRPC's health Check for the whole server (an empty request), raw: the bytes of
        the response."""
        return self.channel(endpoint).unary_unary("/grpc.health.v1.Health/Check")(
            b"", timeout=10)

    def range(self, endpoint, key, serializable):
        return self.stub(endpoint, "KV").Range(
            self.pb.RangeRequest(key=key.encode(), serializable=serializable), timeout=10)

    def value(self, endpoint, key, serializable):
        """The key's value as a Range on `endpoint` reads it; None if it is not there or
        the Range fails."""
        try:
            kvs = self.range(endpoint, key, serializable).kvs
        except grpc.RpcError:
            return None
        return kvs[0].value if kvs else None

    def put(self, endpoint, key, value):
        return self.stub(endpoint, "KV").Put(
            self.pb.PutRequest(key=key.encode(), value=value.encode()), timeout=10)

    def status(self, endpoint):
        return self.stub(endpoint, "Maintenance").Status(self.pb.StatusRequest(), timeout=10)

    def watch_outcome(self, endpoint):
        """A Watch stream's first answer to a create request: ("OK", "created") or the
        error that ended the stream."""
        req = self.pb.WatchRequest(create_request=self.pb.WatchCreateRequest(key=b"k"))
        call = self.stub(endpoint, "Watch").Watch(iter([req]), timeout=10)
        try:
            resp = next(call)
            return ("OK", "created" if resp.created else "not created")
        except grpc.RpcError as e:
            return (e.code().name, e.details())
        finally:
            call.cancel()

    # --- the scenario ----------------------------------------------------------

    def run(self):
        cluster = members.Cluster(self.kind, self.binary, size=3, heartbeat_ms=HEARTBEAT_MS,
                                  election_ms=ELECTION_MS)
        learner = members.Member(self.kind, self.binary, name="n4", heartbeat_ms=HEARTBEAT_MS,
                                 election_ms=ELECTION_MS,
                                 extra_flags=["--initial-cluster-state", "existing"],
                                 dir_prefix=f"cluster-{self.kind}-n4-")
        try:
            cluster.start()
            self.scenario(cluster, learner)
        finally:
            for ch in self.channels.values():
                ch.close()
            learner.close()
            cluster.close()
        return self.seen

    def leader_and_follower(self, voters):
        """(the leader, a follower) among `voters`, as their Status says."""
        by_id = {self.status(m.endpoint).header.member_id: m for m in voters}
        leader = self.status(voters[0].endpoint).leader
        self.t.assertIn(leader, by_id)
        return by_id[leader], next(m for i, m in by_id.items() if i != leader)

    def scenario(self, cluster, learner):
        t = self.t
        voters = list(cluster.members)
        eps = [m.endpoint for m in voters]
        etcdctl(eps, "put", "k", "v")

        # A learner joins and catches up.
        learner.client_port, learner.peer_port = members.free_ports(2)
        learner.cluster_token = cluster.token
        # etcd refuses a change until its leader has heard every voter for 5 s.
        added = eventually("member add --learner", lambda: etcdctl(
            eps, "member", "add", "n4", f"--peer-urls={learner.peer_url}", "--learner", "-w",
            "json")[1])
        learner_id = json.loads(added)["member"]["ID"]
        learner.initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in voters + [learner])
        learner.spawn(keep_ports=True)
        learner.wait_healthy(30)
        ep = learner.endpoint
        eventually("the learner caught up", lambda: self.value(ep, "k", True) == b"v")

        # What it refuses (every call but Status and a serializable Range; every stream),
        # raw and through etcdctl.
        learner_error = ("UNAVAILABLE", members.LEARNER_ERROR)
        refused = {
            "linearizable range": lambda: self.range(ep, "k", False),
            "put": lambda: self.put(ep, "k", "x"),
            "serializable txn": lambda: self.stub(ep, "KV").Txn(self.pb.TxnRequest(success=[
                self.pb.RequestOp(request_range=self.pb.RangeRequest(key=b"k",
                                                                     serializable=True))]),
                timeout=10),
            "member list": lambda: self.stub(ep, "Cluster").MemberList(
                self.pb.MemberListRequest(), timeout=10),
            "lease grant": lambda: self.stub(ep, "Lease").LeaseGrant(
                self.pb.LeaseGrantRequest(TTL=60), timeout=10),
            "alarm": lambda: self.stub(ep, "Maintenance").Alarm(
                self.pb.AlarmRequest(), timeout=10),
            "hashkv": lambda: self.stub(ep, "Maintenance").HashKV(
                self.pb.HashKVRequest(), timeout=10),
            "promote itself": lambda: self.stub(ep, "Cluster").MemberPromote(
                self.pb.MemberPromoteRequest(ID=learner_id), timeout=10),
            "grpc health check": lambda: self.health_check(ep),
        }
        for what, fn in refused.items():
            t.assertEqual(self.see(f"learner {what}", rpc_outcome(fn)), learner_error, what)
        t.assertEqual(self.see("learner watch", self.watch_outcome(ep)), learner_error)
        for args in (["get", "k"], ["put", "k", "x"]):
            rc, _, err = etcdctl([ep], *args, check=False)
            t.assertNotEqual(rc, 0, args)
            t.assertTrue(last_line(err).endswith(members.LEARNER_ERROR), err)
            self.see(f"etcdctl {args[0]} on the learner", (rc, last_line(err)))
        # What it serves.
        t.assertEqual(self.see("learner serializable range", self.value(ep, "k", True)), b"v")
        t.assertTrue(self.see("learner status says learner", self.status(ep).isLearner))
        _, out, _ = etcdctl([ep], "get", "k", "--consistency=s", "--print-value-only")
        t.assertEqual(self.see("etcdctl serializable get on the learner", out.strip()), "v")
        _, out, _ = etcdctl([ep], "endpoint", "status", "-w", "json")
        t.assertTrue(self.see("etcdctl endpoint status on the learner",
                              bool(json.loads(out)[0]["Status"].get("isLearner"))))

        # Promotion through a follower while the learner lags: the leader refuses it.
        leader, follower = self.leader_and_follower(voters)
        behind = self.status(ep).raftIndex
        os.kill(learner.proc.pid, signal.SIGSTOP)
        try:
            n = 0
            while self.status(leader.endpoint).raftIndex < 2 * behind + 20:
                self.put(leader.endpoint, f"lag{n}", "x")
                n += 1
            rc, _, err = etcdctl([follower.endpoint], "member", "promote", f"{learner_id:x}",
                                 check=False)
            t.assertNotEqual(rc, 0)
            t.assertTrue(last_line(err).endswith(
                "etcdserver: can only promote a learner member which is in sync with leader"),
                err)
            self.see("promote a lagging learner through a follower", (rc, last_line(err)))
        finally:
            os.kill(learner.proc.pid, signal.SIGCONT)

        # Once it caught up, the same promotion succeeds.
        eventually("the learner caught up again",
                   lambda: self.value(ep, f"lag{n - 1}", True) == b"x")

        def promote():
            rc, out, err = etcdctl([follower.endpoint], "member", "promote", f"{learner_id:x}",
                                   check=False)
            return rc == 0 and "promoted" in out
        eventually("promote an in-sync learner through a follower", promote)
        self.see("promote an in-sync learner through a follower", True)
        _, out, _ = etcdctl([follower.endpoint], "member", "list", "-w", "json")
        t.assertFalse([m for m in json.loads(out)["members"]
                       if m["ID"] == learner_id][0].get("isLearner"))

        # Promoted, it serves everything (once it applied its promotion).
        eventually("the promoted member serves a linearizable range",
                   lambda: self.value(ep, "k", False) == b"v")
        t.assertEqual(self.see("promoted put", rpc_outcome(lambda: self.put(ep, "k2", "v2"))),
                      ("OK", ""))
        t.assertEqual(self.see("promoted watch", self.watch_outcome(ep)), ("OK", "created"))
        # HealthCheckResponse{status: SERVING}
        t.assertEqual(self.see("promoted grpc health check", self.health_check(ep)), b"\x08\x01")
        t.assertFalse(self.see("promoted status says learner", self.status(ep).isLearner))
        _, out, _ = etcdctl([ep], "get", "k2", "--print-value-only")
        t.assertEqual(self.see("etcdctl get on the promoted member", out.strip()), "v2")


class LearnerTest(unittest.TestCase):
    """A learner as etcd 3.4's: checked on kvstore and on a real etcd, which must agree."""

    def test_learner_like_etcd(self):
        ours = LearnerScenario(self, "kvstore", ARGS.kvstore).run()
        if not ARGS.etcd or not os.access(ARGS.etcd, os.X_OK):
            self.skipTest("no etcd to compare with")
        ref = LearnerScenario(self, "etcd", ARGS.etcd).run()
        if os.environ.get("MEMBERSHIP_VERBOSE"):
            sys.stderr.write(f"ours: {ours}\netcd: {ref}\n")
        self.assertEqual([w for w, _ in ours], [w for w, _ in ref])
        for (what, got), (_, want) in zip(ours, ref):
            if isinstance(got, tuple) and isinstance(got[1], str) and got[1].startswith("Error"):
                # etcdctl's last line; the member id it may print differs.
                got, want = (got[0], got[1].split(": ", 1)[-1]), (want[0],
                                                                  want[1].split(": ", 1)[-1])
            self.assertEqual(got, want, what)


if __name__ == "__main__":
    ARGS = members.parse_args(__doc__)
    unittest.main()
