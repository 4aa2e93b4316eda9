"""A large ``Db.signals`` call to an in-memory database reads its contiguous numpy arrays in
place, a chunk at a time with the interpreter held, instead of copying them first; with
other Python threads alive it lets them run between chunks. Either way it must write
exactly what the copying path writes (the path of arrays it cannot read in place), refuse
the same bad input with the same error and write nothing, stop at Ctrl-C between whole
chunks, and copy nothing. A row that another thread or a signal handler makes invalid
during the call must stop it at that row's chunk, the events before it written.

Each scenario runs in a process of its own, so that it decides which Python threads exist
(pytest may have others). The random workload's seed is printed on failure; replay with
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

# The same columns as views with a stride: Db.signals copies them.
def strided(items, weights, ts):
    def spaced(a):
        b = np.empty(2 * len(a), dtype=a.dtype)
        b[::2] = a
        return b[::2]
    return spaced(items), spaced(weights), spaced(ts)

# While open, an idle second Python thread is alive (if `alive`).
class other_thread:
    def __init__(self, alive):
        self.alive, self.idle = alive, threading.Event()
        self.thread = threading.Thread(target=self.idle.wait)
    def __enter__(self):
        if self.alive:
            self.thread.start()
    def __exit__(self, *exc):
        if self.alive:
            self.idle.set()
            self.thread.join()

def run(scenario):
    items, weights, ts = workload()
    found = {}
    if scenario == "same":
        # A spread write uses a bounded scratch (a few MiB) per chunk; one earlier large
        # write leaves it with the allocator, so that no measurement below counts it.
        with tidaldb.Db(schema()) as warm:
            warm.signals("view", items, weights, ts=ts)
        dbs = {}
        # Twice each, the least growth kept: the allocator may have handed memory back to
        # the system between two writes, which the next then faults in again.
        for round in range(2):
            for path, (i, w, t) in (("in_place", (items, weights, ts)),
                                    ("shared", (items, weights, ts)),
                                    ("copied", strided(items, weights, ts))):
                db = dbs[path] = tidaldb.Db(schema())
                db.signals("view", i[:1000], w[:1000], ts=t[:1000])
                # Another Python thread is alive for the shared write only.
                with other_thread(path == "shared"):
                    grew = peak_growth_mib(
                        lambda: db.signals("view", i[1000:], w[1000:], ts=t[1000:]))
                key = path + "_rss_growth_mib"
                found[key] = min(found.get(key, grew), grew)
        at = T0 + HOUR
        want = np.bincount(items.astype(np.int64), weights * np.exp2(-(at - ts) / HOUR), minlength=40_000)
        a = scores(dbs["copied"], at)
        found["off_formula"] = int(np.count_nonzero(~np.isclose(a, want, rtol=1e-9, atol=0.0)))
        for path, db in dbs.items():
            found[path + "_events"] = db.events_applied
            b = scores(db, at)
            found[path + "_differ_bits"] = int(np.count_nonzero(a.view(np.uint64) != b.view(np.uint64)))
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
            found["copied"] = {k: refusal(db, *strided(*v)) for k, v in cases.items()}
            with other_thread(True):
                found["shared"] = {k: refusal(db, *v) for k, v in cases.items()}
            found["events"] = db.events_applied
    elif scenario == "spoiled":
        # Another thread makes the last row invalid, or shortens the array, while the write
        # runs: it gets the interpreter when the write shares it, after a switch interval.
        sys.setswitchinterval(0.0002)
        found["outcomes"] = []
        for attempt in range(8):
            w = weights.copy()
            go = threading.Event()
            def spoil():
                go.wait()
                if attempt % 2:
                    w.resize(N // 2, refcheck=False)
                else:
                    w[-1] = np.nan
            spoiler = threading.Thread(target=spoil)
            spoiler.start()
            db = tidaldb.Db(schema())
            go.set()
            try:
                db.signals("view", items, w, ts=ts)
                outcome = ["written", N]
            except tidaldb.InvalidArgument as e:
                outcome = [type(e).__name__, e.written, str(e)]
            spoiler.join()
            written = outcome[1]
            at = T0 + HOUR
            want = np.bincount(items[:written].astype(np.int64),
                               weights[:written] * np.exp2(-(at - ts[:written]) / HOUR), minlength=40_000)
            outcome.append(db.events_applied)
            outcome.append(int(np.count_nonzero(~np.isclose(scores(db, at), want, rtol=1e-9, atol=0.0))))
            found["outcomes"].append(outcome)
            db.close()
    elif scenario == "handler":
        # A signal handler (run at the write's safe points, about every 50 ms) makes the
        # last row invalid while the only thread's write runs.
        big = 12_000_000
        k = np.arange(big, dtype=np.uint64)
        items, weights = k % np.uint64(7), 1.0 + (k % np.uint64(3)).astype(np.float64)
        def spoil(signum, frame):
            weights[-1] = np.nan
        signal.signal(signal.SIGALRM, spoil)
        with tidaldb.Db(tidaldb.Schema().signal("total")) as db:
            signal.setitimer(signal.ITIMER_REAL, 0.01)
            try:
                db.signals("total", items, weights)
                found["error"] = None
            except tidaldb.InvalidArgument as e:
                found["error"] = [type(e).__name__, e.written, str(e)]
            signal.setitimer(signal.ITIMER_REAL, 0)
            found["events"] = db.events_applied
            found["scores"] = [db.score("total", i) for i in range(7)]
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
    for path in ("in_place", "shared", "copied"):
        assert found[path + "_events"] == 600_000, found
        assert found[path + "_differ_bits"] == 0, found
    assert found["off_formula"] == 0 and found["undated_off"] == 0, found
    # The copying path holds 24 bytes an event at once (14 MiB for 600K). Each database's
    # state (40K entities: about 3 MiB) and the chunks' scratch fit in what the warm-up
    # write left with the allocator.
    for path in ("in_place", "shared"):
        assert found["copied_rss_growth_mib"] - found[path + "_rss_growth_mib"] > 8, found


def test_bad_input_read_in_place_is_refused_as_when_copied_and_writes_nothing() -> None:
    found = run("refusals")
    for path in ("in_place", "shared", "copied"):
        refused = found[path]
        for case in ("nan weight", "negative time", "far future"):
            assert refused[case] is not None and refused[case][0] == "InvalidArgument", found
        # The same messages; the one for a future time says how far ahead it was, which moves.
        assert refused["nan weight"] == found["copied"]["nan weight"], found
        assert refused["negative time"] == found["copied"]["negative time"], found
        assert "ts: element 234567, -5 seconds" in refused["negative time"][1], found
        assert "max_future_skew" in refused["far future"][1], found
    assert found["events"] == 0, found


def test_a_row_another_thread_spoils_stops_the_write_at_its_chunk() -> None:
    found = run("spoiled")
    stopped = 0
    for outcome in found["outcomes"]:
        # Whatever the moment the other thread ran: the database holds exactly the first
        # `written` rows (0: it ran before the write's check; all: after the write).
        name, written, *rest = outcome
        events, off_formula = rest[-2], rest[-1]
        assert name in ("written", "InvalidArgument"), found
        assert events == written and off_formula == 0, found
        if name == "InvalidArgument" and written > 0:
            assert written < 600_000 and written % 4096 == 0, found
            assert "changed while the write read them" in rest[0], found
            stopped += 1
    # The other thread ran during the write, not only before or after it.
    assert stopped > 0, found


def test_a_row_a_signal_handler_spoils_stops_the_write_at_its_chunk() -> None:
    found = run("handler")
    assert found["error"] is not None, found
    name, written, message = found["error"]
    assert name == "InvalidArgument" and "changed while the write read them" in message, found
    # The handler spoiled the last row: every chunk before its own was written.
    assert 12_000_000 - (1 << 18) <= written < 12_000_000 and written % 4096 == 0, found
    assert found["events"] == written, found
    for item, got in enumerate(found["scores"]):
        k = np.arange(item, written, 7)
        assert got == float((1 + k % 3).sum()), (item, found)


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
