"""`python -m tidaldb.demo` runs, and what it prints obeys the decay it describes."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_demo_prints_a_decaying_table() -> None:
    run = subprocess.run([sys.executable, "-m", "tidaldb.demo"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    rows: dict[tuple[str, str], list[float]] = {}
    time = ""
    for line in run.stdout.splitlines():
        parts = line.split()
        if len(parts) == 7 and parts[0].startswith("+"):
            time = parts[0]
            parts = parts[1:]
        if len(parts) == 6 and parts[0] in {"trailer", "tutorial", "meme"}:
            rows[(time, parts[0])] = [float(p) for p in parts[1:]]
    assert len(rows) == 21, run.stdout
    for item in ("trailer", "tutorial", "meme"):
        # "view" has a one-hour half-life, "like" six hours: one hour later, 1/2 and 2^(-1/6).
        view0, like0, *_ = rows[("+0h", item)]
        view1, like1, count1h, count24h, velocity = rows[("+1h", item)]
        assert view1 == pytest.approx(view0 / 2, abs=2e-3)
        assert like1 == pytest.approx(like0 * 2 ** (-1 / 6), abs=2e-3)
        assert count1h == 0 and velocity == 0.0, "every view is over an hour old"
        assert rows[("+26h", item)][3] == 0, "and a day later the 24h window is empty too"
    assert "top items an hour later" in run.stdout
