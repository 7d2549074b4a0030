"""/metrics and /health over HTTP (--listen-metrics-urls), against our member and a real
etcd 3.4 member: the metrics dashboards for etcd read must be there under etcd's names,
move as the member works, and /health must answer as etcd's does.

    /usr/bin/python3 test/compat/metrics_test.py --kvstore build/bin/kvstore \\
        --etcd /usr/bin/etcd --stubs build/test/compat/pb
"""

import json
import os
import re
import subprocess
import sys
import unittest
import urllib.request

import grpc

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import members  # noqa: E402

ARGS = None
rpc_pb2 = rpc_pb2_grpc = None


def scrape(url):
    """The samples of a Prometheus text page: {"name{labels}": value}."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    return samples


class MetricsTest(unittest.TestCase):
    def check(self, kind, binary):
        port = members.free_ports(1)[0]
        url = f"http://127.0.0.1:{port}"
        with members.Member(kind, binary, extra_flags=["--listen-metrics-urls", url]).start() as m:
            before = scrape(url)
            with grpc.insecure_channel(m.endpoint) as ch:
                kv = rpc_pb2_grpc.KVStub(ch)
                for i in range(20):
                    kv.Put(rpc_pb2.PutRequest(key=b"m/%d" % i, value=b"v" * 100), timeout=10)
            after = scrape(url)
            for name in ("etcd_server_has_leader", "etcd_server_is_leader"):
                self.assertEqual(after.get(name), 1.0, f"{kind}: {name}")
            self.assertGreaterEqual(
                after["etcd_server_proposals_committed_total"]
                - before["etcd_server_proposals_committed_total"], 20, kind)
            self.assertGreaterEqual(
                after["etcd_disk_wal_fsync_duration_seconds_count"]
                - before["etcd_disk_wal_fsync_duration_seconds_count"], 1, kind)
            self.assertIn("etcd_server_leader_changes_seen_total", after, kind)
            self.assertIn("etcd_server_proposals_pending", after, kind)
            self.assertIn("etcd_server_proposals_failed_total", after, kind)
            self.assertIn("etcd_mvcc_db_total_size_in_bytes", after, kind)
            buckets = [k for k in after
                       if re.match(r'etcd_disk_wal_fsync_duration_seconds_bucket\{le="', k)]
            self.assertGreater(len(buckets), 5, kind)
            with urllib.request.urlopen(url + "/health", timeout=5) as r:
                self.assertEqual(r.status, 200)
                self.assertEqual(json.loads(r.read())["health"], "true", kind)

    def test_kvstore(self):
        self.check("kvstore", ARGS.kvstore)

    def test_etcd(self):
        self.check("etcd", ARGS.etcd)

    def test_bad_metrics_url_is_refused(self):
        with members.Member("kvstore", ARGS.kvstore) as m:
            proc = subprocess.run(
                [ARGS.kvstore, "--data-dir", m.data_dir, "--listen-metrics-urls", "nonsense"],
                capture_output=True, text=True, timeout=30)
            self.assertNotEqual(proc.returncode, 0)
            self.assertIn("nonsense", proc.stderr)


def main():
    global ARGS, rpc_pb2, rpc_pb2_grpc
    ARGS = members.parse_args(__doc__)
    _, rpc_pb2, rpc_pb2_grpc = members.import_stubs(ARGS.stubs)
    unittest.main(verbosity=2)


if __name__ == "__main__":
    main()
