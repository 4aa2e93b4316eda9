"""A tenant's ``max_entities`` and ``max_storage_bytes`` hold across its three regions:
written concurrently in all of them and across a partition that isolates one, no region
holds more than the cap after convergence, every accepted write is everywhere, and a
refused write wrote nothing. The oracle is the set of writes the cluster accepted."""

from __future__ import annotations

import numpy as np
import pytest

import tidaldb
from cluster_support import tenancy_schema

CAP = 30


def write_everywhere(
    tenant: tidaldb.Tenant,
    cluster: tidaldb.Cluster,
    rounds: int,
    entity_of: dict[str, list[int]],
    pause: float = 0.02,
) -> tuple[list[int], int, int]:
    """Each round, every region writes its next entity, then ``pause`` seconds pass.
    Returns the accepted writes' entities, and the refusals with and without a retry
    hint."""
    accepted: list[int] = []
    waiting = final = 0
    for k in range(rounds):
        for region in tenant.regions:
            entity = entity_of[region][k]
            try:
                tenant.write("view", entity, region=region)
                accepted.append(entity)
            except tidaldb.QuotaExceeded as e:
                assert type(e) is tidaldb.QuotaExceeded
                assert e.quota in ("entities", "storage_bytes")
                if e.retry_after is None:
                    final += 1
                else:
                    waiting += 1
        cluster.run_for(pause)
    return accepted, waiting, final


def held(tenant: tidaldb.Tenant, region: str, entities: list[int]) -> set[int]:
    scores = tenant.scores("view", np.array(entities, dtype=np.uint64), region=region)
    return {e for e, s in zip(entities, scores.tolist()) if s > 0}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_max_entities_holds_across_regions_and_a_partition(seed: int) -> None:
    cluster = tidaldb.Cluster(tenancy_schema(), seed=seed)
    tenant = cluster.register_tenant(1, max_entities=CAP)
    regions = tenant.regions
    assert len(regions) == 3
    # Each region's own entities, and every third one shared with the next region, so
    # that two regions introduce some entities concurrently.
    entity_of = {
        r: [(i * 1000 + k) if k % 3 else ((i + 1) % 3 * 1000 + k) for k in range(80)] for i, r in enumerate(regions)
    }
    first, waiting1, _ = write_everywhere(tenant, cluster, 10, entity_of)
    cut = [cluster.partition(regions[2], regions[0]), cluster.partition(regions[2], regions[1])]
    second, waiting2, _ = write_everywhere(tenant, cluster, 40, {r: es[10:] for r, es in entity_of.items()})
    for p in cut:
        p.heal()
    cluster.await_convergence()
    # Healed, the regions spend what rights are left, until no retry can help.
    third, _, final = write_everywhere(tenant, cluster, 30, {r: es[50:] for r, es in entity_of.items()}, 0.25)
    cluster.await_convergence()

    accepted = set(first + second + third)
    everything = sorted({e for es in entity_of.values() for e in es})
    assert waiting1 + waiting2 > 0, "some region waited for rights from a peer"
    assert final > 0, "the cap was reached"
    for region in regions:
        on_region = held(tenant, region, everything)
        assert on_region == accepted, f"{region} holds exactly the accepted writes"
        assert len(on_region) <= CAP, f"{region} holds {len(on_region)} entities, past {CAP}"
        assert tenant.total_count("view", region) == len(first) + len(second) + len(third)


def test_max_storage_bytes_holds_across_regions_and_a_partition() -> None:
    cluster = tidaldb.Cluster(tenancy_schema(), seed=4)
    tenant = cluster.register_tenant(1, max_storage_bytes=CAP * 64)
    regions = tenant.regions
    entity_of = {r: [7] * 30 for r in regions}
    first, _, _ = write_everywhere(tenant, cluster, 10, entity_of)
    cut = cluster.partition(regions[1], regions[0])
    second, _, _ = write_everywhere(tenant, cluster, 30, entity_of)
    cut.heal()
    cluster.await_convergence()
    third, _, final = write_everywhere(tenant, cluster, 30, entity_of, 0.25)
    cluster.await_convergence()
    assert final > 0, "the cap was reached"
    for region in regions:
        count = tenant.total_count("view", region)
        assert count == len(first) + len(second) + len(third), f"{region} holds every accepted write, and only those"
        # The log also holds the grants that moved rights, so the events alone stay under.
        assert count <= CAP, f"{region} holds {count} events, past {CAP}"
