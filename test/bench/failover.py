"""Leader failover time of a running cluster: finds the leader (Maintenance.Status on every
member), SIGKILLs its process, and times how long until a Put through a surviving member
first succeeds. Prints one JSON object: {"failover_ms": ..., "leader": "<hex id>"}.

    /usr/bin/python3 test/bench/failover.py --stubs build/test/compat/pb \\
        --members 127.0.0.1:2379=PID,127.0.0.1:22379=PID,...

Used by kv_bench.sh with KV_BENCH_MEMBERS=3 for ours and etcd alike.
"""

import argparse
import json
import os
import signal
import sys
import time

import grpc


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--stubs", required=True)
    p.add_argument("--members", required=True, help="endpoint=pid,...")
    p.add_argument("--give-up", type=float, default=30.0, help="seconds")
    args = p.parse_args()
    sys.path.insert(0, args.stubs)
    from etcd.etcdserverpb import rpc_pb2, rpc_pb2_grpc  # noqa: E402

    members = [tuple(m.split("=")) for m in args.members.split(",")]
    channels = {ep: grpc.insecure_channel(ep) for ep, _ in members}
    leader_pid = leader_id = None
    deadline = time.monotonic() + args.give_up
    while leader_pid is None:
        for ep, pid in members:
            try:
                st = rpc_pb2_grpc.MaintenanceStub(channels[ep]).Status(
                    rpc_pb2.StatusRequest(), timeout=2)
            except grpc.RpcError:
                continue
            if st.leader != 0 and st.leader == st.header.member_id:
                leader_pid, leader_id = int(pid), st.leader
                break
        if leader_pid is None:
            if time.monotonic() > deadline:
                sys.exit("failover: no leader found")
            time.sleep(0.05)
    survivors = [ep for ep, pid in members if int(pid) != leader_pid]
    # Connections to the survivors are up before the kill, as a client's would be.
    for ep in survivors:
        grpc.channel_ready_future(channels[ep]).result(timeout=5)

    os.kill(leader_pid, signal.SIGKILL)
    start = time.monotonic()
    n = 0
    while True:
        ep = survivors[n % len(survivors)]
        n += 1
        try:
            rpc_pb2_grpc.KVStub(channels[ep]).Put(
                rpc_pb2.PutRequest(key=b"failover", value=b"x"), timeout=0.2)
            break
        except grpc.RpcError:
            if time.monotonic() - start > args.give_up:
                sys.exit("failover: no write succeeded")
    elapsed = (time.monotonic() - start) * 1e3
    print(json.dumps({"failover_ms": elapsed, "leader": "%x" % leader_id}))


if __name__ == "__main__":
    main()
