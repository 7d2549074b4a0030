"""Crash test: concurrent writers, SIGKILL of the member mid-stream, restart on the same
data dir; then every acknowledged put must be there with the revision it was
acknowledged with, and revisions must run on without gaps or repeats.

Each writer puts keys of its own that are never written again, so the store's keys map
one to one onto revisions 2..R: every revision must hold exactly one key (no gap, no
repeat; a put that failed on the client because of the kill may or may not have been
applied, and if it was, it holds its revision like any other). Each acknowledged put
must read back, at its revision and now, with its value, mod_revision and version 1.

    /usr/bin/python3 test/compat/crash_test.py --kvstore build/bin/kvstore \\
        --stubs build/test/compat/pb [--rounds 4] [--seed N]
"""

import os
import random
import sys
import threading
import time
import unittest

import grpc

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import members  # noqa: E402

ARGS = None
rpc_pb2 = rpc_pb2_grpc = None

WRITERS = 6


class Writer(threading.Thread):
    """Puts w<id>/<n> = <random value> in a loop while `running` is set; records what
    was acknowledged and what failed."""

    def __init__(self, wid, endpoint, rng_seed, running, stop):
        super().__init__(daemon=True)
        self.wid = wid
        self.endpoint = endpoint
        self.rng = random.Random(rng_seed)
        self.running = running
        self.stop = stop
        self.acked = []  # (key, value, revision)
        self.failed = 0
        self.idle = threading.Event()
        self.n = 0
        self.error = None

    def run(self):
        try:
            channel = None
            while not self.stop.is_set():
                if not self.running.is_set():
                    self.idle.set()
                    if channel is not None:
                        channel.close()
                        channel = None
                    self.running.wait(0.1)
                    continue
                self.idle.clear()
                if channel is None:
                    channel = grpc.insecure_channel(self.endpoint)
                    kv = rpc_pb2_grpc.KVStub(channel)
                key = f"w{self.wid}/{self.n:07d}".encode()
                value = os.urandom(self.rng.randint(1, 64))
                self.n += 1
                try:
                    r = kv.Put(rpc_pb2.PutRequest(key=key, value=value), timeout=5)
                    self.acked.append((key, value, r.header.revision))
                except grpc.RpcError:
                    self.failed += 1
                    time.sleep(0.02)
            if channel is not None:
                channel.close()
        except BaseException as e:  # reported by the test
            self.error = e
        finally:
            self.idle.set()


class CrashTest(unittest.TestCase):
    def test_sigkill_mid_stream(self):
        seed = ARGS.seed if ARGS.seed is not None else int(time.time()) % 100000
        print(f"crash test: seed {seed} (replay with --seed {seed})", flush=True)
        rng = random.Random(seed)
        member = members.ours(ARGS).start()
        running, stop = threading.Event(), threading.Event()
        writers = [Writer(i, member.endpoint, rng.random(), running, stop)
                   for i in range(WRITERS)]
        try:
            for w in writers:
                w.start()
            channel = None
            for rnd in range(ARGS.rounds):
                running.set()
                time.sleep(rng.uniform(0.4, 1.5))
                before = sum(len(w.acked) for w in writers)
                member.kill()  # SIGKILL while puts are in flight
                running.clear()
                for w in writers:
                    self.assertTrue(w.idle.wait(20), f"writer {w.wid} stuck")
                acked_now = sum(len(w.acked) for w in writers)
                print(f"round {rnd}: {acked_now} puts acknowledged so far "
                      f"({acked_now - before} acknowledged while the kill was sent), "
                      f"{sum(w.failed for w in writers)} failed", flush=True)
                member.start(keep_ports=True)
                if channel is not None:
                    channel.close()
                channel = grpc.insecure_channel(member.endpoint)
                self.verify(rpc_pb2_grpc.KVStub(channel), writers, rnd)
            # Revisions go on after the last restart, too.
            kv = rpc_pb2_grpc.KVStub(channel)
            rev = kv.Range(rpc_pb2.RangeRequest(key=b"x"), timeout=10).header.revision
            r = kv.Put(rpc_pb2.PutRequest(key=b"after", value=b"x"), timeout=10)
            self.assertEqual(r.header.revision, rev + 1)
            channel.close()
        finally:
            stop.set()
            running.set()
            for w in writers:
                w.join(10)
            member.close()
        for w in writers:
            self.assertIsNone(w.error, f"writer {w.wid} crashed")

    def verify(self, kv, writers, rnd):
        acked = [a for w in writers for a in w.acked]
        self.assertGreater(len(acked), 0, "no put was acknowledged")
        everything = kv.Range(rpc_pb2.RangeRequest(key=b"w", range_end=b"x"), timeout=30)
        rev = everything.header.revision
        stored = {kv_.key: kv_ for kv_ in everything.kvs}
        # Every acknowledged put: present, unchanged, at the revision it was acked with.
        lost = []
        for key, value, revision in acked:
            got = stored.get(key)
            if got is None or (got.value, got.mod_revision, got.create_revision,
                               got.version) != (value, revision, revision, 1):
                lost.append((key, revision, got))
        self.assertEqual(lost[:5], [], f"round {rnd}: {len(lost)} acknowledged puts lost or "
                                       "changed (key, acked revision, found)")
        # Read back at its own revision, too (a sample when there are many).
        sample = acked if len(acked) <= 600 else random.Random(rnd).sample(acked, 600)
        for key, value, revision in sample:
            r = kv.Range(rpc_pb2.RangeRequest(key=key, revision=revision), timeout=10)
            self.assertEqual([(k.value, k.mod_revision) for k in r.kvs], [(value, revision)],
                             f"round {rnd}: {key!r} read at revision {revision}")
            r = kv.Range(rpc_pb2.RangeRequest(key=key, revision=revision - 1), timeout=10)
            self.assertEqual(list(r.kvs), [], f"{key!r} exists before its revision")
        # One key per revision from 2 to the current one: no gap, no repeat.
        revisions = sorted(k.mod_revision for k in everything.kvs)
        self.assertEqual(len(revisions), len(set(revisions)), f"round {rnd}: a revision repeats")
        missing = sorted(set(range(2, rev + 1)) - set(revisions))
        self.assertEqual(missing[:10], [], f"round {rnd}: revisions without a write "
                                           f"({len(missing)} of 2..{rev})")
        self.assertEqual(revisions[-1] if revisions else 1, rev)
        self.assertGreaterEqual(rev, max(r for _, _, r in acked))


def main():
    global ARGS, rpc_pb2, rpc_pb2_grpc

    def extra(p):
        p.add_argument("--rounds", type=int, default=4)
        p.add_argument("--seed", type=int, default=None)

    ARGS = members.parse_args(__doc__, extra)
    _, rpc_pb2, rpc_pb2_grpc = members.import_stubs(ARGS.stubs)
    unittest.main(verbosity=2)


if __name__ == "__main__":
    main()
