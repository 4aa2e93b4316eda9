"""Scores, windows and velocity against pure-Python oracles."""

from __future__ import annotations

import random

import pytest

import tidaldb
from conftest import DAY, HOUR, MINUTE, T0, assert_close, exp_score, linear_score, window_oracle


def random_events(seed: int, n: int, span: float) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    return [(T0 + rng.uniform(0, span), rng.choice([0.5, 1.0, 2.0, 3.25, 10.0])) for _ in range(n)]


def test_one_half_life_halves_a_score(db: tidaldb.Db) -> None:
    db.signal("like", 1, 8.0, ts=T0)
    assert db.score("like", 1, at=T0) == 8.0
    assert db.score("like", 1, at=T0 + HOUR) == 4.0
    assert db.score("like", 1, at=T0 + 3 * HOUR) == 1.0


@pytest.mark.parametrize("seed", range(5))
def test_exponential_matches_the_analytical_sum_in_any_arrival_order(db: tidaldb.Db, seed: int) -> None:
    events = random_events(seed, 300, 12 * HOUR)
    shuffled = events[:]
    random.Random(seed + 100).shuffle(shuffled)  # out-of-order and late arrivals
    for t, w in shuffled:
        db.signal("like", 7, w, ts=t)
        db.signal("view", 7, w, ts=t)
    for at in (T0 + 12 * HOUR, T0 + 13 * HOUR, T0 + 3 * DAY):
        assert_close(db.score("like", 7, at=at), exp_score(events, at, HOUR))
        assert_close(db.score("view", 7, at=at), exp_score(events, at, 7 * DAY))


def test_the_same_writes_give_identical_bits(schema: tidaldb.Schema) -> None:
    """Two databases fed the same writes in the same order agree to the last bit."""
    events = random_events(42, 200, 6 * HOUR)
    random.Random(1).shuffle(events)
    readings = []
    for _ in range(3):
        with tidaldb.Db(schema) as db:
            for t, w in events:
                db.signal("view", 1, w, ts=t)
            readings.append(db.score("view", 1, at=T0 + 7 * HOUR))
    assert readings[0] == readings[1] == readings[2]
    assert_close(readings[0], exp_score(events, T0 + 7 * HOUR, 7 * DAY))


def test_linear_decay_matches_its_oracle_and_reaches_zero(db: tidaldb.Db) -> None:
    events = [(T0, 4.0), (T0 + 30 * MINUTE, 2.0), (T0 + HOUR, 1.0)]
    for t, w in events:
        db.signal("share", 3, w, ts=t)
    for at in (T0 + HOUR, T0 + 90 * MINUTE, T0 + 2 * HOUR, T0 + 150 * MINUTE):
        assert_close(db.score("share", 3, at=at), linear_score(events, at, 2 * HOUR))
    assert db.score("share", 3, at=T0 + 4 * HOUR) == 0.0


def test_permanent_signals_never_decay(db: tidaldb.Db) -> None:
    for k in range(5):
        db.signal("follow", 9, 1.5, ts=T0 + k)
    assert db.score("follow", 9, at=T0 + 10 * 365 * DAY) == 7.5


def test_an_entity_without_signals_scores_zero(db: tidaldb.Db) -> None:
    assert db.score("view", 123456, at=T0) == 0.0
    assert db.window_count("view", 123456, "1h", at=T0) == 0


@pytest.mark.parametrize("window", ["1h", "24h", "7d", "30d", "all"])
def test_window_counts_match_the_granule_oracle(db: tidaldb.Db, window: str) -> None:
    span = {"1h": 3 * HOUR, "24h": 2 * DAY, "7d": 10 * DAY, "30d": 40 * DAY, "all": 5 * DAY}[window]
    events = sorted(random_events(7, 400, span))
    for t, w in events:
        db.signal("view", 5, w, ts=t)
    last = events[-1][0]
    step = span / 25
    for k in range(30):
        at = last + k * step
        count, total = window_oracle(events, window, at)
        assert db.window_count("view", 5, window, at=at) == count, (window, k)
        assert db.window_sum("view", 5, window, at=at) == pytest.approx(total, abs=1e-9)


def test_the_all_window_counts_every_applied_event_whatever_the_time(db: tidaldb.Db) -> None:
    """`all` is every applied event of the (item, signal): reads before, among and long after
    the events agree, and late arrivals count at once."""
    events = random_events(11, 300, 3 * DAY)
    for t, w in events:
        db.signal("view", 8, w, ts=t)
        db.signal("share", 8, w, ts=t)  # declares only "1h"; "all" comes with any window
    count, total = window_oracle(events, "all", T0)
    assert count == 300
    for at in (T0 - 30 * DAY, T0, T0 + 1.5 * DAY, T0 + 3 * DAY, T0 + 365 * DAY):
        assert window_oracle(events, "all", at) == (count, total)
        for signal in ("view", "share"):
            assert db.window_count(signal, 8, "all", at=at) == count, (signal, at)
            assert db.window_sum(signal, 8, "all", at=at) == pytest.approx(total, abs=1e-9)
    db.signal("view", 8, 2.0, ts=T0 - 10 * DAY)
    assert db.window_count("view", 8, "all", at=T0 - 30 * DAY) == count + 1
    assert db.window_count("view", 9, "all", at=T0) == 0


def test_windows_roll_as_events_arrive(db: tidaldb.Db) -> None:
    """Reads between arrivals: every event so far is counted, then rolls out by the minute."""
    seen: list[tuple[float, float]] = []
    for k in range(120):
        t = T0 + k * 90.0
        db.signal("view", 1, 1.0, ts=t)
        seen.append((t, 1.0))
        for at in (t, t + 30 * MINUTE):
            assert db.window_count("view", 1, "1h", at=at) == window_oracle(seen, "1h", at)[0]
            assert db.window_count("view", 1, "24h", at=at) == window_oracle(seen, "24h", at)[0]


def test_velocity_is_weight_per_hour_over_the_shortest_window(db: tidaldb.Db) -> None:
    events = [(T0 + k * MINUTE, 2.5) for k in range(90)]
    for t, w in events:
        db.signal("view", 4, w, ts=t)
    for at in (T0 + 89 * MINUTE, T0 + 2 * HOUR):
        _, total = window_oracle(events, "1h", at)
        assert db.velocity("view", 4, at=at) == pytest.approx(total / 1.0, abs=1e-9)


def test_reads_default_to_now() -> None:
    schema = tidaldb.Schema().signal("view", half_life="1d", windows=["1h"])
    with tidaldb.Db(schema) as db:
        db.signal("view", 1, 2.0)  # timestamped by the clock
        # A day's half-life loses < 1e-6 over a few milliseconds.
        assert db.score("view", 1) == pytest.approx(2.0, rel=1e-6)
        assert db.window_count("view", 1, "1h") == 1
