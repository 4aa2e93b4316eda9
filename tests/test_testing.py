"""The helpers of ``tidaldb.testing``: the convergence assertion must pass on a converged
cluster and name what differs otherwise, the strategies must only generate inputs tidaldb
accepts, and the fixture must be seeded reproducibly and say how to replay a failure.

The hypothesis tests here are derandomized (the same examples every run); a failure
prints the falsifying example.
"""

from __future__ import annotations

import math
import os
import re
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tidaldb
from tidaldb.testing import (
    CLUSTER_START,
    DEFAULT_SEED,
    WINDOWS,
    CrashStep,
    FaultStep,
    HealStep,
    PartitionStep,
    RestartStep,
    SignalBatch,
    assert_converged,
    fault_schedules,
    run_schedule,
    schemas,
    signal_batches,
)

# Imported above and then named as a plugin, as a user's conftest.py may do: the module
# opts out of assertion rewriting, so pytest does not warn that it was imported early.
pytest_plugins = ["tidaldb.testing", "pytester"]

REGIONS = ("us-east", "eu-west", "ap-south")
FAST = settings(max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])


def _schema() -> tidaldb.Schema:
    return tidaldb.Schema().signal("view", half_life="1h", windows=["1h", "24h"]).signal("like", half_life="24h")


# ------------------------------------------------------------------ assert_converged


def test_assert_converged_passes_on_a_converged_cluster(tidal_cluster: tidaldb.Cluster) -> None:
    for i, region in enumerate(REGIONS):
        tidal_cluster.write("view", 1 + i, 2.0, region=region)
        tidal_cluster.write("like", 7, 1.0, region=region)
    tidal_cluster.await_convergence()
    assert_converged(tidal_cluster)
    assert_converged(tidal_cluster, "view", [1, 2, 3, 4])
    assert_converged(tidal_cluster, "like", np.array([7], dtype=np.uint64), at=CLUSTER_START + 3600.0)


def test_assert_converged_names_the_region_cut_off_from_the_writes(tidal_cluster: tidaldb.Cluster) -> None:
    cut = [tidal_cluster.partition("eu-west", r) for r in ("us-east", "ap-south")]
    for _ in range(3):
        tidal_cluster.write("view", 9, 1.0, ts=CLUSTER_START, region="us-east")
    tidal_cluster.run_for(1.0)  # ap-south catches up; eu-west cannot

    with pytest.raises(AssertionError) as info:
        assert_converged(tidal_cluster, "view", [9], at=CLUSTER_START)
    msg = str(info.value)
    assert re.search(r"eu-west \(shard 0\) lacks events of origin \d+ \(applied through seq 0, us-east through 3\)", msg), msg
    assert "ap-south (shard 0) lacks" not in msg and "us-east (shard 0) lacks" not in msg, msg
    # The score of item 9 in eu-west is 0.0, in the reference region 3 unit views.
    assert re.search(r"eu-west reads 'view' of item 9 as 0\.0 \(0x0\.0p\+0\), us-east reads 3\.0", msg), msg
    assert "total_count('view') differs: us-east 3, eu-west 0, ap-south 3" in msg, msg

    for p in cut:
        p.heal()
    tidal_cluster.await_convergence()
    assert_converged(tidal_cluster, "view", [9])


def test_assert_converged_reports_a_region_that_is_down(tidal_cluster: tidaldb.Cluster) -> None:
    tidal_cluster.crash("ap-south")
    with pytest.raises(AssertionError, match=r"ap-south is down \(shard 0\)"):
        assert_converged(tidal_cluster)
    tidal_cluster.restart("ap-south")
    tidal_cluster.await_convergence()
    assert_converged(tidal_cluster)


def test_assert_converged_checks_a_tenant_on_its_own_regions(tidal_cluster: tidaldb.Cluster) -> None:
    tenant = tidal_cluster.register_tenant(5, regions=["us-east", "ap-south"])
    with tidal_cluster.partition("us-east", "ap-south"):
        tenant.write("view", 3, 1.0, region="ap-south")
        tidal_cluster.run_for(0.5)
        with pytest.raises(AssertionError, match=r"tenant 5's replicas did not converge:\n  - us-east \(shard 0\) lacks"):
            assert_converged(tidal_cluster, "view", [3], tenant=tenant)
        # The default tenant has no events at all, so it has converged.
        assert_converged(tidal_cluster, "view", [3])
    tidal_cluster.await_convergence()
    assert_converged(tidal_cluster, "view", [3], tenant=5)


def test_assert_converged_wants_a_signal_for_items(tidal_cluster: tidaldb.Cluster) -> None:
    with pytest.raises(TypeError, match="items need a signal"):
        assert_converged(tidal_cluster, items=[1])


# ------------------------------------------------------------------------ strategies


@FAST
@given(schema=schemas())
def test_schemas_are_valid_and_writable(schema: tidaldb.Schema) -> None:
    names = schema.names
    assert 1 <= len(names) <= 4 and len(set(names)) == len(names)
    with tidaldb.Db(schema) as db:
        for name in names:
            db.signal(name, 1, 2.0)
            assert math.isfinite(db.score(name, 1))


@FAST
@given(data=st.data(), schema=schemas(max_signals=2))
def test_signal_batches_write_whole_to_a_cluster_and_a_db(data: st.DataObject, schema: tidaldb.Schema) -> None:
    batch = data.draw(signal_batches(schema.names, max_size=16))
    assert isinstance(batch, SignalBatch) and batch.signal in schema.names
    assert batch.items.dtype == np.uint64 and batch.weights.dtype == np.float64
    assert np.isfinite(batch.weights).all() and not np.signbit(batch.weights[batch.weights == 0]).any()
    assert batch.ts is None or (batch.ts.dtype == np.float64 and len(batch.ts) == len(batch))
    cluster = tidaldb.Cluster(schema, seed=1)
    assert batch.write_to(cluster, region="eu-west") == len(batch)
    # A Db runs on the wall clock, which is after the cluster's start: the times are past.
    with tidaldb.Db(schema) as db:
        assert batch.write_to(db) == len(batch)
        assert db.events_applied == len(batch)


@FAST
@given(steps=fault_schedules(REGIONS, max_steps=10))
def test_fault_schedules_keep_a_region_up_end_whole_and_converge(steps: list[FaultStep]) -> None:
    down: set[str] = set()
    for step in steps:
        if isinstance(step, CrashStep):
            assert step.region not in down
            down.add(step.region)
            assert len(down) < len(REGIONS), "every region is down"
        elif isinstance(step, RestartStep):
            assert step.region in down
            down.remove(step.region)
    assert not down, "a crashed region is never restarted"
    if any(isinstance(s, PartitionStep) for s in steps):
        last_cut = max(i for i, s in enumerate(steps) if isinstance(s, PartitionStep))
        assert any(isinstance(s, HealStep) for s in steps[last_cut:])

    cluster = tidaldb.Cluster(_schema(), seed=3, durability="immediate")
    for i, region in enumerate(REGIONS):
        cluster.write("view", i, 1.0, region=region)
    assert run_schedule(cluster, steps) == 0, "immediate durability loses nothing"
    cluster.await_convergence(timeout=60.0)
    assert_converged(cluster, "view", range(len(REGIONS)))
    assert cluster.total_count("view", "ap-south") == len(REGIONS)


def test_windows_are_the_ones_tidaldb_declares() -> None:
    schema = tidaldb.Schema()
    schema.signal("s", half_life="1h", windows=list(WINDOWS))
    assert schema.names == ["s"]


# --------------------------------------------------------------------------- fixture


def test_the_fixture_records_its_seed(tidal_cluster: tidaldb.Cluster, request: pytest.FixtureRequest) -> None:
    expected = int(os.environ.get("TIDALDB_SEED", str(DEFAULT_SEED)), 0)
    assert tidal_cluster.seed == expected
    assert ("tidaldb_seed", expected) in request.node.user_properties


def test_a_seed_replays_the_same_run() -> None:
    """Same seed, same operations: the same virtual durations and version vectors (the
    seed drives link jitter and message loss); other seeds take other paths."""

    def run(seed: int) -> tuple[float, float, dict[int, int]]:
        c = tidaldb.Cluster(_schema(), seed=seed, jitter="15ms", loss=0.3)
        for i in range(20):
            c.write("view", i % 4, 1.0, region=REGIONS[i % 3])
            c.run_for(0.002)
        first = c.await_convergence()
        c.crash("eu-west")
        c.write("view", 1, 1.0, region="us-east")
        c.restart("eu-west")
        return first, c.await_convergence(), c.version_vector("eu-west")

    assert run(11) == run(11)
    assert len({run(s)[:2] for s in range(6)}) > 1, "the seed changes nothing"


CONFTEST = """
from tidaldb.testing import assert_converged

pytest_plugins = ["tidaldb.testing"]
"""

INNER_TESTS = """
import os
import tidaldb
import pytest


@pytest.fixture
def cluster_schema():
    return tidaldb.Schema().signal("clicks", half_life="1h", windows=["1h"])


def test_seed(tidal_cluster):
    assert tidal_cluster.seed == int(os.environ.get("TIDALDB_SEED", "0"), 0)
    tidal_cluster.write("clicks", 1)  # the overridden schema is the one in use
    assert tidal_cluster.regions == ["us-east", "eu-west", "ap-south"]


def test_fails(tidal_cluster):
    assert False, "boom"
"""


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_inner=textwrap.dedent(INNER_TESTS))
    return pytester


def test_the_fixture_takes_the_seed_from_the_environment_and_prints_how_to_replay(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDALDB_SEED", "4242")
    result = inner.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:asyncio", "-W", "error")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*tidal_cluster seed 4242; replay with: TIDALDB_SEED=4242 pytest 'test_inner.py::test_fails'*"]
    )
    assert "test_seed'" not in result.stdout.str(), "a passing test prints no replay line"


def test_the_fixture_defaults_to_a_fixed_seed(inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIDALDB_SEED", raising=False)
    result = inner.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:asyncio", "-W", "error")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([f"*tidal_cluster seed {DEFAULT_SEED}; replay with: TIDALDB_SEED={DEFAULT_SEED} pytest*"])


def test_a_bad_seed_is_an_error_that_names_the_variable(inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDALDB_SEED", "twelve")
    result = inner.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:asyncio", "-W", "error", "-k", "test_seed")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ValueError: TIDALDB_SEED='twelve' is not an integer seed*"])
