"""tidaldb.plotting: the timelines against what the simulated cluster must have done, and
one smoke test per plot.

The collection helpers are checked against expectations that do not come from the code
under test: a burst of writes is lacked by every other region until the fastest possible
delivery (latency - jitter) and by nobody once the cluster has converged (the lag is the
control plane's gauge, which hears of the burst at the first tick); the region that
took every write reads the analytical decay sum of exactly the acknowledged writes; a
region cut off reads 0; a crashed leader is absent from the timeline until the cluster
restarts it. Everything runs on virtual time from fixed seeds, so each test replays exactly.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import tidaldb
from conftest import assert_close, exp_score
from tidaldb.plotting import (
    MIGRATION_STATES,
    FailoverTimeline,
    LagTimeline,
    ScoreTimeline,
    failover_timeline,
    decay_curve,
    lag_cleared_at,
    lag_timeline,
    migration_timeline,
    plot_decay,
    scores_agree_from,
    plot_failover,
    plot_lag,
    plot_migration,
    plot_scores,
    score_timeline,
)

REGIONS = ["us-east", "eu-west", "ap-south"]
HALF_LIFE = 2.0


def schema() -> tidaldb.Schema:
    # A short half-life, so that scores visibly decay over the seconds a test runs.
    return tidaldb.Schema().signal("view", half_life=HALF_LIFE, windows=["1h"])


def make_cluster(seed: int, latency: str = "20ms", jitter: str = "5ms") -> tidaldb.Cluster:
    return tidaldb.Cluster(schema(), seed=seed, latency=latency, jitter=jitter)


def cleared(t: list[float], lag: dict[str, list[int]]) -> float:
    """The first sample time, after some lag was seen, at which no region lacks anything."""
    lagging = next(i for i in range(len(t)) if any(series[i] for series in lag.values()))
    return next(t[i] for i in range(lagging, len(t)) if not any(series[i] for series in lag.values()))


# --- lag_timeline ---------------------------------------------------------------------------


def test_a_burst_is_lacked_until_the_link_delivers_it_then_by_nobody() -> None:
    cluster = make_cluster(seed=1, latency="80ms", jitter="5ms")
    burst = 40

    def drive(i: int) -> None:
        if i == 0:
            for k in range(burst):
                cluster.write("view", k, ts=cluster.now, region="us-east")

    tl = lag_timeline(cluster, 1.0, every=0.01, drive=drive)

    assert len(tl["t"]) == 101
    # Differences of floats near 1.8e9 (Unix seconds): exact to about 0.2 µs.
    assert tl["t"] == pytest.approx([i * 0.01 for i in range(101)], abs=1e-6)
    assert tl["start"] == pytest.approx(1_767_225_600.0)
    assert set(tl["lag"]) == set(REGIONS)
    assert tl["lag"]["us-east"] == [0] * 101, "the writer lacks none of its own writes"
    for region in ("eu-west", "ap-south"):
        series = tl["lag"][region]
        # The control plane hears of the burst at the first tick (10 ms), and no message is
        # delivered sooner than latency - jitter = 75 ms after it is sent.
        early = [lag for t, lag in zip(tl["t"], series) if 0.01 - 1e-6 <= t < 0.075 - 1e-6]
        assert early == [burst] * len(early) and len(early) >= 6, (region, series)
        after = series[1:]
        assert all(a >= b for a, b in zip(after, after[1:])), f"{region} lag grew: {series}"
        assert series[-1] == 0, (region, series)
    assert cluster.is_converged()


def test_lag_clears_later_over_slower_links() -> None:
    took = {}
    for latency in (0.005, 0.02, 0.08):
        cluster = make_cluster(seed=2, latency=f"{latency * 1000:g}ms", jitter="1ms")

        def drive(i: int, cluster: tidaldb.Cluster = cluster) -> None:
            if i == 0:
                for k in range(10):
                    cluster.write("view", k, ts=cluster.now, region="us-east")

        tl = lag_timeline(cluster, "500ms", every="5ms", drive=drive)
        took[latency] = cleared(tl["t"], tl["lag"])
        # Not before the events can arrive; within a round trip and a few heartbeats (50 ms).
        assert latency - 0.001 - 1e-6 <= took[latency] <= 2 * (latency + 0.001) + 0.2, took
    assert took[0.005] < took[0.02] < took[0.08], took


def test_the_durations_are_checked() -> None:
    cluster = make_cluster(seed=0)
    with pytest.raises(tidaldb.InvalidArgument, match="every"):
        lag_timeline(cluster, 1.0, every=0.0)
    with pytest.raises(tidaldb.InvalidArgument, match="seconds"):
        lag_timeline(cluster, -1.0)
    with pytest.raises(tidaldb.InvalidArgument, match="every"):
        lag_timeline(cluster, 1.0, every="10 parsecs")
    with pytest.raises(TypeError, match="every"):
        lag_timeline(cluster, 1.0, every=None)  # type: ignore[arg-type]
    assert cluster.now == 1_767_225_600.0, "a rejected call runs no time"
    # 0.3 / 0.1 is 2.9999999999999996 in floats: still 3 steps, 4 samples.
    assert len(lag_timeline(cluster, 0.3, every=0.1)["t"]) == 4
    assert len(lag_timeline(cluster, 0.0)["t"]) == 1


def test_durations_are_read_by_the_core_parser() -> None:
    from tidaldb._native import parse_duration

    assert parse_duration("1.5h") == 5400.0
    assert parse_duration("7d", "seconds") == 7 * 86_400.0
    assert parse_duration("250ms", "every") == 0.25
    assert parse_duration(2) == 2.0
    with pytest.raises(tidaldb.InvalidArgument, match="every"):
        parse_duration("7y", "every")
    with pytest.raises(tidaldb.InvalidArgument, match="seconds"):
        parse_duration(-1.0, "seconds")
    with pytest.raises(TypeError, match="every"):
        parse_duration(True, "every")


# --- score_timeline -------------------------------------------------------------------------


def test_scores_diverge_while_cut_off_and_are_equal_after_heal() -> None:
    cluster = make_cluster(seed=3)
    cuts: list[tidaldb.Partition] = []
    written: list[float] = []
    heal_at = 40

    def drive(i: int) -> None:
        if i == 0:
            cuts.append(cluster.partition("us-east", "eu-west"))
            cuts.append(cluster.partition("us-east", "ap-south"))
        if i < 25:
            written.append(cluster.now)
            cluster.write("view", 7, ts=cluster.now, region="us-east")
        if i == heal_at:
            for cut in cuts:
                cut.heal()

    tl = score_timeline(cluster, "view", 7, 2.0, every=0.02, drive=drive)

    assert tl["signal"] == "view" and tl["item"] == 7 and len(tl["t"]) == 101
    for i, t in enumerate(tl["t"]):
        at = tl["start"] + t
        # us-east took every write: it reads the decay sum of exactly those written so far.
        expected = exp_score(((w, 1.0) for w in written if w <= at), at, HALF_LIFE)
        assert_close(tl["scores"]["us-east"][i], expected)
        if i < heal_at:
            assert tl["scores"]["eu-west"][i] == 0.0, "cut off from every write"
            assert tl["scores"]["ap-south"][i] == 0.0, "cut off from every write"
    last = [tl["scores"][r][-1] for r in REGIONS]
    assert last[0] == last[1] == last[2], dict(zip(REGIONS, last))
    assert_close(last[0], exp_score(((w, 1.0) for w in written), cluster.now, HALF_LIFE))


# --- failover_timeline ----------------------------------------------------------------------


def test_the_failover_timeline_shows_the_leader_go_and_another_take_over() -> None:
    cluster = make_cluster(seed=4)
    cluster.run_for(0.1)  # until the control plane has heard every replica: all Healthy
    original = cluster.leader
    crash_at = 10

    def drive(i: int) -> None:
        if i == crash_at:
            cluster.crash(original)

    tl = failover_timeline(cluster, 2.0, every=0.01, drive=drive)

    assert tl["regions"] == REGIONS
    assert tl["leader"][:crash_at] == [original] * crash_at
    assert all(tl["health"][r][:crash_at] == ["Healthy"] * crash_at for r in REGIONS)
    after = tl["leader"][crash_at:]
    assert after[0] is None, "the crashed host cannot lead, and nobody is promoted at once"
    assert original not in after, "a crashed host never leads"
    new = after[-1]
    assert new is not None and new != original, after
    # Promotion comes after the election timeout (500 ms of silence; the last heartbeat was
    # at most 50 ms before the crash), and the leader then stays put.
    promoted = after.index(new)
    assert 0.45 <= tl["t"][crash_at + promoted] - tl["t"][crash_at] <= 1.0, after
    assert after[:promoted] == [None] * promoted and after[promoted:] == [new] * (len(after) - promoted)
    # The control plane judges health by what it hears: the crashed region reads Healthy
    # until its silence outlasts the timeout, then Offline until it restarts.
    health = tl["health"][original][crash_at:]
    offline = health.index("Offline")
    assert 0.45 <= tl["t"][crash_at + offline] - tl["t"][crash_at] <= 1.0, health
    assert health[:offline] == ["Healthy"] * offline and set(health[offline:]) == {"Offline"}
    for other in REGIONS:
        if other != original:
            assert set(tl["health"][other]) == {"Healthy"}, other

    def restart(i: int) -> None:
        if i == 0:
            cluster.restart(original)

    back = failover_timeline(cluster, 1.0, every=0.1, drive=restart)
    assert back["health"][original][-1] == "Healthy"
    assert back["leader"][-1] is not None


# --- migration_timeline ---------------------------------------------------------------------


def test_the_migration_timeline_records_every_state_in_order() -> None:
    cluster = make_cluster(seed=5)
    tenant = cluster.register_tenant(7, regions=["us-east"], label="acme")
    for k in range(20):
        tenant.write("view", k, ts=cluster.now)
    migration = tenant.migrate("eu-west")
    seen: list[str] = []

    def between(state: str) -> None:
        seen.append(state)
        if state == "dual_write":
            for k in range(5):
                tenant.write("view", 100 + k, ts=cluster.now)
            cluster.run_for(0.1)

    began = cluster.now
    states = migration_timeline(cluster, migration, grace=0.25, between=between)

    assert [s for _, s in states] == list(MIGRATION_STATES)
    assert seen == list(MIGRATION_STATES[:-1])
    times = [t for t, _ in states]
    assert times[0] == began
    assert times == sorted(times)
    assert times[3] - times[2] >= 0.1, "the 0.1 s of dual write run by `between`"
    assert times[4] - times[3] >= 0.25, "gc_source waits out the grace after the switch"
    assert tenant.total_count("view", "eu-west") == 25
    assert tenant.total_count("view", "us-east") == 0
    # A finished migration has nothing left to step.
    assert migration_timeline(cluster, migration) == [(cluster.now, "complete")]


# --- plots ----------------------------------------------------------------------------------


def data(values: object) -> list[float]:
    """A line's x or y data as a plain list (matplotlib keeps what it was given)."""
    return [float(v) for v in np.asarray(values)]


@pytest.fixture
def plt() -> Iterator[Any]:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    yield pyplot
    pyplot.close("all")  # more than 20 open figures would warn, and warnings are errors


def region_lines(ax: Any, regions: list[str]) -> list[Any]:
    return [line for line in ax.lines if line.get_label() in regions]


def vertical_lines(ax: Any) -> dict[str, float]:
    """Label → x of every vertical line (both x data points equal, spanning the axes)."""
    out = {}
    for line in ax.lines:
        xs = data(line.get_xdata())
        if len(xs) == 2 and xs[0] == xs[1]:
            out[line.get_label()] = xs[0]
    return out


def assert_legend_matches_what_is_drawn(ax: Any) -> None:
    """Every legend entry names a drawn artist, and every labelled artist is in the legend."""
    legend = ax.get_legend()
    assert legend is not None
    shown = [t.get_text() for t in legend.get_texts()]
    drawn = [a.get_label() for a in [*ax.lines, *ax.collections, *ax.patches] if not a.get_label().startswith("_")]
    assert shown == drawn, (shown, drawn)


def test_plot_lag_draws_one_line_per_region_and_marks_when_lag_cleared(plt: Any) -> None:
    tl: LagTimeline = {"start": 0.0, "t": [0.0, 0.1, 0.2, 0.3], "lag": {"a": [3, 1, 0, 0], "b": [0, 2, 0, 0]}}
    ax = plot_lag(tl, heal_at=0.05)
    lines = region_lines(ax, ["a", "b"])
    assert [data(line.get_ydata()) for line in lines] == [[3, 1, 0, 0], [0, 2, 0, 0]]
    assert lag_cleared_at(tl) == 0.2
    assert vertical_lines(ax) == {"healed at 0.05 s": 0.05, "caught up at 0.2 s": 0.2}
    assert_legend_matches_what_is_drawn(ax)
    _, given = plt.subplots()
    assert plot_lag(tl, ax=given) is given
    assert vertical_lines(given) == {"caught up at 0.2 s": 0.2}, "no heal mark unless given"
    # No lag at all, or lag to the end: nothing to mark.
    assert lag_cleared_at({"start": 0.0, "t": [0.0, 0.1], "lag": {"a": [0, 0]}}) is None
    assert lag_cleared_at({"start": 0.0, "t": [0.0, 0.1], "lag": {"a": [0, 4]}}) is None


def test_overlapping_regions_stay_distinguishable(plt: Any) -> None:
    regions = ["a", "b", "c", "d"]
    tl: LagTimeline = {"start": 0.0, "t": [0.0, 0.1], "lag": {r: [0, 0] for r in regions}}
    lines = region_lines(plot_lag(tl), regions)
    styles = {(line.get_linestyle(), line.get_linewidth()) for line in lines}
    assert len(styles) == len(regions), "identical lines would hide each other"
    widths = [line.get_linewidth() for line in lines]
    assert widths == sorted(widths, reverse=True), "each drawn over the last, thinner"


def test_plot_scores_draws_one_line_per_region(plt: Any) -> None:
    nan = float("nan")
    tl: ScoreTimeline = {
        "start": 0.0,
        "t": [0.0, 0.5],
        "signal": "view",
        "item": 7,
        "scores": {"a": [1.0, 0.5], "b": [0.0, nan], "c": [0.0, 0.5]},
    }
    ax = plot_scores(tl)
    assert len(region_lines(ax, ["a", "b", "c"])) == 3
    assert "7" in ax.get_title()
    assert vertical_lines(ax) == {}, "b is unavailable at the end: no agreement to mark"
    assert_legend_matches_what_is_drawn(ax)


def test_plot_scores_marks_the_heal_and_the_convergence(plt: Any) -> None:
    tl: ScoreTimeline = {
        "start": 0.0,
        "t": [0.0, 0.5, 1.0, 1.5],
        "signal": "view",
        "item": 7,
        "scores": {"a": [1.0, 0.8, 0.7, 0.6], "b": [0.0, 0.0, 0.7, 0.6]},
    }
    assert scores_agree_from(tl) == 1.0
    ax = plot_scores(tl, heal_at=0.75)
    assert vertical_lines(ax) == {"healed at 0.75 s": 0.75, "converged at 1 s": 1.0}
    assert_legend_matches_what_is_drawn(ax)


def test_plot_decay_marks_the_half_life(plt: Any) -> None:
    hour = 3600.0
    with tidaldb.Db(tidaldb.Schema().signal("fast", half_life="2h").signal("slow", half_life="6h")) as db:
        curves = [
            decay_curve(db, "fast", "2h", "12h", "15m", item=1),
            decay_curve(db, "slow", 6 * hour, "12h", "15m", item=2),
        ]
    for curve, h in zip(curves, (2.0, 6.0)):
        assert len(curve["t"]) == 49 and curve["half_life"] == h * hour
        for x, score in zip(curve["t"], curve["scores"]):
            assert_close(score, 2.0 ** (-x / (h * hour)))
    _, ax = plt.subplots()
    for curve in curves:
        plot_decay(curve, ax, unit=hour, unit_name="h")
    assert vertical_lines(ax) == {"half-life of fast: 2 h": 2.0, "half-life of slow: 6 h": 6.0}
    # Each mark has its curve's colour, and a point at half the initial score.
    by_label = {line.get_label(): line for line in ax.lines}
    for name, h in (("fast", 2.0), ("slow", 6.0)):
        color = by_label[name].get_color()
        assert by_label[f"half-life of {name}: {h:g} h"].get_color() == color
        points = [
            line for line in ax.lines
            if line.get_marker() == "o" and line.get_color() == color
        ]
        assert [(data(p.get_xdata()), data(p.get_ydata())) for p in points] == [([h], [0.5])]
    assert ax.get_xlabel() == "h since the event" and ax.get_ylabel() == "score"
    assert_legend_matches_what_is_drawn(ax)


def test_plot_failover_draws_the_leader_over_health_bands(plt: Any) -> None:
    tl: FailoverTimeline = {
        "start": 0.0,
        "t": [0.0, 0.1, 0.2, 0.3],
        "regions": ["a", "b"],
        "leader": ["a", None, "b", "b"],
        "health": {"a": ["Healthy", "Offline", "Offline", "Healthy"], "b": ["Healthy"] * 4},
    }
    ax = plot_failover(tl)
    assert len(ax.lines) == 1
    # Rows: -1 "no leader", 0 "a", 1 "b"; the last sample is held one step to the right.
    assert data(ax.lines[0].get_ydata()) == [0, -1, 1, 1, 1]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["no leader", "a", "b"]
    assert len(ax.collections) == 3 + 1, "one band per run of equal health"
    legend = ax.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == ["leader", "Healthy", "Offline"], (
        "the verdicts drawn, and no other"
    )


def test_plot_migration_draws_the_states_in_order(plt: Any) -> None:
    states = [
        (10.0, "idle"),
        (10.5, "target_created"),
        (10.5, "dual_write"),
        (11.0, "finalized"),
        (12.0, "complete"),
    ]
    ax = plot_migration(states)
    assert len(ax.lines) == 1
    assert data(ax.lines[0].get_xdata()) == [0.0, 0.5, 0.5, 1.0, 2.0]
    assert data(ax.lines[0].get_ydata()) == [0, 1, 2, 3, 4]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(MIGRATION_STATES)
    assert ax.get_ylabel() == "state reached" and ax.get_xlabel()
    assert ax.get_legend() is None and not ax.lines[0].get_label().startswith("state")
    with pytest.raises(tidaldb.InvalidArgument, match="paused"):
        plot_migration([(0.0, "idle"), (1.0, "paused")])
    with pytest.raises(tidaldb.InvalidArgument, match="states"):
        plot_migration([])


def test_a_missing_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes the import raise ImportError, as if it were not installed.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    tl: LagTimeline = {"start": 0.0, "t": [0.0], "lag": {"a": [0]}}
    with pytest.raises(ImportError, match=r"tidaldb\[notebook\]"):
        plot_lag(tl)


def test_importing_the_module_does_not_import_matplotlib() -> None:
    code = "import sys, tidaldb.plotting; assert 'matplotlib' not in sys.modules, 'imported'"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


def test_notebook_progress_uses_tqdm_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    """tqdm.auto picks a notebook widget in Jupyter and text elsewhere."""
    import types

    from tidaldb._display import progress_bar

    made: list[dict[str, Any]] = []
    fake = types.ModuleType("tqdm.auto")

    def tqdm(**kw: Any) -> dict[str, Any]:
        made.append(kw)
        return kw

    fake.tqdm = tqdm  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tqdm.auto", fake)
    bar = progress_bar(4, "migrating", initial=1)
    assert made == [{"total": 4, "desc": "migrating", "unit": "step", "initial": 1}] and bar is made[0]
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    assert progress_bar(4, "migrating") is None, "no tqdm: no bar, and the migration runs the same"
