"""The five multi-tenancy tests of seed 000, end to end through the Python cluster API,
plus idempotent retries and isolation between tenants.

Mirrors ``rust/tidaldb/tests/m8p5_multitenancy.rs``: the rate limiter runs on virtual time
(no wall-clock flakes) and its refusal is checked field by field; noisy-neighbour isolation
is shown on one shard's hosts; residency is checked on where the data is, not only on
routing; the migration reads every acknowledged write back after every write and step; the
rolling-upgrade test checks that the 200 signals written while a host was down are all
readable on it after it rejoins. The Python API has no drain/rejoin (the Rust
``RollingUpgradeCoordinator``), so the upgrade is mirrored as crash, writes, restart.
"""

from __future__ import annotations

import pytest

import tidaldb
from cluster_support import (
    ELECTION_LIMIT,
    REGIONS,
    TENANCY_VIEW_HALF_LIFE,
    assert_converged_scores,
    await_failover,
    tenancy_schema,
    unit_score,
    write_views,
)
from conftest import assert_close

H = TENANCY_VIEW_HALF_LIFE


def make_cluster(seed: int) -> tidaldb.Cluster:
    return tidaldb.Cluster(tenancy_schema(), seed=seed)


def breach(target: tidaldb.Cluster | tidaldb.Tenant, item: int) -> tidaldb.QuotaExceeded:
    """The QuotaExceeded that one more write of ``item`` runs into."""
    cluster = target if isinstance(target, tidaldb.Cluster) else target.cluster
    with pytest.raises(tidaldb.QuotaExceeded, match="signals_per_sec") as e:
        target.write("view", item, 1.0, ts=cluster.now)
    return e.value


# --- The five tests of seed 000 -----------------------------------------------------------


def test_tenant_rate_limiting() -> None:
    """At 100 signals/s the burst is 2 × rate: 200 writes at one virtual instant pass, the
    201st is refused with the quota, its limit and an honest retry_after."""
    cluster = make_cluster(1)
    t = cluster.register_tenant(1, max_signals_per_sec=100, label="test-tenant")
    assert t.max_signals_per_sec == 100 and t.max_entities is None and t.max_storage_bytes is None
    now = cluster.now
    for i in range(200):
        ack = t.write("view", i, 1.0, ts=now)
        assert ack.count == 1, i
    assert cluster.now == now, "local writes take no virtual time: all 200 were one instant"

    b = breach(t, 200)
    assert (b.quota, b.limit, b.tenant) == ("signals_per_sec", 100, 1)
    assert b.retry_after is not None and b.retry_after > 0
    assert b.retry_after == pytest.approx(0.01, abs=1e-6), "one token per 10 ms at 100/s"
    assert isinstance(b, tidaldb.TidalError)
    home = t.regions[0]
    assert t.total_count("view", home) == 200, "nothing is written on a breach"

    # The retry_after is honest: after it exactly one more passes, then the bucket is empty.
    cluster.run_for(b.retry_after)
    t.write("view", 200, 1.0, ts=cluster.now)
    breach(t, 201)
    cluster.await_convergence()
    for r in t.regions:
        assert t.total_count("view", r) == 201, r


def test_noisy_neighbour_isolation() -> None:
    """Tenant A (10/s) hammers the shard it shares with tenant B (10 000/s) and the default
    tenant: A gets exactly its burst of 20, B and the default tenant lose nothing."""
    cluster = make_cluster(2)
    a = cluster.register_tenant(1, max_signals_per_sec=10, label="noisy-tenant")
    b = cluster.register_tenant(2, max_signals_per_sec=10_000, label="good-tenant")
    assert a.regions == b.regions == list(REGIONS), "both on every host of shard 0"
    now = cluster.now
    passed_a = 0
    for i in range(1000):
        try:
            a.write("view", i % 50, 1.0, ts=now)
            passed_a += 1
        except tidaldb.QuotaExceeded as e:
            assert (e.tenant, e.quota, e.limit) == (1, "signals_per_sec", 10)
    assert passed_a == 20, "tenant A gets exactly its burst"
    for i in range(100):
        b.write("view", i, 1.0, ts=now)  # raises if B were throttled by A's exhaustion
        cluster.write("view", i, 1.0, ts=now)
    assert cluster.now == now

    cluster.await_convergence()
    for r in REGIONS:
        assert a.total_count("view", r) == 20, r
        assert b.total_count("view", r) == 100, r
        assert cluster.total_count("view", r) == 100, r
    at = cluster.now
    assert_close(b.score("view", 7), unit_score([now], at, H))
    assert_close(cluster.score("view", 7), unit_score([now], at, H))


def test_tenant_residency_policy() -> None:
    """A tenant restricted to eu-west keeps its replicas and its data there only."""
    cluster = make_cluster(3)
    t = cluster.register_tenant(10, regions=["eu-west"], label="eu-tenant")
    assert t.regions == ["eu-west"] and t.label == "eu-tenant"
    now = cluster.now
    for i in range(100):
        ack = t.write("view", i, 1.0, ts=now)
        assert ack.region == "eu-west", f"entity {i} must be written in eu-west"
    cluster.await_convergence()

    assert t.total_count("view", "eu-west") == 100
    for r in ("us-east", "ap-south"):
        assert t.total_count("view", r) == 0, f"no copy of the tenant's data in {r}"
        with pytest.raises(tidaldb.NotFound):
            t.score("view", 1, region=r)
        assert cluster.total_count("view", r) == 0, "nor in the default tenant's replicas"
    for i in range(100):
        assert_close(t.score("view", i), unit_score([now], cluster.now, H))
    for r in ("us-east", "ap-south"):
        with pytest.raises(tidaldb.NotFound):
            t.write("view", 1, 1.0, ts=cluster.now, region=r)  # nor can a write put it there
    health = cluster.health()
    assert {row["region"] for row in health["replicas"] if row["tenant"] == 10} == {"eu-west"}
    (entry,) = [row for row in health["tenants"] if row["tenant"] == 10]
    assert [p["region_id"] for p in entry["placement"]] == ["eu-west"]

    # A policy no region can satisfy is refused and registers nothing.
    with pytest.raises(tidaldb.NotFound, match="mars"):
        cluster.register_tenant(11, regions=["mars"])
    with pytest.raises(tidaldb.NotFound):
        cluster.tenant(11)
    assert [x.id for x in cluster.tenants] == [10]


def test_tenant_migration_zero_downtime() -> None:
    """Tenant 1 moves from us-east to ap-south step by step. After every write and every
    step a read succeeds and equals the formula of the acknowledged writes; in dual write the
    target already holds every acknowledged write; afterwards only ap-south holds data."""
    cluster = make_cluster(7)
    t = cluster.register_tenant(1, regions=["us-east"], label="mover")
    item = 5

    def check_read(times: list[float], when: str = "after a write") -> None:
        score = t.score("view", item)  # any exception fails the test: no downtime
        expected = unit_score(times, cluster.now, H)
        assert abs(score - expected) <= 1e-9 * expected, (when, score, expected)

    acked = write_views(t, item, 100, gap=0.003, after_each=check_read)
    assert t.migration is None
    m = t.migrate("ap-south")
    assert m.state == "idle" and t.migration is not None and t.migration.state == "idle"
    with pytest.raises(tidaldb.Conflict):
        m.finalize()  # misordered: dual write first
    with pytest.raises(tidaldb.Conflict):
        t.migrate("eu-west")  # one migration at a time

    m.prepare_target()
    assert m.state == "target_created"
    check_read(acked, "after prepare_target")
    m.enter_dual_write()
    assert m.state == "dual_write"
    check_read(acked, "after enter_dual_write")

    def dual_write_read(times: list[float]) -> None:
        check_read(times)
        assert t.total_count("view", "ap-south") == len(times), "the target holds every ack"

    write_views(t, item, 50, gap=0.003, after_each=dual_write_read, times=acked)
    cluster.run_for(0.1)
    m.finalize()
    assert m.state == "finalized"
    check_read(acked, "after finalize")
    assert t.total_count("view", "ap-south") == 150
    assert_close(t.score("view", item, region="ap-south"), unit_score(acked, cluster.now, H))

    m.gc_source(grace=0.0)
    assert m.state == "complete"
    check_read(acked, "after gc_source")
    assert t.total_count("view", "us-east") == 0
    with pytest.raises(tidaldb.NotFound):
        t.score("view", item, region="us-east")
    assert t.regions == ["ap-south"]
    # Writes after the switch land on the new home.
    write_views(t, item, 1, after_each=check_read, times=acked)
    assert t.total_count("view", "ap-south") == 151


@pytest.mark.parametrize("down", REGIONS)
def test_rolling_upgrade_no_data_loss(down: str) -> None:
    """One region's host goes down (the upgrade); 200 signals are written while it is down,
    each read back in the regions that are up; it restarts (rejoins) and then holds all 200
    exactly, with the formula's score. The Python API has no drain/rejoin calls, so the
    upgrade window is a crash and a restart; when the host was the leader, the writes wait
    for the failover first."""
    cluster = make_cluster(11)
    item = 1
    cluster.crash(down, lose_unsynced=True)
    up = [r for r in REGIONS if r != down]
    with pytest.raises(tidaldb.Unavailable, match="down"):
        cluster.score("view", item, region=down)
    if down == cluster.regions[0]:
        took = await_failover(cluster, down)
        assert took <= ELECTION_LIMIT
    assert cluster.leader in up

    def read_up(times: list[float]) -> None:
        # The leader holds every acknowledged write; the other region that is up serves
        # reads too (it may trail by a link's latency).
        assert_close(cluster.score("view", item), unit_score(times, cluster.now, H))
        for r in up:
            # Any region that is up may trail the leader by a link's latency, never lead it.
            assert cluster.score("view", item, region=r) <= unit_score(times, cluster.now, H) * (1 + 1e-9)

    times = write_views(cluster, item, 200, gap=0.002, after_each=read_up)
    cluster.restart(down)
    cluster.await_convergence()
    assert cluster.window_count("view", item, "1h", region=down) == 200
    assert cluster.total_count("view", down) == 200
    assert_close(cluster.score("view", item, region=down), unit_score(times, cluster.now, H))
    assert_converged_scores(cluster, item, times, H)
    cluster.run_for(0.2)
    assert cluster.lag() == {r: 0 for r in REGIONS}, "no lag after rejoin"


# --- Idempotent retries -------------------------------------------------------------------


@pytest.mark.parametrize("key", [42, "order-42", b"order-42"])
def test_idempotency_key_retry_is_counted_once(key: int | str | bytes) -> None:
    """A retried write with the same key is acknowledged as a duplicate of the original
    event and counted once, whether the retry reaches the same replica or, after the
    original replicated, another region's; a different key is a new write."""
    cluster = make_cluster(20)
    item = 7
    t0 = cluster.now
    first = cluster.write("view", item, 1.0, ts=t0, idempotency_key=key)
    assert not first.duplicate and first.count == 1
    again = cluster.write("view", item, 1.0, ts=t0, idempotency_key=key)
    assert again.duplicate, "the same key again is a retry"
    assert (again.origin, again.seq) == (first.origin, first.seq), "it names the original"

    cluster.await_convergence()
    elsewhere = cluster.write("view", item, 1.0, ts=t0, region="ap-south", idempotency_key=key)
    assert elsewhere.duplicate and (elsewhere.origin, elsewhere.seq) == (first.origin, first.seq)

    t1 = cluster.now
    other = cluster.write("view", item, 1.0, ts=t1, idempotency_key="another-key")
    assert not other.duplicate
    plain = cluster.write("view", item, 1.0, ts=t1)
    assert not plain.duplicate
    cluster.await_convergence()
    for r in REGIONS:
        assert cluster.window_count("view", item, "1h", region=r) == 3, r
    assert_converged_scores(cluster, item, [t0, t1, t1], H)


def test_idempotency_keys_are_per_tenant() -> None:
    """A tenant's retry is a duplicate within the tenant; the same key in another tenant
    (or the default tenant) is a different write."""
    cluster = make_cluster(21)
    t = cluster.register_tenant(3)
    now = cluster.now
    assert not t.write("view", 1, 1.0, ts=now, idempotency_key="k").duplicate
    assert t.write("view", 1, 1.0, ts=now, idempotency_key="k").duplicate
    assert not cluster.write("view", 1, 1.0, ts=now, idempotency_key="k").duplicate
    cluster.await_convergence()
    for r in REGIONS:
        assert t.window_count("view", 1, "1h", region=r) == 1
        assert cluster.window_count("view", 1, "1h", region=r) == 1


# --- Isolation between tenants ------------------------------------------------------------


def test_tenants_with_the_same_item_ids_never_see_each_others_data() -> None:
    """The default tenant and tenants 1 and 2 write the same item ids with different
    counts and weights; every region answers each tenant from its own data only, and a
    hide in one tenant hides nothing in another."""
    cluster = make_cluster(30)
    t1 = cluster.register_tenant(1, label="one")
    t2 = cluster.register_tenant(2, label="two")
    assert [x.id for x in cluster.tenants] == [1, 2]
    assert cluster.tenant(2).label == "two"
    items = [1, 2, 3, 4, 5]
    # (target, events per item, weight): distinct counts and weights, so a leak shows.
    plan: list[tuple[tidaldb.Cluster | tidaldb.Tenant, int, float]] = [
        (cluster, 1, 1.0),
        (t1, 2, 2.0),
        (t2, 3, 5.0),
    ]
    written: dict[int, list[float]] = {}
    for k, (target, n, weight) in enumerate(plan):
        times = []
        for _ in range(n):
            cluster.run_for(0.001)
            times.append(cluster.now)
            for i in items:
                target.write("view", i, weight, ts=times[-1])
        written[k] = times
    t1.hide(77, 3)
    cluster.await_convergence()

    at = cluster.now
    tenants: list[tidaldb.Tenant | None] = [None, t1, t2]
    for k, (_, n, weight) in enumerate(plan):
        tenant = tenants[k]
        expected = weight * unit_score(written[k], at, H)
        for r in REGIONS:
            assert cluster.total_count("view", r, tenant=tenant) == n * len(items), (k, r)
            for i in items:
                assert cluster.window_count("view", i, "1h", region=r, tenant=tenant) == n
                assert_close(cluster.score("view", i, region=r, tenant=tenant, at=at), expected)
            res = cluster.retrieve(items, {"view": 1.0}, user=77, limit=10, region=r, tenant=tenant, at=at)
            assert sorted(x.item for x in res) == ([1, 2, 4, 5] if k == 1 else items), (k, r)
            for x in res:
                assert_close(x.score, expected)
            assert cluster.is_hidden(77, 3, region=r, tenant=tenant) == (k == 1)

    with pytest.raises(tidaldb.NotFound):
        cluster.score("view", 1, tenant=99)


def test_register_tenant_refusals() -> None:
    """The default tenant's id and a taken id conflict; a negative id is invalid; none of
    them registers anything."""
    cluster = make_cluster(31)
    cluster.register_tenant(5)
    with pytest.raises(tidaldb.Conflict):
        cluster.register_tenant(0)
    with pytest.raises(tidaldb.Conflict):
        cluster.register_tenant(5)
    with pytest.raises(tidaldb.InvalidArgument, match="id"):
        cluster.register_tenant(-1)
    assert [t.id for t in cluster.tenants] == [5]


def test_a_tenant_serves_only_itself() -> None:
    cluster = make_cluster(seed=3)
    acme = cluster.register_tenant(1)
    other = cluster.register_tenant(2)
    t0 = cluster.now
    assert isinstance(cluster, tidaldb._native._Scoped)
    assert isinstance(acme, tidaldb._native._Scoped)
    acme.write("view", 5, ts=t0, tenant=acme)
    acme.write("view", 5, ts=t0, tenant=1)
    with pytest.raises(tidaldb.InvalidArgument, match="tenant"):
        acme.write("view", 5, ts=t0, tenant=other)
    with pytest.raises(tidaldb.InvalidArgument, match="tenant"):
        acme.score("view", 5, tenant=0)
    # The refused write wrote nothing anywhere.
    assert acme.score("view", 5, at=t0) == 2.0
    assert other.score("view", 5, at=t0) == 0.0
    assert cluster.score("view", 5, at=t0) == 0.0
