"""A single-node tour: write signals, then watch scores decay and windows roll.

Run it with ``python -m tidaldb.demo`` (or ``make demo``). Every read passes ``at=``, so
the table is the same on every run: it shows the database as of each moment in turn.
"""

from __future__ import annotations

import sys
from typing import TextIO

import numpy as np

import tidaldb

#: 2023-11-14 22:13:20 UTC; any fixed moment would do.
T0 = 1_700_000_000.0
MINUTE = 60.0
HOUR = 3600.0

ITEMS = {101: "trailer", 102: "tutorial", 103: "meme"}


def build() -> tidaldb.Db:
    """An ephemeral database with a burst of views and a few likes around ``T0``."""
    schema = (
        tidaldb.Schema()
        .signal("view", kind="item", half_life="1h", windows=["1h", "24h"], velocity=True)
        .signal("like", kind="item", half_life="6h", windows=["24h"])
    )
    db = tidaldb.Db(schema)
    rng = np.random.default_rng(7)
    # The meme goes viral in the last ten minutes; the tutorial gathers views all morning.
    bursts = [(101, 40, 30 * MINUTE), (102, 60, 4 * HOUR), (103, 120, 10 * MINUTE)]
    for item, n, spread in bursts:
        ts = T0 - rng.uniform(0.0, spread, n)
        db.signals("view", np.full(n, item, dtype=np.uint64), np.ones(n), ts)
    for item, likes in [(101, 3), (102, 8), (103, 2)]:
        for k in range(likes):
            db.signal("like", item, weight=1.0, ts=T0 - k * 20 * MINUTE)
    return db


def table(db: tidaldb.Db, out: TextIO = sys.stdout) -> None:
    """Prints scores and window counts as time advances past ``T0``."""
    offsets = [0.0, 30 * MINUTE, HOUR, 2 * HOUR, 6 * HOUR, 24 * HOUR, 26 * HOUR]
    header = f"{'time':>8} {'item':>9} {'view score':>11} {'like score':>11} {'views 1h':>9} {'views 24h':>10} {'views/h':>8}"
    print(header, file=out)
    print("-" * len(header), file=out)
    for dt in offsets:
        at = T0 + dt
        label = f"+{dt / HOUR:g}h"
        for item, name in ITEMS.items():
            print(
                f"{label:>8} {name:>9}"
                f" {db.score('view', item, at=at):11.3f}"
                f" {db.score('like', item, at=at):11.3f}"
                f" {db.window_count('view', item, '1h', at=at):9d}"
                f" {db.window_count('view', item, '24h', at=at):10d}"
                f" {db.velocity('view', item, at=at):8.1f}",
                file=out,
            )
            label = ""
    ranked = db.retrieve(list(ITEMS), {"view": 1.0, "like": 3.0}, limit=3, at=T0 + HOUR)
    print(file=out)
    print("top items an hour later (view + 3 x like):", file=out)
    for rank, hit in enumerate(ranked, 1):
        print(f"  {rank}. {ITEMS[hit.item]:<9} {hit.score:8.3f}", file=out)


def main() -> None:
    """Builds the demo database and prints its tables (``make demo``)."""
    with build() as db:
        print(f"{db!r}: {db.events_applied} events written around t0 = {T0:.0f}\n")
        table(db)


if __name__ == "__main__":
    main()
