"""A typed tour of the cluster API, checked by ``mypy --strict`` and run by ``make test``.

    .venv/bin/python examples/typed_cluster.py

Three regions on virtual time: replicate, partition and heal, fail over, and move a tenant
to another region while it keeps serving.
"""

from __future__ import annotations

import asyncio

import numpy as np
import numpy.typing as npt

import tidaldb

START = 1_767_225_600.0  # the simulator's virtual clock starts at 2026-01-01T00:00:00Z
HOUR = 3600.0


def replicate_and_heal(cluster: tidaldb.Cluster) -> float:
    items: npt.NDArray[np.uint64] = np.arange(1_000, dtype=np.uint64)
    written: int = cluster.write_many("view", items, np.ones(1_000), ts=np.full(1_000, START))
    assert written == 1_000
    # ap-south is cut off from both other regions: nothing can relay for it.
    with cluster.partition("ap-south", "us-east"), cluster.partition("ap-south", "eu-west"):
        ack: tidaldb.WriteAck = cluster.write("view", 7, ts=START, region="ap-south")
        assert ack.region == "ap-south" and not ack.duplicate
        cluster.run_for("500ms")
        degraded: tidaldb.Results = cluster.retrieve([7], {"view": 1.0}, region="us-east")
        assert degraded.stats.degraded and degraded.stats.regions_unreachable == ["ap-south"]
    took: float = cluster.await_convergence(timeout=5.0)
    scores = [cluster.score("view", 7, region=r) for r in cluster.regions]
    assert scores[0] == scores[1] == scores[2]  # bit-identical everywhere
    assert abs(scores[0] - 2 * 2.0 ** (-(cluster.now - START) / HOUR)) < 1e-9
    return took


def fail_over(cluster: tidaldb.Cluster) -> str:
    old: str = cluster.leader
    cluster.crash(old)
    cluster.run_for(1.0)  # past the 500 ms election timeout
    new: str = cluster.leader
    assert new != old
    cluster.restart(old)
    cluster.await_convergence()
    return new


async def migrate(cluster: tidaldb.Cluster) -> tidaldb.Tenant:
    acme: tidaldb.Tenant = cluster.register_tenant(
        42, max_signals_per_sec=1_000, regions=["us-east"], label="acme"
    )
    for item in range(100):
        acme.write("view", item, ts=START)
    move: tidaldb.Migration = acme.migrate(to_region="eu-west")
    await move.run()
    assert move.state == "complete" and acme.regions == ["eu-west"]
    assert acme.total_count("view", "eu-west") == 100
    assert acme.total_count("view", "us-east") == 0
    return acme


def main() -> None:
    schema = tidaldb.Schema().signal("view", half_life="1h", windows=["1h", "24h"])
    cluster = tidaldb.Cluster(schema, seed=7, latency="20ms", jitter="5ms")
    print(f"converged {replicate_and_heal(cluster):.3f} s after the heal")
    print(f"{fail_over(cluster)} leads after the crash")
    tenant = asyncio.run(migrate(cluster))
    health: tidaldb.Health = cluster.health()
    print(tenant, health.region("eu-west"), cluster.lag())
    try:
        tenant.write("view", 1, weight=float("nan"))
    except tidaldb.InvalidArgument as e:
        print("refused:", e)


if __name__ == "__main__":
    main()
