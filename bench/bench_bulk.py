"""One large bulk call against the same events in 10K-event calls: speed, and the resident
memory each leaves behind (issue 15's streaming targets); and the large call applied on
every core (the default ``ingest_threads``) against the same call on one thread.

    .venv/bin/python bench/bench_bulk.py                  # after `make ext`
    .venv/bin/python bench/bench_bulk.py --other-thread   # as from a program with threads

Every measurement runs in a fresh subprocess (so resident memory starts from the same
place), alternating the three paths, ``--rounds`` times each; the table gives the best and
the median. The machine's load average is printed, since the VM is shared. Alone in its
process, a large call reads its arrays in place; with another Python thread alive
(``--other-thread``) every call copies them first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

# numpy's OpenBLAS leaves worker threads spinning after some calls. Nothing measured here
# uses BLAS, and on a 2-core machine those threads take a core from the systems measured.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

CHILD = r"""
import json, sys, threading, time
import numpy as np, tidaldb

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0

n, chunk, threads = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
if sys.argv[4] == "other":
    # A second Python thread (idle): Db.signals then copies its arrays before releasing
    # the interpreter, as in any program with threads; alone, a large call reads in place.
    threading.Thread(target=threading.Event().wait, daemon=True).start()
db = tidaldb.Db(tidaldb.Schema().signal("view", half_life="1d"), ingest_threads=threads or None)
rng = np.random.default_rng(1)
items = rng.integers(0, 100_000, n).astype(np.uint64)
weights = np.ones(n)
ts = 1_700_000_000.0 + np.arange(n) * 1e-3
db.signals("view", items[:1000], weights[:1000], ts=ts[:1000])  # warm the 100K-item map path
base = rss_mib()
t = time.perf_counter()
for i in range(0, n, chunk):
    db.signals("view", items[i:i + chunk], weights[i:i + chunk], ts=ts[i:i + chunk])
elapsed = time.perf_counter() - t
print(json.dumps({"rate": n / elapsed, "left_mib": rss_mib() - base}))
"""


def run(n: int, chunk: int, threads: int = 0, other_thread: bool = False) -> dict[str, float]:
    """``threads=0``: the default (every core)."""
    other = "other" if other_thread else "alone"
    args = [sys.executable, "-c", CHILD, str(n), str(chunk), str(threads), other]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--other-thread",
        action="store_true",
        help="start an idle second Python thread in each measured process (every call copies)",
    )
    args = parser.parse_args()
    print(f"load average at the start: {os.getloadavg()}; {os.cpu_count()} cores")
    rows = []
    for n in (1_000_000, 4_000_000):
        one: list[dict[str, float]] = []
        small: list[dict[str, float]] = []
        serial: list[dict[str, float]] = []
        for _ in range(args.rounds):
            one.append(run(n, n, other_thread=args.other_thread))
            small.append(run(n, 10_000, other_thread=args.other_thread))
            serial.append(run(n, n, threads=1, other_thread=args.other_thread))
        best_one = max(r["rate"] for r in one)
        best_small = max(r["rate"] for r in small)
        med_one = statistics.median(r["rate"] for r in one)
        med_small = statistics.median(r["rate"] for r in small)
        left_one = statistics.median(r["left_mib"] for r in one)
        left_small = statistics.median(r["left_mib"] for r in small)
        best_serial = max(r["rate"] for r in serial)
        med_serial = statistics.median(r["rate"] for r in serial)
        rows.append(
            (
                f"{n:,} events, one call vs {n // 10_000} calls of 10K",
                f"{best_one / 1e6:.2f} M/s (median {med_one / 1e6:.2f})",
                f"{best_small / 1e6:.2f} M/s (median {med_small / 1e6:.2f})",
                f"{best_one / best_small:.2f}x (median {med_one / med_small:.2f}x)",
                f"left {left_one:.1f} MiB vs {left_small:.1f} MiB (medians)",
            )
        )
        rows.append(
            (
                f"{n:,} events, one call on every core vs on one thread",
                f"{best_one / 1e6:.2f} M/s (median {med_one / 1e6:.2f})",
                f"{best_serial / 1e6:.2f} M/s (median {med_serial / 1e6:.2f})",
                f"{best_one / best_serial:.2f}x (median {med_one / med_serial:.2f}x)",
                "",
            )
        )
    print(f"load average at the end: {os.getloadavg()}")
    for row in rows:
        print(" | ".join(row))


if __name__ == "__main__":
    main()
