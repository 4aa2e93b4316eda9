"""Several Python threads on one Db: bulk reads read their inputs as of the call, a large
bulk write reads each row as it stands when it writes it, and a call that has to wait for
the Db waits with the interpreter released; and several threads on one cluster's partition
handle do not deadlock."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable

import numpy as np

import tidaldb
from conftest import T0

#: Entities 1..VERSIONS hold a permanent score equal to their id (weights go up to 1e6).
VERSIONS = 1_000_000
N = 4_000_000


def permanent_db() -> tidaldb.Db:
    db = tidaldb.Db(tidaldb.Schema().signal("points"))
    ids = np.arange(1, VERSIONS + 1, dtype=np.uint64)
    db.signals("points", ids, ids.astype(np.float64), np.full(VERSIONS, T0))
    return db


def while_writing(array: np.ndarray, call: Callable[[], object]) -> object:
    """Runs `call` while another thread keeps writing versions v = 1, 2, 3, ... into `array`:
    2v into the first element, then 2v - 1 into the last. At any instant the first element
    is even and the larger. A call that copies the array at one instant sees that too; one
    that reads the array while the writer runs sees the last element newer and larger."""
    done = threading.Event()

    def writer() -> None:
        v = 0
        while not done.is_set() and 2 * v < VERSIONS - 2:
            v += 1
            array[0] = 2 * v
            array[-1] = 2 * v - 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        return call()
    finally:
        done.set()
        thread.join()


def test_bulk_calls_read_their_inputs_as_of_the_call() -> None:
    with permanent_db() as db:
        for _ in range(3):
            items = np.zeros(N, dtype=np.uint64)  # entity 0 scores 0
            out = while_writing(items, lambda: db.scores("points", items, at=T0))
            assert isinstance(out, np.ndarray)
            assert out[0] >= out[-1], "scores read items[-1] after the call had started"

            cands = np.zeros(N, dtype=np.uint64)
            res = while_writing(cands, lambda: db.retrieve(cands, {"points": 1.0}, limit=1, at=T0))
            assert isinstance(res, tidaldb.Results)
            assert res[0].item % 2 == 0, "retrieve read candidates[-1] after the call had started"


def test_a_large_write_reads_each_row_as_it_stands_when_written() -> None:
    """A large `signals` call reads its arrays in place, a chunk at a time, and lets other
    threads run between chunks: a row changed meanwhile is written as it then stands. Every
    version the writer leaves is a valid weight, so the call writes every event, and each
    row's weight is one the array held during the call."""
    lasts = []
    for _ in range(3):
        with tidaldb.Db(tidaldb.Schema().signal("points")) as db:
            items = np.full(N, 3, dtype=np.uint64)
            items[0], items[-1] = 1, 2
            weights = np.ones(N)
            assert while_writing(weights, lambda: db.signals("points", items, weights)) == N
            first, last = db.score("points", 1), db.score("points", 2)
            assert first == 1.0 or (first % 2 == 0 and first <= weights[0]), (first, weights[0])
            assert last == 1.0 or (last % 2 == 1 and last <= weights[-1]), (last, weights[-1])
            assert db.events_applied == N
            lasts.append(last)
    # The writer ran during the calls: the last row, read last, held one of its versions.
    assert any(last != 1.0 for last in lasts), lasts


def test_a_call_waiting_for_a_busy_db_releases_the_interpreter() -> None:
    """While one thread runs a long bulk call, another calls `score` and `signal`, which
    have to wait for it; a third thread keeps running all along (waiting attached would
    stall it). Every single write that waited is applied."""
    rng = np.random.default_rng(5)
    items = rng.integers(0, 100_000, 6_000_000).astype(np.uint64)
    weights = np.ones(len(items))
    ts = np.full(len(items), T0)
    with tidaldb.Db(tidaldb.Schema().signal("view", half_life="1h", windows=["1h", "24h"])) as db:
        span: list[float] = []
        done = threading.Event()

        def ingest() -> None:
            start = time.perf_counter()
            db.signals("view", items, weights, ts)
            span.extend([start, time.perf_counter()])
            done.set()

        singles = 0

        def read() -> None:
            while not done.is_set():
                db.score("view", 1, at=T0)
                db.closed  # noqa: B018  (the getter takes the Db lock too)

        def write() -> None:
            nonlocal singles
            while not done.is_set():
                db.signal("view", 1 << 40, 1.0, ts=T0)
                singles += 1

        workers = [threading.Thread(target=f) for f in (ingest, read, write)]
        ticks: list[float] = []
        for w in workers:
            w.start()
        while not done.is_set():
            ticks.append(time.perf_counter())
        for w in workers:
            w.join()
        assert singles > 0
        assert db.score("view", 1 << 40, at=T0) == singles
    start, end = span
    during = [t for t in ticks if start <= t <= end]
    gaps = np.diff([start, *during, end])
    assert end - start > 0.05, "the call is long enough to tell"
    assert gaps.max() < (end - start) / 2, (gaps.max(), end - start)


# Two threads polling `Partition.active` must not deadlock the interpreter: a call that
# holds the handle's lock while detached would block a second thread that waits for that
# lock while attached, and the first could never re-attach. Run in a subprocess so that a
# hang fails the test, not the suite.
def test_partition_active_from_two_threads_does_not_deadlock() -> None:
    script = textwrap.dedent(
        """
        import threading
        import tidaldb

        s = tidaldb.Schema().signal("view", kind="item", half_life="1h")
        c = tidaldb.Cluster(s, seed=1)
        p = c.partition("us-east", "eu-west")

        def poll() -> None:
            for _ in range(20_000):
                p.active

        threads = [threading.Thread(target=poll) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        p.heal()
        print("done")
        """
    )
    try:
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail("two threads reading Partition.active deadlocked (no progress in 15 s)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "done"
