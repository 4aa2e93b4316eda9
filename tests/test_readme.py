"""Every ```python block of README.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"^```python[ \t]*\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)


def test_readme_has_a_python_example() -> None:
    assert python_blocks(), "README.md must contain at least one ```python example"


def test_readme_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples may create data directories
    blocks = python_blocks()
    assert blocks
    for k, code in enumerate(blocks):
        exec(compile(code, f"README.md[python block {k}]", "exec"), {"__name__": f"readme_{k}"})
