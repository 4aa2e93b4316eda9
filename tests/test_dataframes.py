"""Dataframe and Arrow interop: pandas, polars, pyarrow and Arrow PyCapsule inputs give the
same data as numpy inputs; times may be datetimes; results convert to each library."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import tidaldb
from tidaldb import InvalidArgument
from conftest import DAY, HOUR, T0, assert_close, exp_score
from server_support import eventually, servers

UTC = dt.timezone.utc
ITEMS = [3, 1, 4, 1, 5, 9, 2, 6]
WEIGHTS = [1.0, 2.0, 0.5, 1.5, 3.0, 1.0, 2.5, 0.25]
#: Whole minutes, so that every time unit below (down to datetime64[m]) holds them exactly.
T0_MINUTE = T0 - T0 % 60
TIMES = [T0_MINUTE + 60.0 * k for k in range(len(ITEMS))]
AT = T0 + DAY
LIKE_HALF_LIFE = HOUR


class CapsuleArray:
    """Only the Arrow PyCapsule array interface, as arro3 or nanoarrow objects offer."""

    def __init__(self, values: Any) -> None:
        self._array = pa.array(values)

    def __arrow_c_array__(self, requested_schema: object | None = None) -> Any:
        return self._array.__arrow_c_array__(requested_schema)


class CapsuleStream:
    """Only the Arrow PyCapsule stream interface, in two chunks."""

    def __init__(self, values: list[Any]) -> None:
        half = len(values) // 2
        self._chunked = pa.chunked_array([values[:half], values[half:]])

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> Any:
        return self._chunked.__arrow_c_stream__(requested_schema)


#: Each way of passing a column, applied to a Python list of values.
COLUMNS: dict[str, Callable[[list[Any]], Any]] = {
    "list": list,
    "tuple": tuple,
    "numpy-int32-or-float32": lambda v: np.asarray(v, dtype=np.int32 if isinstance(v[0], int) else np.float32),
    "pandas": pd.Series,
    "pandas-nullable": lambda v: pd.Series(v, dtype="Int64" if isinstance(v[0], int) else "Float64"),
    "pandas-arrow": lambda v: pd.Series(v, dtype="int64[pyarrow]" if isinstance(v[0], int) else "float64[pyarrow]"),
    "polars": pl.Series,
    "pyarrow": pa.array,
    "pyarrow-chunked": lambda v: pa.chunked_array([v[:3], v[3:]]),
    "capsule-array": CapsuleArray,
    "capsule-stream": CapsuleStream,
}


def expected_like_scores(at: float) -> dict[int, float]:
    """The analytical decay of ITEMS/WEIGHTS/TIMES on the one-hour "like" signal."""
    return {
        item: exp_score(
            [(t, w) for i, w, t in zip(ITEMS, WEIGHTS, TIMES) if i == item], at, LIKE_HALF_LIFE
        )
        for item in set(ITEMS)
    }


def assert_like_scores(db: tidaldb.Db, at: float = T0 + 2 * HOUR) -> None:
    probe = sorted(set(ITEMS))
    got = db.scores("like", np.array(probe, dtype=np.uint64), at=at)
    want = expected_like_scores(at)
    for item, score in zip(probe, got.tolist()):
        assert_close(score, want[item])


@pytest.mark.parametrize("make", list(COLUMNS.values()), ids=list(COLUMNS))
def test_bulk_writes_take_every_kind_of_column(db: tidaldb.Db, make: Callable[[list[Any]], Any]) -> None:
    assert [float(np.float32(w)) for w in WEIGHTS] == WEIGHTS, "exact in float32 too"
    # Whole seconds, given as ints: exact in int32 too.
    seconds = [int(t) for t in TIMES]
    assert seconds == TIMES
    assert db.signals("like", make(ITEMS), make(WEIGHTS), make(seconds)) == len(ITEMS)
    assert db.events_applied == len(ITEMS)
    assert_like_scores(db)
    # The same column types as read arguments.
    probe = make(sorted(set(ITEMS)))
    scores = db.scores("like", probe, at=T0 + 2 * HOUR)
    want = expected_like_scores(T0 + 2 * HOUR)
    assert [round(s, 12) for s in scores.tolist()] == [round(want[i], 12) for i in sorted(set(ITEMS))]
    top = db.retrieve(probe, {"like": 1.0}, limit=3, at=T0 + 2 * HOUR)
    assert [r.item for r in top] == sorted(want, key=lambda i: (-want[i], i))[:3]


def datetimes(tz: dt.tzinfo | None) -> list[dt.datetime]:
    """TIMES as datetimes in `tz` (naive ones in UTC)."""
    aware = [dt.datetime.fromtimestamp(t, UTC) for t in TIMES]
    return [d.astimezone(tz).replace(tzinfo=None) if tz is None else d.astimezone(tz) for d in aware]


PARIS = dt.timezone(dt.timedelta(hours=1), "CET")

#: Each way of passing TIMES as times rather than seconds.
TIME_COLUMNS: dict[str, Callable[[], Any]] = {
    "datetime64[ns]": lambda: np.array([int(t * 1e9) for t in TIMES], dtype="datetime64[ns]"),
    "datetime64[s]": lambda: np.array([int(t) for t in TIMES], dtype="datetime64[s]"),
    "datetime64[m]": lambda: np.array([int(t) // 60 for t in TIMES], dtype="datetime64[m]"),
    "aware-datetimes": lambda: datetimes(PARIS),
    "naive-datetimes-are-utc": lambda: datetimes(None),
    "pandas-naive": lambda: pd.Series(pd.to_datetime(datetimes(None))),
    "pandas-tz-aware": lambda: pd.Series(pd.to_datetime(datetimes(UTC))).dt.tz_convert("Asia/Tokyo"),
    "pandas-index": lambda: pd.DatetimeIndex(datetimes(UTC)),
    "polars-tz-aware": lambda: pl.Series(datetimes(UTC)).dt.convert_time_zone("America/New_York"),
    "pyarrow-timestamp-tz": lambda: pa.array(datetimes(UTC), type=pa.timestamp("ms", tz="Europe/Paris")),
}


@pytest.mark.parametrize("make", list(TIME_COLUMNS.values()), ids=list(TIME_COLUMNS))
def test_timestamps_may_be_datetimes(db: tidaldb.Db, make: Callable[[], Any]) -> None:
    db.signals("like", np.array(ITEMS, dtype=np.uint64), np.array(WEIGHTS), make())
    assert_like_scores(db)


@pytest.mark.parametrize(
    "when",
    [
        dt.datetime.fromtimestamp(T0, UTC),
        dt.datetime.fromtimestamp(T0, UTC).astimezone(PARIS),
        dt.datetime.fromtimestamp(T0, UTC).replace(tzinfo=None),
        np.datetime64(int(T0), "s"),
        np.datetime64(int(T0 * 1000), "ms"),
        pd.Timestamp(T0, unit="s"),
        pd.Timestamp(T0, unit="s", tz="Asia/Kolkata"),
        np.int64(int(T0)),
    ],
    ids=["utc", "cet", "naive", "datetime64-s", "datetime64-ms", "pandas", "pandas-tz", "np-int64"],
)
def test_scalar_times_may_be_datetimes(db: tidaldb.Db, when: Any) -> None:
    db.signal("like", 1, 2.0, ts=when)
    assert_close(db.score("like", 1, at=T0 + HOUR), 1.0)
    assert_close(db.score("like", 1, at=when), 2.0)
    assert db.window_count("view", 1, "1h", at=when) == 0
    top = db.retrieve([2, 1], {"like": 1.0}, limit=1, at=when)
    assert [(r.item, r.score) for r in top] == [(1, 2.0)]


def test_durations_may_be_timedeltas() -> None:
    by_text = tidaldb.Schema().signal("a", half_life="90m").signal("b", lifetime="2d")
    by_delta = tidaldb.Schema().signal("a", half_life=dt.timedelta(minutes=90)).signal("b", lifetime=dt.timedelta(days=2))
    by_numpy = tidaldb.Schema().signal("a", half_life=np.timedelta64(90, "m")).signal("b", lifetime=np.timedelta64(48, "h"))
    assert by_delta == by_text == by_numpy
    assert tidaldb._native.parse_duration(dt.timedelta(milliseconds=1500)) == 1.5
    cluster = tidaldb.Cluster(by_text, regions=["a", "b"], latency=dt.timedelta(milliseconds=30), jitter=np.timedelta64(0, "ms"))
    start = cluster.now
    cluster.run_for(dt.timedelta(seconds=2))
    assert cluster.now - start == pytest.approx(2.0)
    with pytest.raises(InvalidArgument) as e:
        cluster.run_for(-dt.timedelta(seconds=1))
    assert type(e.value) is InvalidArgument and "seconds" in str(e.value)
    with pytest.raises(TypeError) as t:
        cluster.run_for(dt.date(2024, 1, 1))
    assert type(t.value) is TypeError and "timedelta" in str(t.value)


NULLS: dict[str, Callable[[], Any]] = {
    "pandas-NA": lambda: pd.Series([1, None, 3], dtype="Int64"),
    "polars-null": lambda: pl.Series([1, None, 3]),
    "pyarrow-null": lambda: pa.array([1, None, 3]),
    "capsule-null": lambda: CapsuleArray([1, None, 3]),
}


@pytest.mark.parametrize("make", list(NULLS.values()), ids=list(NULLS))
def test_nulls_are_refused_naming_the_first(db: tidaldb.Db, make: Callable[[], Any]) -> None:
    for args in ((make(), np.ones(3)), (np.arange(3), make())):
        with pytest.raises(InvalidArgument) as e:
            db.signals("like", *args)
        assert type(e.value) is InvalidArgument and "element 1 is null" in str(e.value)
    nat = np.array([int(T0), "NaT", int(T0)], dtype="datetime64[s]")
    with pytest.raises(InvalidArgument) as e:
        db.signals("like", np.arange(3), np.ones(3), nat)
    assert type(e.value) is InvalidArgument and "element 1 is NaT" in str(e.value)
    assert db.events_applied == 0


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ([1, -2], "element 1 is -2"),
        ([1, 2**64], "element 1 is 18446744073709551616"),
        ([1, True], "element 1 is a bool"),
        ([1, 2.0], "element 1 is a float"),
        (pd.Series([0.5, 1.5]), "expected integer entity ids"),
        (pl.Series(["a", "b"]), "expected integer entity ids"),
        ({1: 2}, "got a dict"),
    ],
    ids=["negative", "too-large", "bool", "float", "pandas-float", "polars-str", "dict"],
)
def test_bad_id_columns_say_which_element(db: tidaldb.Db, bad: Any, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        db.signals("like", bad, np.ones(2))
    assert type(e.value) is InvalidArgument and "items" in str(e.value) and fragment in str(e.value)
    assert db.events_applied == 0


def test_arrow_objects_without_pyarrow_are_refused_saying_so(db: tidaldb.Db, monkeypatch: pytest.MonkeyPatch) -> None:
    column = CapsuleArray(ITEMS)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` now fails
    with pytest.raises(TypeError) as e:
        db.signals("like", column, np.ones(len(ITEMS)))
    assert type(e.value) is TypeError and "pyarrow" in str(e.value) and "items" in str(e.value)
    # pandas and polars columns do not need pyarrow.
    assert db.signals("like", pl.Series(ITEMS), pd.Series(WEIGHTS), pl.Series(TIMES)) == len(ITEMS)
    assert_like_scores(db)


@pytest.fixture
def filled(db: tidaldb.Db) -> tidaldb.Db:
    db.signals("like", np.array(ITEMS, dtype=np.uint64), np.array(WEIGHTS), np.array(TIMES))
    return db


def test_results_convert_to_pandas_polars_and_arrow(filled: tidaldb.Db) -> None:
    at = T0 + 2 * HOUR
    results = filled.retrieve(range(10), {"like": 1.0}, limit=4, at=at)
    items, scores = results.to_numpy()
    assert len(items) == 4
    want = expected_like_scores(at)
    assert items.tolist() == sorted(want, key=lambda i: (-want[i], i))[:4]
    frame = results.to_pandas()
    assert list(frame.columns) == ["item", "score"]
    assert frame["item"].dtype == np.uint64 and frame["score"].dtype == np.float64
    assert frame["item"].tolist() == items.tolist() and frame["score"].tolist() == scores.tolist()
    polars_frame = results.to_polars()
    assert polars_frame.schema == {"item": pl.UInt64, "score": pl.Float64}
    assert polars_frame["item"].to_list() == items.tolist()
    table = pa.table(results)
    assert table.schema == pa.schema([("item", pa.uint64()), ("score", pa.float64())])
    assert table.column("score").to_pylist() == scores.tolist()
    assert pl.DataFrame(results)["score"].to_list() == scores.tolist()
    empty = filled.retrieve([], {"like": 1.0}, at=at)
    assert pa.table(empty).num_rows == 0 and empty.to_pandas().shape == (0, 2)


def test_arrow_export_falls_back_to_polars_without_pyarrow(filled: tidaldb.Db, monkeypatch: pytest.MonkeyPatch) -> None:
    results = filled.retrieve(range(10), {"like": 1.0}, limit=3, at=T0 + HOUR)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    assert pl.DataFrame(results)["item"].to_list() == results.to_numpy()[0].tolist()
    monkeypatch.setitem(sys.modules, "polars", None)
    with pytest.raises(ImportError) as e:
        results.__arrow_c_stream__()
    assert "pyarrow" in str(e.value) and "polars" in str(e.value)
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError) as e:
        results.to_pandas()
    assert "pip install pandas" in str(e.value)


def test_bulk_scores_are_an_array_that_knows_its_items(filled: tidaldb.Db) -> None:
    probe = np.array([9, 1, 7], dtype=np.uint64)
    at = T0 + 2 * HOUR
    scores = filled.scores("like", probe, at=at)
    assert isinstance(scores, np.ndarray) and isinstance(scores, tidaldb.Scores)
    assert scores.dtype == np.float64 and scores.items is not None
    assert scores.items.tolist() == probe.tolist()
    want = expected_like_scores(at)
    assert_close(float(scores[0]), want[9])
    frame = scores.to_pandas()
    assert frame["item"].tolist() == [9, 1, 7] and frame["score"].tolist() == scores.tolist()
    # Zero-copy, as documented: pandas, pyarrow and polars wrap the buffers.
    assert np.shares_memory(frame["score"].to_numpy(), scores)
    column = pa.table(scores).column("score").chunk(0)
    assert np.shares_memory(column.to_numpy(zero_copy_only=True), scores)
    polars_frame = scores.to_polars()
    assert polars_frame.schema == {"item": pl.UInt64, "score": pl.Float64}
    assert np.shares_memory(polars_frame["score"].to_numpy(), scores)
    assert np.shares_memory(polars_frame["item"].to_numpy(), scores.items)
    # A derived array does not claim items it may not have.
    assert scores[::-1].items is None and list(scores[1:].to_pandas().columns) == ["score"]


def test_cluster_columns_and_health_tables() -> None:
    schema = tidaldb.Schema().signal("like", half_life=LIKE_HALF_LIFE)
    cluster = tidaldb.Cluster(schema, regions=["a", "b"], latency="1ms", jitter=0.0)
    written = cluster.write_many("like", pd.Series(ITEMS), pl.Series(WEIGHTS), pa.array(TIMES))
    assert written == len(ITEMS)
    cluster.await_convergence()
    at = T0 + 2 * HOUR
    want = expected_like_scores(at)
    for region in ("a", "b"):
        scores = cluster.scores("like", pl.Series(sorted(want)), region=region, at=at)
        assert_close(float(scores.to_pandas().set_index("item").loc[1, "score"]), want[1])
    health = cluster.health()
    frame = health.to_pandas()
    assert len(frame) == len(health["replicas"]) >= 2
    assert set(frame["region"]) == {"a", "b"}, "regions are named, as in the dict"
    # A Health is a dict, which pyarrow.table() reads as columns; the stream interface
    # gives the replicas table.
    assert pa.RecordBatchReader.from_stream(health).read_all().num_rows == len(frame)
    assert health.to_polars().height == len(frame)
    assert len(health.to_pandas("regions")) == 2
    with pytest.raises(InvalidArgument) as e:
        health.rows("nodes")
    assert type(e.value) is InvalidArgument and "replicas" in str(e.value)


def test_the_dataframe_libraries_are_imported_only_when_asked_for() -> None:
    code = (
        "import sys, numpy as np, tidaldb\n"
        "db = tidaldb.Db(tidaldb.Schema().signal('v', half_life='1h'))\n"
        "db.signals('v', [1, 2], [1.0, 2.0])\n"
        "r = db.retrieve([1, 2], {'v': 1.0})\n"
        "s = db.scores('v', np.arange(3))\n"
        "print(sorted(m for m in ('pandas', 'polars', 'pyarrow') if m in sys.modules))\n"
        "r.to_polars()\n"
        "print(sorted(m for m in ('pandas', 'polars', 'pyarrow') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "['polars']"], out.stdout + out.stderr


def test_a_client_takes_and_gives_dataframes() -> None:
    with servers(1) as cluster:
        client = cluster.connect()
        frame = pd.DataFrame({"item": ITEMS, "weight": WEIGHTS, "ts": pd.to_datetime(TIMES, unit="s", utc=True)})
        assert client.write_many("view", frame["item"], frame["weight"], frame["ts"]) == len(ITEMS)
        at = T0 + 2 * HOUR
        probe = pl.Series(sorted(set(ITEMS)))
        scores = eventually(lambda: client.scores("view", probe, at=at), lambda s: s.sum() > 0)
        want = expected_like_scores(at)  # "view" also has a one-hour half-life there
        got = scores.to_polars()
        for item, score in zip(got["item"].to_list(), got["score"].to_list()):
            assert_close(score, want[item])
        top = client.retrieve(probe, {"view": 1.0}, limit=2, at=at).to_pandas()
        assert top["item"].tolist() == sorted(want, key=lambda i: (-want[i], i))[:2]


def test_columns_of_the_exact_dtype_reach_the_core_without_a_copy() -> None:
    """What the README says is read in place: the array handed to the extension is a
    view of the column's own buffer (the extension then copies it once, as for numpy)."""
    from tidaldb import _columns

    weights = np.linspace(0.5, 2.0, 16)
    ids = np.arange(16, dtype=np.uint64)
    for column in (pd.Series(weights), pl.Series(weights), pa.array(weights)):
        # np.asarray of each is a view of the column's own buffer.
        assert np.shares_memory(_columns.floats(column, "weights"), np.asarray(column)), type(column)
    id_column = pd.Series(ids)
    assert np.shares_memory(_columns.ids(id_column, "items"), np.asarray(id_column))
    # A chunked column, or another dtype, is converted: a copy, with the same values.
    chunked = pa.chunked_array([weights[:8], weights[8:]])
    assert _columns.floats(chunked, "weights").tolist() == weights.tolist()
    assert _columns.ids(pl.Series(ids.astype(np.int32)), "items").tolist() == ids.tolist()


def test_an_event_export_converts_and_rebuilds_the_scores(tmp_path: Any) -> None:
    schema = tidaldb.Schema().signal("like", half_life=LIKE_HALF_LIFE).signal("view", half_life="1d")
    path = tmp_path / "d"
    with tidaldb.Db(schema, path) as db:
        db.signals("like", ITEMS, WEIGHTS, TIMES)
        db.hide(5, 9, ts=T0)
        db.unhide(5, 9, ts=T0 + 1.5)
        db.signal("view", 2, 0.5, ts=T0)
        exported = tidaldb.export_events(path)  # while open: the synced log
    assert len(exported) == len(ITEMS) + 3
    frame = exported.to_pandas()
    assert list(frame.columns) == ["tenant", "origin", "seq", "hlc_ns", "kind", "signal", "entity", "weight", "ts_ns", "user", "item"]
    assert frame["kind"].tolist() == ["signal"] * len(ITEMS) + ["hide", "unhide", "signal"]
    likes = frame[frame["signal"] == "like"]
    assert likes["entity"].tolist() == ITEMS and likes["weight"].tolist() == WEIGHTS
    assert likes["ts_ns"].tolist() == [int(t * 1e9) for t in TIMES]
    hides = frame[frame["kind"] != "signal"]
    assert hides["user"].tolist() == [5, 5] and hides["item"].tolist() == [9, 9]
    assert hides["ts_ns"].tolist() == [int(T0 * 1e9), int((T0 + 1.5) * 1e9)]
    assert hides["entity"].isna().all() and frame["user"].isna().sum() == len(ITEMS) + 1, "nulls stay nulls"
    # The rows, written back (times as datetime64[ns]), give the same scores.
    with tidaldb.Db(schema) as again:
        again.signals("like", likes["entity"], likes["weight"], likes["ts_ns"].to_numpy(dtype="datetime64[ns]"))
        assert_like_scores(again)
    polars_frame = exported.to_polars()
    assert polars_frame.height == len(exported) and polars_frame["entity"].null_count() == 2
    assert polars_frame.schema["ts_ns"] == pl.Int64 and polars_frame.schema["entity"] == pl.UInt64
    table = pa.table(exported)
    assert table.schema.field("weight").type == pa.float64() and table.column("user").null_count == len(ITEMS) + 1


def test_a_scores_export_matches_the_reads(tmp_path: Any) -> None:
    path = tmp_path / "d"
    schema = tidaldb.Schema().signal("like", half_life=LIKE_HALF_LIFE)
    at = T0 + 2 * HOUR
    with tidaldb.Db(schema, path) as db:
        db.signals("like", ITEMS, WEIGHTS, TIMES)
        db.register_tenant(4)
        db.signal("like", 77, 3.0, ts=T0, tenant=4)
    scores = tidaldb.export_scores(path, at=dt.datetime.fromtimestamp(at, UTC)).to_polars()
    want = expected_like_scores(at)
    assert scores["entity"].to_list() == sorted(want)
    for item, score in zip(scores["entity"].to_list(), scores["score"].to_list()):
        assert_close(score, want[item])
    assert tidaldb.export_scores(path, at=T0, tenant=4).columns == {"signal": ["like"], "entity": [77], "score": [3.0]}
    with pytest.raises(tidaldb.NotFound) as e:
        tidaldb.export_events(tmp_path / "missing")
    assert type(e.value) is tidaldb.NotFound
