"""The Ray cluster of the scoring tests: ONE per test session, shared by every Ray test module (a second Ray runtime
cannot start in a process whose driver is already connected to one).

Without ``$RAY_ADDRESS`` it is a simulated two-node cluster on this machine (``ray.cluster_utils.Cluster``, the
utility Ray documents for testing multi-node behaviour on one machine,
https://docs.ray.io/en/latest/ray-contribute/testing-tips.html): a head and
one worker node, 1 CPU each (2 CPUs in all, as a plain local ``ray.init(num_cpus=2)``). Each node runs its own
raylet and object store, so an actor on the worker node is a remote actor in every respect that Ray schedules
(node id, resources, object transfer), only not a separate machine. With ``$RAY_ADDRESS`` the tests connect to
that cluster instead.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def ray_cluster():
    """The session's Ray cluster address (the GCS ``host:port``, usable as ``RAY_ADDRESS`` by a subprocess)."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")
    from harness.scoring.ray_engine import ensure_ray

    if os.environ.get("RAY_ADDRESS") or ray.is_initialized():
        started = not ray.is_initialized()
        ensure_ray()
        yield ray.get_runtime_context().gcs_address
        if started:
            ray.shutdown()
        return
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ensure_ray(cluster.address)
        yield cluster.address
    finally:
        ray.shutdown()
        cluster.shutdown()
