"""Failure test (issue 4, c): a five-member cluster is split into a minority holding the
leader (it and one other member) and a majority of three, while concurrent clients
write, read and compare-and-swap through every member; then the partition heals. Three
rounds: the leader cut off with a minority, then two followers cut off (they must not
disturb the leader, nor serve reads), then the leader again.

The partition is made by the test-only --test-peer-faults flag (kvstore/server/
peer_faults.h): each member drops Raft messages to and from the members its file names.
Client traffic is untouched, so the minority's members keep answering clients: they must
answer with errors (or not before the deadline), never with a stale read or the ack of a
write they could not commit. Checks: the history is linearizable (lincheck); no
operation through a minority member both started (one second after the partition) and
succeeded while it lasted; after healing, every member holds the same keys and HashKV
at one revision.

    /usr/bin/python3 test/failure/failure_partition_test.py --kvstore build/bin/kvstore \\
        --lincheck build/bin/lincheck --stubs build/test/compat/pb [--seed N]
"""

import os
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import failure_lib  # noqa: E402

ARGS = None
ROUNDS = failure_lib.rounds(3)
PARTITION_S = 3.0  # election timeout 500 ms
# After this long a partitioned old leader can no longer serve anything (it cannot
# confirm its leadership: heartbeat rounds need a quorum).
SETTLE_S = 1.0


class PartitionTest(unittest.TestCase):
    def test_leader_isolated_with_minority(self):
        stubs = failure_lib.Stubs(ARGS.stubs)
        cluster = failure_lib.new_cluster(ARGS, 5, peer_faults=True)
        with cluster.start():
            ids = cluster.ids()
            windows = []  # (minority names, partitioned at, healed at), monotonic ns
            with failure_lib.Recorder(cluster, stubs, clients=8, seed=ARGS.seed,
                                     sticky=5) as rec:
                time.sleep(1.0)
                for i in range(ROUNDS):
                    leader = failure_lib.find_leader(cluster, stubs, cluster.members, 10)
                    others = [m for m in cluster.members if m is not leader]
                    if i % 3 == 1:  # two followers cut off; the leader keeps its majority
                        minority = [others[i % 4], others[(i + 1) % 4]]
                    else:
                        minority = [leader, others[i % 4]]
                    majority = [m for m in cluster.members if m not in minority]
                    for m in minority:
                        failure_lib.write_faults(m, [ids[o.name] for o in majority])
                    for m in majority:
                        failure_lib.write_faults(m, [ids[o.name] for o in minority])
                    started = time.monotonic_ns()
                    new = failure_lib.find_leader(cluster, stubs, majority, 10)
                    sys.stderr.write(
                        f"round {i}: minority {[m.name for m in minority]} (leader was "
                        f"{leader.name}); majority leader {new.name} after "
                        f"{(time.monotonic_ns() - started) / 1e9:.2f}s\n")
                    time.sleep(max(0.0, PARTITION_S - (time.monotonic_ns() - started) / 1e9))
                    healed = time.monotonic_ns()
                    for m in cluster.members:
                        failure_lib.write_faults(m, [])
                    windows.append(({m.name for m in minority}, started, healed))
                    failure_lib.find_leader(cluster, stubs, cluster.members, 10)
                    time.sleep(1.5)
                rec.stop()
            failure_lib.check_linearizable(self, rec, ARGS.lincheck)
            for names, started, healed in windows:
                served = [op for op in rec.ops
                          if op["member"] in names and op["status"] == "ok"
                          and op["call"] >= started + SETTLE_S * 1e9 and op["return"] < healed]
                self.assertEqual(served, [], "the minority served clients while partitioned")
                cut = [op for op in rec.ops
                       if op["member"] in names and started + SETTLE_S * 1e9 <= op["call"]
                       and op["call"] < healed]
                sys.stderr.write(f"minority {sorted(names)}: {len(cut)} ops tried while cut "
                                 f"off, none served\n")
            failure_lib.check_converged(self, cluster, stubs, rec.keys)


if __name__ == "__main__":
    ARGS = failure_lib.parse_args(__doc__)
    unittest.main()
