"""``tidaldb.export_events`` and ``tidaldb.export_scores``: a data directory's events, or its
scores at one time, as a table for pandas, polars or Arrow.

The core writes the export (the same rows as ``tidaldb export``, see its ``--help``) as CSV,
whose floats are in shortest round-trip form, so parsing them gives back the very same
values. The rows become Python lists, one per column, and each conversion builds its
library's columns from them: an export is a copy, not a view.

The directory may be open meanwhile (in this process or another): the export reads its
files only, so it sees what was synced; call ``flush()`` first on a Db opened with
``durability="batched"``.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from typing import Any, Union

from tidaldb import _native
from tidaldb._tables import _require
from tidaldb.exceptions import Corruption

__all__ = ["Export", "export_events", "export_scores"]

_Path = Union[str, "os.PathLike[str]"]

#: Each column of an events export and its type; empty fields are nulls.
EVENT_TYPES = {
    "tenant": "u64",
    "origin": "u64",
    "seq": "u64",
    "hlc_ns": "u64",
    "kind": "str",
    "signal": "str",
    "entity": "u64",
    "weight": "f64",
    "ts_ns": "i64",
    "user": "u64",
    "item": "u64",
}
#: Each column of a scores export and its type.
SCORE_TYPES = {"signal": "str", "entity": "u64", "score": "f64"}

_PARSE: dict[str, Callable[[str], Any]] = {"u64": int, "i64": int, "f64": float, "str": str}
_PANDAS = {"u64": "UInt64", "i64": "Int64", "f64": "Float64", "str": "string"}


class Export:
    """Rows of an export, as columns (``columns``: name → list, None for a null), with
    ``to_pandas()``, ``to_polars()`` and ``__arrow_c_stream__``. Nulls stay nulls: pandas
    gets its nullable dtypes (``UInt64``, ``Float64``, ``string``), polars and Arrow their
    own nulls."""

    def __init__(self, text: bytes, types: dict[str, str]) -> None:
        reader = csv.reader(io.StringIO(text.decode("utf-8"), newline=""))
        header = next(reader, [])
        if header != list(types):
            raise Corruption(f"the export's columns are {header}, expected {list(types)}")
        self.types = dict(types)
        self.columns: dict[str, list[Any]] = {name: [] for name in types}
        parsers = [(self.columns[name], _PARSE[kind]) for name, kind in types.items()]
        for row in reader:
            for (values, parse), field in zip(parsers, row):
                values.append(parse(field) if field != "" else None)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()), []))

    def __repr__(self) -> str:
        return f"<tidaldb.Export {len(self)} rows: {', '.join(self.columns)}>"

    def to_pandas(self) -> Any:
        """A pandas DataFrame, with nullable dtypes where a column may hold nulls."""
        pd = _require("pandas", "to_pandas()")
        return pd.DataFrame(
            {n: pd.array(v, dtype=_PANDAS[self.types[n]]) for n, v in self.columns.items()}
        )

    def to_polars(self) -> Any:
        """A polars DataFrame."""
        pl = _require("polars", "to_polars()")
        kinds = {"u64": pl.UInt64, "i64": pl.Int64, "f64": pl.Float64, "str": pl.String}
        return pl.DataFrame(
            [pl.Series(n, v, dtype=kinds[self.types[n]]) for n, v in self.columns.items()]
        )

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """The Arrow PyCapsule stream of the rows (pyarrow, or polars without it)."""
        try:
            import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            return self.to_polars().__arrow_c_stream__(requested_schema)
        kinds = {"u64": pa.uint64(), "i64": pa.int64(), "f64": pa.float64(), "str": pa.string()}
        table = pa.table(
            {n: pa.array(v, type=kinds[self.types[n]]) for n, v in self.columns.items()}
        )
        return table.__arrow_c_stream__(requested_schema)


def export_events(path: _Path, *, tenant: int | None = None, allow_partial: bool = False) -> Export:
    """Every applied event of ``tenant`` (the default tenant when None) in the data
    directory ``path``, in log order: ``tenant``, ``origin``, ``seq``, ``hlc_ns``, ``kind``
    (``signal``, ``hide`` or ``unhide``), ``signal``, ``entity``, ``weight`` (signal rows),
    ``ts_ns`` (when the event happened), ``user`` and ``item`` (hide and unhide rows).

    Once a snapshot has compacted the log, the events before it are only in the snapshot:
    the export then raises ``InvalidArgument``, unless ``allow_partial`` asks for the
    events the log still holds.

    Returns:
        The rows, which convert with ``to_pandas()``, ``to_polars()`` and Arrow.

    Raises:
        NotFound: ``path`` is not a data directory, or ``tenant`` is unknown.
        InvalidArgument: a snapshot compacted events away and ``allow_partial`` is False.
        Corruption: the log is damaged.

    Example:
        >>> tidaldb.export_events("data", allow_partial=True).to_pandas()
    """
    return Export(_native.export_events_csv(path, tenant=tenant, allow_partial=allow_partial), EVENT_TYPES)


def export_scores(path: _Path, *, at: Any = None, tenant: int | None = None) -> Export:
    """The decayed score of every (``signal``, ``entity``) of ``tenant`` in ``path`` at
    ``at`` (Unix seconds or a datetime; now when None), in schema order, then by entity.

    Returns:
        The rows, which convert with ``to_pandas()``, ``to_polars()`` and Arrow.

    Raises:
        NotFound: ``path`` is not a data directory, or ``tenant`` is unknown.
        Corruption: the log or snapshot is damaged.

    Example:
        >>> tidaldb.export_scores("data", at=1_700_000_000.0).to_polars()
    """
    return Export(_native.export_scores_csv(path, at=at, tenant=tenant), SCORE_TYPES)
