"""deploy/cluster.sh end to end: up, status, kill, restart, stop, down and clean, on a
port base whose ports are free and a run directory of its own.

    /usr/bin/python3 test/cluster/cluster_sh_test.py --kvstore build/bin/kvstore

cluster.sh starts members in sessions of their own (they outlive the script, as they
must); whatever this test leaves running is SIGKILLed by the pids in the run directory.
"""

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "compat"))
import members  # noqa: E402

ARGS = None
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy",
                      "cluster.sh")
SIZE = 3


def ports_free(ports):
    socks = []
    try:
        for p in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def free_base():
    """A CLUSTER_PORT_BASE whose member ports (base + 1000 i + 379/380) are all free, below
    the kernel's ephemeral range so that outgoing connections do not take them meanwhile.
    Not cluster.sh's default (20000), which a developer's cluster may be using."""
    bases = [b for b in range(1000, 29000 - 1000 * SIZE, 1000) if b != 20000]
    random.shuffle(bases)
    for base in bases:
        ports = [base + 1000 * i + d for i in range(1, SIZE + 1) for d in (379, 380)]
        if ports_free(ports):
            return base
    raise AssertionError("no free port base for cluster.sh")


SCHED_BATCH = 3  # Linux's number for the class


def thread_policies(pid):
    """The scheduling classes of the process's threads (field 41 of /proc/PID/task/TID/stat)."""
    policies = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            after_comm = f.read().rsplit(")", 1)[1].split()
        policies.add(int(after_comm[41 - 3]))
    return policies


class ClusterShTest(unittest.TestCase):
    def setUp(self):
        self.run_dir = tempfile.mkdtemp(prefix="cluster-sh-")
        self.base = free_base()
        self.env = dict(os.environ, CLUSTER_PORT_BASE=str(self.base),
                        CLUSTER_RUN_DIR=self.run_dir, KVSTORE_BIN=ARGS.kvstore,
                        ETCDCTL=ARGS.etcdctl, CLUSTER_HEARTBEAT_MS="50",
                        CLUSTER_ELECTION_MS="500", CLUSTER_WAIT_S="30")

    def tearDown(self):
        # Whatever still runs: SIGKILL by the pids cluster.sh recorded.
        for i in range(1, SIZE + 1):
            pidfile = os.path.join(self.run_dir, f"n{i}.pid")
            try:
                with open(pidfile) as f:
                    pid = int(f.read().strip())
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"--name\0n%d\0" % i in f.read():
                        os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError):
                pass
        if os.environ.get("COMPAT_KEEP"):
            sys.stderr.write(f"kept {self.run_dir}\n")
        else:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def sh(self, *args, timeout=60, ok=True):
        p = subprocess.run(["bash", SCRIPT, *args], env=self.env, capture_output=True,
                           text=True, timeout=timeout)
        if ok and p.returncode != 0:
            self.fail(f"cluster.sh {' '.join(args)} exited {p.returncode}:\n"
                      f"{p.stdout}\n{p.stderr}")
        return p

    def status(self):
        """{name: (pid, health, role, term, index)} from `cluster.sh status`."""
        out = {}
        for line in self.sh("status").stdout.splitlines()[1:]:
            name, _, pid, health, role, term, index, _ = line.split()
            out[name] = (pid, health, role, term, index)
        return out

    def wait_status(self, what, pred, timeout=15):
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if pred(st):
                return st
            if time.monotonic() > deadline:
                self.fail(f"{what}: not within {timeout}s; last status {st}")
            time.sleep(0.3)

    def client_port(self, i):
        """Member n<i>'s client port, as cluster.sh lays ports out."""
        return self.base + 1000 * i + 379

    def etcdctl(self, name, *args):
        ep = f"127.0.0.1:{self.client_port(int(name[1:]))}"
        p = subprocess.run([ARGS.etcdctl, f"--endpoints={ep}", "--command-timeout=5s", *args],
                           env=dict(os.environ, ETCDCTL_API="3"), capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout

    def test_up_status_kill_restart_down(self):
        up = self.sh("up", "--members", str(SIZE))
        for i in range(1, SIZE + 1):
            self.assertIn(f"http://127.0.0.1:{self.client_port(i)}", up.stdout)
        self.assertIn("etcdctl --endpoints=", up.stdout)

        st = self.wait_status("one leader, all healthy", lambda st: sorted(
            r for _, h, r, _, _ in st.values() if h == "healthy") == [
                "follower", "follower", "leader"])
        leader = next(n for n, v in st.items() if v[2] == "leader")
        self.assertEqual(self.etcdctl("n1", "put", "k", "v1").strip(), "OK")
        # Every thread of every member runs in SCHED_BATCH (kvstore's --cpu-scheduling), and
        # allocates with jemalloc where the build links it (ctest sets the variable then).
        for name, (pid, *_) in st.items():
            self.assertEqual(thread_policies(int(pid)), {SCHED_BATCH}, name)
            if os.environ.get("KVSTORE_EXPECT_JEMALLOC") == "1":
                with open(f"/proc/{pid}/maps") as f:
                    self.assertTrue("libjemalloc" in f.read(), f"{name} maps no libjemalloc")

        # kill the leader: shown down, the others elect a leader and take writes.
        self.assertIn(f"killed {leader}", self.sh("kill", leader).stdout)
        st = self.wait_status("a new leader", lambda st: st[leader][1] == "down" and sorted(
            r for n, (_, h, r, _, _) in st.items() if n != leader) == ["follower", "leader"])
        survivor = next(n for n in st if n != leader)
        self.assertEqual(self.etcdctl(survivor, "put", "k", "v2").strip(), "OK")
        self.assertEqual(self.sh("kill", leader, ok=False).returncode, 1)

        # restart: back on its data dir, it has what was written while it was gone.
        self.assertIn(f"restarted {leader}", self.sh("restart", leader).stdout)
        self.assertEqual(self.etcdctl(leader, "get", "k", "--print-value-only").strip(), "v2")
        self.wait_status("all healthy again", lambda st: all(
            v[1] == "healthy" for v in st.values()))

        # stop (SIGTERM) one, then down: everything stops, the data stays.
        self.assertIn("stopped n2", self.sh("stop", "n2").stdout)
        self.assertEqual(self.status()["n2"][1], "down")
        self.sh("down")
        self.assertTrue(all(v[1] == "down" for v in self.status().values()))
        for i in range(1, SIZE + 1):
            self.assertTrue(os.path.isdir(os.path.join(self.run_dir, f"n{i}", "data")))

        # up again on the same data: the value survived.
        self.sh("up", "--members", str(SIZE))
        self.assertEqual(self.etcdctl("n3", "get", "k", "--print-value-only").strip(), "v2")
        self.assertEqual(self.sh("up", "--members", "5", ok=False).returncode, 1)
        self.sh("clean")
        self.assertFalse(os.path.exists(self.run_dir))

    def test_up_refuses_a_port_in_use(self):
        # Something else listens on n2's client port: up must say so and start nobody,
        # rather than let the other process answer n2's health check.
        port = self.client_port(2)
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
            s.listen()
            p = self.sh("up", "--members", str(SIZE), ok=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(f"127.0.0.1:{port} is in use", p.stderr)
        # Refused before anything was written or started.
        self.assertFalse(os.path.exists(os.path.join(self.run_dir, "cluster.env")))

    def test_readme_quick_start_as_written(self):
        """The README's quick start block, run by bash as a user would paste it (on this
        test's port base and run directory)."""
        root = os.path.join(os.path.dirname(SCRIPT), "..")
        with open(os.path.join(root, "README.md")) as f:
            readme = f.read()
        block = readme.split("<!-- quick-start -->", 1)[1].split("```sh\n", 1)[1]
        block = block.split("```", 1)[0]
        p = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=root, env=self.env,
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, f"{p.stdout}\n{p.stderr}")
        lines = p.stdout.splitlines()
        self.assertIn("again", lines, p.stdout)
        self.assertEqual(lines[lines.index("again") + 1:],
                         [l for l in lines if l.startswith("stopped ")], p.stdout)
        killed = [l.split()[1] for l in lines if l.startswith("killed ")]
        self.assertEqual(len(killed), 1, p.stdout)
        # The line after the kill names the new leader: a member that was not killed.
        after = lines[lines.index(next(l for l in lines if l.startswith("killed "))) + 1]
        self.assertRegex(after, r"^n[1-3]$")
        self.assertNotEqual(after, killed[0])
        self.assertTrue(all(v[1] == "down" for v in self.status().values()))


def main():
    global ARGS
    ARGS = members.parse_args(__doc__)
    unittest.main(verbosity=2)


if __name__ == "__main__":
    main()
