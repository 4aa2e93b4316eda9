"""Programs for ``test_fork_safety.py``, each run as a process of its own (so that forking
never copies pytest): ``python tests/fork_support.py <scenario> <dir> [<arg>]``.

Each writes a known sequence of events (``events``), forks or starts children that try
the parent's handles and open their own, writes more, and exits 0 once every child has
exited 0. A check that fails raises, and the process exits non-zero with the traceback.
The test then reopens the directories and compares them with the analytical decay of
every acknowledged event.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import multiprocessing
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import tidaldb

T0 = 1_700_000_000.0
HOUR = 3600.0
ITEMS = 10

#: The parent's Db, inherited by a "fork" child; a "spawn" or "forkserver" child imports
#: this module afresh and finds None.
INHERITED: tidaldb.Db | None = None
INHERITED_CLUSTER: tidaldb.Cluster | None = None


def schema() -> tidaldb.Schema:
    return tidaldb.Schema().signal("view", half_life=HOUR)


def events(first: int, count: int) -> list[tuple[int, float, float]]:
    """Events ``first`` .. ``first + count - 1`` of the one sequence every program writes:
    ``(item, ts, weight)``."""
    return [(k % ITEMS, T0 + k, 1.0 + (k % 3)) for k in range(first, first + count)]


def write(db: tidaldb.Db, evs: list[tuple[int, float, float]]) -> None:
    for item, ts, weight in evs:
        db.signal("view", item, weight, ts=ts)


def write_at_once(db: tidaldb.Db, evs: list[tuple[int, float, float]]) -> None:
    items, ts, weights = zip(*evs)
    db.signals("view", np.array(items, dtype=np.uint64), np.array(weights), ts=np.array(ts))


def refused(call: Callable[[], Any]) -> str:
    """The message of the ``ForkedProcess`` that ``call`` must raise."""
    try:
        call()
    except tidaldb.ForkedProcess as e:
        assert isinstance(e, tidaldb.Unavailable)
        return str(e)
    raise AssertionError(f"{call} ran in a forked child")


def check_refusals(handle: str, calls: dict[str, Callable[[], Any]]) -> None:
    """Every call is refused with a message that names the fork and both processes."""
    parent = os.getppid()
    for name, call in calls.items():
        message = refused(call)
        assert "forked" in message and f"process {os.getpid()}" in message, (name, message)
        assert f"belongs to process {parent}" in message, (name, message)
        assert f"this {handle}" in message, (name, message)


def check_db_refused(db: tidaldb.Db) -> None:
    ids = np.arange(5, dtype=np.uint64)
    check_refusals(
        "Db",
        {
            "signal": lambda: db.signal("view", 1, ts=T0),
            "signals": lambda: db.signals("view", ids, np.ones(5), ts=np.full(5, T0)),
            "score": lambda: db.score("view", 1, at=T0),
            "scores": lambda: db.scores("view", ids, at=T0),
            "retrieve": lambda: db.retrieve([1, 2], {"view": 1.0}, at=T0),
            "flush": db.flush,
            "flush_async": db.flush_async,
            "snapshot": db.snapshot,
            "events_applied": lambda: db.events_applied,
            "closed": lambda: db.closed,
            "close": db.close,
        },
    )
    assert "fork" in repr(db)


def check_cluster_refused(cluster: tidaldb.Cluster) -> None:
    tenant_calls: dict[str, Callable[[], Any]] = {
        "write": lambda: cluster.write("view", 1),
        "score": lambda: cluster.score("view", 1),
        "run_for": lambda: cluster.run_for(1.0),
        "await_convergence": cluster.await_convergence,
        "converged": cluster.converged,
        "partition": lambda: cluster.partition("us-east", "eu-west"),
        "register_tenant": lambda: cluster.register_tenant(99),
        "now": lambda: cluster.now,
    }
    check_refusals("Cluster", tenant_calls)
    assert "fork" in repr(cluster)


def own_db(path: Path) -> list[tuple[int, float, float]]:
    """A child's own Db works, awaitables included: opened, written, flushed through
    ``asyncio.run``, closed."""
    mine = events(10_000, 300)
    db = tidaldb.Db(schema(), path=path, durability="batched")
    write(db, mine)
    asyncio.run(db.flush_async())
    db.close()
    return mine


def child(method: str, base: str) -> None:
    """A multiprocessing child: refused the parent's handles (if it inherited them), and
    locked out of the parent's directory, it opens and writes its own."""
    if method == "fork":
        assert INHERITED is not None and INHERITED_CLUSTER is not None
        check_db_refused(INHERITED)
        check_cluster_refused(INHERITED_CLUSTER)
    else:
        assert INHERITED is None and INHERITED_CLUSTER is None
    try:
        tidaldb.Db(schema(), path=Path(base) / "parent")
    except tidaldb.ForkedProcess as e:
        raise AssertionError("the parent's directory is locked, not forked") from e
    except tidaldb.Unavailable:
        pass
    else:
        raise AssertionError("the child opened the directory its parent holds")
    own_db(Path(base) / f"child-{method}")


def run_multiprocessing(method: str, base: Path) -> None:
    global INHERITED, INHERITED_CLUSTER
    db = tidaldb.Db(schema(), path=base / "parent", durability="batched")
    INHERITED = db
    INHERITED_CLUSTER = tidaldb.Cluster(schema(), seed=3)
    write(db, events(0, 1000))  # some of it still unsynced at the fork
    process = multiprocessing.get_context(method).Process(target=child, args=(method, str(base)))
    process.start()
    process.join(120)
    assert process.exitcode == 0, f"the {method} child exited {process.exitcode}"
    write(db, events(1000, 500))
    db.close()
    print(json.dumps({"parent": 1500, "child": 300}))


def tree_digest(path: Path) -> dict[str, str]:
    """Every file under ``path`` with the hash of its bytes."""
    return {
        str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(path.rglob("*"))
        if f.is_file()
    }


def in_forked_child(body: Callable[[], None]) -> None:
    """Runs ``body`` in a child forked from this process, which then exits normally (its
    exit hooks and teardown run), or with 1 and the traceback; waits for it."""
    pid = os.fork()
    if pid == 0:
        try:
            body()
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(1)
        sys.stdout.flush()
        sys.exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"the child exited with status {status}"


def run_os_fork(base: Path) -> None:
    """``os.fork`` whose children end with a normal interpreter exit: their exit hooks and
    garbage collection must leave the parent's Dbs alone, synced or not."""
    global INHERITED
    # Held in a dict, so that a child can drop them: its copy of the dict is its own.
    dbs = {
        "steady": tidaldb.Db(schema(), path=base / "steady"),  # every write synced
        "batched": tidaldb.Db(schema(), path=base / "parent", durability="batched"),
    }
    cluster = tidaldb.Cluster(schema(), seed=4)
    tenant = cluster.register_tenant(5, regions=["us-east"])
    write(dbs["steady"], events(0, 200))
    for item, ts, weight in events(0, 30):
        cluster.write("view", item, weight, ts=ts)
        tenant.write("view", item, weight, ts=ts)
    partition = cluster.partition("ap-south", "eu-west")
    before = tree_digest(base / "steady")

    def first_child() -> None:
        check_db_refused(dbs["steady"])
        check_db_refused(dbs["batched"])
        # Dropped at once, before the parent's background sync writes the tail (the
        # child's copy would then find its segment taken, and fail harmlessly).
        dbs.clear()
        gc.collect()
        check_cluster_refused(cluster)
        check_refusals(
            "Cluster",
            {
                "tenant.write": lambda: tenant.write("view", 1),
                "tenant.migrate": lambda: tenant.migrate("eu-west"),
                "partition.heal": partition.heal,
                "partition.active": lambda: partition.active,
            },
        )
        own_db(base / "child-os-fork")

    # Just before the fork, so that both copies hold an unsynced tail (the background sync
    # runs every 10 ms): a child that synced its copy would write it twice into the log.
    write(dbs["batched"], events(0, 900))
    write_at_once(dbs["batched"], events(900, 100))
    in_forked_child(first_child)
    assert tree_digest(base / "steady") == before, "the child wrote the parent's files"
    write(dbs["steady"], events(200, 100))
    write(dbs["batched"], events(1000, 500))
    # A second child exits at once, the parent's Db kept alive by a module global: the
    # exit hooks run while the handle lives, and the teardown drops it after them.
    INHERITED = dbs["batched"]
    write_at_once(dbs["batched"], events(1500, 100))
    in_forked_child(lambda: None)
    INHERITED = None
    for db in dbs.values():
        db.close()
    partition.heal()
    cluster.await_convergence(timeout=10.0)
    at = T0 + 2 * HOUR
    scores = {
        r: [cluster.score("view", i, region=r, at=at) for i in range(ITEMS)] for r in cluster.regions
    }
    tenant_scores = [tenant.score("view", i, at=at) for i in range(ITEMS)]
    print(
        json.dumps(
            {"steady": 300, "parent": 1600, "child": 300, "cluster": scores, "tenant": tenant_scores}
        )
    )


def run_client(addr: str) -> None:
    """A ``tidaldb.connect`` client, forked: the child is refused; the parent's connection
    goes on serving it."""
    client = tidaldb.connect(addr, insecure=True)
    for item, ts, weight in events(0, 20):
        client.write("view", item, weight, ts=ts)

    def child() -> None:
        # The child's teardown then drops the client: that must not close the connection.
        check_refusals(
            "Client",
            {
                "write": lambda: client.write("view", 1, ts=T0),
                "score": lambda: client.score("view", 1, at=T0),
                "node": lambda: client.node,
            },
        )
        assert "fork" in repr(client)

    in_forked_child(child)
    for item, ts, weight in events(20, 20):
        client.write("view", item, weight, ts=ts)
    at = T0 + HOUR
    print(json.dumps({"scores": [client.score("view", i, at=at) for i in range(ITEMS)]}))


def bulk_columns(seed: int, n: int) -> tuple[Any, Any, Any]:
    rng = np.random.default_rng(seed)
    items = rng.integers(0, 50_000, n).astype(np.uint64)
    return items, rng.choice([0.5, 1.0, 2.0], n), T0 + rng.random(n) * HOUR


def run_threads_across_fork() -> None:
    """Forks while another thread's bulk writes may be spread over the process's helper
    threads (``ingest_threads=2``). A child has none of those threads, and none of the locks
    they held at the fork; its own bulk writes, which may be spread too, must finish and be
    exact: compared with the analytical decay of what it wrote."""
    import threading

    stop = threading.Event()
    items, weights, ts = bulk_columns(1, 200_000)

    def keep_writing() -> None:
        with tidaldb.Db(schema(), ingest_threads=2) as db:
            while not stop.is_set():
                db.signals("view", items, weights, ts=ts)

    writer = threading.Thread(target=keep_writing)
    writer.start()

    def child_writes() -> None:
        c_items, c_weights, c_ts = bulk_columns(os.getpid(), 300_000)
        with tidaldb.Db(schema(), ingest_threads=2) as db:
            for _ in range(3):
                db.signals("view", c_items, c_weights, ts=c_ts)
            at = T0 + 2 * HOUR
            want = 3 * np.bincount(c_items.astype(np.int64), c_weights * np.exp2(-(at - c_ts) / HOUR))
            got = db.scores("view", np.arange(len(want), dtype=np.uint64), at=at)
            assert np.allclose(got, want, rtol=1e-9, atol=0.0), "a child's bulk writes are not exact"

    try:
        for _ in range(4):
            in_forked_child(child_writes)
    finally:
        stop.set()
        writer.join()
    print(json.dumps({"children": 4}))


if __name__ == "__main__":
    scenario, where = sys.argv[1], Path(sys.argv[2])
    if scenario == "os.fork":
        run_os_fork(where)
    elif scenario == "client":
        run_client(sys.argv[3])
    elif scenario == "threads":
        run_threads_across_fork()
    else:
        run_multiprocessing(scenario, where)
