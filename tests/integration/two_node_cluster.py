"""A two-node Ray cluster on 127.0.0.1 through Ray's own test harness, for as long as stdin is
open: prints ``ADDRESS host:port`` once both nodes are up. Run by the ``two_node_cluster``
fixture in a session of its own, so that every process of the cluster can be found and stopped."""

import sys

from ray.cluster_utils import Cluster

if __name__ == "__main__":
    node = {"num_cpus": 1, "node_ip_address": "127.0.0.1"}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    cluster.add_node(**node)
    cluster.wait_for_nodes()
    print("ADDRESS", cluster.address, flush=True)
    sys.stdin.read()  # until the fixture closes it
    cluster.shutdown()
