"""Every ```python block of README.md, and of python/README.pypi.md (the description PyPI
shows), runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
READMES = [ROOT / "README.md", ROOT / "python" / "README.pypi.md"]


def python_blocks(readme: Path) -> list[str]:
    return re.findall(r"^```python[ \t]*\n(.*?)^```", readme.read_text(encoding="utf-8"), re.M | re.S)


@pytest.mark.parametrize("readme", READMES, ids=lambda p: p.name)
def test_readme_has_a_python_example(readme: Path) -> None:
    assert python_blocks(readme), f"{readme.name} must contain at least one ```python example"


@pytest.mark.parametrize("readme", READMES, ids=lambda p: p.name)
def test_readme_python_examples_run(
    readme: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # examples may create data directories
    blocks = python_blocks(readme)
    assert blocks
    for k, code in enumerate(blocks):
        exec(compile(code, f"{readme.name}[python block {k}]", "exec"), {"__name__": f"readme_{k}"})


def test_pypi_description_leads_with_what_tidaldb_is() -> None:
    text = (ROOT / "python" / "README.pypi.md").read_text(encoding="utf-8")
    first = next(line for line in text.splitlines() if line.strip() and not line.startswith("#"))
    assert first.startswith("tidaldb is a database"), first
    assert "make" not in text.split("```bash")[0], "the PyPI description must not lead with make"
    assert "pip install tidaldb" in text
