"""Bad input raises the exact exception class, with a useful message, and writes nothing."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tidaldb
from tidaldb import InvalidArgument, NotFound, SchemaError, Unavailable
from conftest import T0

BAD_WEIGHTS = [math.nan, math.inf, -math.inf, -0.0, 1e7]
BAD_TIMES = [-1.0, math.nan, math.inf, -math.inf, 1e300]


def raises_exactly(cls: type[BaseException], fn: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    with pytest.raises(cls) as e:
        fn(*args, **kwargs)
    assert type(e.value) is cls, f"{type(e.value).__name__} is not exactly {cls.__name__}: {e.value}"
    return str(e.value)


def writes_nothing(db: tidaldb.Db, cls: type[BaseException], fn: Callable[..., Any], *args: Any, **kw: Any) -> str:
    before = db.events_applied
    msg = raises_exactly(cls, fn, *args, **kw)
    assert db.events_applied == before
    return msg


def test_the_hierarchy() -> None:
    assert issubclass(tidaldb.SchemaError, ValueError) and issubclass(tidaldb.InvalidArgument, ValueError)
    assert issubclass(tidaldb.NotFound, KeyError) and issubclass(tidaldb.Timeout, TimeoutError)
    for cls in (
        tidaldb.SchemaError,
        tidaldb.InvalidArgument,
        tidaldb.NotFound,
        tidaldb.Corruption,
        tidaldb.Unavailable,
        tidaldb.QuotaExceeded,
        tidaldb.Timeout,
        tidaldb.Conflict,
    ):
        assert issubclass(cls, tidaldb.TidalError)
    # Nothing can make a replica read-only, so no such exception is offered.
    assert not hasattr(tidaldb, "ReadOnly")


@pytest.mark.parametrize("weight", BAD_WEIGHTS, ids=repr)
def test_bad_weights(db: tidaldb.Db, weight: float) -> None:
    db.signal("view", 1, 1.0, ts=T0)
    msg = writes_nothing(db, InvalidArgument, db.signal, "view", 1, weight, ts=T0)
    assert "weight" in msg
    weights = np.array([1.0, 2.0, weight, 1.0])
    writes_nothing(db, InvalidArgument, db.signals, "view", np.arange(4, dtype=np.uint64), weights, np.full(4, T0))
    assert db.score("view", 1, at=T0) == 1.0  # the failed batch's first elements were not applied
    assert db.score("view", 0, at=T0) == 0.0


@pytest.mark.parametrize("ts", BAD_TIMES, ids=repr)
def test_timestamps_out_of_range(db: tidaldb.Db, ts: float) -> None:
    msg = writes_nothing(db, InvalidArgument, db.signal, "view", 1, 1.0, ts=ts)
    assert "ts" in msg and ("timestamp" in msg or "not a time" in msg)
    times = np.array([T0, ts])
    writes_nothing(db, InvalidArgument, db.signals, "view", np.array([1, 2], dtype=np.uint64), np.ones(2), times)
    raises_exactly(InvalidArgument, db.score, "view", 1, at=ts)
    raises_exactly(InvalidArgument, db.scores, "view", np.array([1], dtype=np.uint64), at=ts)
    raises_exactly(InvalidArgument, db.window_count, "view", 1, "1h", at=ts)
    raises_exactly(InvalidArgument, db.retrieve, [1], {"view": 1.0}, at=ts)


@pytest.mark.parametrize("ahead", [301.0, 3600.0, 10 * 365 * 86_400.0], ids=["5min+1s", "1h", "10y"])
def test_timestamps_too_far_in_the_future(db: tidaldb.Db, ahead: float) -> None:
    """A write may be dated at most 5 minutes ahead of the clock: an event far ahead would
    make its entity's score grow without bound when read before it."""
    now = time.time()
    msg = writes_nothing(db, InvalidArgument, db.signal, "view", 1, 1.0, ts=now + ahead)
    assert "ahead" in msg and "max_future_skew" in msg
    times = np.array([now, now + ahead])
    writes_nothing(db, InvalidArgument, db.signals, "view", np.array([1, 2], dtype=np.uint64), np.ones(2), times)
    db.signal("view", 1, 1.0, ts=now + 60.0)  # a minute of skew is fine
    db.signals("view", np.array([1], dtype=np.uint64), np.ones(1), np.array([now + 60.0]))
    assert db.events_applied == 2


def test_reads_whose_value_would_overflow(db: tidaldb.Db) -> None:
    """Reading an hour-half-life signal 2000 hours before its event would grow it by 2**2000;
    the read is refused instead of returning infinity."""
    db.signal("like", 1, 1.0, ts=T0)
    assert db.score("like", 1, at=T0 - 3600.0) == 2.0  # a read before an event is fine
    at = T0 - 2000 * 3600.0
    assert "overflows" in raises_exactly(InvalidArgument, db.score, "like", 1, at=at)
    raises_exactly(InvalidArgument, db.scores, "like", np.array([0, 1], dtype=np.uint64), at=at)
    raises_exactly(InvalidArgument, db.retrieve, [0, 1], {"like": 1.0}, at=at)
    assert db.score("like", 2, at=at) == 0.0, "an entity without events has nothing to overflow"


def test_unknown_signal_names(db: tidaldb.Db) -> None:
    msg = writes_nothing(db, NotFound, db.signal, "nope", 1, 1.0, ts=T0)
    assert msg.startswith("unknown signal") and "view" in msg, "message names the known signals, unquoted"
    items = np.array([1], dtype=np.uint64)
    writes_nothing(db, NotFound, db.signals, "nope", items, np.ones(1))
    raises_exactly(NotFound, db.score, "nope", 1)
    raises_exactly(NotFound, db.scores, "nope", items)
    raises_exactly(NotFound, db.window_count, "nope", 1, "1h")
    raises_exactly(NotFound, db.velocity, "nope", 1)
    raises_exactly(NotFound, db.retrieve, [1], {"view": 1.0, "nope": 1.0})


def test_windows(db: tidaldb.Db) -> None:
    assert "unknown window" in raises_exactly(InvalidArgument, db.window_count, "view", 1, "5h", at=T0)
    raises_exactly(InvalidArgument, db.window_sum, "view", 1, "", at=T0)
    # A real window that this signal does not keep.
    raises_exactly(NotFound, db.window_count, "share", 1, "24h", at=T0)
    raises_exactly(NotFound, db.window_count, "like", 1, "1h", at=T0)
    # "all" exists only on signals that declare at least one window.
    db.signal("like", 1, ts=T0)
    assert "all" in raises_exactly(NotFound, db.window_count, "like", 1, "all", at=T0)
    raises_exactly(NotFound, db.window_sum, "follow", 1, "all", at=T0)
    # Velocity was not declared for "share".
    raises_exactly(InvalidArgument, db.velocity, "share", 1, at=T0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.arange(3, dtype=np.float64),
        lambda: np.array([True, False, True]),
        lambda: np.arange(6, dtype=np.uint64).reshape(2, 3),
        lambda: np.array([1, -2, 3], dtype=np.int64),
        lambda: np.array([1, -2, 3], dtype=np.int32),
        lambda: [1, 2.5, 3],
        lambda: np.array(["a", "b", "c"]),
    ],
    ids=["float64", "bool", "2-D", "negative-int64", "negative-int32", "list-with-float", "str"],
)
def test_bad_item_arrays(db: tidaldb.Db, make: Callable[[], Any]) -> None:
    msg = writes_nothing(db, InvalidArgument, db.signals, "view", make(), np.ones(3))
    assert "items" in msg
    assert "items" in raises_exactly(InvalidArgument, db.scores, "view", make())


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.ones(3, dtype=bool),
        lambda: np.array(["1", "1", "1"]),
        lambda: np.ones((3, 1)),
        lambda: [1.0, "1", 1.0],
    ],
    ids=["bool", "str", "2-D", "list-with-str"],
)
def test_bad_weight_and_time_arrays(db: tidaldb.Db, make: Callable[[], Any]) -> None:
    items = np.arange(3, dtype=np.uint64)
    assert "weights" in writes_nothing(db, InvalidArgument, db.signals, "view", items, make())
    ts = make()
    if isinstance(ts, np.ndarray) and ts.dtype == np.float64:
        ts = ts + T0
    assert "ts" in writes_nothing(db, InvalidArgument, db.signals, "view", items, np.ones(3), ts)


def test_mismatched_lengths_name_the_argument(db: tidaldb.Db) -> None:
    items = np.arange(4, dtype=np.uint64)
    msg = writes_nothing(db, InvalidArgument, db.signals, "view", items, np.ones(3))
    assert "weights" in msg and "3" in msg and "4" in msg
    msg = writes_nothing(db, InvalidArgument, db.signals, "view", items, np.ones(4), np.full(5, T0))
    assert "ts" in msg and "5" in msg


@pytest.mark.parametrize("item", [-1, 2**64, -(2**70)])
def test_ids_out_of_range(db: tidaldb.Db, item: int) -> None:
    writes_nothing(db, InvalidArgument, db.signal, "view", item, 1.0, ts=T0)
    raises_exactly(InvalidArgument, db.score, "view", item)
    writes_nothing(db, InvalidArgument, db.hide, 1, item)
    raises_exactly(InvalidArgument, db.retrieve, [1, item], {"view": 1.0})


HUGE = [10**400, -(10**400)]


@pytest.mark.parametrize("huge", HUGE, ids=["1e400", "-1e400"])
def test_ints_too_large_for_a_float_name_the_argument(db: tidaldb.Db, huge: int) -> None:
    """Python converts such ints to float with OverflowError; tidaldb says which argument."""
    assert "weight" in writes_nothing(db, InvalidArgument, db.signal, "view", 1, huge, ts=T0)
    assert "ts" in writes_nothing(db, InvalidArgument, db.signal, "view", 1, 1.0, ts=huge)
    for read in (db.score, db.velocity):
        assert "at" in raises_exactly(InvalidArgument, read, "view", 1, at=huge)
    for read in (db.window_count, db.window_sum):
        assert "at" in raises_exactly(InvalidArgument, read, "view", 1, "1h", at=huge)
    assert "at" in raises_exactly(InvalidArgument, db.scores, "view", np.array([1], dtype=np.uint64), at=huge)
    assert "at" in raises_exactly(InvalidArgument, db.retrieve, [1], {"view": 1.0}, at=huge)
    msg = raises_exactly(InvalidArgument, db.retrieve, [1], {"view": 1.0, "like": huge})
    assert "rank_by" in msg and '"like"' in msg and "digits" in msg, "the message does not print 400 digits"
    assert "limit" in raises_exactly(InvalidArgument, db.retrieve, [1], {"view": 1.0}, limit=huge)


def test_bools_are_not_entity_ids(db: tidaldb.Db) -> None:
    """True and False are ints to Python, but never meant as ids 1 and 0."""
    for flag in (True, False):
        assert "item" in writes_nothing(db, TypeError, db.signal, "view", flag, 1.0, ts=T0)
        assert "item" in raises_exactly(TypeError, db.score, "view", flag)
        assert "item" in raises_exactly(TypeError, db.window_count, "view", flag, "1h")
        assert "item" in raises_exactly(TypeError, db.velocity, "view", flag)
        assert "user" in writes_nothing(db, TypeError, db.hide, flag, 2)
        assert "item" in writes_nothing(db, TypeError, db.unhide, 1, flag)
        assert "user" in raises_exactly(TypeError, db.is_hidden, flag, 2)
        assert "candidates" in raises_exactly(TypeError, db.retrieve, [1, flag], {"view": 1.0})
        assert "user" in raises_exactly(TypeError, db.retrieve, [1], {"view": 1.0}, user=flag)
        raises_exactly(TypeError, db.signal, "view", np.bool_(flag), 1.0)
    # A bool array is a dtype error, like any other wrong dtype.
    raises_exactly(InvalidArgument, db.scores, "view", np.array([True, False]))
    raises_exactly(InvalidArgument, db.retrieve, np.array([True]), {"view": 1.0})
    # Ints that merely compare equal to bools are still ids.
    db.signal("view", 1, 1.0, ts=T0)
    db.signal("view", np.uint64(0), 1.0, ts=T0)
    assert db.events_applied == 2


def test_wrong_python_types_stay_type_errors(db: tidaldb.Db) -> None:
    raises_exactly(TypeError, db.signal, "view", "one", 1.0)
    raises_exactly(TypeError, db.signal, "view", 1, "heavy")
    raises_exactly(TypeError, db.retrieve, [1], [("view", 1.0)])
    assert db.events_applied == 0


def test_bad_retrieve_arguments(db: tidaldb.Db) -> None:
    raises_exactly(InvalidArgument, db.retrieve, [1], {"view": 1.0}, limit=-1)
    raises_exactly(InvalidArgument, db.retrieve, [1], {})
    raises_exactly(InvalidArgument, db.retrieve, [1], {"view": math.nan})
    raises_exactly(InvalidArgument, db.retrieve, np.array([1.0]), {"view": 1.0})


@pytest.mark.parametrize(
    ("kwargs", "cls"),
    [
        ({"kind": "post"}, InvalidArgument),
        ({"kind": "Item"}, InvalidArgument),
        ({"half_life": 0}, SchemaError),
        ({"half_life": "0s"}, SchemaError),
        ({"half_life": -5.0}, SchemaError),
        ({"half_life": "-1h"}, SchemaError),
        ({"lifetime": 0.0}, SchemaError),
        ({"lifetime": "-2d"}, SchemaError),
        ({"half_life": "1h", "lifetime": "1h"}, SchemaError),
        ({"half_life": "1h", "windows": []}, SchemaError),
        ({"half_life": "1h", "velocity": True}, SchemaError),
        ({"velocity": True, "windows": []}, SchemaError),
        # Velocity is measured over a bounded window; "all" is not one.
        ({"half_life": "1h", "windows": ["all"], "velocity": True}, SchemaError),
        ({"half_life": "1h", "windows": ["1h", "1h"]}, SchemaError),
        ({"half_life": "abc"}, InvalidArgument),
        ({"half_life": "7y"}, InvalidArgument),
        ({"half_life": math.nan}, InvalidArgument),
        ({"half_life": math.inf}, InvalidArgument),
        ({"windows": ["1h", "2h"]}, InvalidArgument),
    ],
)
def test_bad_signal_declarations(kwargs: dict[str, Any], cls: type[BaseException]) -> None:
    schema = tidaldb.Schema().signal("ok", half_life="1d")
    raises_exactly(cls, schema.signal, "bad", **kwargs)
    assert schema.names == ["ok"], "a failed declaration leaves the schema unchanged"


def test_duplicate_and_empty_schemas() -> None:
    schema = tidaldb.Schema().signal("view", half_life="1d")
    assert "twice" in raises_exactly(SchemaError, schema.signal, "view", kind="user")
    raises_exactly(SchemaError, schema.signal, "", half_life="1d")
    raises_exactly(SchemaError, tidaldb.Db, tidaldb.Schema())


def test_unknown_durability(schema: tidaldb.Schema) -> None:
    assert "durability" in raises_exactly(InvalidArgument, tidaldb.Db, schema, durability="sometimes")


def test_reopening_with_a_different_schema(schema: tidaldb.Schema, data_dir: Path) -> None:
    with tidaldb.Db(schema, data_dir) as db:
        db.signal("view", 1, ts=T0)
    other = tidaldb.Schema().signal("view", half_life="6d", windows=["1h"])
    assert "different schema" in raises_exactly(SchemaError, tidaldb.Db, other, data_dir)
    with tidaldb.Db(schema, data_dir) as db:
        assert db.events_applied == 1, "the failed open changed nothing"


def test_a_second_db_on_an_open_directory(schema: tidaldb.Schema, data_dir: Path) -> None:
    with tidaldb.Db(schema, data_dir) as db:
        db.signal("view", 1, ts=T0)
        raises_exactly(Unavailable, tidaldb.Db, schema, data_dir)
        db.signal("view", 1, ts=T0)
        assert db.events_applied == 2


def test_every_method_of_a_closed_db_raises_unavailable(schema: tidaldb.Schema) -> None:
    db = tidaldb.Db(schema)
    db.close()
    items = np.array([1], dtype=np.uint64)
    calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [
        (db.signal, ("view", 1)),
        (db.signals, ("view", items, np.ones(1))),
        (db.score, ("view", 1)),
        (db.scores, ("view", items)),
        (db.window_count, ("view", 1, "1h")),
        (db.window_sum, ("view", 1, "1h")),
        (db.velocity, ("view", 1)),
        (db.hide, (1, 2)),
        (db.unhide, (1, 2)),
        (db.is_hidden, (1, 2)),
        (db.retrieve, ([1], {"view": 1.0})),
        (db.flush, ()),
        (db.snapshot, ()),
        (db.flush_async, ()),
        (lambda: db.events_applied, ()),
    ]
    for fn, args in calls:
        assert "closed" in raises_exactly(Unavailable, fn, *args)
