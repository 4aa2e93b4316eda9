"""A large ``Db.signals`` call to an in-memory database from a program's only Python thread
reads its numpy arrays in place, keeping the interpreter, instead of copying them first.
It must write exactly what the copying path writes (the path taken whenever another Python
thread exists), refuse the same bad input with the same error and write nothing, stop at
Ctrl-C between whole chunks, and copy nothing.

Each scenario runs in a process of its own, so that it is the only Python thread (pytest
may have others). The random workload's seed is printed on failure; replay with
``TIDALDB_SEED=<seed> pytest tests/test_bulk_writes_in_place.py``.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np

PROGRAM = """
import json, os, signal, sys, threading, time
import numpy as np
import tidaldb

T0, HOUR = 1_700_000_000.0, 3600.0
seed = int(sys.argv[1])
rng = np.random.default_rng(seed)
N = 600_000

def schema():
    return tidaldb.Schema().signal("view", half_life=HOUR)

def workload():
    items = rng.integers(0, 40_000, N).astype(np.uint64)
    weights = rng.choice([0.5, 1.0, 2.0, 3.25], N)
    # Whole seconds repeat, so that many events share their entity's reference time.
    ts = T0 - np.floor(rng.random(N) * 2 * HOUR) - rng.choice([0.0, 0.25], N)
    return items, weights, ts

def scores(db, at):
    return db.scores("view", np.arange(40_000, dtype=np.uint64), at=at)

def refusal(db, items, weights, ts):
    before = db.events_applied
    try:
        db.signals("view", items, weights, ts=ts)
    except tidaldb.TidalError as e:
        assert db.events_applied == before, "a refused write wrote something"
        return [type(e).__name__, str(e)]
    return None

def status_mib(field):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(field + ":")) / 1024

# How far resident memory rose during `write` (Linux resets the peak, VmHWM, when "5" is
# written to /proc/self/clear_refs).
def peak_growth_mib(write):
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status_mib("VmRSS")
    write()
    return status_mib("VmHWM") - before

def run(scenario):
    items, weights, ts = workload()
    found = {}
    if scenario == "same":
        # A spread write uses a bounded scratch (a few MiB) per chunk; one earlier large
        # write leaves it with the allocator, so that neither measurement below counts it.
        with tidaldb.Db(schema()) as warm:
            warm.signals("view", items, weights, ts=ts)
        in_place = tidaldb.Db(schema())
        in_place.signals("view", items[:1000], weights[:1000], ts=ts[:1000])
        found["in_place_rss_growth_mib"] = peak_growth_mib(
            lambda: in_place.signals("view", items[1000:], weights[1000:], ts=ts[1000:]))
        # Another Python thread exists from here on: the copying path.
        idle = threading.Event()
        other = threading.Thread(target=idle.wait)
        other.start()
        copied = tidaldb.Db(schema())
        copied.signals("view", items[:1000], weights[:1000], ts=ts[:1000])
        found["copied_rss_growth_mib"] = peak_growth_mib(
            lambda: copied.signals("view", items[1000:], weights[1000:], ts=ts[1000:]))
        idle.set()
        other.join()
        at = T0 + HOUR
        a, b = scores(in_place, at), scores(copied, at)
        found["in_place_events"] = in_place.events_applied
        found["copied_events"] = copied.events_applied
        found["differ_bits"] = int(np.count_nonzero(a.view(np.uint64) != b.view(np.uint64)))
        want = np.bincount(items.astype(np.int64), weights * np.exp2(-(at - ts) / HOUR), minlength=40_000)
        found["off_formula"] = int(np.count_nonzero(~np.isclose(a, want, rtol=1e-9, atol=0.0)))
        # Without times, every event is dated at the call: a second later, within a
        # second's decay (2^(-1/3600) at a 1-hour half-life) of the plain sum of weights.
        undated = tidaldb.Db(schema())
        undated.signals("view", items[:70_000], weights[:70_000])
        got = undated.scores("view", np.arange(40_000, dtype=np.uint64), at=time.time() + 1.0)
        sums = np.bincount(items[:70_000].astype(np.int64), weights[:70_000], minlength=40_000)
        found["undated_off"] = int(np.count_nonzero((got > sums) | (got < sums * 2 ** (-3 / 3600))))
    elif scenario == "refusals":
        bad_w = weights.copy(); bad_w[123_456] = np.nan
        bad_t = ts.copy(); bad_t[234_567] = -5.0
        future = ts.copy(); future[100_001] = time.time() + 30 * 86_400.0
        cases = {"nan weight": (items, bad_w, ts), "negative time": (items, weights, bad_t),
                 "far future": (items, weights, future)}
        with tidaldb.Db(schema()) as db:
            found["in_place"] = {k: refusal(db, *v) for k, v in cases.items()}
            idle = threading.Event()
            other = threading.Thread(target=idle.wait)
            other.start()
            found["copied"] = {k: refusal(db, *v) for k, v in cases.items()}
            idle.set()
            other.join()
            found["events"] = db.events_applied
    elif scenario == "interrupt":
        big = 12_000_000
        k = np.arange(big, dtype=np.uint64)
        items, weights = k % np.uint64(7), 1.0 + (k % np.uint64(3)).astype(np.float64)
        def stop(signum, frame):
            raise KeyboardInterrupt
        signal.signal(signal.SIGALRM, stop)
        with tidaldb.Db(tidaldb.Schema().signal("total")) as db:
            signal.setitimer(signal.ITIMER_REAL, 0.03)
            try:
                db.signals("total", items, weights)
                found["written"] = None
            except KeyboardInterrupt as e:
                found["written"] = getattr(e, "written", 0)
            signal.setitimer(signal.ITIMER_REAL, 0)
            found["events"] = db.events_applied
            found["scores"] = [db.score("total", i) for i in range(7)]
    print(json.dumps(found))

run(sys.argv[2])
"""


def run(scenario: str) -> dict[str, Any]:
    seed = int(os.environ.get("TIDALDB_SEED", random.randrange(1 << 32)))
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PROGRAM), str(seed), scenario],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"seed {seed}: exit {done.returncode}\n{done.stderr[-3000:]}"
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    found["seed"] = seed
    return found


def test_a_write_read_in_place_is_the_copied_write_bit_for_bit_and_copies_nothing() -> None:
    found = run("same")
    assert found["in_place_events"] == found["copied_events"] == 600_000, found
    assert found["differ_bits"] == 0, found
    assert found["off_formula"] == 0 and found["undated_off"] == 0, found
    # The copying path holds 24 bytes an event at once (14 MiB for 600K). Both databases'
    # state (40K entities: about 3 MiB) and the chunks' scratch fit in what the warm-up
    # write left with the allocator.
    assert found["copied_rss_growth_mib"] - found["in_place_rss_growth_mib"] > 8, found


def test_bad_input_read_in_place_is_refused_as_when_copied_and_writes_nothing() -> None:
    found = run("refusals")
    in_place, copied = found["in_place"], found["copied"]
    for case in ("nan weight", "negative time", "far future"):
        assert in_place[case] is not None and in_place[case][0] == "InvalidArgument", found
        assert copied[case] is not None and copied[case][0] == "InvalidArgument", found
    # The same messages; the one for a future time says how far ahead it was, which moves.
    assert in_place["nan weight"] == copied["nan weight"], found
    assert in_place["negative time"] == copied["negative time"], found
    assert "ts: element 234567, -5 seconds" in in_place["negative time"][1], found
    assert "max_future_skew" in in_place["far future"][1], found
    assert found["events"] == 0, found


def test_ctrl_c_stops_a_write_read_in_place_between_whole_chunks() -> None:
    found = run("interrupt")
    written = found["written"]
    assert written is not None and 0 <= written < 12_000_000, found
    assert written % 4096 == 0, found
    assert found["events"] == written, found
    # Item i got the events k < written with k % 7 == i, weighing 1 + k % 3 each.
    for item, got in enumerate(found["scores"]):
        k = np.arange(item, written, 7)
        assert got == float((1 + k % 3).sum()), (item, found)
