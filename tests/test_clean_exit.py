"""A program that awaited tidaldb's awaitables exits cleanly, and nothing it was told is
lost: the result reaches asyncio from a worker thread, which must never take the GIL
while the interpreter shuts down (that aborts the process with SIGABRT, exit code 134).

Each awaitable API runs in many short processes, because the abort depended on a race
between the worker's last touch of Python and the end of the program. Also checked: an
awaitable left running when the program ends, and a cancelled one.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

RUNS = 16

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


def run(program: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(program)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_every_run_exits_zero(name: str) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, [PROGRAMS[name]] * RUNS))
    bad = [r for r in results if r.returncode != 0]
    assert not bad, (
        f"{len(bad)} of {RUNS} runs of {name} failed; first: exit {bad[0].returncode}\n"
        f"{bad[0].stderr[-2000:]}"
    )
