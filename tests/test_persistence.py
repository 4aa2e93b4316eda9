"""Durable databases: reopen, snapshots, batched durability, flush, the directory lock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

import tidaldb
from conftest import HOUR, T0


def write_some(db: tidaldb.Db) -> None:
    for k in range(50):
        db.signal("view", k % 7, 1.0 + k % 3, ts=T0 + k * 60.0)
        db.signal("like", k % 5, 2.0, ts=T0 + k * 30.0)
    db.hide(1, 3)
    db.hide(1, 4)
    db.unhide(1, 4)


def readings(db: tidaldb.Db) -> list[float]:
    at = T0 + 2 * HOUR
    out = [db.score(s, i, at=at) for s in ("view", "like") for i in range(8)]
    out += [float(db.window_count("view", i, "24h", at=at)) for i in range(8)]
    return out


@pytest.mark.parametrize("durability", ["immediate", "batched"])
def test_reopen_gives_the_same_scores(schema: tidaldb.Schema, data_dir: Path, durability: str) -> None:
    with tidaldb.Db(schema, data_dir, durability=durability) as db:
        write_some(db)
        before = readings(db)
        applied = db.events_applied
    assert (data_dir / "wal").is_dir()
    with tidaldb.Db(schema, str(data_dir)) as db:
        assert db.events_applied == applied
        assert readings(db) == before  # bit-identical after replay
        assert db.is_hidden(1, 3) and not db.is_hidden(1, 4)


def test_snapshot_then_more_writes_survive_reopen(schema: tidaldb.Schema, data_dir: Path) -> None:
    with tidaldb.Db(schema, data_dir) as db:
        write_some(db)
        lsn = db.snapshot()
        assert lsn > 0
        db.signals("view", np.arange(100, dtype=np.uint64), np.full(100, 0.5), np.full(100, T0))
        before = readings(db)
        applied = db.events_applied
    with tidaldb.Db(schema, data_dir) as db:
        assert db.events_applied == applied
        assert readings(db) == before


def test_ephemeral_snapshot_is_zero(db: tidaldb.Db) -> None:
    db.signal("view", 1, ts=T0)
    assert db.snapshot() == 0
    db.flush()
    assert db.path is None


def test_flush_and_flush_async(schema: tidaldb.Schema, data_dir: Path) -> None:
    with tidaldb.Db(schema, data_dir, durability="batched") as db:
        db.signal("view", 1, 3.0, ts=T0)
        db.flush()

        async def go() -> None:
            db.signal("view", 2, 4.0, ts=T0)
            assert await db.flush_async() is None

        asyncio.run(go())
        assert db.path == data_dir
    with tidaldb.Db(schema, data_dir) as db:
        assert db.score("view", 2, at=T0) == 4.0


def test_flush_async_on_a_closed_db_raises_unavailable(schema: tidaldb.Schema) -> None:
    db = tidaldb.Db(schema)
    db.close()

    async def go() -> None:
        await db.flush_async()

    with pytest.raises(tidaldb.Unavailable) as e:
        asyncio.run(go())
    assert type(e.value) is tidaldb.Unavailable


def test_close_is_idempotent_and_releases_the_directory(schema: tidaldb.Schema, data_dir: Path) -> None:
    db = tidaldb.Db(schema, data_dir)
    db.signal("view", 1, ts=T0)
    assert not db.closed
    db.close()
    db.close()
    assert db.closed
    assert "closed" in repr(db)
    with tidaldb.Db(schema, data_dir) as again:
        assert again.events_applied == 1
