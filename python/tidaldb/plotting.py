"""Timelines of a simulated :class:`tidaldb.Cluster`, and matplotlib plots of them.

Part of the optional extra ``tidaldb[notebook]``. Collecting and drawing are separate: the
``*_timeline`` functions step a cluster through virtual time and return plain data (lists
and dicts) without touching matplotlib, so they can be tested and reused anywhere; the
``plot_*`` functions draw that data and import matplotlib only when called.

Every ``*_timeline`` function samples the cluster at virtual elapsed 0, ``every``,
``2 * every``, … up to ``seconds``, advancing it with ``cluster.run_for(every)`` between
samples. An optional ``drive(i)`` callback runs at each sample ``i`` *before* the sample is
taken, so writes, partitions and crashes it makes at sample ``i`` are in place when sample
``i`` is read (a score read in the region written to sees the writes at once).
Sample times are read back from ``cluster.now``, so they stay true when ``drive`` itself
advances time (a replicated write concern, ``await_convergence``); as differences of floats
near 1.8e9 they are exact to about 0.2 µs.

Lag and health are what the control plane reports, as :meth:`Cluster.lag` and
:meth:`Cluster.health` return them: it learns of writes and deliveries from the replicas'
reports, so right after a burst of writes (before any virtual time passes) the lag still
reads 0, and it falls back to 0 only once the followers' acknowledgements have reached
the leader, a link round trip plus a heartbeat or so after delivery. Likewise every region
reads "Offline" until the control plane first hears from it, at the first tick.

>>> import tidaldb
>>> from tidaldb.plotting import lag_timeline
>>> cluster = tidaldb.Cluster(tidaldb.Schema().signal("view", half_life="7d"))
>>> def burst(i: int) -> None:
...     if i == 0:
...         cluster.write("view", 1, region="us-east")
>>> tl = lag_timeline(cluster, 0.5, every=0.05, drive=burst)
>>> tl["lag"]["eu-west"]  # the control plane learns of the write at the first tick
[0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypedDict, Union

from tidaldb import _native
from tidaldb._native import parse_duration
from tidaldb.exceptions import InvalidArgument, Unavailable

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from tidaldb._native import Cluster, Migration, Tenant

__all__ = [
    "MIGRATION_STATES",
    "LagTimeline",
    "ScoreTimeline",
    "FailoverTimeline",
    "lag_timeline",
    "score_timeline",
    "failover_timeline",
    "migration_timeline",
    "decay_curve",
    "DecayCurve",
    "lag_cleared_at",
    "scores_agree_from",
    "plot_decay",
    "plot_lag",
    "plot_scores",
    "plot_failover",
    "plot_migration",
]

#: A migration's states in the order it passes through them, as the core names them.
MIGRATION_STATES: tuple[str, ...] = _native.MIGRATION_STATES

#: Fill colour of each region verdict in :func:`plot_failover`.
HEALTH_COLORS: dict[str, str] = {
    "Healthy": "tab:green",
    "Degraded": "tab:orange",
    "NeedsResync": "tab:olive",
    "Offline": "tab:red",
}

#: Line styles given to the regions in turn, so that regions whose lines coincide (equal
#: scores, no lag) stay distinguishable: each is drawn over the last with a thinner, dashed
#: or dotted line.
REGION_STYLES: tuple[dict[str, Any], ...] = (
    {"linestyle": "-", "linewidth": 4.0, "alpha": 0.55},
    {"linestyle": "--", "linewidth": 2.5},
    {"linestyle": ":", "linewidth": 2.0},
    {"linestyle": "-.", "linewidth": 1.5},
)

#: Seconds as a float, or a string such as ``"20ms"`` (``Union``: the alias is evaluated at run time).
Duration = Union[float, str]
Drive = Callable[[int], object]


class LagTimeline(TypedDict):
    """What :func:`lag_timeline` returns."""

    #: Virtual time (Unix seconds) of the first sample.
    start: float
    #: Virtual seconds since ``start`` of each sample.
    t: list[float]
    #: Region name → events that region's replicas lacked at each sample.
    lag: dict[str, list[int]]


class ScoreTimeline(TypedDict):
    """What :func:`score_timeline` returns."""

    start: float
    t: list[float]
    signal: str
    item: int
    #: Region name → the item's score read in that region at each sample (NaN while the
    #: region is unavailable).
    scores: dict[str, list[float]]


class DecayCurve(TypedDict):
    """What :func:`decay_curve` returns."""

    #: Seconds since the event of each sample.
    t: list[float]
    #: The score at each sample.
    scores: list[float]
    #: The signal's half-life in seconds.
    half_life: float
    #: The signal's name.
    signal: str


class FailoverTimeline(TypedDict):
    """What :func:`failover_timeline` returns."""

    start: float
    t: list[float]
    #: The cluster's regions, in order: the rows of :func:`plot_failover`.
    regions: list[str]
    #: The leader's region at each sample, or None while there is no live leader.
    leader: list[str | None]
    #: Region name → the control plane's verdict at each sample ("Healthy", "Degraded",
    #: "Offline").
    health: dict[str, list[str]]


def _seconds(name: str, value: Duration) -> float:
    """``value`` as seconds: a float, or a string such as ``"20ms"``; ``name`` is the argument.

    The core's parser reads it, so the plots accept exactly the durations the rest of the
    API does.
    """
    return parse_duration(value, name)


def _sample(
    cluster: Cluster,
    seconds: Duration,
    every: Duration,
    drive: Drive | None,
    take: Callable[[], None],
) -> tuple[float, list[float]]:
    """Calls ``drive(i)`` then ``take()`` at each sample, running ``every`` between samples.

    Returns the virtual start time and each sample's elapsed virtual seconds. The number of
    steps is fixed up front (``ceil(seconds / every)``), so float rounding cannot add or
    drop a sample.
    """
    total = _seconds("seconds", seconds)
    step = _seconds("every", every)
    if step == 0.0:
        raise InvalidArgument("every: must be a positive duration, not 0")
    # The tolerance keeps 0.3 / 0.1 = 2.9999999999999996 from becoming 4 steps.
    n = max(0, math.ceil(total / step - 1e-9))
    start = cluster.now
    t: list[float] = []
    for i in range(n + 1):
        if drive is not None:
            drive(i)
        t.append(cluster.now - start)
        take()
        if i < n:
            cluster.run_for(step)
    return start, t


def lag_timeline(
    cluster: Cluster,
    seconds: Duration,
    every: Duration = 0.01,
    *,
    drive: Drive | None = None,
    tenant: int | Tenant | None = None,
) -> LagTimeline:
    """Each region's replication lag, in events, sampled every ``every`` for ``seconds``.

    The lag is the control plane's gauge (:meth:`Cluster.lag`), which trails the actual
    deliveries by the time reports take to reach it (see the module docs). ``tenant``
    selects whose replicas are measured (the default tenant if None).
    """
    lag: dict[str, list[int]] = {r: [] for r in cluster.regions}

    def take() -> None:
        now = cluster.lag(tenant)
        for region, series in lag.items():
            series.append(int(now.get(region, 0)))

    start, t = _sample(cluster, seconds, every, drive, take)
    return {"start": start, "t": t, "lag": lag}


def score_timeline(
    cluster: Cluster,
    signal: str,
    item: int,
    seconds: Duration,
    every: Duration = 0.01,
    *,
    drive: Drive | None = None,
    tenant: int | Tenant | None = None,
) -> ScoreTimeline:
    """``item``'s score of ``signal`` read in each region at virtual now, over time.

    A region that cannot serve the read (its host is down) records NaN, which matplotlib
    draws as a gap. Any other error (an unknown signal, say) propagates.
    """
    scores: dict[str, list[float]] = {r: [] for r in cluster.regions}

    def take() -> None:
        for region, series in scores.items():
            try:
                series.append(cluster.score(signal, item, region=region, tenant=tenant))
            except Unavailable:
                series.append(math.nan)

    start, t = _sample(cluster, seconds, every, drive, take)
    return {"start": start, "t": t, "signal": signal, "item": item, "scores": scores}


def failover_timeline(
    cluster: Cluster,
    seconds: Duration,
    every: Duration = 0.01,
    *,
    drive: Drive | None = None,
) -> FailoverTimeline:
    """The leader's region and every region's health, over time.

    The leader is None while the control plane has no live leader (``cluster.leader``
    raises :class:`tidaldb.Unavailable`): between a crash of the leader's host and the
    promotion of another replica after the election timeout.
    """
    regions = list(cluster.regions)
    leader: list[str | None] = []
    health: dict[str, list[str]] = {r: [] for r in regions}

    def take() -> None:
        try:
            leader.append(cluster.leader)
        except Unavailable:
            leader.append(None)
        report = cluster.health()
        for region, series in health.items():
            series.append(report.region(region))

    start, t = _sample(cluster, seconds, every, drive, take)
    return {"start": start, "t": t, "regions": regions, "leader": leader, "health": health}


def migration_timeline(
    cluster: Cluster,
    migration: Migration,
    *,
    grace: Duration = 0.0,
    between: Callable[[str], object] | None = None,
) -> list[tuple[float, str]]:
    """Runs ``migration``'s remaining steps one by one; returns (virtual time, state) pairs.

    The first pair is the state before any step; one pair follows each step. ``between``
    is called with the current state before each step, to write or let time pass while
    the migration is, say, in dual write. The result is what :func:`plot_migration` draws.
    ``await migration.run()`` does the same steps in one call, without the record.
    """
    states: list[tuple[float, str]] = [(cluster.now, migration.state)]
    while (state := migration.state) != "complete":
        if between is not None:
            between(state)
        reached = migration.advance(grace)
        states.append((cluster.now, reached))
    return states


def decay_curve(
    db: Any,
    signal: str,
    half_life: Duration,
    seconds: Duration,
    every: Duration,
    *,
    item: int = 0,
    at: float = 1_700_000_000.0,
) -> DecayCurve:
    """Writes one event of weight 1 on ``item`` at ``at`` into ``db`` (a ``Db`` with the
    exponential ``signal``), and reads its score every ``every`` for ``seconds`` after.

    ``half_life`` is the signal's, as declared: it is what :func:`plot_decay` marks.
    """
    total = _seconds("seconds", seconds)
    step = _seconds("every", every)
    if step == 0.0:
        raise InvalidArgument("every: must be a positive duration, not 0")
    db.signal(signal, item, 1.0, ts=at)
    n = max(0, math.ceil(total / step - 1e-9))
    t = [i * step for i in range(n + 1)]
    scores = [float(db.score(signal, item, at=at + x)) for x in t]
    return {"t": t, "scores": scores, "half_life": _seconds("half_life", half_life), "signal": signal}


def lag_cleared_at(timeline: LagTimeline) -> float | None:
    """The first sample time from which no region lacks any event to the end of the
    timeline, once some lag was seen; None if lag never showed or never cleared."""
    t, lag = timeline["t"], list(timeline["lag"].values())
    lagging = [any(series[i] for series in lag) for i in range(len(t))]
    if not any(lagging):
        return None
    last = max(i for i, lags in enumerate(lagging) if lags)
    return t[last + 1] if last + 1 < len(t) else None


def scores_agree_from(timeline: ScoreTimeline, rel: float = 1e-9) -> float | None:
    """The first sample time from which every region reads the same score (within
    ``rel``) to the end of the timeline, after some disagreement; None otherwise."""
    t, series = timeline["t"], list(timeline["scores"].values())

    def agree(i: int) -> bool:
        values = [s[i] for s in series]
        if any(math.isnan(v) for v in values):
            return False
        return max(values) - min(values) <= rel * max(abs(v) for v in values)

    agreeing = [agree(i) for i in range(len(t))]
    if all(agreeing):
        return None
    last = max(i for i, ok in enumerate(agreeing) if not ok)
    return t[last + 1] if last + 1 < len(t) else None


def _mark(ax: Axes, x: float | None, label: str, **style: Any) -> None:
    """A labelled vertical line at ``x``, when there is one."""
    if x is not None:
        ax.axvline(x, label=f"{label} at {x:.3g} s", **style)


def _pyplot() -> Any:
    """``matplotlib.pyplot``, imported on first use with a hint when the extra is missing."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError(
            "tidaldb.plotting needs matplotlib: install the notebook extra with "
            "pip install 'tidaldb[notebook]'"
        ) from e
    return plt


def _axes(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    _, new = _pyplot().subplots(figsize=(8, 3.5))
    axes: Axes = new
    return axes


def plot_decay(curve: DecayCurve, ax: Axes | None = None, *, unit: float = 1.0, unit_name: str = "s") -> Axes:
    """The decay of one event, with its half-life marked: a dotted vertical line at the
    half-life, and a point where the curve crosses half the initial score.

    ``unit`` is the seconds per x unit (3600 with ``unit_name="h"`` for hours). Curves
    drawn on one axes each get their own colour, shared by their marks.
    """
    ax = _axes(ax)
    xs = [x / unit for x in curve["t"]]
    (line,) = ax.plot(xs, curve["scores"], label=f"{curve['signal']}")
    half = curve["half_life"] / unit
    color = line.get_color()
    ax.axvline(half, color=color, linestyle=":", label=f"half-life of {curve['signal']}: {half:g} {unit_name}")
    initial = curve["scores"][0] if curve["scores"] else 1.0
    ax.plot([half], [initial / 2], marker="o", color=color, linestyle="none")
    ax.set_xlabel(f"{unit_name} since the event")
    ax.set_ylabel("score")
    ax.set_title("Decay of one event")
    ax.legend()
    return ax


def plot_lag(timeline: LagTimeline, ax: Axes | None = None, *, heal_at: float | None = None) -> Axes:
    """One step line per region: events it lacks over virtual time. A vertical line marks
    when the lag cleared (:func:`lag_cleared_at`), and a dashed one ``heal_at`` (virtual
    seconds since the start) when a partition was healed."""
    ax = _axes(ax)
    for (region, series), style in zip(timeline["lag"].items(), _styles()):
        ax.plot(timeline["t"], series, drawstyle="steps-post", label=region, **style)
    _mark(ax, heal_at, "healed", color="0.4", linestyle="--")
    _mark(ax, lag_cleared_at(timeline), "caught up", color="0.2")
    ax.set_xlabel("virtual seconds")
    ax.set_ylabel("lag (events)")
    ax.set_title("Replication lag")
    ax.legend()
    return ax


def plot_scores(timeline: ScoreTimeline, ax: Axes | None = None, *, heal_at: float | None = None) -> Axes:
    """One line per region: the item's score as each region reads it. A vertical line
    marks when the regions came to agree (:func:`scores_agree_from`), and a dashed one
    ``heal_at`` (virtual seconds since the start) when a partition was healed."""
    ax = _axes(ax)
    for (region, series), style in zip(timeline["scores"].items(), _styles()):
        ax.plot(timeline["t"], series, label=region, **style)
    _mark(ax, heal_at, "healed", color="0.4", linestyle="--")
    _mark(ax, scores_agree_from(timeline), "converged", color="0.2")
    ax.set_xlabel("virtual seconds")
    ax.set_ylabel(f"score of {timeline['signal']!r}")
    ax.set_title(f"Item {timeline['item']} as each region sees it")
    ax.legend()
    return ax


def _styles() -> Iterator[dict[str, Any]]:
    """:data:`REGION_STYLES` in turn, for as many regions as there are."""
    return itertools.cycle(REGION_STYLES)


def _runs(values: Sequence[str]) -> list[tuple[int, int, str]]:
    """Maximal runs of equal values as (first index, end index exclusive, value)."""
    runs: list[tuple[int, int, str]] = []
    for i, v in enumerate(values):
        if runs and runs[-1][2] == v:
            runs[-1] = (runs[-1][0], i + 1, v)
        else:
            runs.append((i, i + 1, v))
    return runs


def plot_failover(timeline: FailoverTimeline, ax: Axes | None = None) -> Axes:
    """Region health as coloured bands, one row per region, and the leader as a step line.

    The leader line sits on its region's row, and on the bottom row "no leader" while there
    is none. A sample's band lasts until the next sample.
    """
    _pyplot()
    from matplotlib.patches import Patch

    ax = _axes(ax)
    t = timeline["t"]
    regions = timeline["regions"]
    row = {r: i for i, r in enumerate(regions)}
    # Each sample holds until the next; the last one is drawn one median step wide.
    width = (t[-1] - t[0]) / (len(t) - 1) if len(t) > 1 else 1.0
    ends = t[1:] + [t[-1] + width]
    for region in regions:
        for first, end, verdict in _runs(timeline["health"][region]):
            ax.broken_barh(
                [(t[first], ends[end - 1] - t[first])],
                (row[region] - 0.4, 0.8),
                facecolors=HEALTH_COLORS.get(verdict, "tab:gray"),
                alpha=0.3,
            )
    ys = [row[r] if r is not None else -1 for r in timeline["leader"]]
    (line,) = ax.plot(
        t + [ends[-1]], ys + ys[-1:], drawstyle="steps-post", color="black", lw=2, label="leader"
    )
    ax.set_yticks(range(-1, len(regions)), ["no leader", *regions])
    ax.set_ylim(-1.6, len(regions) - 0.4)
    ax.set_xlabel("virtual seconds")
    ax.set_title("Leader and region health")
    # The legend lists the verdicts drawn, and only them.
    drawn = {v for series in timeline["health"].values() for v in series}
    handles = [
        Patch(color=HEALTH_COLORS.get(v, "tab:gray"), alpha=0.3, label=v)
        for v in [*HEALTH_COLORS, *sorted(drawn - set(HEALTH_COLORS))]
        if v in drawn
    ]
    ax.legend(handles=[line, *handles], loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return ax


def plot_migration(states: Sequence[tuple[float, str]], ax: Axes | None = None) -> Axes:
    """A migration's state over virtual time, as a step line over the states in order.

    ``states`` is a list of (virtual time, state name) pairs, such as
    :func:`migration_timeline` returns; times are drawn relative to the first.
    """
    if not states:
        raise InvalidArgument("states: is empty; record at least the initial state")
    unknown = sorted({s for _, s in states} - set(MIGRATION_STATES))
    if unknown:
        raise InvalidArgument(
            f"states: {unknown} are not migration states (expected {', '.join(MIGRATION_STATES)})"
        )
    ax = _axes(ax)
    t0 = states[0][0]
    xs = [t - t0 for t, _ in states]
    ys = [MIGRATION_STATES.index(s) for _, s in states]
    ax.plot(xs, ys, drawstyle="steps-post", marker="o")
    ax.set_yticks(range(len(MIGRATION_STATES)), list(MIGRATION_STATES))
    ax.set_ylim(-0.5, len(MIGRATION_STATES) - 0.5)
    ax.set_ylabel("state reached")
    ax.set_xlabel("virtual seconds since the migration began")
    ax.set_title("Tenant migration")
    return ax
