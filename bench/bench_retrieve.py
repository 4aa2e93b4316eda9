"""Top-50 of 10K candidates with 1K of them hidden, from Python: the read bench_peers.py
times against DuckDB, here timed over many calls so that two builds can be compared.

    .venv/bin/python bench/bench_retrieve.py [--calls 2000] [--rounds 5]

The workload is bench_peers.py's: 1M events over 100K items (weights 0.5/1/2 over one
day), a decay-only signal with a 1-day half-life, 10K candidates drawn without replacement
in random order, 1K of them hidden for the user; each call is
``db.retrieve(candidates, {"view": 1.0}, user=USER, limit=50, at=now).to_numpy()``.
Prints the mean time per call of each round, their best and median, and the load average
at the start and the end. To compare two builds, run it alternately under each, e.g. with
one build's ``tidaldb`` package copied to a directory put first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_peers as peers  # noqa: E402
import tidaldb  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=2_000, help="calls per round")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    print(f"tidaldb from {os.path.dirname(tidaldb.__file__)}; load average {os.getloadavg()} at the start")
    w = peers.make_workload(1_000_000, 100_000, 0, 0)
    system = peers.Tidal()
    system.load(w)
    system.prepare_query(w)
    db, now = system.db, w.now
    per_call = []
    for r in range(args.rounds):
        start = time.perf_counter()
        for _ in range(args.calls):
            db.retrieve(w.candidates, {"view": 1.0}, user=peers.USER, limit=peers.TOP, at=now).to_numpy()
        per_call.append((time.perf_counter() - start) / args.calls)
        print(f"round {r}: {per_call[-1] * 1e3:.4f} ms per call")
    best, median = min(per_call), statistics.median(per_call)
    print(f"best {best * 1e3:.4f} ms, median {median * 1e3:.4f} ms; load average {os.getloadavg()} at the end")
    system.close()


if __name__ == "__main__":
    main()
