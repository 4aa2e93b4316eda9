"""Ctrl-C during a long call: each long call runs in a process of its own that gets SIGINT
while the call is under way. It must raise ``KeyboardInterrupt`` well before the call
would have finished (the core checks for signals about every 50 ms), and what the
database or cluster holds afterwards must be exactly what was acknowledged, by the
analytical decay formula. The child catches the interrupt, reports what it finds, and
re-raises it, so that it also exits as an interrupted Python process does.

Also: the logging bridge never swallows an exception raised inside Python logging.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tidaldb
from conftest import HOUR, T0, assert_close, exp_score

#: The simulator's virtual start, 2026-01-01T00:00:00Z.
START = 1_767_225_600.0
#: Longer than any call here may take once interrupted, however busy the machine.
PROMPT = 1.5
FOREVER = 3650 * 86_400.0

COMMON = """
import json, sys, time, tidaldb
START, HOUR = 1_767_225_600.0, 3600.0
def ready():
    print("ready", flush=True)
def caught(**found):
    print(json.dumps({"caught": time.monotonic(), **found}), flush=True)
"""


def interrupt(program: str, *args: str, settle: float = 0.5) -> dict[str, Any]:
    """Runs ``program``, sends SIGINT ``settle`` seconds after it printed "ready", and
    returns what it reported, with ``latency``: seconds from the signal to the catch."""
    child = subprocess.Popen(
        [sys.executable, "-c", COMMON + textwrap.dedent(program), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        first = child.stdout.readline().strip()
        assert first == "ready", first + child.communicate(timeout=60)[1]
        time.sleep(settle)
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert child.returncode == -signal.SIGINT, f"exit {child.returncode}\n{out}\n{err[-3000:]}"
    assert "KeyboardInterrupt" in err, err[-3000:]
    found: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    found["latency"] = found["caught"] - sent
    assert 0 <= found["latency"] < PROMPT, found
    return found


def expected(events: list[tuple[float, float]], at: float) -> float:
    return exp_score(events, at, HOUR)


def test_run_for_stops_at_once_and_keeps_the_time_run(tmp_path: Path) -> None:
    found = interrupt(
        """
        cluster = tidaldb.Cluster(tidaldb.Schema().signal("view", half_life="1h"), seed=5)
        for k in range(30):
            cluster.write("view", k % 3, ts=START + k, region=cluster.regions[k % 3])
        ready()
        try:
            cluster.run_for("3650d")
        except KeyboardInterrupt:
            ran = cluster.now - START
            cluster.await_convergence(timeout=10.0)
            at = cluster.now + HOUR
            scores = {r: [cluster.score("view", i, region=r, at=at) for i in range(3)]
                      for r in cluster.regions}
            caught(ran=ran, at=at, scores=scores)
            raise
        """
    )
    # Interrupted well before the end: a tiny part of the ten years was run.
    assert 0 < found["ran"] < FOREVER / 100
    for scores in found["scores"].values():
        for item, got in enumerate(scores):
            events = [(START + k, 1.0) for k in range(30) if k % 3 == item]
            assert_close(got, expected(events, found["at"]))


def test_await_convergence_stops_and_the_cluster_converges_later() -> None:
    found = interrupt(
        """
        cluster = tidaldb.Cluster(tidaldb.Schema().signal("view", half_life="1h"), seed=6)
        cut = [cluster.partition("us-east", "eu-west"), cluster.partition("us-east", "ap-south")]
        for k in range(20):
            cluster.write("view", 1, ts=START + k, region="us-east")
        ready()
        try:
            cluster.await_convergence(timeout="3650d")
        except KeyboardInterrupt:
            ran = cluster.now - START
            converged_before = cluster.is_converged()
            for p in cut:
                p.heal()
            cluster.await_convergence(timeout=10.0)
            at = cluster.now
            caught(ran=ran, converged_before=converged_before, at=at,
                   scores=[cluster.score("view", 1, region=r, at=at) for r in cluster.regions])
            raise
        """
    )
    assert 0 < found["ran"] < FOREVER / 100
    assert not found["converged_before"]
    want = expected([(START + k, 1.0) for k in range(20)], found["at"])
    for got in found["scores"]:
        assert_close(got, want)


MIGRATION = """
import asyncio
cluster = tidaldb.Cluster(tidaldb.Schema().signal("view", half_life="1h", windows=["24h"]), seed=7)
tenant = cluster.register_tenant(5, regions=["us-east"])
for k in range(40):
    tenant.write("view", k % 4, ts=START + k)
migration = tenant.migrate("eu-west")
for step in (migration.prepare_target, migration.enter_dual_write, migration.finalize):
    step()
def report(started):
    state = migration.state
    ran = cluster.now - started
    migration.gc_source()   # the same step, resumed with no grace: it completes
    at = cluster.now
    caught(ran=ran, state=state, after=migration.state, regions=tenant.regions,
           count=tenant.total_count("view", "eu-west"), at=at,
           scores=[tenant.score("view", i, at=at) for i in range(4)])
"""


def check_migration(found: dict[str, Any]) -> None:
    # Stopped inside the last step (the source's grace run), a tiny part of the way.
    assert found["state"] == "finalized"
    assert 0 < found["ran"] < FOREVER / 100
    assert (found["after"], found["regions"], found["count"]) == ("complete", ["eu-west"], 40)
    for item, got in enumerate(found["scores"]):
        events = [(START + k, 1.0) for k in range(40) if k % 4 == item]
        assert_close(got, expected(events, found["at"]))


def interrupt_migration(call: str, after_catch: str = "") -> dict[str, Any]:
    """Interrupts ``call`` on the migration of ``MIGRATION``; runs ``after_catch``, then
    reports."""
    return interrupt(
        MIGRATION
        + f"""
started = cluster.now
ready()
try:
    {call}
except KeyboardInterrupt:
{textwrap.indent(textwrap.dedent(after_catch), "    ")}
    report(started)
    raise
"""
    )


def test_a_migration_step_stops_and_resumes() -> None:
    check_migration(interrupt_migration('migration.gc_source(grace="3650d")'))


def test_an_awaited_migration_under_asyncio_run_stops_its_worker() -> None:
    found = interrupt_migration(
        'asyncio.run(migration.run(grace="3650d"))',
        """
        # The worker was cancelled with the task: virtual time stands still.
        first = cluster.now
        time.sleep(0.3)
        assert cluster.now == first, "the cancelled worker is still running"
        """,
    )
    check_migration(found)


#: A bulk write big enough to be under way for a second or so.
BULK = 12_000_000


def bulk_events(n: int) -> tuple[np.ndarray, np.ndarray]:
    k = np.arange(n, dtype=np.uint64)
    return k % np.uint64(7), 1.0 + (k % np.uint64(3)).astype(np.float64)


def test_a_bulk_write_stops_between_chunks_and_keeps_exactly_what_it_reports(tmp_path: Path) -> None:
    # A permanent signal: its score is the sum of its weights, whatever the times, so the
    # oracle is exact (sums of small integers), and the batch needs no timestamps, whose
    # conversion (before the call releases the GIL) is not interruptible.
    found = interrupt(
        f"""
        import numpy as np
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_sigint import bulk_events, BULK
        db = tidaldb.Db(tidaldb.Schema().signal("total"), path=sys.argv[1])
        for k in range(100):
            db.signal("total", k % 7, 2.0)
        items, weights = bulk_events(BULK)
        ready()
        try:
            db.signals("total", items, weights)
        except KeyboardInterrupt as e:
            caught(written=getattr(e, "written", 0))
            raise
        """,
        str(tmp_path),
        settle=0.4,
    )
    written = found["written"]
    assert 0 <= written < BULK
    if written:
        assert written % 4096 == 0, "a bulk write stops between whole chunks"
    # Reopened: the 100 acknowledged writes and exactly the reported prefix of the batch.
    items, weights = bulk_events(written)
    prefix = np.bincount(items.astype(np.int64), weights=weights, minlength=7)
    with tidaldb.Db(tidaldb.Schema().signal("total"), path=tmp_path) as db:
        assert db.events_applied == 100 + written
        for item in range(7):
            acked = 2.0 * len([k for k in range(100) if k % 7 == item])
            assert db.score("total", item) == acked + prefix[item]


# -- the logging bridge -------------------------------------------------------------------


class Raises(logging.Filter):
    """Raises ``error`` at the first record that mentions ``text``, then lets every record
    through."""

    def __init__(self, error: BaseException, text: str) -> None:
        super().__init__()
        self.error: BaseException | None = error
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.error is not None and self.text in record.getMessage():
            error, self.error = self.error, None
            raise error
        return True


class Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def bridge() -> Iterator[tuple[logging.Logger, Keep]]:
    logger = logging.getLogger("tidaldb")
    keep = Keep()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(keep)
    try:
        yield logger, keep
    finally:
        logger.removeHandler(keep)
        logger.setLevel(level)


@pytest.mark.parametrize("error", [KeyboardInterrupt(), ValueError("a filter failed")])
def test_an_exception_inside_logging_is_raised_by_the_call(
    bridge: tuple[logging.Logger, Keep], error: BaseException, tmp_path: Path
) -> None:
    _, keep = bridge
    # On the handler: a logger's own filters see only records logged on it, and the
    # core's come from its children ("tidaldb.runtime.db").
    keep.addFilter(Raises(error, str(tmp_path / "a")))
    unraisable: list[object] = []
    hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        # Opening a directory logs "opened tidaldb"; the filter raises at that record, and
        # the call raises it, where it used to be reported as unraisable and dropped.
        with pytest.raises(type(error)):
            tidaldb.Db(tidaldb.Schema().signal("view", half_life="1h"), path=tmp_path / "a")
        # The bridge goes on delivering.
        with tidaldb.Db(tidaldb.Schema().signal("view", half_life="1h"), path=tmp_path / "b"):
            pass
    finally:
        sys.unraisablehook = hook
    assert not unraisable
    opened = [m for m in keep.messages if "opened tidaldb" in m and str(tmp_path) in m]
    assert len(opened) == 1 and str(tmp_path / "b") in opened[0], keep.messages
