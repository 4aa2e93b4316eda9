"""tidaldb: a database for engagement signals whose value decays with time.

>>> import tidaldb
>>> schema = tidaldb.Schema().signal("view", half_life="7d", windows=["1h", "24h"])
>>> with tidaldb.Db(schema) as db:
...     db.signal("view", 42, ts=1_700_000_000.0)
...     round(db.score("view", 42, at=1_700_000_000.0 + 7 * 86_400), 9)
0.5

Durations are seconds (floats), strings such as ``"7d"`` and ``"90m"``, or ``timedelta``;
times are Unix seconds as floats, ``datetime`` (naive ones are UTC) or numpy
``datetime64``. Column arguments take numpy, pandas, polars, pyarrow and Arrow PyCapsule
objects; results convert with ``to_pandas()``, ``to_polars()`` and ``__arrow_c_stream__``. Rust ``tracing`` events arrive on the ``logging`` logger ``tidaldb``.
"""

from __future__ import annotations

from tidaldb.exceptions import (
    Conflict,
    Corruption,
    ForkedProcess,
    InvalidArgument,
    NotFound,
    OutcomeUnknown,
    QuotaExceeded,
    SchemaError,
    TidalError,
    Timeout,
    Unavailable,
)
from tidaldb._native import (
    Cluster,
    Db,
    Migration,
    Partition,
    QueryStats,
    Results,
    Schema,
    ScoredItem,
    Tenant,
    WriteAck,
    Client,
    Served,
    __version__,
)
from tidaldb._display import Health
from tidaldb._tables import Scores
from tidaldb._export import Export, export_events, export_scores
from tidaldb._client import TLS, connect

__all__ = [
    "Schema",
    "Db",
    "Results",
    "ScoredItem",
    "QueryStats",
    "Cluster",
    "Tenant",
    "Migration",
    "Partition",
    "WriteAck",
    "Health",
    "Scores",
    "Export",
    "export_events",
    "export_scores",
    "connect",
    "Client",
    "Served",
    "TLS",
    "TidalError",
    "SchemaError",
    "InvalidArgument",
    "NotFound",
    "Corruption",
    "Unavailable",
    "ForkedProcess",
    "OutcomeUnknown",
    "QuotaExceeded",
    "Timeout",
    "Conflict",
    "__version__",
]
