"""The data directory: a refused path or a symbolic link writes nothing, and one write call
is all or nothing across a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tidaldb
from conftest import T0


def snapshot_tree(root: Path) -> dict[str, str]:
    """Every path under `root` with its kind and contents, to show nothing changed."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink():
                out[str(p)] = f"link to {os.readlink(p)}"
            elif p.is_dir():
                out[str(p)] = "dir"
            else:
                out[str(p)] = p.read_bytes().hex()
    return out


def test_an_empty_path_is_refused_and_the_current_directory_is_unchanged(
    schema: tidaldb.Schema, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("x")
    before = snapshot_tree(tmp_path)
    with pytest.raises(tidaldb.TidalError) as info:
        tidaldb.Db(schema, path="")
    assert type(info.value) is tidaldb.InvalidArgument
    assert snapshot_tree(tmp_path) == before


def test_a_path_naming_a_file_is_refused(schema: tidaldb.Schema, tmp_path: Path) -> None:
    file = tmp_path / "a-file"
    file.write_text("x")
    before = snapshot_tree(tmp_path)
    with pytest.raises(tidaldb.TidalError) as info:
        tidaldb.Db(schema, path=file)
    assert type(info.value) is tidaldb.InvalidArgument
    assert snapshot_tree(tmp_path) == before


def test_a_linked_lock_file_is_refused_and_its_target_untouched(schema: tidaldb.Schema, tmp_path: Path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("do not truncate")
    data = tmp_path / "data"
    data.mkdir()
    (data / "LOCK").symlink_to(target)
    before = snapshot_tree(tmp_path)
    with pytest.raises(tidaldb.TidalError) as info:
        tidaldb.Db(schema, path=data)
    assert type(info.value) is tidaldb.InvalidArgument
    assert str(data / "LOCK") in str(info.value)
    assert snapshot_tree(tmp_path) == before
    assert target.read_text() == "do not truncate"


def test_a_linked_wal_directory_is_refused(schema: tidaldb.Schema, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with tidaldb.Db(schema, path=data) as db:
        db.signal("view", 1, 1.0, ts=T0)
    (data / "wal").rename(tmp_path / "wal-elsewhere")
    (data / "wal").symlink_to(tmp_path / "wal-elsewhere")
    before = snapshot_tree(tmp_path)
    with pytest.raises(tidaldb.TidalError) as info:
        tidaldb.Db(schema, path=data)
    assert type(info.value) is tidaldb.InvalidArgument
    assert snapshot_tree(tmp_path) == before


BULK = 160_000
ACKED = 25

CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tidaldb
    schema = (
        tidaldb.Schema()
        .signal("view", kind="item", half_life="7d", windows=["1h", "24h", "7d", "30d"], velocity=True)
        .signal("like", kind="item", half_life=3600.0)
        .signal("share", kind="item", lifetime="2h", windows=["1h"])
        .signal("follow", kind="creator")
    )
    db = tidaldb.Db(schema, path=sys.argv[1])
    for k in range({acked}):
        db.signal("like", k % 5, 1.0, ts={t0})
    print("acked", flush=True)
    items = np.arange({bulk}, dtype=np.uint64) % 1000
    while True:
        db.signals("view", items, np.ones({bulk}), ts=np.full({bulk}, {t0}))
        print("bulk", flush=True)
    """
).format(acked=ACKED, bulk=BULK, t0=T0)


def test_a_killed_bulk_call_is_applied_whole_or_not_at_all(schema: tidaldb.Schema, tmp_path: Path) -> None:
    """SIGKILL lands during some bulk call; after reopening, every acknowledged call is
    there and the one cut short is either whole or absent, never part of it."""
    data = tmp_path / "data"
    lines: list[str] = []
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None and child.stderr is not None
        try:
            lines.append(child.stdout.readline().strip())
            assert lines == ["acked"], child.stderr.read()
            # Two bulk calls acknowledged, then a kill during (or just after) a later one.
            for _ in range(2):
                lines.append(child.stdout.readline().strip())
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
    acknowledged_bulks = lines.count("bulk")
    assert acknowledged_bulks == 2, lines
    with tidaldb.Db(schema, path=data) as db:
        applied = db.events_applied
    bulks, rest = divmod(applied - ACKED, BULK)
    assert rest == 0, f"{applied} events: a bulk call was applied in part"
    assert bulks >= acknowledged_bulks
