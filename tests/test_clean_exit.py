"""A program that awaited tidaldb's awaitables exits cleanly, and nothing it was told is
lost: the result reaches asyncio from a worker thread, which must never take the GIL
while the interpreter shuts down (that aborts the process with SIGABRT, exit code 134).

Each awaitable API runs in 100 short processes, because the abort depended on a race
between the worker's last touch of Python and the end of the program; they run a few at a
time. Also checked: an awaitable left running when the program ends, a cancelled one, and
a Db that the program never closed, whose acknowledged writes must all be on disk after
the exit.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import tidaldb
from conftest import HOUR, T0, assert_close, exp_score

RUNS = 100
#: Processes at once: each spends much of its short life waiting on imports and exit.
PARALLEL = 8

PROGRAMS = {
    "flush_async": """
        import asyncio, sys, tempfile, tidaldb
        db = tidaldb.Db(tidaldb.Schema().signal("view", half_life="1h"), path=tempfile.mkdtemp())
        db.signal("view", 1)
        async def main():
            assert await db.flush_async() is None
        asyncio.run(main())
    """,
    "converged": """
        import asyncio, tidaldb
        cluster = tidaldb.Cluster(tidaldb.Schema().signal("view", half_life="1h"), seed=1)
        cluster.write("view", 7)
        async def main():
            await cluster.converged(timeout=5.0)
        asyncio.run(main())
        assert cluster.is_converged()
    """,
    "migration_run": """
        import asyncio, tidaldb
        cluster = tidaldb.Cluster(tidaldb.Schema().signal("view", half_life="1h"), seed=1)
        tenant = cluster.register_tenant(5, regions=["us-east"])
        tenant.write("view", 1)
        async def main():
            await tenant.migrate(to_region="eu-west").run()
        asyncio.run(main())
        assert tenant.regions == ["eu-west"]
    """,
    "left_running": """
        import asyncio, tidaldb
        cluster = tidaldb.Cluster(tidaldb.Schema().signal("view", half_life="1h"), seed=1)
        cluster.write("view", 7)
        async def main():
            # Started, never awaited: the program ends while the worker still runs.
            asyncio.ensure_future(cluster.converged(timeout=60.0))
            await asyncio.sleep(0)
        asyncio.run(main())
    """,
    "cancelled": """
        import asyncio, tidaldb
        cluster = tidaldb.Cluster(tidaldb.Schema().signal("view", half_life="1h"), seed=1)
        cluster.write("view", 7)
        async def main():
            task = asyncio.ensure_future(cluster.converged(timeout=5.0))
            await asyncio.sleep(0)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            else:
                raise AssertionError("the awaiter was cancelled, so it must not get a result")
            await cluster.converged(timeout=5.0)  # the cluster is still usable
        asyncio.run(main())
    """,
}


def run(program: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(program), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_every_run_exits_zero(name: str) -> None:
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        results = list(pool.map(run, [PROGRAMS[name]] * RUNS))
    bad = [r for r in results if r.returncode != 0]
    assert not bad, (
        f"{len(bad)} of {RUNS} runs of {name} failed; first: exit {bad[0].returncode}\n"
        f"{bad[0].stderr[-2000:]}"
    )


UNCLOSED = f"""
    import sys, threading, time, tidaldb
    T0 = {T0!r}

    def writer(db, acknowledged):
        for k in range(1000):
            db.signal("view", k % 10, 1.0 + k % 3, ts=T0 + k)
        acknowledged.set()
        time.sleep(3600)

    acknowledged = threading.Event()
    # Only the daemon thread holds the Db, so the interpreter's teardown never drops it
    # (a daemon thread's frame outlives the program). No close(), no flush(): the exit
    # hook must sync the batched tail.
    threading.Thread(
        target=writer,
        args=(tidaldb.Db(tidaldb.Schema().signal("view", half_life="1h"), path=sys.argv[1],
                         durability="batched"), acknowledged),
        daemon=True,
    ).start()
    acknowledged.wait()
"""


def test_a_db_left_open_is_flushed_and_closed_at_exit(tmp_path: Path) -> None:
    dirs = [str(tmp_path / f"db{i}") for i in range(20)]
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        results = list(pool.map(lambda d: run(UNCLOSED, d), dirs))
    bad = [r for r in results if r.returncode != 0]
    assert not bad, f"{len(bad)} of 20 failed; first: exit {bad[0].returncode}\n{bad[0].stderr[-2000:]}"
    at = T0 + HOUR
    for d in dirs:
        with tidaldb.Db(tidaldb.Schema().signal("view", half_life="1h"), path=d) as db:
            assert db.events_applied == 1000, d
            for item in range(10):
                events = [(T0 + k, 1.0 + k % 3) for k in range(1000) if k % 10 == item]
                assert_close(db.score("view", item, at=at), exp_score(events, at, HOUR))
