"""Notebook display of cluster status: ``Cluster.health()`` returns a :class:`Health`.

The control plane reports regions by number; the cluster knows their names, so the numbers
are replaced by names here, once, and every consumer (a dict lookup, a JSON dump, the HTML
table) sees the names the user chose.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from tidaldb._tables import arrow_c_stream, rows_to_columns, to_pandas, to_polars
from tidaldb.exceptions import InvalidArgument, NotFound

__all__ = ["Health", "progress_bar"]

#: The tables of a health report, each a list of rows.
_TABLES = ("regions", "replicas", "tenants")
#: Keys whose integer value is a region number in the control plane's JSON.
_REGION_KEYS = frozenset({"region", "region_id"})


def _named(value: Any, regions: Sequence[str]) -> Any:
    """`value` with every region number under a region key replaced by its name."""
    if isinstance(value, dict):
        return {
            k: (
                regions[v]
                if k in _REGION_KEYS and isinstance(v, int) and 0 <= v < len(regions)
                else _named(v, regions)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_named(v, regions) for v in value]
    return value


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, separators=(", ", ": "))
    else:
        text = "" if value is None else str(value)
    return f"<td>{html.escape(text)}</td>"


def _table(title: str, rows: list[dict[str, Any]]) -> str:
    if not rows:
        return f"<p><b>{html.escape(title)}</b>: none</p>"
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(r.get(c)) for c in columns) + "</tr>" for r in rows)
    return (
        f"<p><b>{html.escape(title)}</b></p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


class Health(dict[str, Any]):
    """The control plane's health report, as a dict with region names.

    Keys: ``at_ns`` (virtual time of the report), ``regions`` (each region's verdict:
    Healthy, Degraded, Offline, or NeedsResync while a replica there lacks events its peers
    no longer hold in memory), ``replicas`` (one row per replica: tenant, shard, region,
    role, lag, whether it needs a resync, throughput, disk bytes, last heartbeat), ``tenants`` (placement and
    migration) and ``drained`` (hosts drained for an upgrade). In Jupyter it renders as
    tables.
    """

    @classmethod
    def _from_json(cls, text: str, regions: Sequence[str]) -> Health:
        return cls(_named(json.loads(text), regions))

    def region(self, name: str) -> str:
        """The verdict on region ``name``: ``"Healthy"``, ``"Degraded"``, ``"Offline"`` or
        ``"NeedsResync"``."""
        regions = self.get("regions", [])
        for r in regions:
            if r.get("region") == name:
                return str(r["health"])
        known = [r.get("region") for r in regions]
        raise NotFound(f"region {name!r} is not in this cluster; its regions are {known}")

    def rows(self, table: str = "replicas") -> list[dict[str, Any]]:
        """The rows of one of the report's tables: ``"regions"``, ``"replicas"`` (the
        default) or ``"tenants"``."""
        if table not in _TABLES:
            raise InvalidArgument(
                f"invalid argument table: {table!r} is not a table of the health report; "
                f"pass one of {list(_TABLES)}"
            )
        return list(self.get(table, []))

    def to_pandas(self, table: str = "replicas") -> Any:
        """One table of the report (see :meth:`rows`) as a pandas DataFrame, one row per
        replica (region, tenant) by default. pandas is imported here, not by tidaldb."""
        return to_pandas(rows_to_columns(self.rows(table)))

    def to_polars(self, table: str = "replicas") -> Any:
        """One table of the report (see :meth:`rows`) as a polars DataFrame."""
        return to_polars(rows_to_columns(self.rows(table)))

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """The replicas table as an Arrow PyCapsule stream (``pyarrow.table(health)``)."""
        return arrow_c_stream(rows_to_columns(self.rows()), requested_schema)

    def __repr__(self) -> str:
        verdicts = ", ".join(f"{r['region']}: {r['health']}" for r in self.get("regions", []))
        return f"<Health at_ns={self.get('at_ns')} {verdicts}; {len(self.get('replicas', []))} replicas>"

    def _repr_html_(self) -> str:
        """The report as HTML tables, for Jupyter."""
        return (
            _table("Regions", self.get("regions", []))
            + _table("Replicas", self.get("replicas", []))
            + _table("Tenants", self.get("tenants", []))
        )


def progress_bar(total: int, desc: str, initial: int = 0) -> Any:
    """A tqdm bar for ``Migration.run(progress=True)``, or None when tqdm is not installed
    (it is in the ``tidaldb[notebook]`` extra); the migration runs the same either way."""
    try:
        # tqdm.auto: a widget in Jupyter, text in a terminal.
        from tqdm.auto import tqdm  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="step", initial=initial)
