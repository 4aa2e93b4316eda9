"""``Db(ingest_threads=...)``: a bulk write applied on several threads reads back bit-identical
to the same write on one thread, and to the decay formula; a bad count is refused."""

from __future__ import annotations

import os

import numpy as np
import pytest

import tidaldb
from conftest import HOUR, T0, assert_close, exp_score

# Several times the size from which a bulk write is applied on several threads (8,192).
N = 50_000


def test_one_and_four_threads_read_back_bit_identical(schema: tidaldb.Schema) -> None:
    seed = int.from_bytes(os.urandom(4), "little")
    rng = np.random.default_rng(seed)
    items = rng.integers(0, 5_000, N).astype(np.uint64)
    weights = rng.choice([0.5, 1.0, 2.0, 3.0], N)
    ts = T0 + rng.uniform(0, 6 * HOUR, N)
    at = T0 + 6 * HOUR
    probe = np.arange(5_000, dtype=np.uint64)
    with tidaldb.Db(schema, ingest_threads=1) as one, tidaldb.Db(schema, ingest_threads=4) as four:
        for db in (one, four):
            assert db.signals("view", items, weights, ts) == N
        got = four.scores("view", probe, at=at)
        assert (got.view(np.uint64) == one.scores("view", probe, at=at).view(np.uint64)).all(), f"seed {seed}"
        for e in rng.integers(0, 5_000, 5).tolist():
            mask = items == e
            events = list(zip(ts[mask].tolist(), weights[mask].tolist()))
            assert_close(float(got[e]), exp_score(events, at, 7 * 86_400.0))
            assert four.window_count("view", e, "24h", at=at) == int(mask.sum()), f"seed {seed}"
        top_one = one.retrieve(probe, {"view": 1.0}, limit=50, at=at).to_numpy()
        top_four = four.retrieve(probe, {"view": 1.0}, limit=50, at=at).to_numpy()
        assert (top_one[0] == top_four[0]).all() and (top_one[1] == top_four[1]).all(), f"seed {seed}"


@pytest.mark.parametrize(("bad", "error"), [(0, tidaldb.InvalidArgument), (-1, tidaldb.InvalidArgument), (True, TypeError), ("2", TypeError)])
def test_a_bad_thread_count_is_refused(schema: tidaldb.Schema, bad: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        tidaldb.Db(schema, ingest_threads=bad)  # type: ignore[arg-type]
