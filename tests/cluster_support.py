"""Fixtures and oracles shared by the cluster suites (``test_uat.py``, ``test_multitenancy.py``).

The oracle is always the set of *acknowledged* writes: every helper that writes returns (or
records) the timestamps the cluster acknowledged, and the expected score is the analytical
decay sum over exactly those, so a lost, duplicated or phantom event shows up as a wrong
number. Every write passes an explicit ``ts`` (the virtual time now), so that the oracle
does not depend on how the binding stamps ``ts=None``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tidaldb
from conftest import DAY, HOUR, assert_close, exp_score

#: The simulator's virtual clock starts at 2026-01-01T00:00:00Z.
START = 1_767_225_600.0
REGIONS: tuple[str, str, str] = ("us-east", "eu-west", "ap-south")

#: The UAT schema (seed 001): "view" halves weekly and keeps counts; "like" halves daily.
UAT_VIEW_HALF_LIFE = 7 * DAY
#: The tenancy schema (seed 000): one "view" signal, one-hour half-life and window.
TENANCY_VIEW_HALF_LIFE = HOUR

#: Control-plane election timeout (500 ms of virtual time) with room for the heartbeat.
ELECTION_LIMIT = 1.0


def uat_schema() -> tidaldb.Schema:
    return (
        tidaldb.Schema()
        .signal("view", kind="item", half_life=UAT_VIEW_HALF_LIFE, windows=["1h", "24h"])
        .signal("like", kind="item", half_life="24h")
    )


def tenancy_schema() -> tidaldb.Schema:
    return tidaldb.Schema().signal("view", kind="item", half_life=TENANCY_VIEW_HALF_LIFE, windows=["1h"])


def unit_score(times: Sequence[float], at: float, half_life: float) -> float:
    """The analytical score ``Σ 2^(-(at - tᵢ)/h)`` of unit-weight events written at ``times``."""
    return exp_score(((t, 1.0) for t in times), at, half_life)


def write_views(
    target: tidaldb.Cluster | tidaldb.Tenant,
    item: int,
    n: int,
    *,
    gap: float = 0.001,
    region: str | None = None,
    times: list[float] | None = None,
    after_each: Callable[[list[float]], None] | None = None,
) -> list[float]:
    """Writes ``n`` unit views of ``item`` on ``target`` (a cluster, or a tenant of one),
    ``gap`` virtual seconds apart, each stamped with the virtual time now, and appends the
    timestamp of each acknowledged write to ``times`` (a new list if None), which it
    returns. ``after_each`` sees the whole list after every write (a reader that checks
    each step against all acknowledged writes); any failed write raises at once."""
    cluster = target if isinstance(target, tidaldb.Cluster) else target.cluster
    times = [] if times is None else times
    for _ in range(n):
        cluster.run_for(gap)
        t = cluster.now
        ack = target.write("view", item, 1.0, ts=t, region=region)
        assert not ack.duplicate and ack.count == 1, ack
        times.append(t)
        if after_each is not None:
            after_each(times)
    return times


def scores_by_region(cluster: tidaldb.Cluster, item: int, at: float, tenant: tidaldb.Tenant | None = None) -> list[float]:
    """``item``'s view score in every region, read at the same instant ``at``."""
    return [cluster.score("view", item, region=r, tenant=tenant, at=at) for r in cluster.regions]


def assert_converged_scores(
    cluster: tidaldb.Cluster,
    item: int,
    times: Sequence[float],
    half_life: float,
    tenant: tidaldb.Tenant | None = None,
) -> float:
    """Every region returns the same f64 (bit for bit: replicas that applied the same events
    agree exactly), and it equals the analytical score of ``times`` to 1e-9. Returns it."""
    at = cluster.now
    s = scores_by_region(cluster, item, at, tenant)
    assert all(x == s[0] for x in s), dict(zip(cluster.regions, s))
    assert_close(s[0], unit_score(times, at, half_life))
    return s[0]


def await_failover(cluster: tidaldb.Cluster, crashed: str, limit: float = 10.0) -> float:
    """Steps virtual time (10 ms at a time) until a region other than ``crashed`` leads
    shard 0; returns how long that took. ``cluster.leader`` raises Unavailable while no
    live leader exists, which counts as "not yet"."""
    began = cluster.now
    while True:
        try:
            leader = cluster.leader
        except tidaldb.Unavailable:
            leader = crashed
        if leader != crashed:
            return cluster.now - began
        assert cluster.now - began <= limit, f"no new leader within {limit} s of virtual time"
        cluster.run_for(0.01)
