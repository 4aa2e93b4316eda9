"""Bad input to `Cluster`, `Tenant` and `Migration`: each call raises the exact exception
class, names the bad argument, and writes nothing on any replica."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import tidaldb
from tidaldb import Conflict, InvalidArgument, NotFound

REGIONS = ["us-east", "eu-west", "ap-south"]


@pytest.fixture
def schema() -> tidaldb.Schema:
    return tidaldb.Schema().signal("view", half_life="1h", windows=["1h"])


@pytest.fixture
def cluster(schema: tidaldb.Schema) -> tidaldb.Cluster:
    return tidaldb.Cluster(schema, seed=3)


def raises_exactly(cls: type[BaseException], names: str, f: Callable[..., Any], *args: Any, **kw: Any) -> str:
    """Calls ``f`` and checks it raises ``cls`` itself (not a subclass) naming ``names``."""
    with pytest.raises(cls) as info:
        f(*args, **kw)
    assert type(info.value) is cls, f"{type(info.value).__name__}: {info.value}"
    message = str(info.value)
    assert names in message, f"{names!r} not in {message!r}"
    return message


def state(cluster: tidaldb.Cluster) -> list[dict[int, int]]:
    """Every region's version vector: equal before and after means nothing was written."""
    return [cluster.version_vector(r) for r in cluster.regions]


def writes_nothing(
    cluster: tidaldb.Cluster, cls: type[BaseException], names: str, f: Callable[..., Any], *args: Any, **kw: Any
) -> None:
    before = state(cluster)
    raises_exactly(cls, names, f, *args, **kw)
    cluster.run_for(1.0)
    assert state(cluster) == before


@pytest.mark.parametrize(
    ("kwargs", "cls", "names"),
    [
        ({"regions": []}, InvalidArgument, "regions"),
        ({"regions": ["a", "a"]}, InvalidArgument, "regions"),
        ({"regions": ["a", ""]}, InvalidArgument, "regions"),
        ({"regions": "us-east"}, TypeError, "regions"),
        ({"shards_per_region": 0}, InvalidArgument, "shards_per_region"),
        ({"shards_per_region": -1}, InvalidArgument, "shards_per_region"),
        ({"shards_per_region": 70_000}, InvalidArgument, "shards_per_region"),
        ({"seed": -1}, InvalidArgument, "seed"),
        ({"seed": "x"}, TypeError, "seed"),
        ({"seed": True}, TypeError, "seed"),
        ({"latency": "-5ms"}, InvalidArgument, "latency"),
        ({"latency": -0.1}, InvalidArgument, "latency"),
        ({"latency": "soon"}, InvalidArgument, "latency"),
        ({"jitter": float("nan")}, InvalidArgument, "jitter"),
        ({"jitter": float("inf")}, InvalidArgument, "jitter"),
        ({"loss": 1.5}, InvalidArgument, "loss"),
        ({"loss": -0.1}, InvalidArgument, "loss"),
        ({"loss": float("nan")}, InvalidArgument, "loss"),
        ({"loss": "high"}, TypeError, "loss"),
        ({"write_concern": "quorum"}, InvalidArgument, "write_concern"),
        ({"write_concern": 3}, InvalidArgument, "write_concern"),
        ({"write_concern": -1}, InvalidArgument, "write_concern"),
        ({"write_concern": 1.5}, TypeError, "write_concern"),
        ({"durability": "sometimes"}, InvalidArgument, "durability"),
    ],
    ids=repr,
)
def test_constructor_arguments(schema: tidaldb.Schema, kwargs: dict[str, Any], cls: type[BaseException], names: str) -> None:
    raises_exactly(cls, names, tidaldb.Cluster, schema, **kwargs)


def test_constructor_needs_a_schema() -> None:
    with pytest.raises(TypeError):
        tidaldb.Cluster("view")  # type: ignore[arg-type]


def test_unknown_regions_are_not_found_everywhere(cluster: tidaldb.Cluster) -> None:
    ids = np.arange(3, dtype=np.uint64)
    writes_nothing(cluster, NotFound, "mars", cluster.write, "view", 1, region="mars")
    writes_nothing(cluster, NotFound, "mars", cluster.write_many, "view", ids, region="mars")
    writes_nothing(cluster, NotFound, "mars", cluster.hide, 1, 2, region="mars")
    for call in (
        lambda: cluster.score("view", 1, region="mars"),
        lambda: cluster.scores("view", ids, region="mars"),
        lambda: cluster.window_count("view", 1, "1h", region="mars"),
        lambda: cluster.total_count("view", "mars"),
        lambda: cluster.retrieve([1], {"view": 1.0}, region="mars"),
        lambda: cluster.is_hidden(1, 2, region="mars"),
        lambda: cluster.version_vector("mars"),
        lambda: cluster.partition("us-east", "mars"),
        lambda: cluster.crash("mars"),
        lambda: cluster.restart("mars"),
        lambda: cluster.is_up("mars"),
        lambda: cluster.register_tenant(5, regions=["mars"]),
        lambda: cluster.health().region("mars"),
    ):
        raises_exactly(NotFound, "mars", call)
    with pytest.raises(TypeError):
        cluster.write("view", 1, region=0)  # type: ignore[arg-type]
    # The unknown region did not register tenant 5 halfway.
    raises_exactly(NotFound, "t5", cluster.tenant, 5)


def test_unknown_signals_and_windows(cluster: tidaldb.Cluster) -> None:
    writes_nothing(cluster, NotFound, "nope", cluster.write, "nope", 1)
    writes_nothing(cluster, NotFound, "nope", cluster.write_many, "nope", np.arange(3, dtype=np.uint64))
    raises_exactly(NotFound, "nope", cluster.score, "nope", 1)
    raises_exactly(NotFound, "nope", cluster.total_count, "nope", "us-east")
    raises_exactly(InvalidArgument, "window", cluster.window_count, "view", 1, "2h")


@pytest.mark.parametrize(
    ("kwargs", "cls", "names"),
    [
        ({"item": -1}, InvalidArgument, "item"),
        ({"item": 2**64}, InvalidArgument, "item"),
        ({"item": "1"}, TypeError, "item"),
        ({"item": True}, TypeError, "item"),
        ({"weight": float("nan")}, InvalidArgument, "weight"),
        ({"weight": float("inf")}, InvalidArgument, "weight"),
        ({"weight": "1"}, TypeError, "weight"),
        ({"ts": float("nan")}, InvalidArgument, "ts"),
        ({"ts": -1.0}, InvalidArgument, "ts"),
        ({"tenant": 99}, NotFound, "t99"),
        ({"tenant": -1}, InvalidArgument, "tenant"),
        ({"tenant": "acme"}, TypeError, "tenant"),
        ({"idempotency_key": 1.5}, TypeError, "idempotency_key"),
        ({"idempotency_key": -3}, InvalidArgument, "idempotency_key"),
    ],
    ids=repr,
)
def test_single_write_arguments(cluster: tidaldb.Cluster, kwargs: dict[str, Any], cls: type[BaseException], names: str) -> None:
    args: dict[str, Any] = {"item": 1, **kwargs}
    item = args.pop("item")
    writes_nothing(cluster, cls, names, cluster.write, "view", item, **args)


def test_bulk_write_arrays(cluster: tidaldb.Cluster) -> None:
    ids = np.arange(3, dtype=np.uint64)
    cases: list[tuple[dict[str, Any], type[BaseException], str]] = [
        ({"items": ids, "weights": np.ones(2)}, InvalidArgument, "weights"),
        ({"items": ids, "ts": np.ones(2)}, InvalidArgument, "ts"),
        ({"items": ids.astype(np.float64)}, InvalidArgument, "items"),
        ({"items": [1, 2.5, 3]}, InvalidArgument, "items: element 1 is a float"),
        ({"items": ids.reshape(3, 1)}, InvalidArgument, "items"),
        ({"items": ids, "weights": np.array(["1", "1", "1"])}, InvalidArgument, "weights"),
        ({"items": ids, "weights": np.array([1.0, np.nan, 1.0])}, InvalidArgument, "weights"),
        ({"items": ids, "weights": np.array([1.0, 1.0, np.inf])}, InvalidArgument, "weights"),
        ({"items": np.array([5, -1, 6], dtype=np.int64)}, InvalidArgument, "items"),
        ({"items": ids, "ts": np.array([1.7e9, np.nan, 1.7e9])}, InvalidArgument, "ts: element 1 is NaN"),
        ({"items": ids, "ts": np.array([1.7e9, 1.7e9, -5.0])}, InvalidArgument, "ts: element 2"),
    ]
    for kwargs, cls, names in cases:
        writes_nothing(cluster, cls, names, cluster.write_many, "view", **kwargs)
    raises_exactly(InvalidArgument, "items", cluster.scores, "view", ids.astype(np.float64))


def test_bulk_write_with_a_bad_weight_in_a_later_shard_writes_nothing(schema: tidaldb.Schema) -> None:
    # With several shards the batch is split per shard: every check runs before any part
    # is written, so the shards before the bad element get nothing either.
    cluster = tidaldb.Cluster(schema, shards_per_region=3, seed=1)
    ids = np.arange(300, dtype=np.uint64)
    weights = np.ones(300)
    weights[-1] = np.nan
    writes_nothing(cluster, InvalidArgument, "weights", cluster.write_many, "view", ids, weights)


@pytest.mark.parametrize("bad", [-1, "-1s", float("nan"), "soon"], ids=repr)
def test_durations(cluster: tidaldb.Cluster, bad: Any) -> None:
    raises_exactly(InvalidArgument, "seconds", cluster.run_for, bad)
    raises_exactly(InvalidArgument, "timeout", cluster.await_convergence, timeout=bad)


def test_faults_misuse(cluster: tidaldb.Cluster) -> None:
    raises_exactly(InvalidArgument, "b: \"us-east\" is also a", cluster.partition, "us-east", "us-east")
    raises_exactly(InvalidArgument, "shard", cluster.crash, "us-east", shard=3)
    raises_exactly(InvalidArgument, "shard", cluster.version_vector, "us-east", shard=1)
    p = cluster.partition("us-east", "eu-west")
    p.heal()
    p.heal()  # healing twice does nothing
    assert not p.active


def test_tenant_registration(cluster: tidaldb.Cluster) -> None:
    raises_exactly(Conflict, "t0", cluster.register_tenant, 0)
    raises_exactly(InvalidArgument, "id", cluster.register_tenant, -5)
    raises_exactly(TypeError, "id", cluster.register_tenant, True)
    raises_exactly(InvalidArgument, "max_signals_per_sec", cluster.register_tenant, 5, max_signals_per_sec=0)
    raises_exactly(InvalidArgument, "max_signals_per_sec", cluster.register_tenant, 5, max_signals_per_sec=-1)
    raises_exactly(InvalidArgument, "max_signals_per_sec", cluster.register_tenant, 5, max_signals_per_sec=2**40)
    raises_exactly(InvalidArgument, "max_entities", cluster.register_tenant, 5, max_entities=0)
    raises_exactly(InvalidArgument, "max_storage_bytes", cluster.register_tenant, 5, max_storage_bytes=10)
    raises_exactly(InvalidArgument, "label", cluster.register_tenant, 5, label="a\x00b")
    assert cluster.tenants == []
    cluster.register_tenant(6)
    raises_exactly(Conflict, "t6", cluster.register_tenant, 6)
    raises_exactly(NotFound, "t77", cluster.tenant, 77)
    raises_exactly(NotFound, "default tenant", cluster.tenant, 0)
    raises_exactly(InvalidArgument, "regions", cluster.register_tenant, 8, regions=[])
    raises_exactly(NotFound, "t77", cluster.lag, tenant=77)


def test_migration_misuse(cluster: tidaldb.Cluster) -> None:
    tenant = cluster.register_tenant(6, regions=["us-east"])
    raises_exactly(NotFound, "mars", tenant.migrate, "mars")
    raises_exactly(InvalidArgument, "to_shard", tenant.migrate, "ap-south", to_shard=1)
    raises_exactly(InvalidArgument, "to_region", tenant.migrate, "us-east")
    migration = tenant.migrate("ap-south")
    raises_exactly(Conflict, "t6", tenant.migrate, "eu-west")
    raises_exactly(Conflict, "t6", migration.finalize)
    raises_exactly(Conflict, "t6", migration.gc_source)
    raises_exactly(InvalidArgument, "grace", migration.gc_source, grace=-1)
    assert migration.state == "idle"


def test_awaitables_refuse_bad_arguments_at_the_call(cluster: tidaldb.Cluster) -> None:
    # They are coroutines, which need no event loop to be made, but their arguments are
    # checked at the call, as for every other method, not when awaited.
    raises_exactly(InvalidArgument, "timeout", cluster.converged, timeout=-1)
    migration = cluster.register_tenant(3, regions=["us-east"]).migrate("eu-west")
    raises_exactly(InvalidArgument, "grace", migration.run, grace=-1)
    assert migration.state == "idle"


# Messages name the argument the Python caller passed: write_many's `ts` array (as the
# scalar `ts=` of write does), migrate's `to_region`, partition's `a` and `b`.
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -5.0])
def test_write_many_bad_ts_names_ts(cluster: tidaldb.Cluster, bad: float) -> None:
    message = raises_exactly(
        InvalidArgument, "ts", cluster.write_many, "view", np.array([1], dtype=np.uint64), ts=np.array([bad])
    )
    assert re.search(r"\bts\b", message), message
    assert cluster.total_count("view", "us-east") == 0


def test_migrate_to_its_own_region_names_to_region(cluster: tidaldb.Cluster) -> None:
    t = cluster.register_tenant(1, regions=["us-east"])
    raises_exactly(InvalidArgument, "to_region", t.migrate, "us-east")


def test_partition_of_a_region_with_itself_names_its_arguments(cluster: tidaldb.Cluster) -> None:
    message = raises_exactly(InvalidArgument, "argument", cluster.partition, "us-east", "us-east")
    assert re.search(r"argument (a|b)\b", message), message
