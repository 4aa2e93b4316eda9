"""`db.signal` resolves its signal name by the name's text, whatever string object carries it.

Literal names are recognized by identity (they are interned) and other strings by their text;
both must write the signal the text names, in each Db's own schema.
"""

from __future__ import annotations

import sys

import pytest

import tidaldb
from conftest import DAY, HOUR, T0, assert_close, exp_score


def two_signals(first: tuple[str, float], second: tuple[str, float]) -> tidaldb.Db:
    schema = tidaldb.Schema().signal(first[0], half_life=first[1]).signal(second[0], half_life=second[1])
    return tidaldb.Db(schema)


def test_a_name_built_at_run_time_writes_the_signal_it_spells() -> None:
    db = two_signals(("like", HOUR), ("view", DAY))
    built = "".join(["vi", "ew"])
    assert sys.intern(built) is not built, "the test needs a string object other than the literal"
    events = [(T0 + 60.0 * i, 0.5 + i % 3) for i in range(20)]
    for t, w in events:
        db.signal("view", 1, w, ts=t)
        db.signal(built, 2, w, ts=t)
    at = T0 + 2 * HOUR
    assert_close(db.score("view", 1, at=at), exp_score(events, at, DAY))
    assert db.score("view", 2, at=at) == db.score("view", 1, at=at)
    assert db.score("like", 1, at=at) == 0.0 and db.score("like", 2, at=at) == 0.0


def test_each_db_reads_a_name_in_its_own_schema() -> None:
    """The same name object stands for the first signal of one Db and the second of another."""
    hourly_first = two_signals(("a", HOUR), ("b", DAY))
    daily_second = two_signals(("b", HOUR), ("a", DAY))
    for db in (hourly_first, daily_second, hourly_first):
        db.signal("a", 1, 8.0, ts=T0)
    assert hourly_first.score("a", 1, at=T0 + HOUR) == 8.0, "two writes of 8, halved once"
    assert daily_second.score("a", 1, at=T0 + DAY) == 4.0
    assert hourly_first.score("b", 1, at=T0) == 0.0 and daily_second.score("b", 1, at=T0) == 0.0


def test_a_str_subclass_names_a_signal_by_its_text() -> None:
    class Name(str):
        pass

    db = two_signals(("like", HOUR), ("view", DAY))
    db.signal(Name("like"), 1, 2.0, ts=T0)
    assert db.score("like", 1, at=T0 + HOUR) == 1.0


@pytest.mark.parametrize("name", ["nope", "".join(["no", "pe"]), "vie"])
def test_unknown_names_raise_not_found_and_write_nothing(name: str) -> None:
    db = two_signals(("like", HOUR), ("view", DAY))
    with pytest.raises(tidaldb.NotFound) as e:
        db.signal(name, 1, 1.0, ts=T0)
    assert type(e.value) is tidaldb.NotFound
    assert "unknown signal" in str(e.value) and "like, view" in str(e.value)
    assert db.events_applied == 0


def test_a_name_that_is_not_a_string_is_a_type_error() -> None:
    db = two_signals(("like", HOUR), ("view", DAY))
    with pytest.raises(TypeError) as e:
        db.signal(b"like", 1, 1.0, ts=T0)  # type: ignore[arg-type]
    assert type(e.value) is TypeError
    assert db.events_applied == 0
