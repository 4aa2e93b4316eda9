"""Migration handles: a handle names one migration, and stays with it once the tenant starts
another; ``await Migration.run()`` resolves to None."""

from __future__ import annotations

import pytest

import tidaldb


def schema() -> tidaldb.Schema:
    return tidaldb.Schema().signal("view", kind="item", half_life="1h", windows=["1h"])


# A Migration handle names one migration: once it is complete and the tenant starts
# another, the old handle still reports the finished one (state, source, target), and a
# step called on it does not drive the new one.
def test_completed_migration_handle_does_not_become_the_next_migration() -> None:
    c = tidaldb.Cluster(schema(), seed=5)
    t = c.register_tenant(1, regions=["us-east"])
    t.write("view", 1, ts=c.now)
    m1 = t.migrate("eu-west")
    m1.prepare_target()
    m1.enter_dual_write()
    m1.finalize()
    m1.gc_source()
    assert m1.state == "complete"
    m2 = t.migrate("ap-south")
    assert (m1.state, m1.source, m1.target) == ("complete", "us-east", "eu-west")
    try:
        m1.prepare_target()  # a no-op or a Conflict on a finished migration
    except tidaldb.Conflict:
        pass
    assert m2.state == "idle", "a step on the finished migration's handle drove the new one"


# `await Migration.run()` resolves to None, as _native.pyi says (stubtest cannot see what
# an awaitable resolves to).
@pytest.mark.asyncio
async def test_migration_run_resolves_to_none() -> None:
    c = tidaldb.Cluster(schema(), seed=6)
    t = c.register_tenant(1, regions=["us-east"])
    result = await t.migrate("eu-west").run()  # type: ignore[func-returns-value]
    assert result is None, f"Migration.run() resolved to {result!r}"


def test_advance_takes_each_step_in_order_and_an_old_handle_moves_nothing() -> None:
    c = tidaldb.Cluster(schema(), seed=6)
    t = c.register_tenant(2, regions=["us-east"])
    for i in range(30):
        t.write("view", i, ts=c.now)
    m = t.migrate("eu-west")
    reached = [m.advance() for _ in range(5)]
    assert reached == ["target_created", "dual_write", "finalized", "complete", "complete"]
    assert t.regions == ["eu-west"]
    assert t.total_count("view", "eu-west") == 30
    newer = t.migrate("ap-south")
    assert m.advance() == "complete"  # the old handle names the finished migration
    assert newer.state == "idle"  # ... and did not drive the new one
