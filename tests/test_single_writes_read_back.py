"""One ``db.signal()`` (or ``hide``) call at a time, with reads in between: every read sees
every write made before it, exactly as a pure-Python model of the acknowledged writes says.
(A lone in-memory ``Db`` applies single writes in batches; nothing may show it.)

The workload is random; a failure names its seed. Replay it with
``TIDALDB_SEED=<seed> .venv/bin/python -m pytest tests/test_single_writes_read_back.py``.
"""

from __future__ import annotations

import os
import random
import time

import pytest

import tidaldb
from conftest import MINUTE, T0, assert_close, exp_score

HALF_LIFE = 600.0
USER = 1_000_000
ITEMS = list(range(40))


def test_every_read_sees_the_writes_made_before_it() -> None:
    seed = int(os.environ.get("TIDALDB_SEED", int.from_bytes(os.urandom(4), "little")))
    rng = random.Random(seed)
    events: dict[int, list[tuple[float, float]]] = {i: [] for i in ITEMS}
    hides: dict[int, tuple[float, bool]] = {}
    written = 0
    at = T0 + MINUTE
    with tidaldb.Db(tidaldb.Schema().signal("view", half_life=HALF_LIFE)) as db:
        for step in range(10_000):
            item, t = rng.choice(ITEMS), T0 - rng.uniform(0, 30 * MINUTE)
            what = rng.randrange(100)
            where = f"seed {seed}, step {step}"
            if what < 85:
                weight = rng.choice([0.5, 1.0, 2.0, 3.25])
                db.signal("view", item, weight, t)
                events[item].append((t, weight))
                written += 1
            elif what < 95:
                hidden = what < 90
                (db.hide if hidden else db.unhide)(USER, item, ts=t)
                if t >= hides.get(item, (t, hidden))[0]:
                    hides[item] = (t, hidden)
                written += 1
            elif what < 98:
                want = exp_score(events[item], at, HALF_LIFE)
                got = db.score("view", item, at=at)
                if want == 0.0:
                    assert got == 0.0, where
                else:
                    assert_close(got, want)
            elif what < 99:
                visible = [i for i in ITEMS if not hides.get(i, (0.0, False))[1]]
                model = sorted(visible, key=lambda i: (-exp_score(events[i], at, HALF_LIFE), i))[:10]
                ids, _ = db.retrieve(ITEMS, {"view": 1.0}, user=USER, limit=10, at=at).to_numpy()
                assert ids.tolist() == model, where
            else:
                assert db.events_applied == written, where
        assert db.events_applied == written, f"seed {seed}"


def test_a_write_without_a_time_is_dated_when_it_is_made() -> None:
    # One-second half-life: dated 200 ms later, when the next read applies it, the write
    # would score 2^0.2 (15%) higher.
    with tidaldb.Db(tidaldb.Schema().signal("view", half_life=1.0)) as db:
        before = time.time()
        db.signal("view", 7, 1.0)
        after = time.time()
        time.sleep(0.2)
        at = after + 1.0
        got = db.score("view", 7, at=at)
        assert 2.0 ** -(at - before) * (1 - 1e-6) <= got <= 2.0 ** -(at - after) * (1 + 1e-6)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("view", 1, float("nan")), tidaldb.InvalidArgument),
        (("view", 1, float("inf")), tidaldb.InvalidArgument),
        (("click", 1, 1.0), tidaldb.NotFound),
        (("view", -1, 1.0), tidaldb.InvalidArgument),
        (("view", 1, 1.0, time.time() + 86_400.0), tidaldb.InvalidArgument),
    ],
)
def test_a_refused_write_between_good_ones_leaves_nothing(args: tuple[object, ...], error: type[Exception]) -> None:
    with tidaldb.Db(tidaldb.Schema().signal("view", half_life=HALF_LIFE)) as db:
        for i in range(10):
            db.signal("view", i, 1.0, T0)
        with pytest.raises(error):
            db.signal(*args)  # type: ignore[arg-type]
        assert db.events_applied == 10
        assert db.score("view", 1, at=T0) == 1.0
