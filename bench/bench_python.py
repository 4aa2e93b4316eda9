"""Python-side throughput of tidaldb, each figure beside a baseline measured in the same run.

    .venv/bin/python bench/bench_python.py          # or: make bench

(a) numpy bulk ingest: `db.signals` with 1M signals over 100K entities, against a numpy
    vectorized decay update (`np.add.at` of decayed weights) over the same arrays; once for
    a decay-only signal (what the baseline computes) and once for one that also keeps
    1h and 24h windows;
(b) one `db.signal(...)` call per signal, against an empty Python method call and a
    dict-update loop over the same ids;
(c) bulk reads: `db.scores` over all 100K entities, against the numpy gather `acc[items]`.

Each measurement is repeated (``--repeats``, at least 3) on a fresh ephemeral Db, each
tidaldb repeat right after its baseline's so that a busy minute of the shared machine hits
both; the table gives the best and the median rate of each, and the ratios of both. The
load average is printed at the start and the end. Not a test: the figures are recorded in
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

# numpy's OpenBLAS leaves worker threads spinning after some calls. Nothing measured here
# uses BLAS, and on a 2-core machine those threads take a core from the systems measured.
# Set before numpy is imported, which is when OpenBLAS starts them.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

import tidaldb

T0 = 1_700_000_000.0
HALF_LIFE = 3600.0


Times = list[float]


def timed(repeats: int, setup: Callable[[], object], run: Callable[[object], object]) -> Times:
    """Wall time of `run(setup())` in each of `repeats` runs, setup excluded."""
    times = []
    for _ in range(repeats):
        state = setup()
        start = time.perf_counter()
        run(state)
        times.append(time.perf_counter() - start)
    return times


def paired(
    repeats: int,
    ours: tuple[Callable[[], object], Callable[[object], object]],
    base: tuple[Callable[[], object], Callable[[object], object]],
) -> tuple[Times, Times]:
    """`ours` and `base` alternately, one run each per round."""
    a: Times = []
    b: Times = []
    for _ in range(repeats):
        a += timed(1, *ours)
        b += timed(1, *base)
    return a, b


def fresh_db() -> tidaldb.Db:
    """`view` decays only, like the baselines; `view_windowed` also keeps 1h and 24h windows."""
    schema = (
        tidaldb.Schema()
        .signal("view", half_life=HALF_LIFE)
        .signal("view_windowed", half_life=HALF_LIFE, windows=["1h", "24h"])
    )
    return tidaldb.Db(schema)


class Noop:
    def signal(self, name: str, item: int, weight: float = 1.0) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--signals", type=int, default=1_000_000)
    ap.add_argument("--entities", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    n, entities, reps = args.signals, args.entities, args.repeats

    if reps < 3:
        ap.error("--repeats must be at least 3: the table gives the best and the median")
    load_start = os.getloadavg()
    rng = np.random.default_rng(1)
    items = rng.integers(0, entities, n).astype(np.uint64)
    weights = rng.choice([0.5, 1.0, 2.0], n)
    ts = T0 + np.sort(rng.uniform(0.0, 3600.0, n))
    rows: list[tuple[str, Times, str, Times, str]] = []
    t_end = float(ts[-1])

    # (a) bulk ingest.
    def numpy_update(acc: object) -> None:
        assert isinstance(acc, np.ndarray)
        np.add.at(acc, items, weights * np.exp2((ts - t_end) / HALF_LIFE))

    baseline = (lambda: np.zeros(entities), numpy_update)
    bulk, base = paired(reps, (fresh_db, lambda db: db.signals("view", items, weights, ts)), baseline)  # type: ignore[attr-defined]
    rows.append(("bulk ingest db.signals", bulk, "numpy np.add.at decay update", base, ">= 5M/s"))
    windowed, base = paired(reps, (fresh_db, lambda db: db.signals("view_windowed", items, weights, ts)), baseline)  # type: ignore[attr-defined]
    rows.append(("  same, with 1h+24h windows", windowed, "numpy np.add.at decay update", base, ""))

    # (b) one call per signal.
    ids = items.tolist()

    # Each loop ends with a read: a lone in-memory Db applies single writes in batches, and
    # the read makes it apply what is still queued, so the timing holds all the work.
    def single(db: object) -> None:
        sig = db.signal  # type: ignore[attr-defined]
        for i in ids:
            sig("view", i, 1.0)
        db.score("view", ids[-1])  # type: ignore[attr-defined]

    def noop(obj: object) -> None:
        sig = obj.signal  # type: ignore[attr-defined]
        for i in ids:
            sig("view", i, 1.0)

    def dict_update(d: object) -> None:
        assert isinstance(d, dict)
        get = d.get
        for i in ids:
            d[i] = get(i, 0.0) * 0.5 + 1.0

    one, empty = paired(reps, (fresh_db, single), (Noop, noop))
    rows.append(("single db.signal() calls", one, "empty Python method call", empty, ">= 1M/s"))
    one, dct = paired(reps, (fresh_db, single), (dict, dict_update))
    rows.append(("single db.signal() calls", one, "dict update loop", dct, ">= 1.0x"))

    # Sparse traffic on a windowed signal: every event one millisecond after the last, so
    # most events open a new one-minute granule for their entity.
    stamps = (T0 + np.arange(n) * 1e-3).tolist()

    def single_windowed(db: object) -> None:
        sig = db.signal  # type: ignore[attr-defined]
        for i, t in zip(ids, stamps):
            sig("view_windowed", i, 1.0, t)
        db.score("view_windowed", ids[-1])  # type: ignore[attr-defined]

    one_windowed, dct = paired(reps, (fresh_db, single_windowed), (dict, dict_update))
    rows.append(("  same, 1h+24h windows, sparse", one_windowed, "dict update loop", dct, ""))

    # (c) bulk read.
    db = fresh_db()
    db.signals("view", items, weights, ts)
    probe = np.arange(entities, dtype=np.uint64)
    acc = np.zeros(entities)
    read, gather = paired(
        reps,
        (lambda: db, lambda d: d.scores("view", probe, at=t_end)),  # type: ignore[attr-defined]
        (lambda: acc, lambda a: a[probe] * np.exp2(0.0)),  # type: ignore[index]
    )
    rows.append(("bulk read db.scores", read, "numpy gather acc[items]", gather, ""))
    db.close()
    load_end = os.getloadavg()

    print(f"tidaldb {tidaldb.__version__}, Python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    print(f"{n:,} signals over {entities:,} entities, {reps} repeats (paired with their baselines)")
    print(f"load average {load_start} at the start, {load_end} at the end\n")
    head = (
        f"{'measurement':<31} {'tidaldb best (med)':>19}   {'baseline':<28} {'best (med)':>17}"
        f" {'ratio best (med)':>17}  target"
    )
    print(head)
    print("-" * len(head))
    work = {"bulk read db.scores": entities}
    for name, ours, base_name, base, target in rows:
        count = work.get(name, n)
        best, med = count / min(ours), count / statistics.median(ours)
        b_best, b_med = count / min(base), count / statistics.median(base)
        print(
            f"{name:<31} {best / 1e6:>8.2f} M ({med / 1e6:>6.2f})   {base_name:<28} {b_best / 1e6:>8.2f} M ({b_med / 1e6:>5.2f})"
            f" {best / b_best:>8.2f} ({med / b_med:>5.2f})  {target}"
        )
    print("\nrates per second; ratio: tidaldb's rate over the baseline's")


if __name__ == "__main__":
    main()
