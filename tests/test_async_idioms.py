"""The awaitables behave as coroutines do: ``asyncio.run(x)`` takes them directly, the
work starts only when awaited, and cancelling the awaiting task stops the work (the
worker checks for it about every 50 ms), leaving the cluster or migration in a state a
later call resumes from. ``Db.flush_async`` is the exception its docstring names: a sync
under way finishes.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from pathlib import Path

import pytest

import tidaldb
from conftest import HOUR, T0, assert_close, exp_score

START = 1_767_225_600.0  # the simulator's virtual start
FOREVER = "3650d"


@pytest.fixture
def schema() -> tidaldb.Schema:
    return tidaldb.Schema().signal("view", half_life="1h", windows=["24h"])


def test_asyncio_run_takes_every_awaitable_directly(schema: tidaldb.Schema, tmp_path: Path) -> None:
    db = tidaldb.Db(schema, path=tmp_path)
    for k in range(10):
        db.signal("view", 1, ts=T0 + k)
    assert asyncio.run(db.flush_async()) is None
    db.close()
    with tidaldb.Db(schema, path=tmp_path) as reopened:
        assert_close(
            reopened.score("view", 1, at=T0 + HOUR),
            exp_score([(T0 + k, 1.0) for k in range(10)], T0 + HOUR, HOUR),
        )

    cluster = tidaldb.Cluster(schema, seed=21)
    for k in range(12):
        cluster.write("view", 3, ts=START, region=cluster.regions[k % 3])
    took = asyncio.run(cluster.converged(timeout=10.0))
    assert 0.0 < took <= 10.0 and cluster.is_converged()

    tenant = cluster.register_tenant(8, regions=["us-east"])
    tenant.write("view", 1, ts=START)
    assert asyncio.run(tenant.migrate("ap-south").run()) is None
    assert tenant.regions == ["ap-south"] and tenant.total_count("view", "ap-south") == 1


def test_they_are_coroutines_that_run_only_when_awaited(schema: tidaldb.Schema) -> None:
    cluster = tidaldb.Cluster(schema, seed=22)
    cluster.write("view", 1, region="eu-west")
    before = cluster.now
    coroutine = cluster.converged(timeout=10.0)  # no event loop needed to make one
    assert inspect.iscoroutine(coroutine)
    assert coroutine.__qualname__ == "Cluster.converged"
    time.sleep(0.1)
    assert cluster.now == before and not cluster.is_converged()
    coroutine.close()  # never awaited: nothing ran
    assert cluster.now == before


def test_errors_arrive_through_asyncio_run(schema: tidaldb.Schema) -> None:
    cluster = tidaldb.Cluster(schema, seed=23)
    with cluster.partition("us-east", "eu-west"), cluster.partition("us-east", "ap-south"):
        cluster.write("view", 1, region="us-east")
        with pytest.raises(tidaldb.Timeout, match="did not converge"):
            asyncio.run(cluster.converged(timeout=0.5))


async def cancel_after(coroutine: object, seconds: float) -> None:
    task = asyncio.ensure_future(coroutine)  # type: ignore[arg-type]
    await asyncio.sleep(seconds)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def assert_stands_still(cluster: tidaldb.Cluster) -> None:
    """The worker stopped: virtual time no longer moves."""
    time.sleep(0.2)
    first = cluster.now
    time.sleep(0.3)
    assert cluster.now == first, "the cancelled work goes on"


def test_cancelling_converged_stops_the_wait(schema: tidaldb.Schema) -> None:
    cluster = tidaldb.Cluster(schema, seed=24)
    cut = [cluster.partition("us-east", "eu-west"), cluster.partition("us-east", "ap-south")]
    for k in range(5):
        cluster.write("view", 1, ts=START + k, region="us-east")
    asyncio.run(cancel_after(cluster.converged(timeout=FOREVER), 0.3))
    assert_stands_still(cluster)
    ran = cluster.now - START
    assert 0 < ran < 3650 * 86_400 / 100
    for p in cut:
        p.heal()
    cluster.await_convergence(timeout=10.0)
    at = cluster.now
    want = exp_score([(START + k, 1.0) for k in range(5)], at, HOUR)
    for region in cluster.regions:
        assert_close(cluster.score("view", 1, region=region, at=at), want)


def test_cancelling_a_migration_run_stops_its_step_and_a_later_run_resumes(
    schema: tidaldb.Schema,
) -> None:
    cluster = tidaldb.Cluster(schema, seed=25)
    tenant = cluster.register_tenant(6, regions=["us-east"])
    for k in range(30):
        tenant.write("view", k % 3, ts=START + k)
    migration = tenant.migrate("eu-west")
    # Every step but the last runs quickly; the last waits out its grace.
    asyncio.run(cancel_after(migration.run(grace=FOREVER), 0.5))
    assert_stands_still(cluster)
    assert migration.state == "finalized"
    asyncio.run(migration.run())
    assert migration.state == "complete"
    assert tenant.regions == ["eu-west"] and tenant.total_count("view", "eu-west") == 30
    at = cluster.now
    for item in range(3):
        want = exp_score([(START + k, 1.0) for k in range(30) if k % 3 == item], at, HOUR)
        assert_close(tenant.score("view", item, at=at), want)


def test_a_cancelled_flush_leaves_the_db_whole(schema: tidaldb.Schema, tmp_path: Path) -> None:
    db = tidaldb.Db(schema, path=tmp_path, durability="batched")
    for k in range(100):
        db.signal("view", 2, ts=T0 + k)

    async def main() -> None:
        task = asyncio.ensure_future(db.flush_async())
        await asyncio.sleep(0)  # started: the sync is under way
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert db.events_applied == 100  # the Db is unharmed, and goes on
    db.signal("view", 2, ts=T0 + 100)
    db.close()
    with tidaldb.Db(schema, path=tmp_path) as reopened:
        assert reopened.events_applied == 101
