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
    with tidaldb.Db(schema, data_dir):
        pass
    opened = [r for r in caplog.records if "opened tidaldb" in r.getMessage()]
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
    assert "tidaldb.runtime.db snapshot written" in run.stdout
