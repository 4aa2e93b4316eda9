"""Python cost of the `tidaldb.Cluster` write paths, against the Rust core in the same run.

    .venv/bin/python bench/bench_cluster.py          # or: make bench

Builds and runs `cargo run --release -p tidaldb --example sim_ingest` (the baseline), which
writes the same events into the same cluster (3 regions, 1 shard each, signal `view` with a
1h half-life and 1h + 24h windows, write concern "local") through the same core calls:

(a) bulk: `cluster.write_many("view", ids, weights)` with numpy arrays, `--batch` events a
    call, against `SimulatedCluster::write_batch` on the same batches; the ratio is Rust
    time / Python time (Python's throughput as a fraction of Rust's; the goal is >= 0.5);
(b) single: one `cluster.write("view", item)` per event, against one `write_scoped` of
    one signal per event in Rust and against an empty Python method call; the difference
    from Rust is the bindings' overhead per call.

The workload is splitmix64 of `seed + i` on both sides (entity = h % entities, weight =
[0.5, 1, 2][(h >> 32) % 3]); the script checks that the Rust side wrote the same events.
Each figure is the best of `--rounds` rounds, each on a fresh cluster, after an untimed
warm-up on both sides; a round runs the Rust example once (one timed repeat) and then each
Python measurement once, so that the VM's noisy minutes hit both sides alike. Not a test: the figures are recorded in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import tidaldb

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "target" / "release" / "examples" / "sim_ingest"
WEIGHTS = np.array([0.5, 1.0, 2.0])


def timed(setup: Callable[[], object], run: Callable[[object], object]) -> float:
    """Wall time of `run(setup())`, setup excluded."""
    state = setup()
    start = time.perf_counter()
    run(state)
    return time.perf_counter() - start


def splitmix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 of each uint64, wrapping like the Rust example's."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def workload(n: int, entities: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The events both sides write: uint64 ids and float64 weights."""
    h = splitmix64(np.arange(n, dtype=np.uint64) + np.uint64(seed))
    return h % np.uint64(entities), WEIGHTS[((h >> np.uint64(32)) % np.uint64(3)).astype(np.intp)]


def fresh_cluster() -> tidaldb.Cluster:
    """Default arguments: what the Rust example builds with `ClusterConfig::new`."""
    schema = tidaldb.Schema().signal("view", half_life="1h", windows=["1h", "24h"])
    return tidaldb.Cluster(schema)


def build_example() -> None:
    """Builds the example; a no-op when it is up to date."""
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "tidaldb", "--example", "sim_ingest"],
        cwd=ROOT,
        check=True,
    )


def run_example(args: argparse.Namespace) -> dict[str, Any]:
    """One repeat of the Rust baseline; what it prints."""
    flags = ["--events", args.events, "--entities", args.entities, "--seed", args.seed,
             "--batch", args.batch, "--single", args.single, "--repeats", 1]
    out = subprocess.run([str(EXAMPLE), *map(str, flags)], cwd=ROOT, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


class Noop:
    def write(self, signal: str, item: int) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000, help="bulk events")
    ap.add_argument("--entities", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=100_000, help="events per write_many call")
    ap.add_argument("--single", type=int, default=100_000, help="single write() calls")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    n, batch, rounds = args.events, args.batch, args.rounds

    ids, weights = workload(n, args.entities, args.seed)
    single_ids = ids[: args.single].tolist()
    k = len(single_ids)
    build_example()

    # (a) bulk. Slices of contiguous arrays are views: the bindings copy each batch once.
    def bulk(c: object) -> None:
        assert isinstance(c, tidaldb.Cluster)
        for lo in range(0, n, batch):
            c.write_many("view", ids[lo : lo + batch], weights[lo : lo + batch])

    # What the bindings' conversion costs at most: a copy of every batch's two arrays.
    def copies(_: object) -> None:
        for lo in range(0, n, batch):
            ids[lo : lo + batch].copy()
            weights[lo : lo + batch].copy()

    # (b) one call per event, on the first `single` entities of the same workload.
    def single(c: object) -> None:
        write = c.write  # type: ignore[attr-defined]
        for i in single_ids:
            write("view", i)

    # Where a single write's overhead goes (diagnostics): a getter that stays attached, and
    # one that detaches from the interpreter and takes the simulator's lock, as `write`
    # does twice (once to write, once to name the acknowledging replica's region).
    def attached_getter(c: object) -> None:
        for _ in single_ids:
            c.shards_per_region  # type: ignore[attr-defined]  # noqa: B018

    def detached_getter(c: object) -> None:
        for _ in single_ids:
            c.now  # type: ignore[attr-defined]  # noqa: B018

    # Warm-up, untimed: the first ingest in a process page-faults in memory that later
    # ones reuse (the Rust example warms up the same way before its timed run).
    timed(fresh_cluster, bulk)
    timed(fresh_cluster, single)
    best: dict[str, float] = {}
    for _ in range(rounds):
        rust = run_example(args)
        # Same events on both sides, or the ratio means nothing.
        if rust["id_sum"] != int(ids.sum(dtype=np.uint64)) or rust["weight_sum"] != float(weights.sum()):
            raise SystemExit(f"the Rust example wrote other events: {rust}")
        times = {
            "rust_bulk": float(rust["seconds"]),
            "rust_single": float(rust["single"]["seconds"]),
            "py_bulk": timed(fresh_cluster, bulk),
            "copies": timed(lambda: None, copies),
            "py_single": timed(fresh_cluster, single),
            "empty": timed(Noop, single),
            "attached": timed(fresh_cluster, attached_getter),
            "detached": timed(fresh_cluster, detached_getter),
        }
        for key, t in times.items():
            best[key] = min(best.get(key, float("inf")), t)

    py_bulk, rust_bulk = best["py_bulk"], best["rust_bulk"]
    py_single, rust_single, empty = best["py_single"], best["rust_single"], best["empty"]
    per_n = 1e9 / n
    per_k = 1e9 / k
    print(f"tidaldb {tidaldb.__version__}, Python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    print(f"bulk: {n:,} events over {args.entities:,} entities in batches of {batch:,}; "
          f"single: {k:,} calls; best of {rounds} rounds\n")
    head = f"{'measurement':<34} {'Python':>14}   {'baseline (same run)':<30} {'baseline':>14} {'ratio':>7}  target"
    print(head)
    print("-" * len(head))
    print(f"{'Cluster.write_many (numpy)':<34} {n / py_bulk / 1e6:>10.2f} M/s   {'SimulatedCluster::write_batch':<30} "
          f"{n / rust_bulk / 1e6:>10.2f} M/s {rust_bulk / py_bulk:>7.2f}  >= 0.5")
    print(f"{'  per event':<34} {py_bulk * per_n:>11.0f} ns   {'':<30} {rust_bulk * per_n:>11.0f} ns")
    print(f"{'  of which numpy copies, at most':<34} {best['copies'] * per_n:>11.1f} ns")
    print(f"{'Cluster.write, one call per event':<34} {py_single * per_k:>11.0f} ns   {'write_scoped, one op per call':<30} "
          f"{rust_single * per_k:>11.0f} ns {rust_single / py_single:>7.2f}")
    print(f"{'':<34} {'':>14}   {'empty Python method call':<30} {empty * per_k:>11.0f} ns {empty / py_single:>7.2f}")
    print(f"{'  diagnostic: cluster.shards_per_region':<40} {best['attached'] * per_k:>5.0f} ns   (a getter; stays attached)")
    print(f"{'  diagnostic: cluster.now':<40} {best['detached'] * per_k:>5.0f} ns   (a getter that detaches and takes the lock)")
    print(f"\nPython overhead per Cluster.write: {(py_single - rust_single) * per_k:.0f} ns "
          f"(Python call - Rust call; an empty Python method call is {empty * per_k:.0f} ns of it)")


if __name__ == "__main__":
    main()
