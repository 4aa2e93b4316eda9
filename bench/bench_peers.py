"""tidaldb beside what users would pick instead (DuckDB, SQLite), side by side in one process.

    .venv/bin/python bench/bench_peers.py            # after `make ext`; `make bench` runs it
    .venv/bin/python bench/bench_peers.py --repeats 5 --stream-rounds 50

One workload for every system: 1M events over 100K items (weights 0.5/1/2, timestamps over
one day), exponential decay with a 1-day half-life. The SQL systems keep the raw events and
compute the decayed score as ``sum(weight * 2^(-(now - ts) / half_life))``; tidaldb keeps
its decay state. Figures, each system in every repetition on fresh state:

- bulk load: tidaldb from numpy in one ``Db.signals`` call (on every core, the default,
  and again on one thread as the column "tidaldb 1 thread"); DuckDB from an Arrow table
  (``CREATE TABLE AS``); SQLite by ``executemany``, then an index on ``item`` for the reads
  (the second row adds it);
- bulk load folded: the same events turned into what tidaldb holds after its load, one
  decayed sum per item. For tidaldb that is its load; DuckDB aggregates the Arrow table
  straight into a table of sums (``CREATE TABLE AS ... GROUP BY``, its fastest way there);
  SQLite loads and then aggregates. The plain load above compares a columnar copy with this
  fold; this row compares the same work;
- point reads, one call each: 10K of them (DuckDB: the first 1K, see `Duck`), per read;
- top-50 of 10K candidates with 1K of them hidden for the user (the SQL systems get the
  candidates and the hidden set as tables, built outside the timing; tidaldb gets the
  candidate array in every call): the median of 21 calls, and the first of them alone
  (right after the load, when little of the data is in the cache);
- resident memory per 1M events: VmRSS after the load minus before it, each system in a
  fresh subprocess, with the C heap's free memory released before both readings;
- streaming: batches of 1K new events, each followed by a top-50 query, as a live ranking
  service runs.

Correctness: every point read and every top-50 is checked against a numpy oracle of the
same formula, and every system's top-50 must be the same list (score descending, then item
ascending; scores compared with a relative tolerance). A mismatch stops the run with an
error. DuckDB and pyarrow are optional (requirements-bench.txt); a missing one is skipped
with a message. Times are medians and minimums over the repetitions; the ratio columns
divide the peer's time by tidaldb's (above 1: tidaldb is faster) and tidaldb's memory by
the peer's. The machine's load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

# numpy's OpenBLAS leaves worker threads spinning after some calls. Nothing measured here
# uses BLAS, and on a 2-core machine those threads take a core from the systems measured.
# Set before numpy is imported, which is when OpenBLAS starts them.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import numpy.typing as npt

import tidaldb

T0 = 1_700_000_000.0
HALF_LIFE = 86_400.0
USER = 7
TOP = 50
# Top-50 calls per repetition: the figure is their median, as a ranking service calling
# again and again sees; the first of them, with data not yet in the cache, is its own row.
TOP_CALLS = 21
REL_TOL = 1e-9

U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]
Ranked = list[tuple[int, float]]


@dataclass
class Workload:
    items: U64
    weights: F64
    ts: F64
    candidates: U64
    hidden: U64
    probes: U64
    stream: list[tuple[U64, F64, F64]]
    n_items: int

    @property
    def now(self) -> float:
        return float(self.ts.max())


def make_workload(events: int, n_items: int, rounds: int, batch: int, seed: int = 1) -> Workload:
    rng = np.random.default_rng(seed)
    items = rng.integers(0, n_items, events).astype(np.uint64)
    weights = rng.choice([0.5, 1.0, 2.0], events)
    ts = T0 + np.sort(rng.uniform(0.0, 86_400.0, events))
    candidates = rng.choice(n_items, 10_000, replace=False).astype(np.uint64)
    hidden = rng.choice(candidates, 1_000, replace=False).astype(np.uint64)
    probes = rng.integers(0, n_items, 10_000).astype(np.uint64)
    end = float(ts[-1])
    stream = []
    for r in range(rounds):
        start = end + r * 1.0
        stream.append(
            (
                rng.integers(0, n_items, batch).astype(np.uint64),
                rng.choice([0.5, 1.0, 2.0], batch),
                start + np.sort(rng.uniform(0.0, 1.0, batch)),
            )
        )
    return Workload(items, weights, ts, candidates, hidden, probes, stream, n_items)


class Oracle:
    """The decayed score of every item, straight from the formula, for checking answers."""

    def __init__(self, w: Workload) -> None:
        self.w = w
        self.items = w.items
        self.weights = w.weights
        self.ts = w.ts

    def add(self, items: U64, weights: F64, ts: F64) -> None:
        self.items = np.concatenate([self.items, items])
        self.weights = np.concatenate([self.weights, weights])
        self.ts = np.concatenate([self.ts, ts])

    def scores(self, at: float) -> F64:
        decayed = self.weights * np.exp2(-(at - self.ts) / HALF_LIFE)
        out = np.bincount(self.items.astype(np.int64), weights=decayed, minlength=self.w.n_items)
        return out.astype(np.float64)

    def top(self, at: float) -> Ranked:
        s = self.scores(at)
        allowed = np.setdiff1d(self.w.candidates, self.w.hidden)
        order = sorted(((-float(s[i]), int(i)) for i in allowed if s[i] > 0.0))
        return [(i, -neg) for neg, i in order[:TOP]]


def close(a: float, b: float) -> bool:
    return abs(a - b) <= REL_TOL * max(abs(a), abs(b), 1e-300)


def check_ranked(name: str, got: Ranked, want: Ranked, truth: F64, what: str) -> None:
    """Same list as `want`, position by position; a different item is accepted only where
    the two items' true scores tie within the tolerance. Raises on any other difference."""
    if len(got) != len(want):
        raise SystemExit(f"MISMATCH: {name} returned {len(got)} items for {what}, expected {len(want)}")
    for pos, ((gi, gs), (wi, ws)) in enumerate(zip(got, want)):
        if not close(gs, float(truth[gi])):
            raise SystemExit(f"MISMATCH: {name} scored item {gi} {gs!r} at {what}, the formula gives {truth[gi]!r}")
        if gi != wi and not close(float(truth[gi]), float(truth[wi])):
            raise SystemExit(f"MISMATCH: {name}'s {what} has item {gi} at position {pos}, expected {wi} (score {ws!r})")


class System(Protocol):
    name: str
    point_cap: int
    # Whether `fold` reads the events itself (then it alone is the fold's time) rather than
    # the loaded events (then the fold's time is the load's plus its own).
    fold_reads_source: bool

    def load(self, w: Workload) -> None: ...
    def fold(self, w: Workload) -> None: ...
    def folded(self, items: list[int]) -> list[float]: ...
    def index(self) -> None: ...
    def prepare_query(self, w: Workload) -> None: ...
    def point(self, item: int, at: float) -> float: ...
    def top(self, w: Workload, at: float) -> Ranked: ...
    def append(self, items: U64, weights: F64, ts: F64) -> None: ...
    def close(self) -> None: ...


class Tidal:
    name = "tidaldb"
    point_cap = 10_000
    fold_reads_source = False

    threads: int | None = None  # None: the default, every core

    def __init__(self) -> None:
        self.db = tidaldb.Db(tidaldb.Schema().signal("view", half_life=HALF_LIFE), ingest_threads=self.threads)

    def load(self, w: Workload) -> None:
        self.db.signals("view", w.items, w.weights, ts=w.ts)

    def fold(self, w: Workload) -> None:
        pass  # the load folded every event into its item's state

    def folded(self, items: list[int]) -> list[float]:
        return [self.db.score("view", i, at=T0) for i in items]

    def index(self) -> None:
        pass

    def prepare_query(self, w: Workload) -> None:
        for item in w.hidden.tolist():
            self.db.hide(USER, item)

    def point(self, item: int, at: float) -> float:
        return self.db.score("view", item, at=at)

    def top(self, w: Workload, at: float) -> Ranked:
        ids, scores = self.db.retrieve(w.candidates, {"view": 1.0}, user=USER, limit=TOP, at=at).to_numpy()
        return list(zip(ids.tolist(), scores.tolist()))

    def append(self, items: U64, weights: F64, ts: F64) -> None:
        self.db.signals("view", items, weights, ts=ts)

    def close(self) -> None:
        self.db.close()


class TidalOneThread(Tidal):
    """The same on one thread (``ingest_threads=1``): the baseline of the parallel apply."""

    name = "tidaldb 1 thread"
    threads = 1


SCORE = "sum(e.weight * power(2.0, -(? - e.ts) / ?))"
TOP_SQL = f"""
SELECT e.item, {SCORE} AS score
FROM {{join}}
WHERE NOT EXISTS (SELECT 1 FROM hidden h WHERE h.user_id = ? AND h.item = e.item)
GROUP BY e.item ORDER BY score DESC, e.item ASC LIMIT {TOP}
"""
POINT_SQL = f"SELECT coalesce({SCORE}, 0.0) FROM events e WHERE e.item = ?"
# One decayed sum per item, taken at T0 (so `2^((ts - T0) / h)`, where the queries above
# decay to their `now`): what tidaldb's state holds, one number per item.
FOLD_SQL = f"CREATE TABLE folded AS SELECT item, sum(weight * power(2.0, (ts - {T0!r}) / {HALF_LIFE!r})) AS mass FROM {{source}} GROUP BY item"


class Sql:
    """What the two SQL systems share: the schema, the queries, the hidden set."""

    name = "sql"
    con: Any
    point_cap = 10_000
    fold_reads_source = False
    join = "events e JOIN cand c ON e.item = c.item"
    cand_ddl = "CREATE TABLE cand (item BIGINT)"
    hidden_ddl = "CREATE TABLE hidden (user_id BIGINT, item BIGINT)"

    def index(self) -> None:
        pass

    def prepare_query(self, w: Workload) -> None:
        self.con.execute(self.cand_ddl)
        self.con.execute(self.hidden_ddl)
        self.con.executemany("INSERT INTO cand VALUES (?)", [(i,) for i in w.candidates.tolist()])
        self.con.executemany("INSERT INTO hidden VALUES (?, ?)", [(USER, i) for i in w.hidden.tolist()])

    def fold(self, w: Workload) -> None:
        self.con.execute(FOLD_SQL.format(source="events"))

    def folded(self, items: list[int]) -> list[float]:
        return [float(self.con.execute("SELECT mass FROM folded WHERE item = ?", [i]).fetchone()[0]) for i in items]

    def point(self, item: int, at: float) -> float:
        return float(self.con.execute(POINT_SQL, [at, HALF_LIFE, item]).fetchone()[0])

    def top(self, w: Workload, at: float) -> Ranked:
        rows = self.con.execute(TOP_SQL.format(join=self.join), [at, HALF_LIFE, USER]).fetchall()
        return [(int(i), float(s)) for i, s in rows]

    def close(self) -> None:
        self.con.close()


class Sqlite(Sql):
    """The candidates drive the join (CROSS JOIN fixes SQLite's loop order; by itself it
    scans every event), and the index covers the query: 4-6x faster top-50s than either
    alone on this workload."""

    name = "SQLite"
    join = "cand c CROSS JOIN events e ON e.item = c.item"
    cand_ddl = "CREATE TABLE cand (item INTEGER PRIMARY KEY)"
    hidden_ddl = "CREATE TABLE hidden (user_id INTEGER, item INTEGER, PRIMARY KEY (user_id, item))"

    def __init__(self) -> None:
        self.con = sqlite3.connect(":memory:")
        self.con.execute("CREATE TABLE events (item INTEGER, weight REAL, ts REAL)")

    def load(self, w: Workload) -> None:
        self.append(w.items, w.weights, w.ts)

    def index(self) -> None:
        self.con.execute("CREATE INDEX events_item ON events(item, ts, weight)")

    def append(self, items: U64, weights: F64, ts: F64) -> None:
        self.con.executemany("INSERT INTO events VALUES (?, ?, ?)", zip(items.tolist(), weights.tolist(), ts.tolist()))
        self.con.commit()


class Duck(Sql):
    """No index: DuckDB answers ``item = ?`` by a scan whether or not one exists (checked
    with EXPLAIN on 2.0), about 2 ms a read, so only the first 1K point reads are timed."""

    name = "DuckDB"
    point_cap = 1_000
    fold_reads_source = True

    def __init__(self) -> None:
        import duckdb

        self.con = duckdb.connect(":memory:")

    @staticmethod
    def arrow(items: U64, weights: F64, ts: F64) -> Any:
        import pyarrow as pa

        return pa.table({"item": items.astype(np.int64), "weight": weights, "ts": ts})

    def load(self, w: Workload) -> None:
        self.con.register("source", self.arrow(w.items, w.weights, w.ts))
        self.con.execute("CREATE TABLE events AS SELECT * FROM source")
        self.con.unregister("source")

    def fold(self, w: Workload) -> None:
        """Straight from Arrow, without the events table: faster than aggregating the
        loaded table (26 against 14 + 26 ms when measured)."""
        self.con.register("source", self.arrow(w.items, w.weights, w.ts))
        self.con.execute(FOLD_SQL.format(source="source"))
        self.con.unregister("source")

    def append(self, items: U64, weights: F64, ts: F64) -> None:
        self.con.register("batch", self.arrow(items, weights, ts))
        self.con.execute("INSERT INTO events SELECT * FROM batch")
        self.con.unregister("batch")


def available() -> list[tuple[str, Callable[[], System]]]:
    systems: list[tuple[str, Callable[[], System]]] = [("tidaldb", Tidal), ("tidaldb 1 thread", TidalOneThread)]
    try:
        import duckdb  # noqa: F401
        import pyarrow  # noqa: F401

        systems.append(("DuckDB", Duck))
    except ImportError as e:
        print(f"skipping DuckDB: {e} (pip install -r requirements-bench.txt)")
    systems.append(("SQLite", Sqlite))
    return systems


@dataclass
class Figures:
    """Per figure, one value per repetition."""

    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, figure: str, value: float) -> None:
        self.values.setdefault(figure, []).append(value)


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def one_repetition(w: Workload, make: Callable[[], System], figures: Figures, answers: dict[str, Ranked]) -> None:
    """Runs every phase on a fresh system, checking each answer against the oracle."""
    system = make()
    oracle = Oracle(w)
    now = w.now
    loading = timed(lambda: system.load(w))
    figures.add("load", loading)
    folding = timed(lambda: system.fold(w))
    figures.add("fold", folding if system.fold_reads_source else loading + folding)
    sample = w.probes.tolist()[:100]
    at_t0 = oracle.scores(T0)
    for item, mass in zip(sample, system.folded(sample)):
        if not close(mass, float(at_t0[item])):
            raise SystemExit(f"MISMATCH: {system.name} folded item {item} to {mass!r}, the formula gives {at_t0[item]!r}")
    figures.add("index", timed(system.index))
    system.prepare_query(w)

    probes = w.probes.tolist()[: system.point_cap]
    got: list[float] = []
    figures.add("point", timed(lambda: got.extend(system.point(i, now) for i in probes)) / len(probes))
    truth = oracle.scores(now)
    for item, score in zip(probes, got):
        if not close(score, float(truth[item])):
            raise SystemExit(f"MISMATCH: {system.name} read {score!r} for item {item}, the formula gives {truth[item]!r}")

    calls: list[float] = []
    ranked: Ranked = []
    for _ in range(TOP_CALLS):
        start = time.perf_counter()
        ranked = system.top(w, now)
        calls.append(time.perf_counter() - start)
    figures.add("first top", calls[0])
    figures.add("top", statistics.median(calls))
    check_ranked(system.name, ranked, oracle.top(now), truth, "the top-50")
    answers.setdefault("loaded", ranked)
    check_ranked(system.name, ranked, answers["loaded"], truth, "the top-50 (against the first system's)")

    def stream() -> None:
        nonlocal ranked
        for items, weights, ts in w.stream:
            system.append(items, weights, ts)
            ranked = system.top(w, float(ts[-1]))

    figures.add("stream", timed(stream) / max(len(w.stream), 1))
    if w.stream:
        for items, weights, ts in w.stream:
            oracle.add(items, weights, ts)
        at = float(w.stream[-1][2][-1])
        truth = oracle.scores(at)
        check_ranked(system.name, ranked, oracle.top(at), truth, "the top-50 after streaming")
        answers.setdefault("streamed", ranked)
        check_ranked(system.name, ranked, answers["streamed"], truth, "the streamed top-50 (against the first system's)")
    system.close()


MEMORY_CHILD = """
import sys
sys.path.insert(0, {here!r})
import bench_peers as b
w = b.make_workload({events}, {n_items}, 0, 0)
systems = dict(b.available())
system = systems[{name!r}]()
b.release_free_memory()
before = b.rss_mib()
system.load(w)
system.index()
b.release_free_memory()
print(b.json.dumps({{"mib": b.rss_mib() - before}}))
"""


def release_free_memory() -> None:
    """Returns the C heap's free memory to the system (glibc's ``malloc_trim``), so that the
    growth measured is memory held, not memory the allocator happened to keep: otherwise the
    figure swings by tens of MiB with where the workload's numpy temporaries were freed."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):
        pass


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def memory_mib(name: str, events: int, n_items: int) -> float:
    code = MEMORY_CHILD.format(here=os.path.dirname(os.path.abspath(__file__)), events=events, n_items=n_items, name=name)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    mib: float = json.loads(out.stdout.strip().splitlines()[-1])["mib"]
    return mib


ROWS = [
    ("load", "bulk load, all events (s)"),
    ("load+index", "same + SQLite's item index (s)"),
    ("fold", "load folded to per-item sums (s)"),
    ("point", "point read, one call each (us)"),
    ("first top", "first top-50 after the load (ms)"),
    ("top", "top-50 of 10K, 1K hidden (ms)"),
    ("stream", "1K-event batch + top-50 (ms)"),
    ("memory", "resident MiB per 1M events"),
]
SCALE = {"point": 1e6, "first top": 1e3, "top": 1e3, "stream": 1e3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--stream-rounds", type=int, default=30)
    ap.add_argument("--stream-batch", type=int, default=1_000)
    args = ap.parse_args()
    if args.repeats < 3:
        ap.error("--repeats must be at least 3: the table gives medians and minimums")
    load_start = os.getloadavg()
    w = make_workload(args.events, args.items, args.stream_rounds, args.stream_batch)
    systems = available()
    figures = {name: Figures() for name, _ in systems}
    answers: dict[str, Ranked] = {}
    for _ in range(args.repeats):
        for name, make in systems:  # interleaved, so a busy minute hits every system
            one_repetition(w, make, figures[name], answers)
            figures[name].add("memory", memory_mib(name, args.events, args.items) * 1e6 / args.events)
    for f in figures.values():
        f.values["load+index"] = [a + b for a, b in zip(f.values["load"], f.values["index"])]
    load_end = os.getloadavg()

    print(f"tidaldb {tidaldb.__version__}, Python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    versions = [f"SQLite {sqlite3.sqlite_version}"]
    if any(n == "DuckDB" for n, _ in systems):
        import duckdb
        import pyarrow

        versions.insert(0, f"DuckDB {duckdb.__version__} (pyarrow {pyarrow.__version__})")
    print(", ".join(versions))
    print(
        f"{args.events:,} events over {args.items:,} items, half-life 1 day; stream {args.stream_rounds} x "
        f"{args.stream_batch:,}; {args.repeats} repetitions; load average {load_start} at the start, {load_end} at the end"
    )
    print("every top-50 and point read matched the formula and the other systems\n")
    peers = [n for n, _ in systems if n != "tidaldb"]
    head = f"{'figure':<36} {'tidaldb med (min)':>20}" + "".join(
        f" {p + ' med (min)':>20} {'ratio med (best)':>17}" for p in peers
    )
    print(head)
    print("-" * len(head))
    for key, label in ROWS:
        scale = SCALE.get(key, 1.0)
        ours = [v * scale for v in figures["tidaldb"].values[key]]
        line = f"{label:<36} {statistics.median(ours):>10.4g} ({min(ours):>.4g})".ljust(57)
        for p in peers:
            theirs = [v * scale for v in figures[p].values[key]]
            if key == "memory":
                ratio = f"{statistics.median(ours) / statistics.median(theirs):.3g}x ({min(ours) / min(theirs):.3g}x)"
            else:
                ratio = f"{statistics.median(theirs) / statistics.median(ours):.3g}x ({min(theirs) / min(ours):.3g}x)"
            line += f" {statistics.median(theirs):>10.4g} ({min(theirs):>.4g})".ljust(21) + f" {ratio:>17}"
        print(line)
    print("\nratio: the peer's time over tidaldb's (above 1: tidaldb is faster); for memory, tidaldb's over the peer's")


if __name__ == "__main__":
    main()
