"""A Schema pickles and copies exactly; the handles (Db, Cluster, Tenant, Client) refuse,
saying why and what to pass instead."""

from __future__ import annotations

import copy
import multiprocessing
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tidaldb
from tidaldb import InvalidArgument, SchemaError
from conftest import DAY, HOUR, T0, assert_close, exp_score
from server_support import servers


def rich_schema() -> tidaldb.Schema:
    return (
        tidaldb.Schema()
        .signal("view", kind="item", half_life="7d", windows=["1h", "24h", "7d", "30d"], velocity=True)
        .signal("like", kind="user", half_life=1 / 3)  # a third of a second: not a whole ns count of ms
        .signal("share", kind="creator", lifetime="2h", windows=["1h"])
        .signal("follow", kind="creator")
    )


COPIES: dict[str, Callable[[tidaldb.Schema], tidaldb.Schema]] = {
    **{f"pickle-{p}": (lambda s, p=p: pickle.loads(pickle.dumps(s, protocol=p))) for p in range(pickle.HIGHEST_PROTOCOL + 1)},
    "copy": copy.copy,
    "deepcopy": copy.deepcopy,
}


@pytest.mark.parametrize("make_copy", list(COPIES.values()), ids=list(COPIES))
def test_a_schema_round_trips_equal(make_copy: Callable[[tidaldb.Schema], tidaldb.Schema]) -> None:
    original = rich_schema()
    twin = make_copy(original)
    assert twin is not original and type(twin) is tidaldb.Schema
    assert twin == original and not (twin != original)
    assert repr(twin) == repr(original) and twin.names == original.names
    assert twin.__getstate__() == original.__getstate__()
    # A copy is independent: extending it leaves the original as it was.
    twin.signal("extra", half_life="1d")
    assert twin != original and len(original) == 4
    assert make_copy(tidaldb.Schema()) == tidaldb.Schema()


def test_equality_sees_every_part_of_a_signal() -> None:
    base = tidaldb.Schema().signal("a", half_life="1h", windows=["1h"])
    assert base == tidaldb.Schema().signal("a", half_life=3600.0, windows=["1h"])
    for other in (
        tidaldb.Schema().signal("b", half_life="1h", windows=["1h"]),
        tidaldb.Schema().signal("a", kind="user", half_life="1h", windows=["1h"]),
        tidaldb.Schema().signal("a", half_life="2h", windows=["1h"]),
        tidaldb.Schema().signal("a", lifetime="1h", windows=["1h"]),
        tidaldb.Schema().signal("a", half_life="1h", windows=["24h"]),
        tidaldb.Schema().signal("a", half_life="1h", windows=["1h"], velocity=True),
    ):
        assert base != other
    assert base != "a schema"
    with pytest.raises(TypeError):
        hash(base)  # mutable, so unhashable


def test_the_decay_survives_exactly(tmp_path: Path) -> None:
    """The unpickled schema opens the directory the original created (the stored schema
    must match exactly) and decays identically."""
    schema = rich_schema()
    with tidaldb.Db(schema, tmp_path / "d") as db:
        db.signal("like", 1, 1.0, ts=T0)
        db.signal("view", 2, 1.0, ts=T0)
        before = (db.score("like", 1, at=T0 + 1.0), db.score("view", 2, at=T0 + DAY))
    with tidaldb.Db(pickle.loads(pickle.dumps(schema)), tmp_path / "d") as db:
        after = (db.score("like", 1, at=T0 + 1.0), db.score("view", 2, at=T0 + DAY))
    assert after == before, "bit for bit"
    # A third of a second is kept as 333,333,333 ns, by the original and the copy alike.
    assert_close(after[0], exp_score([(T0, 1.0)], T0 + 1.0, 0.333_333_333))
    assert_close(after[1], exp_score([(T0, 1.0)], T0 + DAY, 7 * DAY))


def _score_in_child(schema: tidaldb.Schema) -> float:
    with tidaldb.Db(schema) as db:
        db.signal("view", 1, 1.0, ts=T0)
        return db.score("view", 1, at=T0 + 7 * DAY)


def test_a_schema_reaches_a_spawned_process() -> None:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(_score_in_child, (rich_schema(),)) == 0.5


@pytest.mark.parametrize(
    "state, cls, fragment",
    [
        ([("a", "item", "sometimes", 10, None, False)], InvalidArgument, "not a decay"),
        ([("a", "item", "permanent", 10, None, False)], InvalidArgument, "not a decay"),
        ([("a", "planet", "permanent", None, None, False)], InvalidArgument, "planet"),
        ([("a", "item", "exponential", 0, None, False)], SchemaError, "a"),
        ([("a", "item", "permanent", None, ["5h"], False)], InvalidArgument, "5h"),
    ],
    ids=["unknown-decay", "permanent-with-length", "unknown-kind", "zero-half-life", "unknown-window"],
)
def test_a_bad_state_is_refused_and_leaves_the_schema(state: Any, cls: type[Exception], fragment: str) -> None:
    schema = tidaldb.Schema().signal("kept", half_life="1h")
    with pytest.raises(cls) as e:
        schema.__setstate__(state)
    assert type(e.value) is cls and fragment in str(e.value)
    assert schema.names == ["kept"]


HANDLE_REFUSALS = [
    ("Db", "open a tidaldb.Db in the other process"),
    ("Cluster", "build a tidaldb.Cluster in the other process"),
    ("Tenant", "cluster.tenant(id)"),
]


def handles(tmp_path: Path) -> dict[str, Any]:
    schema = tidaldb.Schema().signal("like", half_life=HOUR)
    cluster = tidaldb.Cluster(schema, regions=["a", "b"])
    return {
        "Db": tidaldb.Db(schema, tmp_path / "d"),
        "Cluster": cluster,
        "Tenant": cluster.register_tenant(7),
    }


@pytest.mark.parametrize("name, instead", HANDLE_REFUSALS, ids=[n for n, _ in HANDLE_REFUSALS])
@pytest.mark.parametrize(
    "attempt",
    [pickle.dumps, copy.copy, copy.deepcopy, lambda h: pickle.dumps(h, protocol=0)],
    ids=["pickle", "copy", "deepcopy", "pickle-0"],
)
def test_handles_refuse_saying_what_to_do(tmp_path: Path, name: str, instead: str, attempt: Callable[[Any], Any]) -> None:
    handle = handles(tmp_path)[name]
    with pytest.raises(TypeError) as e:
        attempt(handle)
    message = str(e.value)
    assert type(e.value) is TypeError
    assert f"cannot pickle or copy a tidaldb.{name}" in message and instead in message
    if name == "Db":
        handle.close()


def test_a_client_refuses_too() -> None:
    with servers(1) as cluster:
        client = cluster.connect()
        with pytest.raises(TypeError) as e:
            pickle.dumps(client)
        assert type(e.value) is TypeError and "tidaldb.connect(...) in the other process" in str(e.value)
        with pytest.raises(TypeError):
            copy.deepcopy(client)


def test_a_db_still_works_after_a_refused_pickle(tmp_path: Path) -> None:
    with tidaldb.Db(tidaldb.Schema().signal("like", half_life=HOUR), tmp_path / "d") as db:
        with pytest.raises(TypeError):
            pickle.dumps(db)
        db.signal("like", 1, 1.0, ts=T0)
        assert db.score("like", 1, at=T0) == 1.0
