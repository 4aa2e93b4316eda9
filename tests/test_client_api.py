"""``tidaldb.connect`` against three real server processes with mutual TLS: every read and
write of one region of ``Cluster``, compared with the analytical formula and across nodes."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import tidaldb
from conftest import HOUR, T0, assert_close, exp_score
from server_support import eventually, servers
from tidaldb.servers import LocalServers


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalServers]:
    with servers(3) as s:
        yield s


def test_writes_on_every_node_give_every_node_the_same_bits(cluster: LocalServers) -> None:
    events = []
    for i, node in enumerate(cluster.nodes):
        client = cluster.connect([node.id])
        for k in range(20):
            ts = T0 + i * 100 + k
            w = 0.5 + k / 10
            ack = client.write("view", 1001, weight=w, ts=ts)
            assert (ack.count, ack.origin, ack.region) == (1, node.id, node.region)
            events.append((ts, w))
    at = T0 + HOUR
    expected = exp_score(events, at, HOUR)
    clients = [cluster.connect([n.id]) for n in cluster.nodes]

    def read() -> list[float]:
        return [c.score("view", 1001, at=at) for c in clients]

    scores = eventually(read, lambda s: len(set(s)) == 1 and abs(s[0] / expected - 1) < 1e-9)
    assert_close(scores[0], expected)
    assert [c.last_served.node for c in clients if c.last_served] == [1, 2, 3]


def test_bulk_writes_and_reads_take_numpy_arrays(cluster: LocalServers) -> None:
    client = cluster.connect()
    items = np.arange(2000, 2100, dtype=np.uint64)
    ts = T0 + np.arange(100, dtype=np.float64)
    assert client.write_many("view", items, weights=np.full(100, 2.0), ts=ts) == 100
    scores = client.scores("view", items, at=T0 + 200)
    assert isinstance(scores, np.ndarray) and scores.dtype == np.float64
    for k in (0, 57, 99):
        assert_close(float(scores[k]), exp_score([(T0 + k, 2.0)], T0 + 200, HOUR))
    other = cluster.connect([3])
    eventually(lambda: other.scores("view", items, at=T0 + 200).tolist(), lambda s: s == scores.tolist())


def test_window_counts_retrieve_and_hides(cluster: LocalServers) -> None:
    client = cluster.connect([1])
    import time

    now = time.time()
    for item in (3001, 3002, 3003):
        client.write_many("count", np.full(item - 3000, item, dtype=np.uint64), ts=np.full(item - 3000, now))
    assert client.window_count("count", 3003, "30d") == 3
    client.hide(77, 3003)
    assert client.is_hidden(77, 3003)
    top = client.retrieve([3001, 3002, 3003], {"count": 1.0}, user=77, limit=2)
    assert [s.item for s in top] == [3002, 3001]
    assert top.stats.hidden_filtered == 1 and not top.stats.degraded
    client.unhide(77, 3003)
    far = cluster.connect([2])
    eventually(lambda: far.is_hidden(77, 3003), lambda h: h is False)
    assert [s.item for s in far.retrieve([3001, 3002, 3003], {"count": 1.0}, user=77, limit=1)] == [3003]


def test_unreadable_scores_raise_or_read_as_nan(cluster: LocalServers) -> None:
    client = cluster.connect([1])
    client.write("view", 5101, weight=3.0, ts=T0)
    past = T0 - 2000 * HOUR  # 2**2000 times the weight: overflows
    with pytest.raises(tidaldb.InvalidArgument) as e:
        client.scores("view", [5101, 5102], at=past)
    assert type(e.value) is tidaldb.InvalidArgument and "overflow" in str(e.value)
    got = client.scores("view", [5101, 5102, 5101], at=past, errors="nan")
    assert np.isnan(got[0]) and got[1] == 0.0 and np.isnan(got[2])
    assert_close(float(client.scores("view", [5101], at=T0 + HOUR, errors="nan")[0]), 1.5)
    with pytest.raises(tidaldb.InvalidArgument) as e:
        client.scores("view", [5101], errors="ignore")
    assert type(e.value) is tidaldb.InvalidArgument and '"nan"' in str(e.value)


def test_a_client_repr_names_its_nodes_in_python_terms(cluster: LocalServers) -> None:
    client = cluster.connect([2])
    client.score("view", 1)
    assert repr(client) == f"<tidaldb.Client of {cluster.node(2).client_addr}, connected to node 2>"


def test_hides_sent_with_their_time_are_ordered_by_it(cluster: LocalServers) -> None:
    client = cluster.connect([2])
    client.unhide(78, 3003, ts=T0 + 20)
    client.hide(78, 3003, ts=T0 + 10)  # backfilled: happened before the unhide
    assert not client.is_hidden(78, 3003)
    client.hide(78, 3003, ts=T0 + 30)
    assert client.is_hidden(78, 3003)
    with pytest.raises(tidaldb.InvalidArgument):
        client.hide(78, 3004, ts=float("nan"))
    assert not client.is_hidden(78, 3004)


def test_write_concerns_wait_for_the_replicas_they_name(cluster: LocalServers) -> None:
    client = cluster.connect([2], write_concern="majority")
    ack = client.write("view", 4001, ts=T0)
    # Acknowledged under a majority: at least one other node holds it now.
    holders = [cluster.connect([n.id]).score("view", 4001, at=T0) for n in cluster.nodes]
    assert sum(h == 1.0 for h in holders) >= 2, holders
    assert client.write("view", 4002, ts=T0, write_concern="all").count == 1
    assert all(cluster.connect([n.id]).score("view", 4002, at=T0) == 1.0 for n in cluster.nodes)
    assert client.write("view", 4003, ts=T0, write_concern=1).count == 1
    assert ack.duplicate is False


def test_lag_and_health_describe_the_group(cluster: LocalServers) -> None:
    client = cluster.connect([1])
    lag = client.lag()
    assert sorted(lag) == [2, 3]
    assert all(reachable for (_, _, reachable) in lag.values())
    health = client.health()
    assert {r["region"]: r["health"] for r in health["regions"]} == {
        "us-east": "Healthy",
        "eu-west": "Healthy",
        "ap-south": "Healthy",
    }
    assert client.regions() == ["us-east", "eu-west", "ap-south"]


def test_tenant_scopes_keep_tenants_apart_and_apply_their_quotas(cluster: LocalServers) -> None:
    client = cluster.connect([1])
    client.write("view", 5001, ts=T0, tenant=7)
    assert client.score("view", 5001, at=T0, tenant=7) == 1.0
    assert client.score("view", 5001, at=T0) == 0.0
    client.write_many("view", np.array([5002, 5003], dtype=np.uint64), ts=np.array([T0, T0]), tenant=7)
    with pytest.raises(tidaldb.QuotaExceeded):
        client.write("view", 5004, ts=T0, tenant=7)
    with pytest.raises(tidaldb.NotFound):
        client.write("view", 1, ts=T0, tenant=8)
