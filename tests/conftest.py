"""Shared fixtures and the pure-Python oracles the tests compare tidaldb against."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

import tidaldb

#: A fixed moment (2023-11-14 22:13:20 UTC); every test passes explicit times.
T0 = 1_700_000_000.0
MINUTE = 60.0
HOUR = 3600.0
DAY = 86_400.0

#: Window name → (granule in ns, number of granules): the core's definition.
GRANULES = {
    "1h": (60 * 10**9, 60),
    "24h": (3600 * 10**9, 24),
    "7d": (6 * 3600 * 10**9, 28),
    "30d": (86_400 * 10**9, 30),
}


def ns(secs: float) -> int:
    """Unix seconds → the integer nanoseconds the core stores (exact at these magnitudes)."""
    return int(round(secs * 1e9))


def exp_score(events: Iterable[tuple[float, float]], at: float, half_life: float) -> float:
    """Analytical exponential decay: Σ w·2^(-(t - tᵢ)/h)."""
    h = half_life * 1e9
    return math.fsum(w * 2.0 ** (-(ns(at) - ns(t)) / h) for t, w in events)


def linear_score(events: Iterable[tuple[float, float]], at: float, lifetime: float) -> float:
    """Analytical linear decay: Σ w·max(0, 1 - (t - tᵢ)/lifetime)."""
    life = lifetime * 1e9
    return math.fsum(w * max(0.0, 1.0 - (ns(at) - ns(t)) / life) for t, w in events)


def window_oracle(events: Iterable[tuple[float, float]], window: str, at: float) -> tuple[int, float]:
    """Count and weight sum of the events whose granule lies in (g(at) - n, g(at)].

    ``"all"`` is not a span of granules: it counts every applied event, whatever ``at`` is
    (before, among or after the events), on any signal that declares at least one window.
    """
    if window == "all":
        evs = list(events)
        return len(evs), sum(round(w * 1e6) for _, w in evs) / 1e6
    g, n = GRANULES[window]
    hi = ns(at) // g
    hits = [w for t, w in events if hi - n < ns(t) // g <= hi]
    return len(hits), sum(round(w * 1e6) for w in hits) / 1e6


def assert_close(actual: float, expected: float, rel: float = 1e-9) -> None:
    assert math.isfinite(actual)
    assert abs(actual - expected) <= rel * max(abs(expected), 1e-300), (actual, expected)


@pytest.fixture
def schema() -> tidaldb.Schema:
    return (
        tidaldb.Schema()
        .signal("view", kind="item", half_life="7d", windows=["1h", "24h", "7d", "30d"], velocity=True)
        .signal("like", kind="item", half_life=HOUR)
        .signal("share", kind="item", lifetime="2h", windows=["1h"])
        .signal("follow", kind="creator")
    )


@pytest.fixture
def db(schema: tidaldb.Schema) -> Iterator[tidaldb.Db]:
    with tidaldb.Db(schema) as d:
        yield d


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"
