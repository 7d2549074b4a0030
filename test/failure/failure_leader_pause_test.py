"""Failure test (issue 4, b): the leader of a three-member cluster is paused (SIGSTOP)
for several election timeouts while concurrent clients write, read and
compare-and-swap, then resumed (SIGCONT), twice. The old leader, which wakes up still
believing it leads, must serve no stale read and acknowledge no write it could not
commit: the history must be linearizable (lincheck), and every member must end with
the same keys and HashKV at one revision.

    /usr/bin/python3 test/failure/failure_leader_pause_test.py --kvstore build/bin/kvstore \\
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
ROUNDS = failure_lib.rounds(2)
PAUSE_S = 2.5  # election timeout 500 ms
# Requests sent to the paused leader outlive the pause (op_timeout), so that it answers
# them when it wakes: those are the ones that could see stale state.


class LeaderPauseTest(unittest.TestCase):
    def test_leader_paused_and_resumed(self):
        stubs = failure_lib.Stubs(ARGS.stubs)
        with failure_lib.new_cluster(ARGS, 3).start() as cluster:
            paused = None
            try:
                with failure_lib.Recorder(
                        cluster, stubs, clients=6, seed=ARGS.seed, sticky=3,
                        op_timeout=PAUSE_S + 2.5) as rec:
                    time.sleep(1.0)
                    for i in range(ROUNDS):
                        leader = failure_lib.find_leader(cluster, stubs, cluster.members, 10)
                        failure_lib.pause(leader)
                        paused = leader
                        others = [m for m in cluster.members if m is not leader]
                        new = failure_lib.find_leader(cluster, stubs, others, 10)
                        sys.stderr.write(f"round {i}: paused leader {leader.name}; "
                                         f"{new.name} leads\n")
                        time.sleep(PAUSE_S)
                        failure_lib.resume(leader)
                        paused = None
                        time.sleep(1.5)
                    rec.stop()
            finally:
                if paused is not None:
                    failure_lib.resume(paused)
            failure_lib.check_linearizable(self, rec, ARGS.lincheck)
            failure_lib.check_converged(self, cluster, stubs, rec.keys)


if __name__ == "__main__":
    ARGS = failure_lib.parse_args(__doc__)
    unittest.main()
