"""Handles used after a fork: a ``Db``, a ``Cluster`` (with its tenants and partitions) and
a ``tidaldb.connect`` client refuse every call in a forked child with
``tidaldb.ForkedProcess``, the child never writes the parent's files (not even when it
drops the handles and exits normally), and the parent goes on unharmed. multiprocessing's
"fork", "spawn" and "forkserver" start methods all run a child that opens a Db of its own.

Each scenario is a process of its own (``fork_support.py``), so that pytest is never
forked; afterwards the parent's and the children's directories are reopened here and
compared with the analytical decay of every acknowledged event.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tidaldb
from conftest import assert_close, exp_score
from fork_support import HOUR, ITEMS, T0, events, schema
from server_support import servers

SUPPORT = Path(__file__).with_name("fork_support.py")


def run(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(SUPPORT), *args], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr[-4000:]}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def expected_scores(evs: list[tuple[int, float, float]], at: float) -> list[float]:
    return [exp_score([(ts, w) for i, ts, w in evs if i == item], at, HOUR) for item in range(ITEMS)]


def assert_holds_exactly(path: Path, evs: list[tuple[int, float, float]]) -> None:
    """The reopened directory holds exactly ``evs``: their count, and every item's score at
    two moments equal to the analytical decay of its events."""
    with tidaldb.Db(schema(), path=path) as db:
        assert db.events_applied == len(evs)
        for at in (T0 + HOUR, T0 + 5 * HOUR):
            for item, want in enumerate(expected_scores(evs, at)):
                assert_close(db.score("view", item, at=at), want)


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocessing_children_leave_the_parents_db_whole(method: str, tmp_path: Path) -> None:
    counts = run(method, str(tmp_path))
    assert_holds_exactly(tmp_path / "parent", events(0, counts["parent"]))
    assert_holds_exactly(tmp_path / f"child-{method}", events(10_000, counts["child"]))


def test_an_os_fork_child_that_exits_normally_touches_nothing_of_the_parent(tmp_path: Path) -> None:
    found = run("os.fork", str(tmp_path))
    assert_holds_exactly(tmp_path / "steady", events(0, found["steady"]))
    assert_holds_exactly(tmp_path / "parent", events(0, found["parent"]))
    assert_holds_exactly(tmp_path / "child-os-fork", events(10_000, found["child"]))
    # The parent's cluster and tenant hold their 30 writes, converged in every region.
    want = expected_scores(events(0, 30), T0 + 2 * HOUR)
    for region, scores in found["cluster"].items():
        for got, expected in zip(scores, want):
            assert_close(got, expected), region
    for got, expected in zip(found["tenant"], want):
        assert_close(got, expected)


def test_a_child_forked_during_spread_bulk_writes_writes_exactly() -> None:
    assert run("threads", ".") == {"children": 4}


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with servers(1, insecure=True) as s:
        yield s.nodes[0].client_addr


def test_a_forked_client_is_refused_and_the_parents_connection_serves_on(
    server: str, tmp_path: Path
) -> None:
    found = run("client", str(tmp_path), server)
    for got, expected in zip(found["scores"], expected_scores(events(0, 40), T0 + HOUR)):
        assert_close(got, expected)


def test_forked_process_is_an_exported_unavailable() -> None:
    assert issubclass(tidaldb.ForkedProcess, tidaldb.Unavailable)
    assert tidaldb.ForkedProcess is tidaldb.exceptions.ForkedProcess
    assert "ForkedProcess" in tidaldb.__all__ and "ForkedProcess" in tidaldb.exceptions.__all__
