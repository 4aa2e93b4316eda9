"""``tidaldb verify`` and ``tidaldb export`` on a data directory, run as a user runs them."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

import tidaldb
from conftest import HOUR, T0


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tidaldb", *args], capture_output=True, text=True, timeout=60)


def make_dir(path: Path) -> tidaldb.Schema:
    schema = tidaldb.Schema().signal("view", half_life="1h").signal("like", half_life="1d")
    rng = np.random.default_rng(7)
    with tidaldb.Db(schema, path) as db:
        for _ in range(5):
            items = rng.integers(0, 50, 200).astype(np.uint64)
            db.signals("view", items, rng.random(200) * 3, ts=T0 + rng.random(200) * HOUR)
            db.signals("like", items[:20], np.ones(20), ts=T0 + rng.random(20) * HOUR)
    return schema


def test_verify_names_the_file_and_offset_of_one_flipped_byte(tmp_path: Path) -> None:
    make_dir(tmp_path / "db")
    ok = run("verify", str(tmp_path / "db"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    segment = sorted((tmp_path / "db" / "wal").glob("*.wal"))[0]
    data = bytearray(segment.read_bytes())
    flipped = len(data) // 2
    data[flipped] ^= 0x40
    segment.write_bytes(bytes(data))
    bad = run("verify", str(tmp_path / "db"))
    assert bad.returncode == 1
    line = next(line for line in bad.stdout.splitlines() if segment.name in line)
    found = re.search(r"corruption at byte offset (\d+)", line)
    assert found, line
    # The damaged batch's start: at or before the flipped byte, within one batch of it.
    assert 0 <= flipped - int(found.group(1)) < len(data) // 5, line


def test_an_exported_csv_reingested_gives_the_same_scores_bit_for_bit(tmp_path: Path) -> None:
    schema = make_dir(tmp_path / "db")
    out = tmp_path / "events.csv"
    done = run("export", str(tmp_path / "db"), "--format", "csv", "--out", str(out))
    assert done.returncode == 0, done.stderr
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 * 220
    items = np.arange(50, dtype=np.uint64)
    at = T0 + 2 * HOUR
    with tidaldb.Db(schema, tmp_path / "db") as original, tidaldb.Db(schema) as copy:
        for name in ("view", "like"):
            mine = [r for r in rows if r["signal"] == name]
            copy.signals(
                name,
                np.array([int(r["entity"]) for r in mine], dtype=np.uint64),
                np.array([float(r["weight"]) for r in mine]),
                ts=np.array([int(r["ts_ns"]) / 1e9 for r in mine]),
            )
            assert copy.scores(name, items, at=at).tolist() == original.scores(name, items, at=at).tolist()


def test_exported_scores_match_the_database(tmp_path: Path) -> None:
    schema = make_dir(tmp_path / "db")
    done = run("export", str(tmp_path / "db"), "--scores", "--at", str(T0 + HOUR))
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(done.stdout.splitlines()))
    with tidaldb.Db(schema, tmp_path / "db") as db:
        for r in rows:
            assert float(r["score"]) == db.score(r["signal"], int(r["entity"]), at=T0 + HOUR)
    assert len(rows) >= 50


def test_the_tools_refuse_what_is_not_a_data_directory(tmp_path: Path) -> None:
    for tool in ("inspect", "verify", "export"):
        out = run(tool, str(tmp_path / "missing"))
        assert out.returncode == 1 and "does not exist" in out.stderr, out.stderr
    assert run("export", str(tmp_path), "--format", "xml").returncode == 1
