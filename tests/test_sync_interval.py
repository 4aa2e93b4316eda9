"""``sync_interval`` sets how long a ``"batched"`` Db write or a ``"periodic"`` replica waits
for its sync. The oracle is the set of writes made: a process killed before its interval
has passed loses them, one killed after it keeps them all."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tidaldb

T0 = 1_700_000_000.0
WRITES = 10


def schema() -> tidaldb.Schema:
    return tidaldb.Schema().signal("view", half_life="1h")


def write_then_get_killed(path: Path, interval: str, wait: float) -> None:
    """A child writes ``WRITES`` events under ``"batched"``, waits ``wait`` seconds, and
    is killed with SIGKILL: no exit handler runs, only what was synced survives."""
    script = textwrap.dedent(
        f"""
        import sys, time, tidaldb
        db = tidaldb.Db(tidaldb.Schema().signal("view", half_life="1h"), {str(path)!r},
                        durability="batched", sync_interval={interval!r})
        for i in range({WRITES}):
            db.signal("view", i, ts={T0} + i)
        time.sleep({wait})
        print("written", flush=True)
        time.sleep(60)
        """
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "written"
            child.send_signal(signal.SIGKILL)
            assert child.wait(timeout=30) == -signal.SIGKILL
        finally:
            child.kill()


def test_a_batched_write_is_synced_once_its_interval_has_passed(tmp_path: Path) -> None:
    write_then_get_killed(tmp_path / "d", "50ms", wait=1.0)
    with tidaldb.Db(schema(), tmp_path / "d") as db:
        assert db.events_applied == WRITES


def test_a_long_interval_leaves_the_writes_unsynced_until_then(tmp_path: Path) -> None:
    write_then_get_killed(tmp_path / "d", "1h", wait=1.0)
    with tidaldb.Db(schema(), tmp_path / "d") as db:
        assert db.events_applied == 0, "nothing was synced: the kill came first"


def test_a_replica_loses_at_most_what_it_wrote_since_its_last_sync() -> None:
    lost = {}
    for interval in ("10ms", "1h"):
        cluster = tidaldb.Cluster(schema(), seed=5, durability="periodic", sync_interval=interval)
        for i in range(100):
            cluster.write("view", 1, ts=cluster.now)
            cluster.run_for(0.002)
        lost[interval] = cluster.crash(cluster.leader, lose_unsynced=True)
    assert lost["1h"] == 100, "no sync has come in the first hour"
    assert lost["10ms"] <= 6, "at most 10 ms of writes, one every 2 ms, were unsynced"


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"sync_interval": "10ms"}, "takes no interval"),
        ({"durability": "batched", "sync_interval": 0}, "out of range"),
        ({"durability": "batched", "sync_interval": "2h"}, "out of range"),
        ({"durability": "batched", "sync_interval": -1.0}, "sync_interval"),
        ({"durability": "batched", "sync_interval": "soon"}, "sync_interval"),
    ],
)
def test_a_bad_sync_interval_is_refused(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(tidaldb.InvalidArgument, match=needle):
        tidaldb.Db(schema(), **kwargs)  # type: ignore[arg-type]
    # The same arguments for a Cluster, whose waiting policy is "periodic".
    cluster_kwargs = dict(kwargs)
    if "durability" in cluster_kwargs:
        cluster_kwargs["durability"] = "periodic"
    with pytest.raises(tidaldb.InvalidArgument, match=needle):
        tidaldb.Cluster(schema(), **cluster_kwargs)  # type: ignore[arg-type]
