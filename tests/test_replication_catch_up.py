"""Catch-up after a partition in which regions wrote more events than a replica's in-memory
log holds: the health report says the replicas need a resync while they cannot yet catch up,
and after the heal every region converges to the same version vector and scores, equal to
the analytical decay sum over the acknowledged writes."""

from __future__ import annotations

import numpy as np
import pytest

import tidaldb
from cluster_support import REGIONS, START
from conftest import assert_close, exp_score

#: The bound on each replica's in-memory log, relayed and own events alike.
BOUND = 20_000
#: Events each writing region writes during the partition: three times the bound.
PAST_THE_BOUND = 3 * BOUND
HALF_LIFE = 3600.0
ITEMS = 4


def test_two_regions_past_the_retained_bound_and_a_silent_one_converge_after_the_heal() -> None:
    cluster = tidaldb.Cluster(
        tidaldb.Schema().signal("view", kind="item", half_life=HALF_LIFE),
        seed=7,
        max_retained=BOUND,
        max_retained_own=BOUND,
    )
    cluster.run_for(0.2)
    cuts = [cluster.partition(a, b) for i, a in enumerate(REGIONS) for b in REGIONS[i + 1 :]]
    writers = REGIONS[:2]
    ts = START + 0.2
    items = np.arange(PAST_THE_BOUND, dtype=np.uint64) % ITEMS
    weights = 1.0 + (np.arange(PAST_THE_BOUND) % 3).astype(np.float64)
    for region in writers:
        written = cluster.write_many("view", items, weights, ts=np.full(PAST_THE_BOUND, ts), region=region)
        assert written == PAST_THE_BOUND
    cluster.run_for(0.5)

    health = cluster.health()
    assert [health.region(r) for r in REGIONS] == ["NeedsResync"] * 3, health

    for cut in cuts:
        cut.heal()
    cluster.await_convergence(timeout=60.0)
    cluster.run_for(0.2)

    health = cluster.health()
    assert [health.region(r) for r in REGIONS] == ["Healthy"] * 3, health
    vvs = [cluster.version_vector(r) for r in REGIONS]
    assert vvs[0] == vvs[1] == vvs[2]
    assert sorted(vvs[0].values()) == [PAST_THE_BOUND, PAST_THE_BOUND]
    at = ts + 60.0
    for item in range(ITEMS):
        scores = [cluster.score("view", item, region=r, at=at) for r in REGIONS]
        assert scores[0] == scores[1] == scores[2], scores
        # Both writers wrote the same weights for the item, all at `ts`.
        total = 2 * float(weights[items == item].sum())
        assert_close(scores[0], exp_score([(ts, total)], at, HALF_LIFE))


def test_a_retained_bound_below_one_is_refused_naming_it() -> None:
    schema = tidaldb.Schema().signal("view", kind="item", half_life=HALF_LIFE)
    for name in ("max_retained", "max_retained_own"):
        with pytest.raises(tidaldb.InvalidArgument, match=name):
            tidaldb.Cluster(schema, **{name: 0})
