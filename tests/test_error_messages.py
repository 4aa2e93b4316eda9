"""Error messages that speak to a Python user: durations out of range are refused rather
than cut to fit, a time in milliseconds is recognised, and each message says what to do."""

from __future__ import annotations

import time

import numpy as np
import pytest

import tidaldb
from tidaldb import Conflict, InvalidArgument, NotFound, QuotaExceeded
from test_routing import START, items_by_shard, schema as routing_schema

T0 = 1_700_000_000.0


def message(cls: type[BaseException], fn: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(cls) as e:
        fn(*args, **kwargs)  # type: ignore[operator]
    assert type(e.value) is cls, f"{type(e.value).__name__}: {e.value}"
    return str(e.value)


def cluster(**kw: object) -> tidaldb.Cluster:
    schema = tidaldb.Schema().signal("view", half_life="1h", windows=["1h"]).signal("like", half_life="1h")
    return tidaldb.Cluster(schema, regions=["a", "b"], **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("seconds", [1e10, 2**64 / 1e9 + 3600, "200000d"], ids=["1e10", "2**64ns+1h", "200000d"])
def test_run_for_past_the_clock_is_refused_not_cut(seconds: object) -> None:
    c = cluster()
    start = c.now
    msg = message(InvalidArgument, c.run_for, seconds)
    assert "seconds" in msg and "past the last time the clock can hold" in msg
    assert c.now == start, "nothing ran"
    c.run_for(3600)
    assert c.now - start == pytest.approx(3600.0), "a duration in range runs in full"


@pytest.mark.parametrize("arg", ["latency", "jitter"])
def test_link_delays_beyond_a_day_are_refused(arg: str) -> None:
    for too_long in (1e10, 86_400.5, "2d"):
        msg = message(InvalidArgument, cluster, **{arg: too_long})
        assert arg in msg and "at most 86400 s" in msg
    cluster(**{arg: "1d"})  # a day is the longest taken


@pytest.mark.parametrize(
    "ts, unit",
    [(T0 * 1e3, "milliseconds"), (T0 * 1e6, "microseconds"), (T0 * 1e9, "nanoseconds")],
    ids=["ms", "us", "ns"],
)
def test_a_time_in_a_finer_unit_gets_a_hint(ts: float, unit: str) -> None:
    with tidaldb.Db(tidaldb.Schema().signal("view", half_life="1h")) as db:
        msg = message(InvalidArgument, db.signal, "view", 1, ts=ts)
        assert f"looks like {unit}" in msg and "divide" in msg
        msg = message(InvalidArgument, db.signals, "view", np.array([1]), np.ones(1), np.array([ts]))
        assert f"looks like {unit}" in msg
        assert "looks like" not in message(InvalidArgument, db.signal, "view", 1, ts=1e300)
        assert db.events_applied == 0


def test_unknown_windows_are_listed_or_said_to_be_none() -> None:
    schema = tidaldb.Schema().signal("view", half_life="1h", windows=["1h", "24h"]).signal("like", half_life="1h")
    with tidaldb.Db(schema) as db:
        msg = message(NotFound, db.window_count, "view", 1, "7d", at=T0)
        assert "its windows are: 1h, 24h" in msg
        msg = message(NotFound, db.window_count, "like", 1, "1h", at=T0)
        assert "declares no windows" in msg and "its windows are" not in msg


def test_velocity_says_how_to_declare_it_in_python() -> None:
    with tidaldb.Db(tidaldb.Schema().signal("like", half_life="1h", windows=["1h"])) as db:
        assert "velocity=True" in message(InvalidArgument, db.velocity, "like", 1, at=T0)
    assert "velocity=True" in message(InvalidArgument, cluster().velocity, "view", 1)


def test_restarting_a_running_region_says_it_is_running() -> None:
    c = cluster()
    msg = message(Conflict, c.restart, "b")
    assert "is running" in msg and "region 'b'" in msg.replace('"', "'")
    c.crash("b")
    c.restart("b")
    assert c.is_up("b")


def test_a_partly_written_batch_does_not_also_say_nothing_was_written() -> None:
    messages = {}
    for breaching in (0, 1):
        groups = [g for _, g in sorted(items_by_shard(2).items())]
        small, big = groups[1 - breaching][:5], groups[breaching][:15]
        c = tidaldb.Cluster(routing_schema(), seed=3, shards_per_region=2)
        tenant = c.register_tenant(1, max_entities=10)
        with pytest.raises(QuotaExceeded) as e:
            tenant.write_many("view", small + big, ts=[START] * 20)
        assert type(e.value) is QuotaExceeded
        messages[e.value.written] = str(e.value)
    assert set(messages) == {0, 5}, "one order breaches first, the other after a part landed"
    assert "nothing was written" in messages[0]
    assert "nothing was written" not in messages[5]
    assert "this shard's part was not written" in messages[5] and "5 of its 20 events" in messages[5]


def test_max_future_skew_is_settable() -> None:
    now = time.time()
    with tidaldb.Db(tidaldb.Schema().signal("view", half_life="1h"), max_future_skew="2h") as db:
        db.signal("view", 1, ts=now + 3600)  # beyond the default 5 minutes, within 2 h
        msg = message(InvalidArgument, db.signal, "view", 1, ts=now + 3 * 3600)
        assert "max_future_skew" in msg
    assert "max_future_skew" in message(InvalidArgument, tidaldb.Db, tidaldb.Schema().signal("v"), max_future_skew=-1.0)


def test_a_directory_open_in_this_process_is_named_as_such(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "d"
    schema = tidaldb.Schema().signal("view", half_life="1h")
    with tidaldb.Db(schema, path):
        msg = message(tidaldb.Unavailable, tidaldb.Db, schema, path)
        assert "open in this process already" in msg and "another process" not in msg
    with tidaldb.Db(schema, path) as again:  # closed: opens again
        again.signal("view", 1, ts=T0)


def test_a_timed_out_enter_dual_write_names_itself() -> None:
    c = cluster()
    tenant = c.register_tenant(3, regions=["a"])
    tenant.write("view", 1, ts=c.now)
    migration = tenant.migrate("b")
    with c.partition("a", "b"):
        msg = message(tidaldb.Timeout, migration.prepare_target)
        assert msg.startswith("timed out: prepare_target")
        msg = message(tidaldb.Timeout, migration.enter_dual_write)
        assert "enter_dual_write" in msg and "prepare_target" in msg and "safe to retry" in msg
    migration.enter_dual_write()  # healed: the retry goes through
    assert migration.state == "dual_write"


def test_a_schema_mismatch_shows_the_signals_as_declared(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "d"
    with tidaldb.Db(tidaldb.Schema().signal("view", half_life="7d", windows=["1h"]), path):
        pass
    msg = message(tidaldb.SchemaError, tidaldb.Db, tidaldb.Schema().signal("view", half_life="1d", windows=["1h"]), path)
    assert "view: item half_life=7d windows=[1h]" in msg and "view: item half_life=1d windows=[1h]" in msg
    assert "SignalDef" not in msg and "Exponential" not in msg


def test_max_future_skew_is_settable_on_a_cluster() -> None:
    c = cluster(max_future_skew="1h")
    c.write("view", 1, ts=c.now + 1800)
    assert "max_future_skew" in message(InvalidArgument, c.write, "view", 1, ts=c.now + 7200)
    assert "max_future_skew" in message(InvalidArgument, cluster().write, "view", 1, ts=cluster().now + 1800)


def test_durations_in_messages_are_written_as_python_users_write_them() -> None:
    c = cluster()
    c.write("view", 1, region="a")
    with c.partition("a", "b"):
        msg = message(tidaldb.Timeout, c.await_convergence, timeout=1.5)
    assert "did not converge within 1.5s" in msg, msg
    quota = c.register_tenant(4, max_signals_per_sec=1)
    with pytest.raises(QuotaExceeded) as e:
        for item in range(100):  # past the burst the bucket allows
            quota.write("view", item)
    msg = str(e.value)
    assert "retry after " in msg and "ms" not in msg.split("retry after ")[1], msg
