"""Routing of cluster writes to replicas: a bulk write that spans shards and is refused by a
quota on one of them says what the others took; a write concern counts the tenant's own
replicas; every replica gets its own node id, or the cluster is refused. Oracles are
independent of the code under test: the set of acknowledged writes and the analytical decay
formula.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pytest

import tidaldb

#: The simulator's virtual start, 2026-01-01T00:00:00Z.
START = 1_767_225_600.0


def schema() -> tidaldb.Schema:
    return tidaldb.Schema().signal("view", kind="item", half_life="1h", windows=["1h"])


def items_by_shard(shards: int) -> dict[int, list[int]]:
    """Items 0..199 of tenant 1 grouped by the replica that acknowledges them (its origin
    id stands for its shard), found on a scratch cluster without quotas."""
    c = tidaldb.Cluster(schema(), seed=3, shards_per_region=shards)
    t = c.register_tenant(1)
    groups: dict[int, list[int]] = {}
    for i in range(200):
        groups.setdefault(t.write("view", i, ts=START).origin, []).append(i)
    assert len(groups) == shards, groups.keys()
    return groups


# write_many of a tenant that spans several shards is one request per shard. When a later
# shard's part breaches a quota, the earlier parts stay written, and the error says how many
# events landed, in its message and in `written`, so a retry need not count them twice;
# when the first part breaches, nothing lands and `written` is 0.
@pytest.mark.parametrize(("entities", "rate"), [(10, None), (None, 5)])
@pytest.mark.parametrize("breaching", [0, 1])
def test_write_many_refused_by_quota_says_what_was_written(entities: int | None, rate: int | None, breaching: int) -> None:
    groups = [g for _, g in sorted(items_by_shard(2).items())]
    # A part small enough to pass on one shard, a part that breaches on the other; which
    # shard breaches is a parameter, so the order parts are submitted in is covered both ways.
    small, big = groups[1 - breaching][:5], groups[breaching][:15]
    items = np.array(small + big, dtype=np.uint64)
    c = tidaldb.Cluster(schema(), seed=3, shards_per_region=2)
    t = c.register_tenant(1, max_entities=entities, max_signals_per_sec=rate)
    with pytest.raises(tidaldb.QuotaExceeded) as info:
        t.write_many("view", items, ts=np.full(len(items), START))
    err = info.value
    assert type(err) is tidaldb.QuotaExceeded
    assert err.quota == ("entities" if entities else "signals_per_sec")
    c.run_for(1.0)
    held = [t.total_count("view", r) for r in c.regions]
    assert held == [err.written] * 3, f"the error says {err.written} were written, regions hold {held}"
    assert err.written in (0, 5)
    if err.written:
        assert "5 of its 20 events" in str(err)
        assert t.scores("view", np.array(small, dtype=np.uint64), at=START).tolist() == [1.0] * 5
    assert not t.scores("view", np.array(big, dtype=np.uint64)).any()


# "all" and "majority" mean the tenant's own replica group: a tenant whose residency keeps
# fewer replicas than the default tenant's can still be written with them.
@pytest.mark.parametrize("concern", ["all", "majority"])
def test_write_concern_applies_to_the_tenants_own_replicas(concern: Literal["all", "majority"]) -> None:
    c = tidaldb.Cluster(schema(), seed=4, write_concern=concern)
    t = c.register_tenant(1, regions=["eu-west"])
    at = c.now
    ack = t.write("view", 7, ts=at)
    assert ack.count == 1 and ack.region == "eu-west"
    assert t.score("view", 7, at=at) == 1.0  # one unit event, read at its own instant


# Node ids are 16 bits: a cluster of more replicas than they can name is refused up front,
# naming the argument that makes it too big, rather than built with two replicas sharing an
# id (whose writes would then be acknowledged as another region's).
def test_more_replicas_than_node_ids_is_refused() -> None:
    regions = [f"r{i}" for i in range(64)]
    with pytest.raises(tidaldb.InvalidArgument, match=r"shards_per_region.*16-bit node ids") as info:
        tidaldb.Cluster(schema(), regions=regions, shards_per_region=1025)
    assert type(info.value) is tidaldb.InvalidArgument
