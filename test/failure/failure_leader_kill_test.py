"""Failure test (issue 4, a): the leader of a three-member cluster is SIGKILLed again and
again while concurrent clients write, read and compare-and-swap; each time it is
restarted on its data directory. The history must be linearizable (lincheck), and after
the last restart every member must hold the same keys and HashKV at one revision.

    /usr/bin/python3 test/failure/failure_leader_kill_test.py --kvstore build/bin/kvstore \\
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
ROUNDS = failure_lib.rounds(4)


class LeaderKillTest(unittest.TestCase):
    def test_leader_killed_repeatedly(self):
        stubs = failure_lib.Stubs(ARGS.stubs)
        # Snapshots every few hundred entries, so that a restarted member may catch up
        # from one rather than from the log (once members send snapshots: for now the
        # flag is accepted and the log is never compacted).
        with failure_lib.new_cluster(ARGS, 3, extra_flags=["--snapshot-count", "300"]).start() \
                as cluster:
            with failure_lib.Recorder(cluster, stubs, clients=6, seed=ARGS.seed) as rec:
                time.sleep(1.0)
                for i in range(ROUNDS):
                    leader = failure_lib.find_leader(cluster, stubs, cluster.members, 10)
                    leader.kill()
                    t0 = time.monotonic()
                    others = [m for m in cluster.members if m is not leader]
                    new = failure_lib.find_leader(cluster, stubs, others, 10)
                    sys.stderr.write(f"round {i}: killed leader {leader.name}; {new.name} "
                                     f"leads after {time.monotonic() - t0:.2f}s\n")
                    time.sleep(1.0)
                    leader.restart(timeout=20)
                    time.sleep(1.0)
                rec.stop()
            failure_lib.check_linearizable(self, rec, ARGS.lincheck)
            failure_lib.check_converged(self, cluster, stubs, rec.keys)


if __name__ == "__main__":
    ARGS = failure_lib.parse_args(__doc__)
    unittest.main()
