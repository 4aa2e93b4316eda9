"""Tables out: ``to_pandas()``, ``to_polars()`` and ``__arrow_c_stream__`` for query
results, bulk scores, ``health()`` and exports.

pandas, polars and pyarrow are imported only when a conversion asks for them, so that
none is a dependency of tidaldb; a missing one raises ``ImportError`` naming it.

What is copied:

- ``Results`` and ``Scores``: the columns are numpy arrays that took over the Rust
  vectors. pyarrow (``__arrow_c_stream__``), pandas and polars wrap them without a copy.
  ``Results`` builds its columns at each call (one copy of the items, which are few).
- ``Health`` and exports are rows of Python values (strings, nested lists) or CSV text,
  so every conversion builds its columns anew.

``__arrow_c_stream__`` uses pyarrow when it is installed and polars otherwise, so that
``polars.DataFrame(results)`` works without pyarrow.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Scores", "to_pandas", "to_polars", "arrow_c_stream", "rows_to_columns"]

Columns = Mapping[str, Any]


def _require(module: str, purpose: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"{purpose} needs {module}, which is not installed; pip install {module}"
        ) from None


def to_pandas(columns: Columns) -> Any:
    """``columns`` (name → numpy array or list) as a pandas DataFrame."""
    pd = _require("pandas", "to_pandas()")
    return pd.DataFrame(dict(columns), copy=False)


def to_polars(columns: Columns) -> Any:
    """``columns`` (name → numpy array or list) as a polars DataFrame."""
    pl = _require("polars", "to_polars()")
    return pl.DataFrame(dict(columns))


def arrow_c_stream(columns: Columns, requested_schema: object | None = None) -> object:
    """The Arrow PyCapsule stream of ``columns``: one record batch, one field per column."""
    try:
        import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        pl = _require("polars", "__arrow_c_stream__ (Arrow export) needs pyarrow or polars;")
        return pl.DataFrame(dict(columns)).__arrow_c_stream__(requested_schema)
    return pa.table(dict(columns)).__arrow_c_stream__(requested_schema)


def rows_to_columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Rows (dicts) as columns, in the order their keys first appear; a key a row lacks
    is None (null) there."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    return {name: [row.get(name) for row in rows] for name in names}


class Scores(np.ndarray[tuple[int], np.dtype[np.float64]]):
    """Decayed scores from ``scores()``: a float64 numpy array, one score per item asked
    for and in that order, that also converts to a table of ``item`` and ``score``.

    It is a numpy array in every other way. Arrays derived from it (slices, arithmetic)
    are ``Scores`` without items, and their tables have the ``score`` column only, since
    numpy does not say which items a slice kept.

    >>> import numpy as np, tidaldb
    >>> with tidaldb.Db(tidaldb.Schema().signal("view", half_life="1h")) as db:
    ...     db.signal("view", 7, ts=0.0)
    ...     s = db.scores("view", np.array([7, 8], dtype=np.uint64), at=3600.0)
    >>> s.tolist(), s.items.tolist()
    ([0.5, 0.0], [7, 8])
    """

    #: The ids the scores are of (uint64), or None on a derived array.
    items: npt.NDArray[np.uint64] | None

    @classmethod
    def _of(cls, columns: dict[str, Any]) -> Scores:
        scores: Scores = columns["score"].view(cls)
        scores.items = columns["item"]
        return scores

    def __array_finalize__(self, obj: object) -> None:
        self.items = None

    def _columns(self) -> dict[str, Any]:
        values = self.view(np.ndarray)
        if self.items is None:
            return {"score": values}
        return {"item": self.items, "score": values}

    def to_pandas(self) -> Any:
        """A pandas DataFrame with columns ``item`` (uint64) and ``score`` (float64)."""
        return to_pandas(self._columns())

    def to_polars(self) -> Any:
        """A polars DataFrame with columns ``item`` (UInt64) and ``score`` (Float64)."""
        return to_polars(self._columns())

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """The Arrow PyCapsule stream of the ``item`` and ``score`` columns."""
        return arrow_c_stream(self._columns(), requested_schema)
