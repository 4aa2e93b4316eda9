"""Hard negatives and retrieval, checked against a Python sort."""

from __future__ import annotations

import random

import numpy as np
import pytest

import tidaldb
from conftest import HOUR, T0


def test_hide_unhide_and_is_hidden(db: tidaldb.Db) -> None:
    assert not db.is_hidden(1, 10)
    db.hide(1, 10)
    assert db.is_hidden(1, 10)
    assert not db.is_hidden(2, 10), "hides are per user"
    db.unhide(1, 10)
    assert not db.is_hidden(1, 10)
    db.hide(1, 10)
    assert db.is_hidden(1, 10), "a later hide wins again"


@pytest.mark.parametrize("seed", range(3))
def test_retrieve_ranks_like_a_python_sort_and_never_returns_hidden(db: tidaldb.Db, seed: int) -> None:
    rng = random.Random(seed)
    items = list(range(1, 201))
    for item in items:
        for _ in range(rng.randint(0, 4)):
            db.signal("view", item, rng.choice([1.0, 2.0]), ts=T0 + rng.uniform(0, HOUR))
        if rng.random() < 0.5:
            db.signal("like", item, 1.0, ts=T0 + rng.uniform(0, HOUR))
    hidden = set(rng.sample(items, 40))
    for item in hidden:
        db.hide(77, item)
    at = T0 + 2 * HOUR
    rank_by = {"view": 1.0, "like": 3.0}

    res = db.retrieve(items, rank_by, user=77, limit=25, at=at)

    expected = sorted(
        ((i, db.score("view", i, at=at) * 1.0 + db.score("like", i, at=at) * 3.0) for i in items if i not in hidden),
        key=lambda p: (-p[1], p[0]),
    )[:25]
    got = [(s.item, s.score) for s in res]
    assert [i for i, _ in got] == [i for i, _ in expected]
    for (_, a), (_, b) in zip(got, expected):
        assert a == pytest.approx(b, rel=1e-12)
    assert not hidden & {s.item for s in res}
    st = res.stats
    assert (st.candidates_considered, st.hidden_filtered, st.candidates_after_filter, st.returned) == (
        200,
        40,
        160,
        25,
    )
    assert st.degraded is False and st.shards_reached == [0] and st.shards_unreachable == []
    assert st.elapsed >= 0.0


def test_without_a_user_nothing_is_filtered(db: tidaldb.Db) -> None:
    db.hide(1, 2)
    res = db.retrieve([1, 2, 3], {"view": 1.0}, limit=10, at=T0)
    assert sorted(s.item for s in res) == [1, 2, 3]
    assert res.stats.hidden_filtered == 0


def test_candidates_as_a_numpy_array_and_duplicates(db: tidaldb.Db) -> None:
    db.signals("view", np.array([5, 6, 7], dtype=np.uint64), np.array([1.0, 3.0, 2.0]), np.full(3, T0))
    res = db.retrieve(np.array([5, 6, 7, 6], dtype=np.uint64), {"view": 1.0}, limit=2, at=T0)
    assert [s.item for s in res] == [6, 7]
    res64 = db.retrieve(np.array([5, 6, 7], dtype=np.int64), {"view": 1.0}, limit=2, at=T0)
    assert [s.item for s in res64] == [6, 7]


def test_results_behave_like_a_sequence_and_convert_to_numpy(db: tidaldb.Db) -> None:
    for i, w in enumerate([5.0, 1.0, 3.0, 4.0, 2.0]):
        db.signal("like", 100 + i, w, ts=T0)
    res = db.retrieve(range(100, 105), {"like": 2.0}, limit=4, at=T0)
    assert len(res) == 4
    assert [s.item for s in res.items] == [100, 103, 102, 104]
    assert res[0].item == 100 and res[0].score == 10.0
    assert res[-1].item == 104
    assert [s.item for s in res[1:3]] == [103, 102]
    with pytest.raises(IndexError):
        res[4]
    items, scores = res.to_numpy()
    assert items.dtype == np.uint64 and scores.dtype == np.float64
    assert items.tolist() == [100, 103, 102, 104]
    assert scores.tolist() == [10.0, 8.0, 6.0, 4.0]
    assert "ScoredItem(item=100, score=10.0)" == repr(res[0])
    assert repr(res).startswith("Results(4 items")
    html = res._repr_html_()
    assert html.count("<tr>") == 5 and "<td>103</td>" in html
    assert "candidates_considered=5" in repr(res.stats)
    assert "<td>hidden_filtered</td>" in res.stats._repr_html_()


def test_reprs_print_floats_as_python_does(db: tidaldb.Db) -> None:
    weights = [123456.789, 2.5, 1.0, 1e-7 / 3, 0.1 + 0.2, 1e-4, 99999.99999]
    for i, w in enumerate(weights):
        db.signal("like", i, w, ts=T0)
    res = db.retrieve(range(len(weights)), {"like": 1.0}, limit=len(weights), at=T0 + 1234.5)
    for hit in res:
        assert repr(hit) == f"ScoredItem(item={hit.item}, score={hit.score!r})"
    st = res.stats
    assert f"elapsed={st.elapsed!r}" in repr(st)
