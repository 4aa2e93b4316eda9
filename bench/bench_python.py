"""Python-side throughput of tidaldb, each figure beside a baseline measured in the same run.

    .venv/bin/python bench/bench_python.py          # or: make bench

(a) numpy bulk ingest: `db.signals` with 1M signals over 100K entities, against a numpy
    vectorized decay update (`np.add.at` of decayed weights) over the same arrays; once for
    a decay-only signal (what the baseline computes) and once for one that also keeps
    1h and 24h windows;
(b) one `db.signal(...)` call per signal, against an empty Python method call and a
    dict-update loop over the same ids;
(c) bulk reads: `db.scores` over all 100K entities, against the numpy gather `acc[items]`.

Each measurement is the best of several repeats on a fresh ephemeral Db. Not a test: the
figures are recorded in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import numpy as np

import tidaldb

T0 = 1_700_000_000.0
HALF_LIFE = 3600.0


def best_of(repeats: int, setup: Callable[[], object], run: Callable[[object], object]) -> float:
    """Fastest wall time of `run(setup())`, setup excluded."""
    best = float("inf")
    for _ in range(repeats):
        state = setup()
        start = time.perf_counter()
        run(state)
        best = min(best, time.perf_counter() - start)
    return best


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
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    n, entities, reps = args.signals, args.entities, args.repeats

    rng = np.random.default_rng(1)
    items = rng.integers(0, entities, n).astype(np.uint64)
    weights = rng.choice([0.5, 1.0, 2.0], n)
    ts = T0 + np.sort(rng.uniform(0.0, 3600.0, n))
    rows: list[tuple[str, float, str, float, str]] = []

    # (a) bulk ingest.
    bulk = best_of(reps, fresh_db, lambda db: db.signals("view", items, weights, ts))  # type: ignore[attr-defined]
    t_end = float(ts[-1])

    def numpy_update(acc: object) -> None:
        assert isinstance(acc, np.ndarray)
        np.add.at(acc, items, weights * np.exp2((ts - t_end) / HALF_LIFE))

    base = best_of(reps, lambda: np.zeros(entities), numpy_update)
    rows.append(("bulk ingest db.signals", n / bulk, "numpy np.add.at decay update", n / base, ">= 5M/s"))
    windowed = best_of(reps, fresh_db, lambda db: db.signals("view_windowed", items, weights, ts))  # type: ignore[attr-defined]
    rows.append(("  same, with 1h+24h windows", n / windowed, "numpy np.add.at decay update", n / base, ""))

    # (b) one call per signal.
    ids = items.tolist()

    def single(db: object) -> None:
        sig = db.signal  # type: ignore[attr-defined]
        for i in ids:
            sig("view", i, 1.0)

    one = best_of(reps, fresh_db, single)

    def noop(obj: object) -> None:
        sig = obj.signal  # type: ignore[attr-defined]
        for i in ids:
            sig("view", i, 1.0)

    empty = best_of(reps, Noop, noop)

    def dict_update(d: object) -> None:
        assert isinstance(d, dict)
        get = d.get
        for i in ids:
            d[i] = get(i, 0.0) * 0.5 + 1.0

    dct = best_of(reps, dict, dict_update)

    # Sparse traffic on a windowed signal: every event one millisecond after the last, so
    # most events open a new one-minute granule for their entity.
    stamps = (T0 + np.arange(n) * 1e-3).tolist()

    def single_windowed(db: object) -> None:
        sig = db.signal  # type: ignore[attr-defined]
        for i, t in zip(ids, stamps):
            sig("view_windowed", i, 1.0, t)

    one_windowed = best_of(reps, fresh_db, single_windowed)
    rows.append(("single db.signal() calls", n / one, "empty Python method call", n / empty, ">= 1M/s"))
    rows.append(("single db.signal() calls", n / one, "dict update loop", n / dct, ">= 1M/s"))
    rows.append(("  same, 1h+24h windows, sparse", n / one_windowed, "dict update loop", n / dct, ""))

    # (c) bulk read.
    db = fresh_db()
    db.signals("view", items, weights, ts)
    probe = np.arange(entities, dtype=np.uint64)
    read = best_of(reps, lambda: db, lambda d: d.scores("view", probe, at=t_end))  # type: ignore[attr-defined]
    acc = np.zeros(entities)
    gather = best_of(reps, lambda: acc, lambda a: a[probe] * np.exp2(0.0))  # type: ignore[index]
    rows.append(("bulk read db.scores", entities / read, "numpy gather acc[items]", entities / gather, ""))
    db.close()

    print(f"tidaldb {tidaldb.__version__}, Python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    print(f"{n:,} signals over {entities:,} entities, best of {reps}\n")
    head = f"{'measurement':<28} {'tidaldb/s':>12}   {'baseline':<30} {'baseline/s':>12} {'ratio':>7}  target"
    print(head)
    print("-" * len(head))
    for name, rate, base_name, base_rate, target in rows:
        print(f"{name:<28} {rate / 1e6:>10.2f} M   {base_name:<30} {base_rate / 1e6:>10.2f} M {rate / base_rate:>7.2f}  {target}")


if __name__ == "__main__":
    main()
