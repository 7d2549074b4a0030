"""Failure test (issue 4, all together): a five-member cluster under a seeded random mix
of faults while concurrent clients write, read, delete and compare-and-swap: any member
SIGKILLed and restarted, any member paused (SIGSTOP) and resumed, and random partitions
(any split into a minority and a majority, through --test-peer-faults), sometimes two at
once. The history must be linearizable (lincheck) and, once everything is healed, every
member must hold the same keys and HashKV at one revision.

    /usr/bin/python3 test/failure/failure_mixed_test.py --kvstore build/bin/kvstore \\
        --lincheck build/bin/lincheck --stubs build/test/compat/pb [--seed N]
"""

import os
import random
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import failure_lib  # noqa: E402

ARGS = None
ROUNDS = failure_lib.rounds(8)


class MixedTest(unittest.TestCase):
    def test_random_faults(self):
        rng = random.Random(ARGS.seed)
        stubs = failure_lib.Stubs(ARGS.stubs)
        cluster = failure_lib.new_cluster(ARGS, 5, peer_faults=True)
        with cluster.start():
            ids = cluster.ids()
            ms = cluster.members
            paused = []
            try:
                with failure_lib.Recorder(cluster, stubs, clients=8, seed=ARGS.seed,
                                          sticky=3, op_timeout=3.0) as rec:
                    time.sleep(0.5)
                    for i in range(ROUNDS):
                        kind = rng.choice(["kill", "pause", "partition", "kill+partition"])
                        victims = []
                        if "partition" in kind:
                            minority = rng.sample(ms, rng.choice([1, 2]))
                            majority = [m for m in ms if m not in minority]
                            for m in minority:
                                failure_lib.write_faults(m, [ids[o.name] for o in majority])
                            for m in majority:
                                failure_lib.write_faults(m, [ids[o.name] for o in minority])
                            victims.append("cut off " + ",".join(m.name for m in minority))
                        down = None
                        if kind.startswith("kill"):
                            down = rng.choice(ms)
                            down.kill()
                            victims.append(f"killed {down.name}")
                        elif kind == "pause":
                            down = rng.choice(ms)
                            failure_lib.pause(down)
                            paused.append(down)
                            victims.append(f"paused {down.name}")
                        sys.stderr.write(f"round {i}: {'; '.join(victims)}\n")
                        time.sleep(rng.uniform(1.0, 2.5))
                        for m in ms:
                            failure_lib.write_faults(m, [])
                        if down is not None and kind == "pause":
                            failure_lib.resume(down)
                            paused.remove(down)
                        elif down is not None:
                            down.restart(timeout=20)
                        time.sleep(rng.uniform(0.3, 1.0))
                    failure_lib.find_leader(cluster, stubs, ms, 10)
                    time.sleep(0.5)
                    rec.stop()
            finally:
                for m in paused:
                    failure_lib.resume(m)
            failure_lib.check_linearizable(self, rec, ARGS.lincheck)
            failure_lib.check_converged(self, cluster, stubs, rec.keys)


if __name__ == "__main__":
    ARGS = failure_lib.parse_args(__doc__)
    unittest.main()
