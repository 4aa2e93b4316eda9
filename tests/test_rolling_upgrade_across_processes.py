"""A rolling upgrade of every server process, one at a time, with each really stopped and
started again: drain it through the replicated control plane, stop it, start it, rejoin it.
A concurrent reader must see every one of its queries succeed, and each rejoined node must
hold every acknowledged write, read against the analytical decay formula. An upgrade whose
control-plane leader is killed mid-way resumes from the committed drain."""

from __future__ import annotations

import numpy as np

import tidaldb
from conftest import T0, assert_close, exp_score
from server_support import Reader, eventually, servers

HALF_LIFE_S = 3600.0  # server_support's "view"
AT = T0 + 2 * HALF_LIFE_S
PER_WINDOW = 60  # writes during each node's drain window


def test_every_node_is_upgraded_in_turn_and_nothing_fails_or_goes_missing() -> None:
    with servers(3, control=True) as s:
        ids = [n.id for n in s.nodes]
        admin = {i: s.connect([j for j in ids if j != i]) for i in ids}
        eventually(
            lambda: [s.connect([i]).control()["raft_leader"] for i in ids],
            lambda seen: seen[0] is not None and len(set(seen)) == 1,
        )
        items = np.arange(100, 100 + PER_WINDOW * len(ids), dtype=np.uint64)
        written: list[tuple[int, float]] = []  # (item, ts): the acknowledged writes
        reading = s.connect(ids, timeout=10.0)
        reader = Reader(lambda: reading.scores("view", items, at=AT))
        reader.start()
        try:
            for k, node in enumerate(s.nodes):
                others = [j for j in ids if j != node.id]
                admin[node.id].drain(node.region)
                # Leadership has left the drained host before it goes down.
                eventually(
                    lambda: admin[node.id].control()["groups"][0]["leader"],
                    lambda leader: leader in others,
                )
                writer = s.connect(others, write_concern=1)
                for n in range(PER_WINDOW):
                    item = int(items[k * PER_WINDOW + n])
                    ts = T0 + k * PER_WINDOW + n
                    writer.write("view", item, ts=ts)
                    written.append((item, ts))
                assert s.stop(node.id) == 0, "a graceful stop exits 0"
                s.start_node(node.id)
                admin[node.id].rejoin(node.region)
                rejoined = s.connect([node.id])
                expected = np.zeros(len(items))
                for item, ts in written:
                    expected[item - 100] += exp_score([(ts, 1.0)], AT, HALF_LIFE_S)
                got = eventually(
                    lambda: rejoined.scores("view", items, at=AT),
                    lambda scores: bool(np.allclose(scores, expected, rtol=1e-12, atol=0.0)),
                )
                for i in (0, len(written) - 1):
                    assert_close(float(got[i]), float(expected[i]))
        finally:
            reader.done.set()
            reader.join(timeout=30)
        assert reader.failures == [], f"{len(reader.failures)} of {reader.ok + len(reader.failures)} reads failed"
        assert reader.ok > 50, "the reader ran throughout"


def test_an_upgrade_resumes_after_the_control_planes_leader_is_killed() -> None:
    with servers(3, control=True) as s:
        ids = [n.id for n in s.nodes]
        leader = eventually(
            lambda: [s.connect([i]).control()["raft_leader"] for i in ids],
            lambda seen: seen[0] is not None and len(set(seen)) == 1,
        )[0]
        # Drain a host that is not the Raft leader's, then kill the Raft leader.
        upgraded = next(n for n in s.nodes if n.id != leader)
        bystanders = [i for i in ids if i != leader]
        admin = s.connect(bystanders)
        admin.drain(upgraded.region)
        s.kill(leader)
        # The survivors elect a new leader that still holds the committed drain.
        eventually(
            lambda: admin.control(),
            lambda c: c["raft_leader"] not in (None, leader) and c["drained"] == [upgraded.region],
        )
        writer = s.connect(bystanders, write_concern=1)
        items = np.arange(1, 21, dtype=np.uint64)
        for item in items:
            writer.write("view", int(item), ts=T0)
        assert s.stop(upgraded.id) == 0
        s.start_node(upgraded.id)
        admin.rejoin(upgraded.region)
        s.start_node(leader)
        eventually(lambda: s.connect([leader]).control()["drained"], lambda d: d == [])
        expected = np.full(len(items), exp_score([(T0, 1.0)], AT, HALF_LIFE_S))
        for node in (upgraded.id, leader):
            client = s.connect([node])
            eventually(
                lambda: client.scores("view", items, at=AT),
                lambda got: bool(np.allclose(got, expected, rtol=1e-12, atol=0.0)),
            )
