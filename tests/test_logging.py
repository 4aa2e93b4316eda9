"""Rust tracing reaches Python logging under the `tidaldb` logger."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

import tidaldb


def test_opening_a_durable_db_logs_on_a_tidaldb_logger(
    schema: tidaldb.Schema, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tidaldb")
    db = tidaldb.Db(schema, data_dir)
    # Delivered by the time the constructor returns, not with some later call.
    opened = [r for r in caplog.records if "opened tidaldb" in r.getMessage()]
    db.close()
    assert opened, [r.getMessage() for r in caplog.records]
    assert all(r.name == "tidaldb" or r.name.startswith("tidaldb.") for r in opened)
    assert opened[0].levelno == logging.INFO
    assert str(data_dir) in opened[0].getMessage()


def test_level_changes_apply_at_once(schema: tidaldb.Schema, data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Level caching is off, so raising the level silences the next open immediately."""
    caplog.set_level(logging.WARNING, logger="tidaldb")
    with tidaldb.Db(schema, data_dir):
        pass
    assert not [r for r in caplog.records if "opened tidaldb" in r.getMessage()]
    caplog.set_level(logging.DEBUG, logger="tidaldb")
    with tidaldb.Db(schema, data_dir) as db:
        db.snapshot()
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("tidaldb")]
    assert any("opened tidaldb" in m for m in messages)
    assert any("snapshot written" in m for m in messages), messages


SCRIPT = """
import logging, sys, tempfile, threading
import tidaldb

logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="%(name)s %(message)s")
schema = tidaldb.Schema().signal("view", half_life="1h")
with tempfile.TemporaryDirectory() as d:
    db = tidaldb.Db(schema, d, durability="batched")
    stop = threading.Event()

    def snapshots():
        while not stop.is_set():
            db.snapshot()

    t = threading.Thread(target=snapshots)
    t.start()
    for i in range(20_000):
        db.signal("view", i % 100, 1.0, ts=1_700_000_000.0 + i)
    stop.set()
    t.join()
    db.close()
print("finished")
"""


def test_logging_from_a_detached_thread_holding_the_core_lock_does_not_deadlock() -> None:
    """A snapshot logs while holding the core's lock, with the interpreter released; the
    main thread meanwhile holds the interpreter and waits for that lock. Forwarding the
    record synchronously would deadlock; the bindings queue it instead."""
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.rstrip().endswith("finished")
    assert "tidaldb.runtime.state snapshot written" in run.stdout


def run_script(script: str, timeout: float = 120) -> str:
    """Runs `script` in a fresh interpreter; a deadlock there fails the test on the timeout
    instead of hanging the suite."""
    try:
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"deadlocked: no exit within {timeout} s")
    assert run.returncode == 0, run.stderr
    assert run.stdout.rstrip().endswith("finished"), run.stdout
    return run.stdout


#: Writes enough for the core to snapshot (every million events) inside `signal()`, and log
#: it at DEBUG while holding its lock and the Db's; the handler writes to a file, which
#: releases the interpreter, while another thread keeps calling `score()`.
CONTENDED = """
import logging, os, sys, tempfile, threading
import tidaldb

with tempfile.TemporaryDirectory() as d:
    log = os.path.join(d, "log.txt")
    handler = logging.FileHandler(log)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logger = logging.getLogger("tidaldb")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    schema = tidaldb.Schema().signal("view", half_life="1h")
    db = tidaldb.Db(schema, os.path.join(d, "data"), durability="batched")
    stop = threading.Event()

    def reads():
        while not stop.is_set():
            db.score("view", 1, at=1_700_000_000.0)

    reader = threading.Thread(target=reads)
    reader.start()
    for i in range(2_100_000):
        db.signal("view", i % 1000, 1.0, ts=1_700_000_000.0)
    stop.set()
    reader.join()
    db.close()
    handler.close()
    sys.stdout.write(open(log).read())
print("finished")
"""


def test_a_record_logged_under_the_lock_while_another_thread_waits_does_not_deadlock() -> None:
    """A record is delivered to Python after the Db lock is released, and a caller that
    finds the Db busy waits detached. Were the record delivered inside the call, with the
    lock held, the handler's file write would release the interpreter to the reader, which
    would then wait for that lock while holding the interpreter: a deadlock."""
    out = run_script(CONTENDED)
    assert out.count("tidaldb.runtime.state snapshot written") >= 2, out
    assert "tidaldb.runtime.db opened tidaldb" in out


#: A logging handler that calls back into the Db that logged.
REENTRANT = """
import logging, os, sys, tempfile
import tidaldb

seen = []

class CallsBack(logging.Handler):
    def emit(self, record):
        if "snapshot written" in record.getMessage():
            seen.append((db.events_applied, db.score("view", 1, at=1_700_000_000.0)))

logger = logging.getLogger("tidaldb")
logger.setLevel(logging.DEBUG)
logger.addHandler(CallsBack())
schema = tidaldb.Schema().signal("view", half_life="1h")
with tempfile.TemporaryDirectory() as d:
    db = tidaldb.Db(schema, d, durability="batched")
    for i in range(1_010_000):
        db.signal("view", i % 1000, 1.0, ts=1_700_000_000.0)
    db.close()
assert len(seen) == 1 and seen[0][0] >= 1_000_000, seen
print("finished")
"""


def test_a_logging_handler_may_call_the_db_that_logged() -> None:
    """Records reach Python only once the call that logged them has released its locks."""
    run_script(REENTRANT)
