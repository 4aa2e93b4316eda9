"""Install a built wheel into fresh venvs of several Python versions and smoke-test each.

Run by `make wheel-test` (after `make wheel`): ``python tests/wheel_smoke.py dist/*.whl``.

For each Python found (3.10, 3.12 and 3.13 by default; ``WHEEL_PYTHONS="3.10 3.11"`` picks
others), it makes a venv in a temporary directory, ``pip install``s the wheel there (numpy
comes from the index or pip's cache), and, from a directory outside this checkout so that
the source tree cannot be imported by mistake, checks:

- ``import tidaldb`` loads the installed package and its ``abi3`` extension;
- a ``Db`` round trip: a write, then an exact decayed score one and two half-lives later,
  scalar and bulk (numpy);
- ``tidaldb --help`` through the installed console script, and ``python -m tidaldb --help``.

It also checks the wheel itself: its tags, that it carries the server binary, and that its
description (what PyPI shows) does not lead with ``make``. At least two Pythons must be
found, or it fails.

It is not part of `make test`: it needs a release build of the wheel (zig, a second target
directory, several minutes on two cores) and network or cache access for numpy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from email.parser import HeaderParser
from pathlib import Path

DEFAULT_VERSIONS = ("3.10", "3.12", "3.13")

SMOKE = r"""
import sys
from pathlib import Path

import numpy as np

import tidaldb
import tidaldb._native

venv = Path(sys.prefix).resolve()
assert Path(tidaldb.__file__).resolve().is_relative_to(venv), tidaldb.__file__
assert tidaldb._native.__file__.endswith(".abi3.so"), tidaldb._native.__file__

schema = tidaldb.Schema().signal("view", kind="item", half_life="1h", windows=["1h"])
db = tidaldb.Db(schema)
t0 = 1_700_000_000.0
db.signal("view", 42, weight=2.0, ts=t0)
db.signal("view", 7, weight=8.0, ts=t0)
assert db.score("view", 42, at=t0) == 2.0
assert db.score("view", 42, at=t0 + 3600) == 1.0  # exactly half, one half-life later
assert db.score("view", 42, at=t0 + 7200) == 0.5
scores = db.scores("view", np.array([42, 7], dtype=np.uint64), at=t0 + 7200)
assert scores.tolist() == [0.5, 2.0], scores
assert db.window_count("view", 42, "1h", at=t0 + 60) == 1
assert [hit.item for hit in db.retrieve([42, 7], rank_by={"view": 1.0}, at=t0)] == [7, 42]
print(f"ok: tidaldb on Python {sys.version.split()[0]}")
"""


def find_python(version: str) -> Path | None:
    """An interpreter of `version` ("3.12"): pyenv's, or one on PATH named python3.12."""
    roots = [os.environ.get("PYENV_ROOT", ""), str(Path.home() / ".pyenv")]
    for root in filter(None, roots):
        found = sorted(Path(root, "versions").glob(f"{version}.*/bin/python"))
        if found:
            return found[-1]
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory, f"python{version}")
        # pyenv's shims exist for every version but only run the selected one.
        if candidate.is_file() and "shims" not in candidate.parts:
            return candidate
    return None


def run(*args: str | Path, cwd: Path) -> str:
    out = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(
            f"failed ({out.returncode}): {' '.join(map(str, args))}\n{out.stdout}{out.stderr}"
        )
    return out.stdout


def check_wheel(wheel: Path) -> None:
    name = wheel.name
    assert "-cp310-abi3-" in name, f"{name}: not an abi3 wheel for CPython >= 3.10"
    assert "manylinux_2_28_x86_64" in name or "manylinux2014" in name, name
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert "tidaldb/_bin/tidaldb" in names, "the server binary is missing"
        metadata_path = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = HeaderParser().parsestr(zf.read(metadata_path).decode())
    assert metadata["Description-Content-Type"].startswith("text/markdown"), metadata
    description = metadata.get_payload()
    assert isinstance(description, str)
    lines = (line for line in description.splitlines() if line.strip() and not line.startswith("#"))
    first = next(lines)
    assert "make" not in first.split(), f"the description leads with make: {first!r}"
    assert "pip install tidaldb" in description


def smoke(python: Path, wheel: Path, work: Path) -> None:
    venv = work / "venv"
    run(python, "-m", "venv", venv, cwd=work)
    bin_dir = venv / "bin"
    pip: list[str | Path] = [bin_dir / "python", "-m", "pip", "install", "-q"]
    pip.append("--disable-pip-version-check")
    run(*pip, wheel, cwd=work)
    print(run(bin_dir / "python", "-c", SMOKE, cwd=work), end="")
    for command in ([bin_dir / "tidaldb"], [bin_dir / "python", "-m", "tidaldb"]):
        out = run(*command, "--help", cwd=work)
        assert "serve" in out and "Usage: tidaldb" in out, out
    run(bin_dir / "tidaldb", "serve", "--help", cwd=work)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: wheel_smoke.py WHEEL", file=sys.stderr)
        return 2
    wheel = Path(argv[0]).resolve()
    check_wheel(wheel)
    versions = os.environ.get("WHEEL_PYTHONS", " ".join(DEFAULT_VERSIONS)).split()
    pythons = {v: find_python(v) for v in versions}
    missing = [v for v, p in pythons.items() if p is None]
    if missing:
        print(f"wheel_smoke: no Python {', '.join(missing)} here; skipping those", file=sys.stderr)
    found = {v: p for v, p in pythons.items() if p is not None}
    if len(found) < 2:
        print(f"wheel_smoke: need at least two Pythons, found {sorted(found)}", file=sys.stderr)
        return 1
    for version, python in found.items():
        with tempfile.TemporaryDirectory(prefix=f"tidaldb-wheel-{version}-") as tmp:
            smoke(python, wheel, Path(tmp))
    print(f"wheel_smoke: {wheel.name} passed on Python {', '.join(found)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
