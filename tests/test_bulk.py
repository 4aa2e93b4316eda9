"""The numpy paths against the single-call paths: bit-identical, and strided or int64 input accepted."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import tidaldb
from conftest import DAY, HOUR, T0, assert_close, exp_score


def data(n: int, entities: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    items = rng.integers(0, entities, n).astype(np.uint64)
    weights = rng.choice([0.5, 1.0, 2.0, 3.0], n)
    ts = T0 + rng.uniform(0, 6 * HOUR, n)
    return items, weights, ts


def test_bulk_writes_equal_single_writes_bit_for_bit(schema: tidaldb.Schema) -> None:
    items, weights, ts = data(5_000, 300)
    with tidaldb.Db(schema) as bulk, tidaldb.Db(schema) as single:
        assert bulk.signals("view", items, weights, ts) == 5_000
        for i, w, t in zip(items.tolist(), weights.tolist(), ts.tolist()):
            single.signal("view", i, w, ts=t)
        assert bulk.events_applied == single.events_applied == 5_000
        probe = np.arange(300, dtype=np.uint64)
        for at in (T0 + 6 * HOUR, T0 + DAY):
            got = bulk.scores("view", probe, at=at)
            want = np.array([single.score("view", int(i), at=at) for i in probe])
            assert got.dtype == np.float64 and got.shape == (300,)
            assert (got == want).all()
            for e in (0, 17, 299):
                mask = items == e
                evs = list(zip(ts[mask].tolist(), weights[mask].tolist()))
                assert_close(float(got[e]), exp_score(evs, at, 7 * DAY))
            assert [bulk.window_count("view", int(e), "24h", at=at) for e in probe] == [
                single.window_count("view", int(e), "24h", at=at) for e in probe
            ]


def test_strided_and_int64_inputs_are_accepted(db: tidaldb.Db) -> None:
    items = np.arange(20, dtype=np.uint64)
    weights = np.linspace(1.0, 2.0, 20)
    ts = np.full(20, T0)
    assert db.signals("view", items[::2], weights[::2], ts[::2]) == 10
    assert db.signals("like", items.astype(np.int64), weights) == 20
    got = db.scores("view", items[::2], at=T0)
    assert got.tolist() == weights[::2].tolist()
    assert db.scores("view", items.astype(np.int64)[1::2], at=T0).tolist() == [0.0] * 10


def test_bulk_without_timestamps_uses_now(db: tidaldb.Db) -> None:
    items = np.array([1, 2, 2], dtype=np.uint64)
    assert db.signals("like", items, np.ones(3)) == 3
    assert db.scores("like", np.array([1, 2], dtype=np.uint64)) == pytest.approx([1.0, 2.0], rel=1e-6)


def test_empty_arrays(db: tidaldb.Db) -> None:
    empty = np.array([], dtype=np.uint64)
    assert db.signals("view", empty, np.array([], dtype=np.float64)) == 0
    assert db.scores("view", empty).shape == (0,)
    assert db.events_applied == 0


def test_bulk_calls_release_the_interpreter(db: tidaldb.Db) -> None:
    """While one thread ingests, another keeps running: the gaps between its steps stay
    far below the length of the bulk call (holding the interpreter would stall it throughout)."""
    items, weights, ts = data(2_000_000, 100_000, seed=3)
    span: list[float] = []

    def ingest() -> None:
        start = time.perf_counter()
        db.signals("view", items, weights, ts)
        span.extend([start, time.perf_counter()])

    worker = threading.Thread(target=ingest)
    ticks: list[float] = []
    worker.start()
    while worker.is_alive():
        ticks.append(time.perf_counter())
    worker.join()
    start, end = span
    during = [t for t in ticks if start <= t <= end]
    gaps = np.diff([start, *during, end])
    assert end - start > 0.05, "the call is long enough to tell"
    assert gaps.max() < (end - start) / 2, (gaps.max(), end - start)
