"""The awaitables: `Cluster.converged()` and `Migration.run()` inside a running event loop.

They run on a worker thread of their own, so the event loop stays free: another coroutine makes
progress while a migration step runs.
"""

from __future__ import annotations

import asyncio

import pytest

import tidaldb

START = 1_767_225_600.0  # the simulator's virtual start, 2026-01-01T00:00:00Z
HOUR = 3600.0


@pytest.fixture
def schema() -> tidaldb.Schema:
    return tidaldb.Schema().signal("view", half_life="1h", windows=["1h", "24h"])


@pytest.mark.asyncio
async def test_converged_replicates_every_acknowledged_write(schema: tidaldb.Schema) -> None:
    cluster = tidaldb.Cluster(schema, seed=11)
    for i in range(50):
        cluster.write("view", i % 5, ts=START, region=cluster.regions[i % 3])
    assert not cluster.is_converged()
    took = await cluster.converged(timeout=10.0)
    assert 0.0 < took <= 10.0
    assert cluster.is_converged()
    for region in cluster.regions:
        assert cluster.total_count("view", region) == 50
        # Ten writes of weight 1 per item at START: exactly 10 · 2^(-Δ/h).
        expected = 10 * 2.0 ** (-(cluster.now - START) / HOUR)
        assert abs(cluster.score("view", 3, region=region) - expected) <= 1e-9 * expected


@pytest.mark.asyncio
async def test_converged_times_out_with_tidaldb_timeout(schema: tidaldb.Schema) -> None:
    cluster = tidaldb.Cluster(schema, seed=12)
    # us-east cut off from both others: ap-south cannot relay for it.
    with cluster.partition("us-east", "eu-west"), cluster.partition("us-east", "ap-south"):
        cluster.write("view", 1, region="us-east")
        with pytest.raises(tidaldb.Timeout, match="did not converge"):
            await cluster.converged(timeout=0.5)
    assert await cluster.converged(timeout=10.0) >= 0.0


@pytest.mark.asyncio
async def test_migration_run_goes_through_every_step_while_the_loop_stays_free(schema: tidaldb.Schema) -> None:
    cluster = tidaldb.Cluster(schema, seed=13)
    tenant = cluster.register_tenant(42, regions=["us-east"], label="acme")
    acked = 0
    for i in range(120):
        tenant.write("view", i % 10, ts=START)
        acked += 1
    migration = tenant.migrate("ap-south")
    assert migration.state == "idle"
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        await migration.run(progress=True)
    finally:
        task.cancel()
    assert migration.state == "complete"
    assert tenant.migration is None
    assert ticks > 0, "the event loop was blocked while the migration ran"
    assert tenant.regions == ["ap-south"]
    assert tenant.total_count("view", "ap-south") == acked
    assert tenant.total_count("view", "us-east") == 0
    with pytest.raises(tidaldb.NotFound):
        tenant.score("view", 1, region="us-east")


@pytest.mark.asyncio
async def test_migration_run_resumes_from_any_state(schema: tidaldb.Schema) -> None:
    cluster = tidaldb.Cluster(schema, seed=14)
    tenant = cluster.register_tenant(7, regions=["eu-west"])
    tenant.write("view", 1, ts=START)
    migration = tenant.migrate("us-east")
    migration.prepare_target()
    migration.enter_dual_write()
    tenant.write("view", 1, ts=START)
    # A fresh handle, as after a crashed driver, picks up from the record.
    resumed = tenant.migration
    assert resumed is not None and resumed.state == "dual_write"
    await resumed.run()
    assert migration.state == "complete"
    assert tenant.total_count("view", "us-east") == 2


@pytest.mark.asyncio
async def test_a_failing_step_raises_from_run(schema: tidaldb.Schema) -> None:
    cluster = tidaldb.Cluster(schema, seed=15)
    tenant = cluster.register_tenant(9, regions=["us-east"])
    tenant.write("view", 1, ts=START)
    migration = tenant.migrate("ap-south")
    cluster.crash("ap-south")
    with pytest.raises((tidaldb.Unavailable, tidaldb.Timeout)):
        await migration.run()
    assert migration.state in ("idle", "target_created")
    cluster.restart("ap-south")
    await migration.run()
    assert migration.state == "complete"
    assert tenant.total_count("view", "ap-south") == 1
