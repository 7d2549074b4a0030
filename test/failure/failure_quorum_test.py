"""Failure test (issue 4, d): the fault-tolerance table. For a cluster of n members
(3, 5 and 7; --sizes picks): with n - majority members SIGKILLed, writes and
linearizable reads go on; with one more down, a write and a linearizable read fail
cleanly (Unavailable or DeadlineExceeded, e.g. "etcdserver: request timed out" or
"no leader") within the request deadline, never hanging past it; once one member is
restarted, writes succeed again. Then every member is back and holds the same keys and
HashKV at one revision.

    /usr/bin/python3 test/failure/failure_quorum_test.py --kvstore build/bin/kvstore \\
        --lincheck build/bin/lincheck --stubs build/test/compat/pb
"""

import os
import sys
import time
import unittest

import grpc

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import failure_lib  # noqa: E402

ARGS = None
DEADLINE_S = 3.0  # the client's deadline on the write that cannot commit
SLACK_S = 1.0     # how late past it the answer may come (a loaded machine)
SERVER_TIMEOUT_S = 6.0  # kvstore's request timeout with --election-timeout 500
LONG_DEADLINE_S = 12.0
CLEAN_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class QuorumTest(unittest.TestCase):
    def check_size(self, n):
        stubs = failure_lib.Stubs(ARGS.stubs)
        pb = stubs.rpc_pb2
        majority = n // 2 + 1
        with failure_lib.new_cluster(ARGS, n).start() as cluster:
            # Kill the leader first (the hardest case), then followers.
            leader = failure_lib.find_leader(cluster, stubs, cluster.members, 10)
            order = [leader] + [m for m in cluster.members if m is not leader]
            down = order[:n - majority]
            for m in down:
                m.kill()
            up = [m for m in cluster.members if m not in down]
            client = failure_lib.Client(stubs, up[-1])
            try:
                for i in range(5):
                    failure_lib.retry(f"n={n}, {len(down)} down: write {i}", lambda: client.kv.Put(
                        pb.PutRequest(key=f"k{i}".encode(), value=b"with-quorum"), timeout=2), 10)
                r = client.kv.Range(pb.RangeRequest(key=b"k4"), timeout=2)
                self.assertEqual(r.kvs[0].value, b"with-quorum")
                sys.stderr.write(f"n={n}: writes go on with {len(down)} of {n} down\n")

                # One more down: no quorum.
                extra = up[0]
                extra.kill()
                down.append(extra)
                for what, call in (
                        ("write", lambda: client.kv.Put(
                            pb.PutRequest(key=b"k0", value=b"no-quorum"), timeout=DEADLINE_S)),
                        ("linearizable read", lambda: client.kv.Range(
                            pb.RangeRequest(key=b"k0"), timeout=DEADLINE_S))):
                    t0 = time.monotonic()
                    with self.assertRaises(grpc.RpcError, msg=f"n={n}: {what} without quorum") as cm:
                        call()
                    took = time.monotonic() - t0
                    code = cm.exception.code()
                    sys.stderr.write(f"n={n}: {what} with {len(down)} of {n} down: {code} "
                                     f"{cm.exception.details()!r} after {took:.2f}s\n")
                    self.assertIn(code, CLEAN_CODES, f"n={n}: {what}")
                    self.assertLess(took, DEADLINE_S + SLACK_S, f"n={n}: {what} hung")

                # The server answers by itself, within its request timeout (5 s + 2
                # election timeouts), when the client's deadline is longer still.
                t0 = time.monotonic()
                with self.assertRaises(grpc.RpcError) as cm:
                    client.kv.Put(pb.PutRequest(key=b"k0", value=b"no-quorum-2"),
                                  timeout=LONG_DEADLINE_S)
                took = time.monotonic() - t0
                sys.stderr.write(f"n={n}: write with a {LONG_DEADLINE_S}s deadline: "
                                 f"{cm.exception.code()} {cm.exception.details()!r} after "
                                 f"{took:.2f}s\n")
                self.assertIn(cm.exception.code(), CLEAN_CODES)
                self.assertLess(took, SERVER_TIMEOUT_S + SLACK_S, f"n={n}: the server hung")

                # One back: quorum again, writes succeed.
                back = down.pop()
                back.restart(timeout=20)
                put = failure_lib.retry(f"n={n}: a write after {back.name} came back",
                                        lambda: client.kv.Put(
                    pb.PutRequest(key=b"k0", value=b"quorum-again"), timeout=2), 15)
                sys.stderr.write(f"n={n}: writes succeed again at revision "
                                 f"{put.header.revision}\n")
                r = client.kv.Range(pb.RangeRequest(key=b"k0"), timeout=2)
                self.assertEqual(r.kvs[0].value, b"quorum-again")
            finally:
                client.close()
            for m in down:
                m.restart(timeout=20)
            failure_lib.check_converged(self, cluster, stubs, [f"k{i}" for i in range(5)])

    def test_table(self):
        for n in ARGS.sizes:
            with self.subTest(n=n):
                t0 = time.monotonic()
                self.check_size(n)
                sys.stderr.write(f"n={n}: {time.monotonic() - t0:.1f}s\n")


if __name__ == "__main__":
    import members  # noqa: E402  (failure_lib put test/compat on the path)

    def extra(p):
        p.add_argument("--lincheck", default="")
        p.add_argument("--sizes", default="3,5,7")
    ARGS = members.parse_args(__doc__, extra)
    ARGS.sizes = [int(s) for s in ARGS.sizes.split(",")]
    unittest.main()
