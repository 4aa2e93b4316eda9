"""tidaldb across processes over TCP (issue 12), each figure beside a baseline from the same run.

    .venv/bin/python bench/bench_network.py          # or: make bench (after make ext)
    .venv/bin/python bench/bench_network.py --sections ingest --insecure

Every server is a real `tidaldb serve` process on 127.0.0.1 (`tidaldb.servers.LocalServers`:
three nodes, node 1 leads, mutual TLS unless --insecure, durability "batched" = sync every
4096 writes or 10 ms), driven from this process with `tidaldb.connect`. Signals: `view`
(1h half-life, 1h and 24h windows) and `like` (1d half-life). The workload is splitmix64
of `seed + i` (entity = h % entities, weight = [0.5, 1, 2][(h >> 32) % 3]), as in the
Rust baseline.

1. ingest: `events` events in `write_many` calls of `batch` (64K) to node 1, write
   concern "local", against `cargo run --release -p tidaldb --example runtime_ingest`
   (`LocalCluster`: three replicas in one process over in-process channels, durability
   batched, the same batches through the same `TidalDb::write_request` the server calls).
   Accepted = events / time until the last `write_many` returned; applied per replica =
   events / time until every replica's `tidaldb_events_applied_total` (`/metrics`,
   polled every 2 ms once the writes are in) reached the total. Fresh cluster per round
   on both sides, no warm-up on either (both pay their first-touch page faults).
2. client: `write_many` to ONE server (no replication: the client protocol alone), against
   `Db.signals` with the same numpy batches on a local durable `Db` (batched).
3. lag: a paced writer on node 1 (`--lag-batch` events every `--lag-interval` s, i.e.
   100K events/s); each batch ends with a marker entity used only by that batch. A reader
   thread per follower asks that follower for the outstanding markers' scores in one
   `scores` call every ~1 ms; a marker's lag is the time from just before its
   `write_many` call to the first poll that saw its score > 0 (resolution: one poll
   period plus one round trip).
4. reads: 1M `view` + 200K `like` events, user 1 hides 1K of 10K candidates (on the
   cluster through the client, and on a local `Db`), then `score(view, item)` for random
   items and a top-50 `retrieve` of the 10K candidates for user 1, ranked by view + 3 x
   like, each call timed alone; p50 and p99, against the same calls on the local `Db`.

Each figure is the best (min time) and the median of `--rounds` rounds (>= 3). The machine
has 2 cores; three server processes and this driver share them. Not a test: the figures
are recorded in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import statistics
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import tidaldb
from tidaldb.servers import LocalServers

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "target" / "release" / "examples" / "runtime_ingest"
WEIGHTS = np.array([0.5, 1.0, 2.0])
SIGNALS: list[dict[str, Any]] = [
    {"name": "view", "kind": "item", "half_life": "1h", "windows": ["1h", "24h"]},
    {"name": "like", "kind": "item", "half_life": "1d"},
]
APPLIED = re.compile(r'^tidaldb_events_applied_total\{node="\d+",tenant="0"\} (\d+)$', re.M)
Ids = npt.NDArray[np.uint64]
Floats = npt.NDArray[np.float64]
Row = tuple[str, str, str, str, str, str]


def splitmix64(x: Ids) -> Ids:
    """splitmix64 of each uint64, wrapping like the Rust example's."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def workload(n: int, entities: int, seed: int) -> tuple[Ids, Floats]:
    """The events both sides write: uint64 ids and float64 weights."""
    h = splitmix64(np.arange(n, dtype=np.uint64) + np.uint64(seed))
    ids = h % np.uint64(entities)
    weights: Floats = WEIGHTS[((h >> np.uint64(32)) % np.uint64(3)).astype(np.intp)]
    return ids, weights


def local_schema() -> tidaldb.Schema:
    """The servers' schema, for a local `Db`."""
    return (
        tidaldb.Schema()
        .signal("view", half_life="1h", windows=["1h", "24h"])
        .signal("like", half_life="1d")
    )


def servers(n: int, insecure: bool, durability: str = "batched") -> LocalServers:
    return LocalServers(n, signals=SIGNALS, insecure=insecure, durability=durability).start()


class Metrics:
    """Keep-alive HTTP connections to every node's /metrics."""

    def __init__(self, s: LocalServers) -> None:
        self.conns = [http.client.HTTPConnection(n.http_addr, timeout=10) for n in s.nodes]

    def applied(self) -> list[int]:
        out = []
        for c in self.conns:
            c.request("GET", "/metrics")
            body = c.getresponse().read().decode()
            m = APPLIED.search(body)
            out.append(int(m.group(1)) if m else -1)
        return out

    def close(self) -> None:
        for c in self.conns:
            c.close()


def write_batches(client: tidaldb.Client, ids: Ids, weights: Floats, batch: int) -> None:
    for lo in range(0, len(ids), batch):
        client.write_many("view", ids[lo : lo + batch], weights[lo : lo + batch])


# -- 1. replicated ingest ------------------------------------------------------------------


def build_example() -> None:
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "tidaldb", "--example", "runtime_ingest"],
        cwd=ROOT,
        check=True,
    )


def run_example(args: argparse.Namespace) -> tuple[float, float]:
    """One cold run of the in-process baseline: (accept seconds, applied seconds)."""
    flags = ["--events", args.events, "--entities", args.entities, "--seed", args.seed,
             "--batch", args.batch, "--repeats", 1, "--warmup", 0]
    out = subprocess.run([str(EXAMPLE), *map(str, flags)], cwd=ROOT, check=True,
                         capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout)
    return float(result["accept_seconds"]["best"]), float(result["applied_seconds"]["best"])


def run_example_lag(args: argparse.Namespace) -> tuple[float, float]:
    """One run of the in-process lag baseline: (p50, p99) in seconds."""
    flags = ["--lag-seconds", args.lag_seconds, "--lag-batch", args.lag_batch,
             "--lag-interval-ms", round(args.lag_interval * 1e3), "--entities", args.entities,
             "--durability", args.lag_durability, "--repeats", 1, "--warmup", 0]
    out = subprocess.run([str(EXAMPLE), *map(str, flags)], cwd=ROOT, check=True,
                         capture_output=True, text=True)
    run: dict[str, Any] = json.loads(out.stdout)["lag"][0]
    return float(run["p50"]), float(run["p99"])


def tcp_ingest(ids: Ids, weights: Floats, batch: int, insecure: bool) -> tuple[float, float]:
    """One run on three fresh server processes: (accept seconds, applied seconds)."""
    total = len(ids)
    with servers(3, insecure) as s:
        client = s.connect([1])
        metrics = Metrics(s)
        start = time.perf_counter()
        write_batches(client, ids, weights, batch)
        accept = time.perf_counter() - start
        deadline = start + 120
        while min(metrics.applied()) < total:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"replicas stuck at {metrics.applied()} of {total}")
            time.sleep(0.002)
        applied = time.perf_counter() - start
        metrics.close()
    return accept, applied


# -- 2. the client protocol alone ---------------------------------------------------------


def client_vs_local(ids: Ids, weights: Floats, batch: int, insecure: bool) -> tuple[float, float]:
    """(seconds over TCP to one server, seconds of `Db.signals` on a local durable Db)."""
    with servers(1, insecure) as s:
        client = s.connect([1])
        start = time.perf_counter()
        write_batches(client, ids, weights, batch)
        tcp = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as d:
        db = tidaldb.Db(local_schema(), Path(d) / "db", durability="batched")
        start = time.perf_counter()
        for lo in range(0, len(ids), batch):
            db.signals("view", ids[lo : lo + batch], weights[lo : lo + batch])
        local = time.perf_counter() - start
        db.close()
    return tcp, local


# -- 3. lag ------------------------------------------------------------------------------


def lag_run(s: LocalServers, seconds: float, batch: int, interval: float,
            marker0: int) -> tuple[list[float], float]:
    """Paced writes on node 1, markers read on nodes 2 and 3. Returns every (marker,
    follower) lag in seconds and the achieved write rate in events/s."""
    n = int(seconds / interval)
    rng = np.random.default_rng(7)
    issued: dict[int, float] = {}
    seen: list[dict[int, float]] = [{}, {}]
    lock = threading.Lock()
    done = threading.Event()

    def reader(k: int, node: int) -> None:
        c = s.connect([node])
        while True:
            with lock:
                pending = [m for m in issued if m not in seen[k]]
            finished = done.is_set()
            if pending:
                scores = c.scores("view", np.array(pending, dtype=np.uint64))
                now = time.perf_counter()
                for m, v in zip(pending, scores):
                    if v > 0:
                        seen[k][m] = now
            elif finished:
                return
            time.sleep(0.001)

    threads = [threading.Thread(target=reader, args=(k, node)) for k, node in enumerate((2, 3))]
    for t in threads:
        t.start()
    writer = s.connect([1])
    start = time.perf_counter()
    for i in range(n):
        due = start + i * interval
        while (now := time.perf_counter()) < due:
            time.sleep(min(0.0005, due - now))
        # Entities of their own, so that section 4 reads only its own events.
        ids = rng.integers(20_000_000, 20_100_000, batch).astype(np.uint64)
        ids[-1] = marker0 + i
        with lock:
            issued[marker0 + i] = time.perf_counter()
        writer.write_many("view", ids)
    rate = n * batch / (time.perf_counter() - start)
    deadline = time.perf_counter() + 30
    while any(len(x) < n for x in seen) and time.perf_counter() < deadline:
        time.sleep(0.01)
    done.set()
    for t in threads:
        t.join()
    lags = [x[m] - issued[m] for x in seen for m in x]
    missing = 2 * n - len(lags)
    if missing:
        raise RuntimeError(f"{missing} markers never reached a follower")
    return lags, rate


def pct(xs: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


# -- 4. reads ----------------------------------------------------------------------------


def timed_calls(calls: Sequence[Callable[[int], object]], n: int) -> list[list[float]]:
    """Wall time of each call, `n` of each, interleaved (call 0, call 1, ..., call 0, ...)
    so that every kind sees the same minutes; after 10 untimed rounds."""
    for i in range(10):
        for call in calls:
            call(i)
    out: list[list[float]] = [[] for _ in calls]
    for i in range(n):
        for k, call in enumerate(calls):
            t = time.perf_counter()
            call(i)
            out[k].append(time.perf_counter() - t)
    return out


def load_reads(client: tidaldb.Client, db: tidaldb.Db, cands: Ids, ids: Ids, w: Floats,
               ts: Floats, batch: int) -> None:
    """The read workload on both sides, with the same timestamps: 1M view, 200K like,
    user 1 hides every 10th candidate (1K)."""
    for lo in range(0, len(ids), batch):
        sl = slice(lo, lo + batch)
        client.write_many("view", ids[sl], w[sl], ts[sl])
        db.signals("view", ids[sl], w[sl], ts[sl])
    like = min(200_000, len(ids))
    for lo in range(0, like, batch):
        sl = slice(lo, min(lo + batch, like))
        client.write_many("like", ids[sl], w[sl], ts[sl])
        db.signals("like", ids[sl], w[sl], ts[sl])
    for item in cands[::10].tolist():
        client.hide(1, item)
        db.hide(1, item)


# -- the run ------------------------------------------------------------------------------


def best_median(xs: Sequence[float]) -> tuple[float, float]:
    return min(xs), statistics.median(xs)


def fmt_rate(x: float) -> str:
    return f"{x / 1e6:.2f} M/s"


def fmt_ms(x: float) -> str:
    if x < 1e-3:
        return f"{x * 1e6:.1f} µs"
    return f"{x * 1e3:.3f} ms" if x < 0.01 else f"{x * 1e3:.1f} ms"


def print_table(rows: list[Row]) -> None:
    head: Row = ("figure", "measured", "baseline (same run)", "ratio", "target", "met")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(6)]
    for r in [head, *rows]:
        print("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())


def ingest_rows(args: argparse.Namespace, ids: Ids, weights: Floats, insecure: bool) -> list[Row]:
    """Section 1, one security mode: rounds of the Rust baseline, then the servers."""
    tag = "insecure" if insecure else "TLS"
    t: dict[str, list[float]] = defaultdict(list)
    for r in range(args.rounds):
        base_accept, base_applied = run_example(args)
        tcp_accept, tcp_applied = tcp_ingest(ids, weights, args.batch, insecure)
        t["base accepted"].append(base_accept)
        t["base applied"].append(base_applied)
        t["tcp accepted"].append(tcp_accept)
        t["tcp applied"].append(tcp_applied)
        print(f"  ingest {tag} round {r}: LocalCluster accept {base_accept:.3f} s applied "
              f"{base_applied:.3f} s; TCP accept {tcp_accept:.3f} s applied {tcp_applied:.3f} s; "
              f"load {os.getloadavg()[0]:.2f}")
    n = args.events
    rows: list[Row] = []
    for what in ("accepted", "applied"):
        (tb, tm), (bb, bm) = best_median(t[f"tcp {what}"]), best_median(t[f"base {what}"])
        target = met = ""
        if what == "applied":
            target = "≥ 0.5× and ≥ 1 M/s"
            met = "yes" if n / tb >= 1e6 and bb / tb >= 0.5 else "no"
        rows.append((
            f"3 servers over TCP ({tag}), events/s "
            + ("accepted at the writer" if what == "accepted" else "applied per replica"),
            f"{fmt_rate(n / tb)} (median {fmt_rate(n / tm)})",
            f"LocalCluster: {fmt_rate(n / bb)} (median {fmt_rate(n / bm)})",
            f"{bb / tb:.2f}× (median {bm / tm:.2f}×)", target, met,
        ))
    return rows


def client_rows(args: argparse.Namespace, ids: Ids, weights: Floats, insecure: bool) -> list[Row]:
    """Section 2, one security mode."""
    tag = "insecure" if insecure else "TLS"
    tcps, locs = [], []
    for r in range(args.rounds):
        tcp, loc = client_vs_local(ids, weights, args.batch, insecure)
        tcps.append(tcp)
        locs.append(loc)
        print(f"  client {tag} round {r}: TCP {tcp:.3f} s, local Db.signals {loc:.3f} s")
    (tb, tm), (lb, lm) = best_median(tcps), best_median(locs)
    n = args.events
    return [(
        f"Python write_many to 1 server ({tag}), events/s",
        f"{fmt_rate(n / tb)} (median {fmt_rate(n / tm)})",
        f"local Db.signals: {fmt_rate(n / lb)} (median {fmt_rate(n / lm)})",
        f"{lb / tb:.2f}× (median {lm / tm:.2f}×)", "", "",
    )]


def reads_round(s: LocalServers, args: argparse.Namespace, r: int, t: dict[str, list[float]]) -> None:
    """Section 4, one round on `s`: appends p50 and p99 of every kind of call to `t`."""
    cands = (np.arange(10_000, dtype=np.uint64) * np.uint64(7)) % np.uint64(args.entities)
    read_ids, read_w = workload(1_000_000, args.entities, args.seed + 1)
    rank = {"view": 1.0, "like": 3.0}
    with tempfile.TemporaryDirectory() as d:
        db = tidaldb.Db(local_schema(), Path(d) / "db", durability="batched")
        client = s.connect([1])
        # Stamped over the last hour and read at a fixed time, so that both sides hold the
        # same events and must return the same bits.
        at = time.time()
        ts = at - 3600 + np.sort(np.random.default_rng(r).uniform(0, 3600, len(read_ids)))
        load_reads(client, db, cands, read_ids, read_w, ts, args.batch)
        items = read_ids[: args.reads].tolist()
        probe = read_ids[:1000]
        assert (client.scores("view", probe, at=at) == db.scores("view", probe, at=at)).all()
        res = client.retrieve(cands, rank, user=1, limit=50, at=at)
        want = db.retrieve(cands, rank, user=1, limit=50, at=at)
        assert res.stats.hidden_filtered == 1_000, res.stats
        assert [(x.item, x.score) for x in res] == [(x.item, x.score) for x in want]
        timings = timed_calls([
            lambda i: client.is_hidden(1, items[i]),
            lambda i: client.score("view", items[i], at=at),
            lambda i: db.score("view", items[i], at=at),
        ], args.reads)
        timings += timed_calls([
            lambda i: client.retrieve(cands, rank, user=1, limit=50, at=at),
            lambda i: db.retrieve(cands, rank, user=1, limit=50, at=at),
        ], args.retrieves)
        db.close()
    for name, xs in zip(("rtt", "point tcp", "point local", "retrieve tcp", "retrieve local"), timings):
        t[f"{name} p50"].append(pct(xs, 50))
        t[f"{name} p99"].append(pct(xs, 99))
    print(f"  reads round {r}: point p50 {fmt_ms(t['point tcp p50'][-1])} (local "
          f"{fmt_ms(t['point local p50'][-1])}), retrieve p50 {fmt_ms(t['retrieve tcp p50'][-1])} "
          f"(local {fmt_ms(t['retrieve local p50'][-1])})")


def cluster_rows(args: argparse.Namespace, sections: set[str]) -> list[Row]:
    """Sections 3 and 4: each round on three fresh servers, lag first."""
    t: dict[str, list[float]] = defaultdict(list)
    for r in range(args.rounds):
        with servers(3, False, args.lag_durability) as s:
            if "lag" in sections:
                b50, b99 = run_example_lag(args)
                lags, rate = lag_run(s, args.lag_seconds, args.lag_batch, args.lag_interval,
                                     marker0=10_000_000 + r * 1_000_000)
                for key, v in (("base p50", b50), ("base p99", b99), ("rate", rate),
                               ("lag p50", pct(lags, 50)), ("lag p99", pct(lags, 99))):
                    t[key].append(v)
                print(f"  lag round {r}: {fmt_rate(rate)} written, p50 {fmt_ms(t['lag p50'][-1])} "
                      f"p99 {fmt_ms(t['lag p99'][-1])} max {fmt_ms(max(lags))} (LocalCluster p50 "
                      f"{fmt_ms(b50)} p99 {fmt_ms(b99)}); load {os.getloadavg()[0]:.2f}")
            if "reads" in sections:
                reads_round(s, args, r, t)
    rows: list[Row] = []
    if "lag" in sections:
        how = (f"{args.lag_batch}-event batches every {args.lag_interval * 1e3:.0f} ms, "
               f"durability {args.lag_durability}; {fmt_rate(statistics.median(t['rate']))} achieved")
        for q in ("p50", "p99"):
            (b, m), (bb, bm) = best_median(t[f"lag {q}"]), best_median(t[f"base {q}"])
            rows.append((
                f"lag write → applied on nodes 2 and 3, {q} ({how})",
                f"{fmt_ms(b)} (median {fmt_ms(m)})",
                f"LocalCluster: {fmt_ms(bb)} (median {fmt_ms(bm)})",
                f"{b / bb:.2f}× (median {m / bm:.2f}×)", "", "",
            ))
    if "reads" in sections:
        for q in ("p50", "p99"):
            b, m = best_median(t[f"rtt {q}"])
            rows.append((f"diagnostic: `is_hidden` round trip over the client, {q}",
                         f"{fmt_ms(b)} (median {fmt_ms(m)})", "", "", "", ""))
        for name, key in (("point read `score`", "point"),
                          ("retrieve top-50 of 10K, 1K hidden", "retrieve")):
            for q in ("p50", "p99"):
                (tb, tm) = best_median(t[f"{key} tcp {q}"])
                (lb, lm) = best_median(t[f"{key} local {q}"])
                rows.append((
                    f"{name} over the client, {q}",
                    f"{fmt_ms(tb)} (median {fmt_ms(tm)})",
                    f"local Db: {fmt_ms(lb)} (median {fmt_ms(lm)})",
                    f"{tb / lb:.2f}× the time (median {tm / lm:.2f}×)", "", "",
                ))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=32 * 65_536)
    ap.add_argument("--entities", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=65_536)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--insecure", action="store_true", help="also run sections 1 and 2 without TLS")
    ap.add_argument("--sections", default="ingest,client,lag,reads")
    ap.add_argument("--lag-seconds", type=float, default=5.0)
    ap.add_argument("--lag-batch", type=int, default=1_000)
    ap.add_argument("--lag-interval", type=float, default=0.01)
    ap.add_argument("--lag-durability", default="batched",
                    help='durability of the lag and reads sections\' servers: "batched" or "immediate"')
    ap.add_argument("--reads", type=int, default=5_000, help="timed point reads per round")
    ap.add_argument("--retrieves", type=int, default=300, help="timed retrieves per round")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    sections = set(args.sections.split(","))
    print(f"=== tidaldb over TCP: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()} ===")
    ids, weights = workload(args.events, args.entities, args.seed)
    modes = [False, True] if args.insecure else [False]
    rows: list[Row] = []
    if sections & {"ingest", "lag"}:
        build_example()
    if "ingest" in sections:
        for insecure in modes:
            rows += ingest_rows(args, ids, weights, insecure)
    if "client" in sections:
        for insecure in modes:
            rows += client_rows(args, ids, weights, insecure)
    if sections & {"lag", "reads"}:
        rows += cluster_rows(args, sections)
    print(f"\nload average at the end {os.getloadavg()}; best (median) of {args.rounds} rounds\n")
    print_table(rows)


if __name__ == "__main__":
    main()
