"""Regressions of the Python cluster API: one test per bug a review of issue 5 found, each
of which failed before its fix (the comment ``BUG n`` says what the bug was). Oracles are independent of the code under
test: the set of acknowledged writes, the analytical decay formula, a subprocess that must
finish, and the exception contract of DESIGN.md ("messages name the bad argument").
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Literal

import numpy as np
import pytest

import tidaldb

#: The simulator's virtual start, 2026-01-01T00:00:00Z.
START = 1_767_225_600.0


def schema() -> tidaldb.Schema:
    return tidaldb.Schema().signal("view", kind="item", half_life="1h", windows=["1h"])


# BUG 1 (high): Partition.active (and so repr(Partition)) holds the handle's std Mutex while
# detached (handles.rs `active`: lock, then py.detach). A second thread that takes the GIL
# and calls `active`/`heal`/`repr` blocks on that Mutex *while attached*; the first thread
# can then never re-attach: a deadlock of the whole interpreter. Two threads polling
# `p.active` are enough. Run in a subprocess so that the hang fails the test, not the suite.
def test_partition_active_from_two_threads_does_not_deadlock() -> None:
    script = textwrap.dedent(
        """
        import threading
        import tidaldb

        s = tidaldb.Schema().signal("view", kind="item", half_life="1h")
        c = tidaldb.Cluster(s, seed=1)
        p = c.partition("us-east", "eu-west")

        def poll() -> None:
            for _ in range(20_000):
                p.active

        threads = [threading.Thread(target=poll) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        p.heal()
        print("done")
        """
    )
    try:
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail("two threads reading Partition.active deadlocked (no progress in 15 s)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "done"


def _items_by_shard(shards: int) -> dict[int, list[int]]:
    """Items 0..199 of tenant 1 grouped by the replica that acknowledges them (its origin
    id stands for its shard), found on a scratch cluster without quotas."""
    c = tidaldb.Cluster(schema(), seed=3, shards_per_region=shards)
    t = c.register_tenant(1)
    groups: dict[int, list[int]] = {}
    for i in range(200):
        groups.setdefault(t.write("view", i, ts=START).origin, []).append(i)
    assert len(groups) == shards, groups.keys()
    return groups


# BUG 2 (high): write_many of a tenant that spans several shards is one request per shard
# (sim/client.rs write_batch). When a later shard's part breached a quota, the earlier parts
# stayed written, yet QuotaExceeded said "nothing was written", so the natural retry counted
# them twice. Now such an error says how many events landed, in its message and in
# `written`; when the first part breaches, nothing lands and `written` is 0.
@pytest.mark.parametrize(("entities", "rate"), [(10, None), (None, 5)])
@pytest.mark.parametrize("breaching", [0, 1])
def test_write_many_refused_by_quota_says_what_was_written(entities: int | None, rate: int | None, breaching: int) -> None:
    groups = [g for _, g in sorted(_items_by_shard(2).items())]
    # A part small enough to pass on one shard, a part that breaches on the other; which
    # shard breaches is a parameter, so the order parts are submitted in is covered both ways.
    small, big = groups[1 - breaching][:5], groups[breaching][:15]
    items = np.array(small + big, dtype=np.uint64)
    c = tidaldb.Cluster(schema(), seed=3, shards_per_region=2)
    t = c.register_tenant(1, max_entities=entities, max_signals_per_sec=rate)
    with pytest.raises(tidaldb.QuotaExceeded) as info:
        t.write_many("view", items, ts=np.full(len(items), START))
    err = info.value
    assert err.quota == ("entities" if entities else "signals_per_sec")
    c.run_for(1.0)
    held = [t.total_count("view", r) for r in c.regions]
    assert held == [err.written] * 3, f"the error says {err.written} were written, regions hold {held}"
    assert err.written in (0, 5)
    if err.written:
        assert "5 of its 20 events" in str(err)
        assert t.scores("view", np.array(small, dtype=np.uint64), at=START).tolist() == [1.0] * 5
    assert not t.scores("view", np.array(big, dtype=np.uint64)).any()


# BUG 3 (medium): write_concern is resolved once, for the default tenant's replica count
# (cluster_config.rs parse_write_concern: "all" = regions - 1, "majority" = regions // 2), and
# applied to every tenant's writes. A tenant whose residency keeps fewer replicas can then
# never be written: every write raises InvalidArgument naming `write_concern`, an argument
# the caller of `write` never passed. "all"/"majority" must mean the tenant's own group.
@pytest.mark.parametrize("concern", ["all", "majority"])
def test_write_concern_applies_to_the_tenants_own_replicas(concern: Literal["all", "majority"]) -> None:
    c = tidaldb.Cluster(schema(), seed=4, write_concern=concern)
    t = c.register_tenant(1, regions=["eu-west"])
    at = c.now
    ack = t.write("view", 7, ts=at)
    assert ack.count == 1 and ack.region == "eu-west"
    assert t.score("view", 7, at=at) == 1.0  # one unit event, read at its own instant


# BUG 4 (medium): node ids are u16 and are computed with a silent truncating cast
# (sim/cluster.rs build: `id_of ... as u16`; engine.rs next_node_id `len() as u16`;
# tenants.rs `NodeId(first + i as u16)`). The bindings accept 64 regions x 65535 shards,
# so a cluster of more than 65536 replicas gives two replicas the same id: writes to one
# region are acknowledged as another's (WriteAck.region lies), messages go to the wrong
# replica and the cluster never converges. Either refuse such a cluster up front
# (InvalidArgument) or give every replica its own id.
# Note: with the bug present this builds 65 600 replicas (about 1.3 GB, 1-2 s).
def test_more_replicas_than_node_ids_is_refused_or_routed_right() -> None:
    regions = [f"r{i}" for i in range(64)]
    try:
        c = tidaldb.Cluster(schema(), regions=regions, shards_per_region=1025)
    except tidaldb.InvalidArgument:
        return  # refused up front: fixed
    wrong = [(i, a.region) for i in range(200) if (a := c.write("view", i, ts=START, region="r63")).region != "r63"]
    assert not wrong, f"writes sent to r63 were acknowledged elsewhere: {wrong[:5]}"


# BUG 5 (medium): a Migration handle holds only the tenant id (migration.rs), so once that
# migration is complete and the tenant starts another, the old handle silently becomes the
# new one: its state goes from "complete" back to "idle", its source/target change, and a
# step called on it drives the new migration.
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


# BUG 6 (low): `await Migration.run()` resolves to `()` (Rust `Ok(())` becomes an empty
# tuple), while _native.pyi says Awaitable[None]; stubtest cannot see it.
@pytest.mark.asyncio
async def test_migration_run_resolves_to_none() -> None:
    c = tidaldb.Cluster(schema(), seed=6)
    t = c.register_tenant(1, regions=["us-east"])
    result = await t.migrate("eu-west").run()  # type: ignore[func-returns-value]
    assert result is None, f"Migration.run() resolved to {result!r}"


# BUG 7 (low): messages that do not name the bad argument. write_many's `ts` array is
# converted with Timestamp::from_secs_f64 without the argument's name (scoped.rs
# write_many_in), unlike the scalar `ts=` of write; NaN is even reported as
# "170141183460469231731687303715884105727 ns". migrate() and partition() name
# core-internal arguments ("target", "to") that the Python caller never passed.
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -5.0])
def test_write_many_bad_ts_names_ts(bad: float) -> None:
    c = tidaldb.Cluster(schema(), seed=7)
    with pytest.raises(tidaldb.InvalidArgument, match=r"\bts\b"):
        c.write_many("view", np.array([1], dtype=np.uint64), ts=np.array([bad]))
    assert c.total_count("view", "us-east") == 0


def test_migrate_to_its_own_region_names_to_region() -> None:
    c = tidaldb.Cluster(schema(), seed=7)
    t = c.register_tenant(1, regions=["us-east"])
    with pytest.raises(tidaldb.InvalidArgument, match="to_region"):
        t.migrate("us-east")


def test_partition_of_a_region_with_itself_names_its_arguments() -> None:
    c = tidaldb.Cluster(schema(), seed=7)
    with pytest.raises(tidaldb.InvalidArgument, match=r"argument (a|b)\b"):
        c.partition("us-east", "us-east")
