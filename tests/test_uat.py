"""The M8 acceptance scenarios, steps 1–5 (seed 001), through the Python cluster API.

Mirrors ``rust/tidaldb/tests/m8_uat.rs`` and its strengthened checks rather than the seed's:
scores are compared with ``==`` across regions (replicas that applied the same events agree
bit for bit) and against the analytical decay formula to 1e-9; the degradation flag and
what the query reached are asserted; writes acknowledged with a replicated write concern
just before the leader crashes (losing its unsynced tail) are checked on the promoted
leader; counts after reconciliation are exact; the migration reads back every acknowledged
write after every write and every step.

Everything runs on virtual time from a fixed seed, so each test replays exactly.
"""

from __future__ import annotations

import pytest

import tidaldb
from cluster_support import (
    ELECTION_LIMIT,
    REGIONS,
    UAT_VIEW_HALF_LIFE,
    assert_converged_scores,
    await_failover,
    unit_score,
    uat_schema,
    write_views,
)
from conftest import assert_close

H = UAT_VIEW_HALF_LIFE


def make_cluster(seed: int, **kwargs: object) -> tidaldb.Cluster:
    return tidaldb.Cluster(uat_schema(), seed=seed, **kwargs)  # type: ignore[arg-type]


def assert_counts(cluster: tidaldb.Cluster, item: int, expected: int) -> None:
    """Every region holds exactly ``expected`` view events of ``item`` (and of the signal):
    no event lost, none counted twice."""
    for r in cluster.regions:
        assert cluster.window_count("view", item, "1h", region=r) == expected, r
        assert cluster.total_count("view", r) == expected, r


# --- Step 1 -------------------------------------------------------------------------------


def test_step1_cross_region_replication() -> None:
    """25 views written in us-east are read, identical, in every region in under 2 s."""
    cluster = make_cluster(1)
    assert cluster.regions == list(REGIONS)
    assert cluster.leader == "us-east"
    item = 1
    times = write_views(cluster, item, 25)

    took = cluster.await_convergence(timeout=2.0)
    # A few round trips over 20 ms ± 5 ms links; the Rust test allows 500 ms.
    assert 0.0 <= took < 0.5, f"convergence took {took} s of virtual time"
    assert cluster.is_converged()

    assert_converged_scores(cluster, item, times, H)
    assert cluster.lag() == {r: 0 for r in REGIONS}
    assert_counts(cluster, item, 25)
    vvs = [cluster.version_vector(r) for r in REGIONS]
    assert all(vv == vvs[0] for vv in vvs), vvs
    assert sum(vvs[0].values()) == 25, vvs[0]


# --- Step 2 -------------------------------------------------------------------------------


def test_step2_leader_crash_and_failover() -> None:
    """The leader crashes after 100 converged writes; a follower is promoted within the
    election timeout and holds all 100; the old leader rejoins as a follower and catches up."""
    cluster = make_cluster(2)
    item = 2
    times = write_views(cluster, item, 100)
    cluster.await_convergence(timeout=2.0)
    pre_crash = cluster.version_vector("eu-west")
    assert sum(pre_crash.values()) == 100

    assert cluster.crash("us-east") == 0, "immediate durability loses nothing"
    assert not cluster.is_up("us-east")
    # Until a new leader is promoted, writes routed to the dead one are refused, not lost.
    with pytest.raises(tidaldb.Unavailable):
        cluster.write("view", item, 1.0, ts=cluster.now)

    took = await_failover(cluster, "us-east")
    assert 0.0 < took <= ELECTION_LIMIT, took
    leader = cluster.leader
    assert leader in ("eu-west", "ap-south")
    held = cluster.version_vector(leader)
    assert all(held.get(o, 0) >= s for o, s in pre_crash.items()), (held, pre_crash)
    at = cluster.now
    assert_close(cluster.score("view", item, region=leader), unit_score(times, at, H))
    assert cluster.window_count("view", item, "1h", region=leader) == 100

    # Writes flow through the new leader; the old one restarts as a follower and catches up.
    write_views(cluster, item, 1, times=times)
    cluster.restart("us-east")
    assert cluster.is_up("us-east")
    cluster.await_convergence(timeout=5.0)
    assert cluster.leader == leader, "a restarted node does not take leadership back"
    assert_counts(cluster, item, 101)
    assert_converged_scores(cluster, item, times, H)


@pytest.mark.parametrize("concern", [1, "majority", "all"])
def test_step2_replicated_acks_survive_the_leader_losing_its_tail(concern: int | str) -> None:
    """With a replicated write concern and periodic syncs, the leader crashes and loses
    whatever it had not synced: every acknowledged write is still on the promoted leader,
    and after the old leader's return on every region, exactly once."""
    cluster = make_cluster(3, write_concern=concern, durability="periodic")
    item = 2
    old_leader = cluster.leader
    acks: list[tidaldb.WriteAck] = []
    times: list[float] = []
    for _ in range(100):
        # No gap: the acknowledgement itself takes the virtual time a round trip takes.
        t = cluster.now
        acks.append(cluster.write("view", item, 1.0, ts=t))
        times.append(t)
    assert all(a.region == old_leader and not a.duplicate and a.count == 1 for a in acks)
    origin = acks[0].origin
    assert [a.seq for a in acks] == list(range(acks[0].seq, acks[0].seq + 100))

    # A node ships its own events once they are durable, and each write waited for its
    # ack: no acknowledged write can be in the unsynced tail, so the crash loses nothing.
    lost = cluster.crash(old_leader, lose_unsynced=True)
    assert lost == 0
    await_failover(cluster, old_leader)
    leader = cluster.leader
    assert leader != old_leader
    held = cluster.version_vector(leader)
    assert held.get(origin) == acks[-1].seq, (
        f"every acknowledged write is on the promoted leader (lost {lost} on the crashed disk)"
    )
    assert cluster.window_count("view", item, "1h", region=leader) == 100
    assert_close(cluster.score("view", item, region=leader), unit_score(times, cluster.now, H))

    # The crashed leader comes back; nothing it acknowledged is missing anywhere or doubled.
    cluster.restart(old_leader)
    cluster.await_convergence(timeout=5.0)
    assert_counts(cluster, item, 100)
    assert_converged_scores(cluster, item, times, H)


def test_step2_local_acks_in_the_unsynced_tail_are_lost_and_only_they() -> None:
    """The contrast: with write_concern="local" and periodic syncs, the crash loses the
    leader's unsynced tail (that is what "local" means), and nothing else. After the
    failover and the old leader's return, every region holds exactly the writes before
    the tail, once each."""
    cluster = make_cluster(3, durability="periodic")
    item = 2
    times = write_views(cluster, item, 100)
    lost = cluster.crash("us-east", lose_unsynced=True)
    assert 0 < lost < 100, "100 ms of writes, synced every 100 ms: some tail is unsynced"
    await_failover(cluster, "us-east")
    cluster.restart("us-east")
    cluster.await_convergence(timeout=5.0)
    kept = times[: 100 - lost]
    assert_counts(cluster, item, len(kept))
    assert_converged_scores(cluster, item, kept, H)


# --- Step 3 -------------------------------------------------------------------------------


def test_step3_degraded_query_during_partition() -> None:
    """ap-south is cut off from us-east: a query in us-east still answers, with every
    acknowledged write, and says it is degraded; eu-west hears both and is not degraded."""
    cluster = make_cluster(4)
    item = 3
    times = write_views(cluster, item, 10)
    cluster.await_convergence(timeout=1.0)

    with cluster.partition("us-east", "ap-south") as p:
        assert p.active and p.regions == ("us-east", "ap-south") and not p.one_way
        write_views(cluster, item, 5, times=times)
        # Long enough (2 × the 250 ms peer timeout) for us-east to notice the silence.
        cluster.run_for(0.5)

        res = cluster.retrieve([item], {"view": 1.0}, region="us-east")
        assert len(res) == 1 and res[0].item == item, "the query succeeds with 2 of 3 regions"
        assert_close(res[0].score, unit_score(times, cluster.now, H))
        st = res.stats
        assert st.degraded is True, "the answer must say it is degraded"
        assert st.shards_reached == [0]
        assert st.shards_unreachable == [], "the shard answered; a replica of it did not"
        assert st.regions_unreachable == ["ap-south"], "the stats name the replica it could not hear"

        full = cluster.retrieve([item], {"view": 1.0}, region="eu-west")
        assert full.stats.degraded is False
        assert full.stats.regions_unreachable == []
        assert full.stats.shards_reached == [0]
        assert len(full) == 1
    assert not p.active, "leaving the block heals the partition"

    cluster.await_convergence(timeout=5.0)
    # eu-west relayed everything, so the data converged at once; the flag is about hearing
    # the peers and clears once their heartbeats (every 50 ms) arrive again.
    cluster.run_for(0.2)
    healed = cluster.retrieve([item], {"view": 1.0}, region="us-east")
    assert healed.stats.degraded is False
    assert_converged_scores(cluster, item, times, H)


# --- Step 4 -------------------------------------------------------------------------------


def test_step4_partition_heal_and_reconciliation() -> None:
    """Both sides of a partition take writes (50 in us-east, 30 in ap-south) and ap-south
    hides the item for a user; after healing there are exactly 80 events everywhere, the
    scores agree bit for bit and match the formula, and the hide holds in every region."""
    cluster = make_cluster(5)
    item, user = 4, 100
    # ap-south is cut off from both other regions: a single cut pair would be routed
    # around by the third region's relay within a few hundred ms, healed or not.
    p = cluster.partition("us-east", "ap-south")
    q = cluster.partition("eu-west", "ap-south")
    times = write_views(cluster, item, 50, region="us-east")
    write_views(cluster, item, 30, region="ap-south", times=times)
    hide = cluster.hide(user, item, region="ap-south")
    assert hide.region == "ap-south"
    cluster.run_for(1.0)  # far beyond any relay or repair: the sides stay apart
    assert cluster.window_count("view", item, "1h", region="us-east") == 50
    assert cluster.window_count("view", item, "1h", region="eu-west") == 50
    assert cluster.window_count("view", item, "1h", region="ap-south") == 30
    assert not cluster.is_hidden(user, item, region="us-east")

    p.heal()
    q.heal()
    assert not p.active and not q.active
    took = cluster.await_convergence(timeout=5.0)
    assert took < 1.0, "reconciliation after a heal takes a few round trips, not seconds"

    now = cluster.now
    s = assert_converged_scores(cluster, item, times, H)
    assert_counts(cluster, item, 80)
    for r in REGIONS:
        assert cluster.is_hidden(user, item, region=r), r
        res = cluster.retrieve([item], {"view": 1.0}, user=user, region=r)
        assert len(res) == 0 and res.stats.hidden_filtered == 1, r
        # Another user still sees it: the hide is per user.
        assert [x.item for x in cluster.retrieve([item], {"view": 1.0}, user=user + 1, region=r)] == [item]

    # Running on changes nothing: reconciliation is idempotent.
    before = [cluster.version_vector(r) for r in REGIONS]
    cluster.run_for(1.0)
    assert [cluster.version_vector(r) for r in REGIONS] == before
    for r in REGIONS:
        assert cluster.score("view", item, region=r, at=now) == s
    assert_counts(cluster, item, 80)


# --- Step 5 -------------------------------------------------------------------------------


def test_step5_tenant_migration_with_zero_downtime() -> None:
    """Tenant 42 moves from us-east to ap-south. Every write and every read succeeds
    throughout, and each read equals the formula of the writes acknowledged so far;
    afterwards ap-south holds all 150 signals and us-east none."""
    cluster = make_cluster(5)
    tenant = cluster.register_tenant(42, regions=["us-east"], label="migrating-tenant")
    assert tenant.id == 42 and tenant.regions == ["us-east"] and tenant.label == "migrating-tenant"
    item = 5

    def read_back(times: list[float]) -> None:
        assert_close(tenant.score("view", item), unit_score(times, cluster.now, H))

    times = write_views(tenant, item, 100, after_each=read_back)
    cluster.await_convergence(timeout=1.0)

    m = tenant.migrate("ap-south")
    assert (m.tenant, m.source, m.target, m.state) == (42, "us-east", "ap-south", "idle")
    m.prepare_target()
    read_back(times)
    m.enter_dual_write()
    read_back(times)

    def read_back_both_sides(times: list[float]) -> None:
        read_back(times)
        # A dual write is acknowledged once the target holds it too.
        assert tenant.total_count("view", "ap-south") == len(times)

    write_views(tenant, item, 50, after_each=read_back_both_sides, times=times)
    cluster.run_for(0.2)
    read_back(times)
    m.finalize()
    read_back(times)

    assert len(times) == 150
    assert tenant.total_count("view", "ap-south") == 150
    assert_close(tenant.score("view", item, region="ap-south"), unit_score(times, cluster.now, H))

    m.gc_source(grace=0.0)
    assert m.state == "complete"
    read_back(times)
    assert tenant.total_count("view", "us-east") == 0
    assert cluster.total_count("view", "us-east", tenant=tenant) == 0
    with pytest.raises(tidaldb.NotFound):
        tenant.score("view", item, region="us-east")
    assert tenant.regions == ["ap-south"]


@pytest.mark.asyncio
async def test_step5_migration_run_awaitable() -> None:
    """``await m.run()`` drives every remaining step; the data moves as with the steps."""
    cluster = make_cluster(6)
    tenant = cluster.register_tenant(43, regions=["us-east"])
    times = write_views(tenant, 9, 40)
    m = tenant.migrate("eu-west")
    await m.run(progress=False, grace=0.0)
    assert m.state == "complete"
    assert tenant.regions == ["eu-west"]
    assert tenant.total_count("view", "eu-west") == 40
    assert tenant.total_count("view", "us-east") == 0
    assert_close(tenant.score("view", 9), unit_score(times, cluster.now, H))
