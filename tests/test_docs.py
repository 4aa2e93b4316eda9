"""Every public class, function, method and property of ``tidaldb`` documents itself at
runtime (``help()``), every definition of the extension's stub has a docstring, and the
extension's runtime docstrings are the stub's (both come from ``_native.pyi``: the Rust
sources include ``rust/tidaldb-py/pydoc/``, which ``pydoc/sync.py`` writes from it)."""

from __future__ import annotations

import ast
import inspect
import pydoc
from pathlib import Path
from typing import Any

import pytest

import tidaldb
import tidaldb._native as native

ROOT = Path(__file__).resolve().parent.parent
STUB = ROOT / "python" / "tidaldb" / "_native.pyi"
PYDOC_DIR = ROOT / "rust" / "tidaldb-py" / "pydoc"

# Names of ``tidaldb.__all__`` that are values, not definitions that could carry a docstring.
NOT_DOCUMENTABLE = {"__version__"}


def is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def public_api() -> list[tuple[str, Any]]:
    """``(qualified name, object)`` for every public name of the package, and every public
    method and property those classes define (not the ones inherited from builtins)."""
    found: list[tuple[str, Any]] = []
    for name in tidaldb.__all__:
        if name in NOT_DOCUMENTABLE:
            continue
        obj = getattr(tidaldb, name)
        found.append((name, obj))
        if not inspect.isclass(obj):
            continue
        for klass in obj.__mro__:
            if not klass.__module__.startswith("tidaldb"):
                continue  # object, Exception, dict, numpy.ndarray, ...
            for member, value in vars(klass).items():
                if is_dunder(member) or (member.startswith("_") and member != "_repr_html_"):
                    continue
                if not (
                    callable(value)
                    or inspect.isdatadescriptor(value)
                    or isinstance(value, (staticmethod, classmethod))
                ):
                    continue  # a class constant or a dataclass field's default
                found.append((f"{name}.{member}", value))
    return found


PUBLIC = public_api()


def test_the_walk_reaches_the_api() -> None:
    names = {name for name, _ in PUBLIC}
    # Inherited from the shared native base class, and defined in Python modules.
    assert {"Db.signal", "Cluster.write", "Tenant.migrate", "Health.to_pandas", "connect"} <= names
    assert len(PUBLIC) > 150


@pytest.mark.parametrize(("name", "obj"), PUBLIC, ids=[name for name, _ in PUBLIC])
def test_public_definition_has_a_docstring(name: str, obj: Any) -> None:
    target = obj.fget if isinstance(obj, property) else obj
    if isinstance(target, (staticmethod, classmethod)):
        target = target.__func__
    doc = getattr(target, "__doc__", None)
    assert isinstance(doc, str) and doc.strip(), f"{name} has no docstring"


def test_help_of_a_method_explains_arguments_and_errors() -> None:
    text = pydoc.render_doc(tidaldb.Db.signal, renderer=pydoc.plaintext)
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) > 10, text
    for section in ("Args:", "Raises:", "NotFound", "InvalidArgument", "Example:"):
        assert section in text, f"help(tidaldb.Db.signal) lacks {section!r}:\n{text}"


def test_help_of_the_db_class_documents_its_constructor() -> None:
    text = pydoc.render_doc(tidaldb.Db, renderer=pydoc.plaintext)
    assert "durability" in text and "max_future_skew" in text and "Raises:" in text


def stub_definitions() -> list[tuple[str, ast.ClassDef | ast.FunctionDef]]:
    """Every class, function and method of the stub, by qualified name."""
    found: list[tuple[str, ast.ClassDef | ast.FunctionDef]] = []
    for node in ast.parse(STUB.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            found.append((node.name, node))
        if isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, ast.FunctionDef):
                    found.append((f"{node.name}.{member.name}", member))
    return found


STUB_DEFS = stub_definitions()


def test_every_stub_definition_has_a_docstring() -> None:
    assert len(STUB_DEFS) > 100
    missing = [
        name
        for name, node in STUB_DEFS
        if not is_dunder(node.name) and not (ast.get_docstring(node) or "").strip()
    ]
    assert not missing, f"stub definitions without a docstring: {missing}"


def native_object(qualified: str) -> Any:
    owner, _, member = qualified.partition(".")
    obj = getattr(native, owner)
    return inspect.getattr_static(obj, member) if member else obj


DOCUMENTED_NATIVE = [
    (name, ast.get_docstring(node))
    for name, node in STUB_DEFS
    if ast.get_docstring(node) and hasattr(native, name.partition(".")[0])
]


@pytest.mark.parametrize(("name", "stub_doc"), DOCUMENTED_NATIVE, ids=[n for n, _ in DOCUMENTED_NATIVE])
def test_runtime_docstring_is_the_stubs(name: str, stub_doc: str) -> None:
    runtime = inspect.cleandoc(native_object(name).__doc__ or "")
    assert runtime == stub_doc, (
        f"{name}: the built extension's docstring differs from _native.pyi's; run "
        "`python3 rust/tidaldb-py/pydoc/sync.py` and `make ext`"
    )


def test_the_rust_sources_include_the_stubs_docstrings() -> None:
    expected = {
        PYDOC_DIR.joinpath(*name.split(".")).with_suffix(".md"): doc
        for name, doc in DOCUMENTED_NATIVE
    }
    on_disk = set(PYDOC_DIR.rglob("*.md"))
    assert on_disk == set(expected), "run `python3 rust/tidaldb-py/pydoc/sync.py`"
    stale = [str(path) for path, doc in expected.items() if path.read_text().strip() != doc]
    assert not stale, f"out of date (run rust/tidaldb-py/pydoc/sync.py): {stale}"
