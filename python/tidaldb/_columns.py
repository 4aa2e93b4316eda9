"""Array-likes, times and durations → the numpy arrays and floats the extension reads.

The extension reads a 1-D numpy array of the exact dtype it needs (uint64 or non-negative
int64 ids, float64 weights and Unix seconds) in place, and hands anything else to the
functions here, which return such an array:

- numpy arrays of other integer or float dtypes, converted (a copy);
- pandas, polars and pyarrow columns, read through numpy: without a copy where the column
  is already a null-free numeric array of the right dtype; with one for other dtypes,
  chunked arrays, times (``datetime64`` becomes float seconds) and pandas' tz-aware
  columns;
- anything else with the Arrow PyCapsule interface (``__arrow_c_array__`` or
  ``__arrow_c_stream__``: arro3, nanoarrow, DuckDB, ...), imported with pyarrow, the
  reference implementation of that interface (every Arrow type, chunked streams,
  timestamps with their time zone) and a dependency numpy users mostly have already.
  Without pyarrow such an object is refused with a ``TypeError`` that says so;
- Python sequences (lists, tuples, ranges), element by element.

Nulls (pandas ``NA``/``NaT``, polars and Arrow nulls) are refused, naming the first one:
a null id, weight or time has no meaning a database could guess. A naive ``datetime`` or
``datetime64`` is read as UTC, as pandas does; an aware one is converted from its zone.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from tidaldb.exceptions import InvalidArgument

__all__ = ["ids", "floats", "times", "time_seconds", "duration_seconds"]

_UTC = _dt.timezone.utc
#: Seconds per tick of each fixed-length numpy datetime/timedelta unit.
_SECONDS_PER_UNIT = {
    "W": 604_800.0,
    "D": 86_400.0,
    "h": 3_600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "ns": 1e-9,
    "ps": 1e-12,
    "fs": 1e-15,
    "as": 1e-18,
}
_LIBRARIES = frozenset({"pandas", "polars", "pyarrow"})


def _invalid(what: str, reason: str) -> InvalidArgument:
    """The message the core gives its own ``InvalidArgument``s."""
    return InvalidArgument(f"invalid argument {what}: {reason}")


def _library(obj: object) -> str:
    return type(obj).__module__.partition(".")[0]


def _describe(arr: npt.NDArray[Any]) -> str:
    return f"a {arr.ndim}-D array of {arr.dtype}"


def _first_null(obj: Any) -> int | None:
    """The index of the first null of a pandas, polars or pyarrow column, if any."""
    library = _library(obj)
    if library == "pandas":
        mask = np.asarray(obj.isna())
    elif library == "polars":
        if obj.null_count() == 0:
            return None
        mask = obj.is_null().to_numpy()
    else:
        if obj.null_count == 0:
            return None
        mask = np.asarray(obj.is_null())
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _library_values(obj: Any) -> npt.NDArray[Any]:
    """A null-free pandas, polars or pyarrow column as numpy, tz-aware times in UTC."""
    if _library(obj) == "pandas":
        dtype = obj.dtype
        if getattr(dtype, "tz", None) is not None:
            # Without a dtype pandas gives an object array of Timestamps.
            return np.asarray(obj.to_numpy(dtype=f"datetime64[{dtype.unit}]"))
        # Nullable (Int64, Float64) and Arrow-backed dtypes name their numpy dtype.
        numpy_dtype = getattr(dtype, "numpy_dtype", None)
        return np.asarray(obj.to_numpy(dtype=numpy_dtype))
    # polars and pyarrow give tz-aware times as UTC datetime64.
    return np.asarray(obj)


def _from_arrow(obj: Any, what: str) -> Any:
    """An object with only the Arrow PyCapsule interface, imported as a pyarrow array."""
    try:
        import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise TypeError(
            f"{what}: reading an Arrow array ({type(obj).__name__}) needs pyarrow, which is "
            "not installed; pip install pyarrow, or pass a numpy array"
        ) from None
    if hasattr(obj, "__arrow_c_array__"):
        return pa.array(obj)
    return pa.chunked_array(obj)


def _numpy(obj: Any, what: str) -> npt.NDArray[Any]:
    """``obj`` as a 1-D numpy array, before any dtype conversion."""
    if isinstance(obj, np.ndarray):
        arr = obj
    elif isinstance(obj, (str, bytes, dict)):
        raise _invalid(what, f"expected an array or a sequence, got a {type(obj).__name__}")
    elif _library(obj) in _LIBRARIES and hasattr(obj, "__array__"):
        null = _first_null(obj)
        if null is not None:
            raise _invalid(what, f"element {null} is null; drop or fill the nulls first")
        arr = _library_values(obj)
    elif hasattr(obj, "__arrow_c_array__") or hasattr(obj, "__arrow_c_stream__"):
        return _numpy(_from_arrow(obj, what), what)
    elif hasattr(obj, "__array__"):
        arr = np.asarray(obj)
    elif isinstance(obj, (Sequence, range)):
        # Element types are checked by the caller: numpy would turn [1, 2**64 - 1] into
        # floats and [1, True] into ints.
        arr = np.empty(len(obj), dtype=object)
        arr[:] = list(obj)
    else:
        raise _invalid(
            what,
            f"expected a 1-D array (numpy, pandas, polars, pyarrow) or a sequence, "
            f"got a {type(obj).__name__}",
        )
    if arr.ndim != 1:
        raise _invalid(what, f"expected a 1-D array, got {_describe(arr)}")
    return arr


def ids(obj: Any, what: str) -> npt.NDArray[np.uint64]:
    """Entity ids: integers in [0, 2**64), as uint64."""
    arr = _numpy(obj, what)
    kind = arr.dtype.kind
    if kind == "u":
        return arr.astype(np.uint64, copy=False)
    if kind == "i":
        negative = np.flatnonzero(arr < 0)
        if negative.size:
            i = int(negative[0])
            raise _invalid(what, f"element {i} is {arr[i]}; entity ids are non-negative")
        return arr.astype(np.uint64)
    if kind == "O":
        out = np.empty(len(arr), dtype=np.uint64)
        for i, v in enumerate(arr):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise _invalid(what, f"element {i} is a {type(v).__name__}, not an int entity id")
            if not 0 <= v < 2**64:
                raise _invalid(what, f"element {i} is {v}; ids are integers in [0, 2**64)")
            out[i] = v
        return out
    raise _invalid(what, f"expected integer entity ids, got {_describe(arr)}")


def floats(obj: Any, what: str, expected: str = "numbers") -> npt.NDArray[np.float64]:
    """Numbers (weights), as float64; ``expected`` names them in the refusal."""
    arr = _numpy(obj, what)
    kind = arr.dtype.kind
    if kind in "fiu":
        return arr.astype(np.float64, copy=False)
    if kind == "O":
        out = np.empty(len(arr), dtype=np.float64)
        for i, v in enumerate(arr):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise _invalid(what, f"element {i} is a {type(v).__name__}, not a number")
            out[i] = v
        return out
    raise _invalid(what, f"expected {expected}, got {_describe(arr)}")


def _ticks_to_seconds(arr: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """A datetime64 (since the epoch) or timedelta64 array as float seconds."""
    unit, count = np.datetime_data(arr.dtype)
    per_tick = _SECONDS_PER_UNIT.get(unit)
    if per_tick is None:  # months and years: calendar units, resolved by numpy
        base = "datetime64[s]" if arr.dtype.kind == "M" else "timedelta64[s]"
        return arr.astype(base).view(np.int64).astype(np.float64)
    return arr.view(np.int64).astype(np.float64) * (per_tick * count)


def times(obj: Any, what: str) -> npt.NDArray[np.float64]:
    """Times: Unix seconds, ``datetime64``, or datetimes, as float Unix seconds."""
    arr = _numpy(obj, what)
    kind = arr.dtype.kind
    if kind == "M":
        nat = np.flatnonzero(np.isnat(arr))
        if nat.size:
            raise _invalid(what, f"element {int(nat[0])} is NaT, not a time")
        return _ticks_to_seconds(arr)
    if kind == "O":
        out = np.empty(len(arr), dtype=np.float64)
        for i, v in enumerate(arr):
            out[i] = time_seconds(v, what, element=i)
        return out
    return floats(arr, what, expected="times (Unix seconds or datetime64)")


def _wrong_type(what: str, element: int | None, reason: str) -> Exception:
    """A scalar of the wrong type is a ``TypeError``; an element of an array of the wrong
    type is a bad array, an ``InvalidArgument``, as a wrong dtype is."""
    if element is None:
        return TypeError(f"{what}: {reason}")
    return _invalid(what, f"element {element} {reason}")


def time_seconds(value: Any, what: str, element: int | None = None) -> float:
    """One time: Unix seconds, a ``datetime`` or a numpy ``datetime64``, as Unix seconds."""
    where = "" if element is None else f"element {element} "
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            raise _invalid(what, f"{where}is NaT, not a time")
        return float(_ticks_to_seconds(np.array([value]))[0])
    if isinstance(value, _dt.datetime):
        if value != value:  # pandas' NaT is a datetime that equals nothing
            raise _invalid(what, f"{where}is NaT, not a time")
        if value.tzinfo is None:
            value = value.replace(tzinfo=_UTC)
        return float(value.timestamp())
    if isinstance(value, _dt.date):
        raise _wrong_type(
            what,
            element,
            f"is a date, not a time; pass a datetime (midnight UTC is "
            f"datetime({value.year}, {value.month}, {value.day}, tzinfo=timezone.utc))",
        )
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise _wrong_type(
            what,
            element,
            f"is a {type(value).__name__}; expected Unix seconds (a float), a datetime or "
            "a numpy datetime64",
        )
    return float(value)


def duration_seconds(value: Any, what: str) -> float:
    """One duration: seconds, a ``timedelta`` or a numpy ``timedelta64``, as seconds."""
    if isinstance(value, np.timedelta64):
        if np.isnat(value):
            raise _invalid(what, "is NaT, not a duration")
        return float(_ticks_to_seconds(np.array([value]))[0])
    if isinstance(value, _dt.timedelta):
        if value != value:  # pandas' NaT
            raise _invalid(what, "is NaT, not a duration")
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(
            f'{what}: expected seconds (a float), a string such as "20ms" or a timedelta, '
            f"got {type(value).__name__}"
        )
    return float(value)
