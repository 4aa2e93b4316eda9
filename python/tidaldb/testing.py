"""Helpers for testing applications built on tidaldb: hypothesis strategies, a seeded
cluster fixture for pytest, and a convergence assertion that says what differs.

This module needs the ``testing`` extra (``pip install "tidaldb[testing]"``): it imports
hypothesis and pytest, which tidaldb itself does not depend on.

Enable the fixtures in a ``conftest.py``::

    pytest_plugins = ["tidaldb.testing"]

then write tests against a simulated cluster::

    from tidaldb.testing import assert_converged

    def test_views_replicate(tidal_cluster):
        tidal_cluster.write("view", 42, region="eu-west")
        tidal_cluster.await_convergence()
        assert_converged(tidal_cluster, "view", [42])

``tidal_cluster`` is seeded from the environment variable ``TIDALDB_SEED`` (default
:data:`DEFAULT_SEED`), and a failing test's report names the seed and the command that
replays it. Override the ``cluster_schema`` or ``cluster_options`` fixtures to change what
the cluster is built with.

The strategies generate valid inputs: :func:`schemas` (schemas), :func:`signal_batches`
(numpy batches for ``write_many`` / ``Db.signals``) and :func:`fault_schedules` (lists of
partitions, heals, crashes, restarts and waits; see :func:`run_schedule`).

PYTEST_DONT_REWRITE: this module raises its AssertionErrors itself, so pytest need not
rewrite it, and a conftest may import from it before naming it in ``pytest_plugins``
(which would otherwise warn that the module was imported too early to be rewritten).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import strategies as st

import tidaldb

__all__ = [
    "CLUSTER_START",
    "DEFAULT_SEED",
    "SEED_ENV",
    "WINDOWS",
    "SignalBatch",
    "PartitionStep",
    "HealStep",
    "CrashStep",
    "RestartStep",
    "RunForStep",
    "FaultStep",
    "schemas",
    "signal_batches",
    "fault_schedules",
    "run_schedule",
    "seed_from_env",
    "cluster_schema",
    "cluster_options",
    "tidal_cluster",
    "assert_converged",
]

#: Where a cluster's virtual clock starts: 2026-01-01T00:00:00Z, in Unix seconds.
CLUSTER_START = 1_767_225_600.0
#: The window names a schema may declare.
WINDOWS = ("1h", "24h", "7d", "30d")
#: The environment variable that seeds the ``tidal_cluster`` fixture.
SEED_ENV = "TIDALDB_SEED"
#: The seed of ``tidal_cluster`` when ``TIDALDB_SEED`` is not set.
DEFAULT_SEED = 0

_KINDS = ("item", "user", "creator")
_NAME_ALPHABET = "abcdefghijklmnopqrstuvwxyz_"
#: Decay durations as users write them: strings with units, and plain seconds.
_DURATIONS = st.one_of(
    st.sampled_from(["90s", "30m", "1h", "1.5h", "6h", "1d", "7d", "2w"]),
    st.floats(min_value=1.0, max_value=1e8, allow_nan=False, allow_infinity=False),
)


# ---------------------------------------------------------------------------- strategies


@st.composite
def schemas(draw: st.DrawFn, min_signals: int = 1, max_signals: int = 4) -> tidaldb.Schema:
    """Valid schemas of ``min_signals`` to ``max_signals`` signals with distinct names.

    Each signal decays exponentially (``half_life``), linearly (``lifetime``) or not at
    all, declares a subset of :data:`WINDOWS` (or none), and asks for velocity only when
    it has a window, as the schema requires. ``Schema.names`` lists what was drawn.
    """
    names = draw(
        st.lists(
            st.text(_NAME_ALPHABET, min_size=1, max_size=12),
            min_size=min_signals,
            max_size=max_signals,
            unique=True,
        )
    )
    schema = tidaldb.Schema()
    for name in names:
        decay = draw(st.sampled_from(["exponential", "linear", "none"]))
        duration = draw(_DURATIONS) if decay != "none" else None
        windows = draw(st.lists(st.sampled_from(WINDOWS), unique=True, max_size=len(WINDOWS)))
        schema.signal(
            name,
            kind=draw(st.sampled_from(_KINDS)),
            half_life=duration if decay == "exponential" else None,
            lifetime=duration if decay == "linear" else None,
            # An explicit empty list is refused for a decaying signal; "no windows" is None.
            windows=windows or None,
            velocity=bool(windows) and draw(st.booleans()),
        )
    return schema


@dataclass(frozen=True, eq=False)
class SignalBatch:
    """A batch of events of one signal, as numpy arrays ready for a bulk write."""

    signal: str
    items: npt.NDArray[np.uint64]
    weights: npt.NDArray[np.float64]
    #: Unix seconds per event, or None to stamp every event with the time now.
    ts: npt.NDArray[np.float64] | None

    def __len__(self) -> int:
        return len(self.items)

    def write_to(self, target: tidaldb.Db | tidaldb.Cluster | tidaldb.Tenant, **kwargs: Any) -> int:
        """Writes the batch with ``Db.signals`` or ``write_many``; ``kwargs`` go to
        ``write_many`` (``region=``, ``tenant=``). Returns the number of events written."""
        if isinstance(target, tidaldb.Db):
            return target.signals(self.signal, self.items, self.weights, self.ts, **kwargs)
        return target.write_many(self.signal, self.items, self.weights, self.ts, **kwargs)


def _no_negative_zero(w: float) -> float:
    # tidaldb refuses -0.0 (it would print as a negative weight); 0.0 is the same weight.
    return w + 0.0


@st.composite
def signal_batches(
    draw: st.DrawFn,
    signal_names: Sequence[str],
    *,
    min_size: int = 1,
    max_size: int = 32,
    max_item: int = 1_000,
    min_weight: float = -1_000.0,
    max_weight: float = 1_000.0,
    timestamps: bool | None = None,
    now: float = CLUSTER_START,
    max_age: float = 30 * 86_400.0,
) -> SignalBatch:
    """Batches of one of ``signal_names``: item ids in ``[0, max_item]`` (repeats are
    likely, so scores accumulate), finite weights in ``[min_weight, max_weight]`` (tidaldb
    accepts magnitudes up to 1e6), and timestamps in ``[now - max_age, now]``.

    ``timestamps=None`` draws whether the batch carries ``ts`` at all; ``True``/``False``
    force it. ``now`` defaults to a cluster's virtual start; pass the wall clock for a
    ``Db`` (tidaldb refuses events more than 5 minutes in its future).
    """
    if not signal_names:
        raise ValueError("signal_batches needs at least one signal name")
    signal = draw(st.sampled_from(list(signal_names)))
    n = draw(st.integers(min_size, max_size))
    items = draw(st.lists(st.integers(0, max_item), min_size=n, max_size=n))
    weights = draw(
        st.lists(
            st.floats(min_weight, max_weight, allow_nan=False, allow_infinity=False).map(
                _no_negative_zero
            ),
            min_size=n,
            max_size=n,
        )
    )
    with_ts = draw(st.booleans()) if timestamps is None else timestamps
    ts = (
        np.array(draw(st.lists(st.floats(now - max_age, now), min_size=n, max_size=n)), dtype=np.float64)
        if with_ts
        else None
    )
    return SignalBatch(
        signal,
        np.array(items, dtype=np.uint64),
        np.array(weights, dtype=np.float64),
        ts,
    )


@dataclass(frozen=True)
class PartitionStep:
    """Cuts ``a`` off from ``b`` (only ``a`` → ``b`` when ``one_way``)."""

    a: str
    b: str
    one_way: bool = False

    def apply(self, cluster: tidaldb.Cluster) -> tidaldb.Partition:
        """Returns the partition's handle. Dropping it does not heal the partition;
        its ``heal()`` or a :class:`HealStep` does."""
        return cluster.partition(self.a, self.b, one_way=self.one_way)


@dataclass(frozen=True)
class HealStep:
    """Heals every partition."""

    def apply(self, cluster: tidaldb.Cluster) -> None:
        """Heals every partition of ``cluster``."""
        cluster.heal_all()


@dataclass(frozen=True)
class CrashStep:
    """Crashes ``region``'s host; ``lose_unsynced`` drops what its disk had not synced."""

    region: str
    lose_unsynced: bool = False

    def apply(self, cluster: tidaldb.Cluster) -> int:
        """Returns the number of events the crash lost."""
        return cluster.crash(self.region, lose_unsynced=self.lose_unsynced)


@dataclass(frozen=True)
class RestartStep:
    """Restarts ``region``'s host, which then catches up."""

    region: str

    def apply(self, cluster: tidaldb.Cluster) -> None:
        """Restarts the crashed host of shard 0 in ``region``."""
        cluster.restart(self.region)


@dataclass(frozen=True)
class RunForStep:
    """Runs ``seconds`` of virtual time."""

    seconds: float

    def apply(self, cluster: tidaldb.Cluster) -> None:
        """Runs ``seconds`` of the cluster's virtual time."""
        cluster.run_for(self.seconds)


FaultStep = Union[PartitionStep, HealStep, CrashStep, RestartStep, RunForStep]


@st.composite
def fault_schedules(
    draw: st.DrawFn,
    regions: Sequence[str],
    *,
    max_steps: int = 12,
    max_run_for: float = 2.0,
    crashes: bool = True,
    lose_unsynced: bool = True,
) -> list[FaultStep]:
    """Lists of fault steps over ``regions``: partitions (two-way or one-way), heals,
    crashes, restarts and waits of up to ``max_run_for`` virtual seconds.

    A schedule never has every region down at once, only crashes a region that is up and
    only restarts one that is down, and ends with every partition healed and every crashed
    region restarted, so that ``await_convergence`` can follow it.
    """
    regions = list(regions)
    if not regions:
        raise ValueError("fault_schedules needs at least one region")
    steps: list[FaultStep] = []
    down: list[str] = []
    partitioned = False
    for _ in range(draw(st.integers(0, max_steps))):
        up = [r for r in regions if r not in down]
        kinds = ["run_for", "heal"]
        if len(regions) >= 2:
            kinds.append("partition")
        if crashes and len(up) >= 2:
            kinds.append("crash")
        if down:
            kinds.append("restart")
        kind = draw(st.sampled_from(kinds))
        step: FaultStep
        if kind == "partition":
            a, b = draw(st.lists(st.sampled_from(regions), min_size=2, max_size=2, unique=True))
            step = PartitionStep(a, b, one_way=draw(st.booleans()))
            partitioned = True
        elif kind == "heal":
            step = HealStep()
            partitioned = False
        elif kind == "crash":
            region = draw(st.sampled_from(up))
            step = CrashStep(region, lose_unsynced=lose_unsynced and draw(st.booleans()))
            down.append(region)
        elif kind == "restart":
            region = draw(st.sampled_from(down))
            step = RestartStep(region)
            down.remove(region)
        else:
            step = RunForStep(draw(st.floats(0.0, max_run_for, allow_nan=False)))
        steps.append(step)
    if partitioned:
        steps.append(HealStep())
    steps.extend(RestartStep(r) for r in down)
    return steps


def run_schedule(cluster: tidaldb.Cluster, steps: Iterable[FaultStep]) -> int:
    """Applies ``steps`` in order; returns the number of events that crashes lost."""
    lost = 0
    for step in steps:
        if isinstance(step, CrashStep):
            lost += step.apply(cluster)
        else:
            step.apply(cluster)
    return lost


# ------------------------------------------------------------------------------ fixtures


def seed_from_env() -> int:
    """The seed in ``TIDALDB_SEED`` (decimal, or ``0x`` hex), else :data:`DEFAULT_SEED`."""
    text = os.environ.get(SEED_ENV, "").strip()
    if not text:
        return DEFAULT_SEED
    try:
        seed = int(text, 0)
    except ValueError:
        raise ValueError(f"{SEED_ENV}={text!r} is not an integer seed") from None
    if not 0 <= seed < 2**64:
        raise ValueError(f"{SEED_ENV}={text!r} is outside 0..2**64-1")
    return seed


@pytest.fixture
def cluster_schema() -> tidaldb.Schema:
    """The schema ``tidal_cluster`` is built with; override this fixture to change it."""
    return (
        tidaldb.Schema()
        .signal("view", kind="item", half_life="1h", windows=["1h", "24h"])
        .signal("like", kind="item", half_life="24h", windows=["24h"])
    )


@pytest.fixture
def cluster_options() -> dict[str, Any]:
    """Keyword arguments for ``tidaldb.Cluster`` besides the schema and the seed
    (``regions``, ``write_concern``, ``durability``, ``latency``...); override to change."""
    return {}


@pytest.fixture
def tidal_cluster(
    request: pytest.FixtureRequest, cluster_schema: tidaldb.Schema, cluster_options: dict[str, Any]
) -> tidaldb.Cluster:
    """A simulated cluster seeded from ``TIDALDB_SEED`` (default :data:`DEFAULT_SEED`).

    The seed is recorded in the test's ``user_properties`` (JUnit XML shows it) and in a
    report section that pytest prints when the test fails, with the command to replay it.
    """
    if "seed" in cluster_options:
        raise ValueError(f"cluster_options must not set 'seed': tidal_cluster takes it from {SEED_ENV}")
    seed = seed_from_env()
    request.node.user_properties.append(("tidaldb_seed", seed))
    request.node.add_report_section(
        "setup",
        "tidaldb",
        f"tidal_cluster seed {seed}; replay with: {SEED_ENV}={seed} pytest {request.node.nodeid!r}",
    )
    return tidaldb.Cluster(cluster_schema, seed=seed, **cluster_options)


# ----------------------------------------------------------------------------- assertion


def _fmt(x: float) -> str:
    """A score with its exact bits, since == is the comparison."""
    x = float(x)  # a numpy scalar's repr would say np.float64(..)
    return f"{x!r} ({x.hex()})"


def assert_converged(
    cluster: tidaldb.Cluster,
    signal: str | None = None,
    items: Iterable[int] | npt.NDArray[np.uint64] | None = None,
    tenant: int | tidaldb.Tenant | None = None,
    *,
    at: float | None = None,
    regions: Sequence[str] | None = None,
) -> None:
    """Asserts that the replicas in ``regions`` (default: every region of the cluster, or
    of ``tenant``) hold the same events and, given ``signal``, read the same.

    Checks, all at the same virtual instant, and reports every difference at once:

    - every region is up;
    - per shard, every region's version vector equals the union of all of them; a region
      that lacks events is named with the origins it lacks and who has them;
    - per shard, regions with equal version vectors have equal state digests
      (``Cluster.state_digest``): the same events materialized into the same state;
    - with ``signal``: ``total_count`` agrees (signals that declare windows);
    - with ``signal`` and ``items``: each item's score, read ``at`` (default: virtual
      now), is equal with ``==`` in every region, since tidaldb converges bit for bit.

    Raises AssertionError naming each region that differs and how.
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not this helper's
    if items is not None and signal is None:
        raise TypeError("assert_converged: items need a signal to read their scores")
    t: tidaldb.Tenant | None
    if isinstance(tenant, int):  # tenant 0 is the default tenant
        t = None if tenant == 0 else cluster.tenant(tenant)
    else:
        t = tenant
    names = list(regions) if regions is not None else (t.regions if t is not None else cluster.regions)
    problems: list[str] = []
    shards = range(cluster.shards_per_region)
    up = []
    for region in names:
        down = [s for s in shards if not cluster.is_up(region, s)]
        if down:
            problems.append(f"{region} is down (shard {', '.join(map(str, down))}): restart it, then await convergence")
        else:
            up.append(region)

    for shard in shards:
        vvs: dict[str, dict[int, int]] = {}
        for region in up:
            try:
                vvs[region] = cluster.version_vector(region, shard, tenant=t)
            except tidaldb.NotFound:
                if t is None:
                    raise
                # A migrated shard of a multi-shard tenant: no replica of it here.
        union: dict[int, tuple[int, str]] = {}
        for region, vv in vvs.items():
            for origin, seq in vv.items():
                if seq > union.get(origin, (0, ""))[0]:
                    union[origin] = (seq, region)
        for region, vv in vvs.items():
            lacks = [
                f"origin {o} (applied through seq {vv.get(o, 0)}, {who} through {seq})"
                for o, (seq, who) in sorted(union.items())
                if vv.get(o, 0) < seq
            ]
            if lacks:
                problems.append(f"{region} (shard {shard}) lacks events of " + "; ".join(lacks))
        # Same events, so the materialized states must be the same too: compare digests of
        # the whole state (only now, since each walks the whole replica).
        if len(vvs) > 1 and all(vv == vvs[next(iter(vvs))] for vv in vvs.values()):
            digests = {region: cluster.state_digest(region, shard, tenant=t) for region in vvs}
            if len(set(digests.values())) > 1:
                problems.append(
                    f"shard {shard}: the regions applied the same events but their states differ "
                    "(state digests " + ", ".join(f"{r} {d:016x}" for r, d in digests.items()) + ")"
                )

    if signal is not None and up:
        try:
            counts = {r: cluster.total_count(signal, r, tenant=t) for r in up}
        except tidaldb.InvalidArgument:
            counts = {}  # the signal declares no windows, so it keeps no counts
        if len(set(counts.values())) > 1:
            problems.append(
                f"total_count({signal!r}) differs: " + ", ".join(f"{r} {c}" for r, c in counts.items())
            )
    if items is not None and signal is not None and up:
        ids = np.asarray(items if isinstance(items, np.ndarray) else list(items), dtype=np.uint64)
        scores = {r: cluster.scores(signal, ids, region=r, tenant=t, at=at) for r in up}
        ref = up[0]
        for region in up[1:]:
            differ = np.flatnonzero(scores[region] != scores[ref])
            for i in differ[:10]:
                problems.append(
                    f"{region} reads {signal!r} of item {int(ids[i])} as {_fmt(scores[region][i])}, "
                    f"{ref} reads {_fmt(scores[ref][i])}"
                )
            if len(differ) > 10:
                problems.append(f"{region}: {len(differ) - 10} more items of {signal!r} differ from {ref}")

    if problems:
        who = f"tenant {t.id}'s replicas" if t is not None else "the cluster"
        raise AssertionError(f"{who} did not converge:\n  - " + "\n  - ".join(problems))
