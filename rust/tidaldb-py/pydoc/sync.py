"""Writes the docstrings of ``python/tidaldb/_native.pyi`` into this directory.

The stub is where the extension's Python docs are written. The Rust sources include each
file here with ``#[doc = include_str!(...)]``, which PyO3 turns into the runtime
``__doc__``: ``Db/signal.md`` for ``Db.signal``, ``Db.md`` for the class ``Db``, and
``connect.md`` for the function ``connect``. ``tests/test_docs.py`` fails when the built
extension's docstrings differ from the stub's, so run this after editing the stub, then
rebuild (``make ext``):

    python3 rust/tidaldb-py/pydoc/sync.py
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
STUB = HERE.parents[2] / "python" / "tidaldb" / "_native.pyi"


def stub_docs(stub: Path = STUB) -> dict[str, str]:
    """``{"Db": ..., "Db.signal": ..., "connect": ...}``: every documented definition."""
    docs: dict[str, str] = {}
    for node in ast.parse(stub.read_text()).body:
        if isinstance(node, ast.ClassDef) and any(
            isinstance(base, ast.Name) and base.id == "Protocol" for base in node.bases
        ):
            continue  # typing helpers, not in the extension
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            doc = ast.get_docstring(node)
            if doc:
                docs[node.name] = doc
        if isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, ast.FunctionDef):
                    doc = ast.get_docstring(member)
                    if doc:
                        docs[f"{node.name}.{member.name}"] = doc
    return docs


def main() -> None:
    for entry in HERE.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        elif entry.suffix == ".md":
            entry.unlink()
    for name, doc in stub_docs().items():
        target = HERE.joinpath(*name.split(".")).with_suffix(".md")
        target.parent.mkdir(exist_ok=True)
        target.write_text(doc + "\n")


if __name__ == "__main__":
    main()
