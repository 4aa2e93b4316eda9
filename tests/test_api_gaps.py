"""Python reaches what the core offers: upgrades on a Cluster, window sums, velocity and
past reads on Cluster and Tenant, a Db's recovery report, sequences for bulk writes, and an
empty retrieval."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tidaldb
from tidaldb import Conflict, InvalidArgument, NotFound
from conftest import HOUR, MINUTE, assert_close, window_oracle


def schema() -> tidaldb.Schema:
    return (
        tidaldb.Schema()
        .signal("view", half_life="1h", windows=["1h", "24h"], velocity=True)
        .signal("like", half_life="1h")
    )


def fresh_cluster(**kw: object) -> tidaldb.Cluster:
    return tidaldb.Cluster(schema(), regions=["a", "b", "c"], latency="1ms", jitter=0.0, **kw)  # type: ignore[arg-type]


def test_windows_velocity_and_past_reads_on_cluster_and_tenant() -> None:
    cluster = fresh_cluster()
    tenant = cluster.register_tenant(5)
    t0 = cluster.now
    events = [(t0 - 50 * MINUTE, 1.0), (t0 - 20 * MINUTE, 2.5), (t0 - 2 * HOUR, 4.0), (t0 - 5 * MINUTE, 0.5)]
    for scoped in (cluster, tenant):
        for ts, w in events:
            scoped.write("view", 9, weight=w, ts=ts)
    cluster.await_convergence()
    now = cluster.now
    for scoped in (cluster, tenant):
        for region in ("a", "c"):
            for window in ("1h", "24h"):
                count, total = window_oracle(events, window, now)
                assert scoped.window_count("view", 9, window, region=region) == count
                assert_close(scoped.window_sum("view", 9, window, region=region), total)
            # As of a past time: only the events granules before it count.
            past = t0 - 30 * MINUTE
            assert scoped.window_count("view", 9, "1h", region=region, at=past) == window_oracle(events, "1h", past)[0]
            assert_close(scoped.window_sum("view", 9, "24h", region=region, at=past), window_oracle(events, "24h", past)[1])
            # Velocity: the weight of the shortest window (1h) per hour.
            assert_close(scoped.velocity("view", 9, region=region), window_oracle(events, "1h", now)[1])
            assert_close(scoped.velocity("view", 9, region=region, at=past), window_oracle(events, "1h", past)[1])
    with pytest.raises(InvalidArgument) as e:
        cluster.velocity("like", 9)
    assert type(e.value) is InvalidArgument and "velocity" in str(e.value)
    with pytest.raises(NotFound) as nf:
        tenant.window_sum("like", 9, "1h")
    assert type(nf.value) is NotFound


def test_a_rolling_upgrade_one_host_at_a_time_loses_nothing() -> None:
    cluster = fresh_cluster(seed=3)
    written = []
    for region in ("a", "b", "c"):
        cluster.write("like", 1, ts=cluster.now, region=region)
        written.append(region)
        cluster.drain(region)
        assert cluster.health()["drained"], "the drained host is reported"
        other = next(r for r in ("a", "b", "c") if r != region)
        with pytest.raises(Conflict) as e:
            cluster.drain(other)
        assert type(e.value) is Conflict and "rejoin" in str(e.value)
        # Writes keep being served by the other hosts meanwhile.
        cluster.write("like", 1, ts=cluster.now, region=other)
        written.append(other)
        cluster.upgrade(region)
        cluster.rejoin(region)
        assert cluster.health()["drained"] == []
    cluster.await_convergence()
    for region in ("a", "b", "c"):
        assert cluster.total_count("view", region) == 0
        assert cluster.is_up(region)
    at = cluster.now
    scores = {r: cluster.score("like", 1, region=r, at=at) for r in ("a", "b", "c")}
    assert len(set(scores.values())) == 1, scores
    assert scores["a"] > len(written) * 0.9, "every write survived the upgrades"


def test_upgrading_a_host_that_was_not_drained_is_a_conflict() -> None:
    cluster = fresh_cluster()
    with pytest.raises(Conflict) as e:
        cluster.upgrade("b")
    assert type(e.value) is Conflict and "drain" in str(e.value)


def test_a_second_drain_is_a_conflict_and_changes_nothing() -> None:
    cluster = fresh_cluster()
    cluster.drain("b")
    with pytest.raises(Conflict) as e:
        cluster.drain("c")
    assert type(e.value) is Conflict and "\"b\" is still drained" in str(e.value)
    cluster.drain("b")  # a retry of the running drain is fine
    cluster.rejoin("b")
    cluster.drain("c")


def test_recovery_report(tmp_path: Path) -> None:
    with tidaldb.Db(schema()) as db:
        assert db.recovery_report() == {
            "snapshot_lsn": 0,
            "events_replayed": 0,
            "torn_bytes_truncated": 0,
            "empty_segments_removed": 0,
        }
    with tidaldb.Db(schema(), tmp_path / "d") as db:
        db.signals("like", np.arange(5), np.ones(5), np.full(5, 1_700_000_000.0))
        db.signal("like", 1, ts=1_700_000_000.0)
    with tidaldb.Db(schema(), tmp_path / "d") as db:
        report = db.recovery_report()
        assert report["snapshot_lsn"] == 0 and report["torn_bytes_truncated"] == 0
        assert report["events_replayed"] == 6, "every event written: a batch of 5 and one more"
        covered = db.snapshot()
        assert covered == 6
        db.signal("like", 2, ts=1_700_000_000.0)
    with tidaldb.Db(schema(), tmp_path / "d") as db:
        report = db.recovery_report()
        assert report["snapshot_lsn"] == covered and report["events_replayed"] == 1
        db.close()
        with pytest.raises(tidaldb.Unavailable):
            db.recovery_report()


def test_bulk_writes_take_python_sequences() -> None:
    cluster = fresh_cluster()
    t = cluster.now
    assert cluster.write_many("like", [1, 2, 2], [1.0, 2.0, 0.5], [t, t, t]) == 3
    assert cluster.write_many("like", (3,), ts=(t,)) == 1
    assert cluster.write_many("like", range(4, 6)) == 2
    cluster.await_convergence()
    got = cluster.scores("like", [1, 2, 3, 4, 5], at=t)
    assert got.tolist() == [1.0, 2.5, 1.0, pytest.approx(1.0, rel=1e-3), pytest.approx(1.0, rel=1e-3)]
    with pytest.raises(InvalidArgument) as e:
        cluster.write_many("like", [1, -1])
    assert type(e.value) is InvalidArgument and "element 1 is -1" in str(e.value)


def test_retrieve_with_limit_zero_is_empty() -> None:
    with tidaldb.Db(schema()) as db:
        db.signal("like", 1, ts=1_700_000_000.0)
        results = db.retrieve([1, 2], {"like": 1.0}, limit=0, at=1_700_000_000.0)
        assert len(results) == 0 and results.items == [] and results.stats.returned == 0
    cluster = fresh_cluster()
    cluster.write("like", 1, ts=cluster.now)
    cluster.await_convergence()
    assert len(cluster.retrieve([1], {"like": 1.0}, limit=0)) == 0


def test_scores_with_errors_nan_mark_only_the_refused_items() -> None:
    t0 = 1_700_000_000.0
    schema = tidaldb.Schema().signal("like", half_life="1h").signal("trial", lifetime="10h")
    with tidaldb.Db(schema) as db:
        db.signal("like", 1, ts=t0)
        db.signal("trial", 3, 10.0, ts=t0)
        db.signal("trial", 3, 1.0, ts=t0 + 20 * HOUR)  # drops the first event from memory
        db.signal("trial", 4, 10.0, ts=t0)
        ids = np.array([1, 2], dtype=np.uint64)
        past = t0 - 2000 * HOUR  # 2**2000 times the weight: overflows
        with pytest.raises(InvalidArgument) as e:
            db.scores("like", ids, at=past)
        assert type(e.value) is InvalidArgument and "overflow" in str(e.value)
        got = db.scores("like", ids, at=past, errors="nan")
        assert np.isnan(got[0]) and got[1] == 0.0
        # A linear read before the retained history: item 3 only.
        at = t0 + 5 * HOUR
        with pytest.raises(InvalidArgument):
            db.scores("trial", [3, 4, 5], at=at)
        got = db.scores("trial", [3, 4, 5], at=at, errors="nan")
        assert np.isnan(got[0]) and got[1:].tolist() == [5.0, 0.0], "10 * (1 - 5h/10h); no events"
        assert db.scores("trial", [3, 4], at=t0 + 25 * HOUR, errors="nan").tolist() == [0.5, 0.0]
        with pytest.raises(InvalidArgument) as e:
            db.scores("like", ids, errors="ignore")
        assert type(e.value) is InvalidArgument and '"nan"' in str(e.value)
        with pytest.raises(NotFound):
            db.scores("nope", ids, errors="nan")
    cluster = tidaldb.Cluster(schema, regions=["a", "b"], latency="1ms", jitter=0.0)
    now = cluster.now
    cluster.write("like", 1, ts=now)
    cluster.await_convergence()
    got = cluster.scores("like", [1, 2], at=now - 2000 * HOUR, errors="nan", region="b")
    assert np.isnan(got[0]) and got[1] == 0.0
    with pytest.raises(InvalidArgument):
        cluster.scores("like", [1, 2], at=now - 2000 * HOUR)


def test_tenants_on_an_embedded_db(tmp_path: Path) -> None:
    t0 = 1_700_000_000.0
    with tidaldb.Db(schema(), tmp_path / "d") as db:
        assert db.tenants == []
        db.register_tenant(7, max_entities=2, label="acme")
        db.register_tenant(9)
        assert db.tenants == [7, 9]
        db.signal("view", 1, 2.0, ts=t0, tenant=7)
        db.signal("view", 1, 1.0, ts=t0)  # the default tenant: a separate state
        assert db.score("view", 1, at=t0 + HOUR, tenant=7) == 1.0
        assert db.score("view", 1, at=t0 + HOUR) == 0.5
        assert db.score("view", 1, at=t0, tenant=9) == 0.0
        assert db.total_count("view", tenant=7) == 1 and db.total_count("view") == 1
        db.signal("view", 2, ts=t0, tenant=7)
        with pytest.raises(tidaldb.QuotaExceeded) as q:
            db.signal("view", 3, ts=t0, tenant=7)
        assert type(q.value) is tidaldb.QuotaExceeded and q.value.quota == "entities"
        with pytest.raises(Conflict) as c:
            db.register_tenant(7)
        assert type(c.value) is Conflict
        with pytest.raises(InvalidArgument) as e:
            db.register_tenant(11, max_entities=0)
        assert type(e.value) is InvalidArgument and "max_entities" in str(e.value)
        with pytest.raises(NotFound) as nf:
            db.signal("view", 1, ts=t0, tenant=12)
        assert type(nf.value) is NotFound and "12" in str(nf.value)
        assert db.events_applied == 1, "tenant writes are in their own logs"
    with tidaldb.Db(schema(), tmp_path / "d") as db:
        assert db.tenants == [7, 9], "registered durably"
        assert db.recovery_report(tenant=7)["events_replayed"] == 2
        assert db.recovery_report()["events_replayed"] == 1
        assert db.score("view", 2, at=t0 + HOUR, tenant=7) == 0.5
