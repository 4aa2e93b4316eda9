"""Failover between server processes through the replicated control plane, as a Python user
drives it: ``LocalServers(control=True)``, ``Client.control()``, and a leader killed with
SIGKILL that the other nodes replace without losing an acknowledged write."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tidaldb
from conftest import T0
from server_support import eventually, servers

HALF_LIFE_S = 3600.0  # server_support's "view"


def group(client: Any) -> tuple[int | None, int]:
    """The default group's committed leader and term, as this node's voter sees them."""
    g = client.control()["groups"][0]
    return g["leader"], g["term"]


def test_a_killed_leader_is_replaced_and_keeps_every_acknowledged_write() -> None:
    with servers(3, control=True) as s:
        clients = {i: s.connect([i]) for i in (1, 2, 3)}
        status = clients[2].control()
        assert status["voter"] is True
        first = eventually(
            lambda: [group(clients[i]) for i in (1, 2, 3)],
            lambda seen: seen[0][0] is not None and all(x == seen[0] for x in seen),
        )[0]
        assert first == (1, 1), "the lowest node id leads the first term"
        ids = np.arange(1, 6, dtype=np.uint64)
        acked = clients[1].write_many("view", ids, ts=np.full(5, T0), write_concern=2)
        assert acked == 5
        s.kill(1)
        leader, term = eventually(
            lambda: group(clients[2]),
            lambda g: g[0] in (2, 3) and g[1] > 1 and group(clients[3]) == g,
        )
        new = clients[leader]
        assert new.control()["raft_leader"] in (2, 3)
        new.write("view", 9, ts=T0, write_concern=1)
        at = T0 + HALF_LIFE_S
        scores = new.scores("view", np.array([*ids, 9], dtype=np.uint64), at=at)
        np.testing.assert_allclose(scores, np.full(6, 0.5), rtol=1e-12)


def test_a_node_without_a_control_plane_says_so() -> None:
    with servers(1) as s:
        status = s.connect([1]).control()
        assert status["voter"] is False and status["groups"] == []


def test_drain_moves_leadership_through_the_committed_log_and_bad_input_commits_nothing() -> None:
    with servers(3, control=True) as s:
        clients = {i: s.connect([i]) for i in (1, 2, 3)}
        eventually(lambda: group(clients[2]), lambda g: g == (1, 1))
        # Until the voters have elected a Raft leader, commands are refused as Unavailable.
        eventually(
            lambda: [clients[i].control()["raft_leader"] for i in (1, 2, 3)],
            lambda seen: seen[0] is not None and len(set(seen)) == 1,
        )
        regions = clients[1].regions()
        before = clients[2].control()["commands"]
        with pytest.raises(tidaldb.InvalidArgument, match="no region .atlantis.; the cluster's regions are us-east"):
            clients[2].drain("atlantis")
        assert clients[3].control()["commands"] == before, "a refused command commits nothing"
        # Sent to a follower voter: forwarded to the Raft leader, answered once applied here.
        follower = next(i for i in (1, 2, 3) if not clients[i].control()["is_raft_leader"])
        clients[follower].drain(regions[0])
        leader, term = eventually(
            lambda: group(clients[3]), lambda g: g[0] in (2, 3) and g[1] > 1
        )
        eventually(lambda: group(clients[2]), lambda g: g == (leader, term))
        committed = clients[2].control()["commands"]
        with pytest.raises(tidaldb.Conflict, match="drained already"):
            clients[follower].drain(regions[1])
        assert clients[3].control()["commands"] == committed, "a second drain commits nothing"
        clients[follower].rejoin(regions[0])
        assert clients[1].control()["commands"] >= before + 3  # drain, promotion, rejoin


def test_every_node_reports_health_as_the_majority_sees_it() -> None:
    with servers(3, control=True) as s:
        clients = {i: s.connect([i]) for i in (1, 2, 3)}
        views = eventually(
            lambda: [clients[i].control()["majority"] for i in (1, 2, 3)],
            lambda vs: all(v["error"] is None and len(v["regions"]) == 3 for v in vs),
        )
        regions = set(clients[1].regions())
        for view in views:
            assert {name for name, _ in view["regions"]} == regions
            assert view["unreachable"] == [] and view["leader"] == views[0]["leader"]
        s.kill(3)
        gone = eventually(
            lambda: clients[1].control()["majority"]["unreachable"],
            lambda u: len(u) == 1,
        )
        assert gone == [s.node(3).region]


def test_admin_commands_need_a_control_plane() -> None:
    with servers(1) as s:
        with pytest.raises(tidaldb.Unavailable, match="no control plane"):
            s.connect([1]).drain("us-east")
