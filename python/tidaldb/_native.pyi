"""Type stubs for the Rust extension ``tidaldb._native`` (checked by ``mypy.stubtest``)."""

import datetime
import os
from collections.abc import Coroutine, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, NoReturn, Protocol, SupportsIndex, final, overload

from typing_extensions import disjoint_base

import numpy as np
import numpy.typing as npt

from tidaldb._display import Health
from tidaldb._tables import Scores

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
    "Client",
    "Served",
    "connect",
    "MIGRATION_STATES",
    "parse_duration",
    "export_events_csv",
    "export_scores_csv",
    "_Scoped",
    "_Job",
    "__version__",
]

__version__: str

MIGRATION_STATES: tuple[str, ...]

def export_events_csv(
    path: str | os.PathLike[str], *, tenant: int | None = None, allow_partial: bool = False
) -> bytes:
    """The events export of a data directory as CSV; see ``tidaldb.export_events``."""

def export_scores_csv(
    path: str | os.PathLike[str], *, at: _Time | None = None, tenant: int | None = None
) -> bytes:
    """The scores export of a data directory as CSV; see ``tidaldb.export_scores``."""

def parse_duration(value: float | str | datetime.timedelta, name: str = "duration") -> float: ...

class _ArrowArray(Protocol):
    """Anything with the Arrow PyCapsule array interface (pyarrow, arro3, nanoarrow, ...)."""

    def __arrow_c_array__(self, requested_schema: object | None = None) -> tuple[object, object]: ...

class _ArrowStream(Protocol):
    """Anything with the Arrow PyCapsule stream interface (chunked arrays, ...)."""

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...

# A duration: seconds, text such as "7d" or "90m", or a timedelta.
_Duration = float | str | datetime.timedelta | np.timedelta64
# A time: Unix seconds, or a datetime (naive ones are UTC) or numpy datetime64.
_Time = float | datetime.datetime | np.datetime64
# A column of a bulk call: a numpy array, a pandas or polars Series, a pyarrow array,
# any Arrow PyCapsule object, or a sequence. Read in place when it is a 1-D numpy array
# of the exact dtype (uint64 or int64 ids, float64 weights and seconds), converted
# otherwise; nulls are refused.
_Column = npt.ArrayLike | _ArrowArray | _ArrowStream
_Ids = _Column
_Weights = _Column
_Times = _Column

@final
class Schema:
    """The signals of a database. Pickles, copies and compares equal by its signals."""

    def __new__(cls) -> Schema: ...
    def signal(
        self,
        name: str,
        kind: Literal["item", "user", "creator"] | str = "item",
        half_life: _Duration | None = None,
        lifetime: _Duration | None = None,
        windows: list[str] | None = None,
        velocity: bool = False,
    ) -> Schema: ...
    @property
    def names(self) -> list[str]: ...
    def __len__(self) -> int: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __ne__(self, other: object, /) -> bool: ...
    __hash__: None  # type: ignore[assignment]
    def __getstate__(self) -> list[tuple[str, str, str, int | None, list[str] | None, bool]]:
        """The signals as plain values: ``(name, kind, decay, length_ns, windows, velocity)``."""
    def __setstate__(
        self, state: list[tuple[str, str, str, int | None, list[str] | None, bool]], /
    ) -> None:
        """Rebuilds the schema from :meth:`__getstate__`'s values, validating them."""
    def __reduce__(
        self,
    ) -> tuple[type[Schema], tuple[()], list[tuple[str, str, str, int | None, list[str] | None, bool]]]: ...
    def __copy__(self) -> Schema: ...
    def __deepcopy__(self, memo: object, /) -> Schema: ...

@final
class ScoredItem:
    @property
    def item(self) -> int: ...
    @property
    def score(self) -> float: ...

@final
class QueryStats:
    @property
    def candidates_considered(self) -> int: ...
    @property
    def candidates_after_filter(self) -> int: ...
    @property
    def hidden_filtered(self) -> int: ...
    @property
    def returned(self) -> int: ...
    @property
    def elapsed(self) -> float: ...
    @property
    def degraded(self) -> bool: ...
    @property
    def shards_reached(self) -> list[int]: ...
    @property
    def shards_unreachable(self) -> list[int]: ...
    @property
    def regions_unreachable(self) -> list[str]: ...
    def _repr_html_(self) -> str: ...

@final
class Results:
    @property
    def items(self) -> list[ScoredItem]: ...
    @property
    def stats(self) -> QueryStats: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[ScoredItem]: ...
    @overload
    def __getitem__(self, key: SupportsIndex, /) -> ScoredItem: ...
    @overload
    def __getitem__(self, key: slice, /) -> list[ScoredItem]: ...
    def to_numpy(self) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float64]]: ...
    def to_pandas(self) -> Any:
        """A pandas DataFrame of ``item`` (uint64) and ``score`` (float64), best first.

        pandas is imported here; tidaldb does not depend on it. Raises ``ImportError``
        when it is not installed.
        """
    def to_polars(self) -> Any:
        """A polars DataFrame of ``item`` (UInt64) and ``score`` (Float64), best first."""
    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """The Arrow PyCapsule stream of the ``item`` and ``score`` columns: for
        ``pyarrow.table(results)``, ``polars.DataFrame(results)``, DuckDB. Uses pyarrow,
        or polars when pyarrow is not installed."""
    def _repr_html_(self) -> str: ...

@final
class Db:
    def __new__(
        cls,
        schema: Schema,
        path: str | os.PathLike[str] | None = None,
        *,
        durability: Literal["immediate", "batched"] | str = "immediate",
        max_future_skew: _Duration | None = None,
    ) -> Db:
        """Opens a database: in memory without ``path``, else in that directory.

        ``max_future_skew`` (default 5 minutes) is how far ahead of this machine's clock a
        write's ``ts`` may be; a write further ahead raises ``InvalidArgument``.
        """
    def signal(
        self,
        name: str,
        item: int,
        weight: float = 1.0,
        ts: _Time | None = None,
        tenant: int | None = None,
    ) -> None:
        """Records one signal at ``ts`` (now when None). ``tenant`` (an id given to
        :meth:`register_tenant`) writes to that tenant's own log, under its quotas."""
    def signals(
        self,
        name: str,
        items: _Ids,
        weights: _Weights,
        ts: _Times | None = None,
    ) -> int:
        """Records ``weights[i]`` on ``items[i]`` (at ``ts[i]``, or now) and returns how
        many were written: all of them, or none when any is invalid. The GIL is released
        once the arrays are copied.

        Ctrl-C raises ``KeyboardInterrupt`` within about 50 ms. Stopped while the batch is
        checked, nothing is written; stopped while it is applied, the chunks applied stay
        (committed): the exception's ``written`` says how many events, the first ones.
        """
    def score(
        self, name: str, item: int, at: _Time | None = None, tenant: int | None = None
    ) -> float:
        """The decayed score of ``item`` at ``at`` (now when None), of ``tenant`` if given."""
    def register_tenant(
        self,
        id: int,
        max_signals_per_sec: int | None = None,
        max_entities: int | None = None,
        max_storage_bytes: int | None = None,
        label: str | None = None,
    ) -> None:
        """Registers a tenant with its own log and state (``{path}/tenants/{id}/``) and
        quotas (None for unlimited), durably. Pass ``tenant=id`` to :meth:`signal`,
        :meth:`score`, :meth:`total_count` and :meth:`recovery_report`; the other calls
        serve the default tenant. ``Conflict`` if it is registered already,
        ``InvalidArgument`` for a zero quota or id 0 (the built-in default tenant)."""
    @property
    def tenants(self) -> list[int]:
        """The registered tenants' ids, in order (not the default tenant, 0)."""
    def total_count(self, signal: str, tenant: int | None = None) -> int:
        """Events of ``signal`` (one that declares windows) over all time and every item."""
    def scores(
        self,
        name: str,
        items: _Ids,
        at: _Time | None = None,
        errors: Literal["raise", "nan"] = "raise",
    ) -> Scores:
        """Decayed scores of ``items`` at ``at``, one per item and in their order. The GIL
        is released meanwhile, and Ctrl-C raises ``KeyboardInterrupt`` within about 50 ms.

        ``errors="nan"`` gives NaN for an item whose score cannot be read (a read before a
        linear signal's retained history, or one that would overflow) instead of raising
        ``InvalidArgument`` for the whole call. An unknown signal still raises.
        """
    def window_count(self, name: str, item: int, window: str, at: _Time | None = None) -> int: ...
    def window_sum(self, name: str, item: int, window: str, at: _Time | None = None) -> float: ...
    def velocity(self, name: str, item: int, at: _Time | None = None) -> float: ...
    def hide(self, user: int, item: int) -> None: ...
    def unhide(self, user: int, item: int) -> None: ...
    def is_hidden(self, user: int, item: int) -> bool: ...
    def retrieve(
        self,
        candidates: Iterable[int] | _Column,
        rank_by: dict[str, float],
        *,
        user: int | None = None,
        limit: int = 10,
        at: _Time | None = None,
    ) -> Results: ...
    def flush(self) -> None: ...
    def flush_async(self) -> Coroutine[Any, Any, None]:
        """``flush()`` as a coroutine, run on a worker thread so the event loop stays free:
        ``await db.flush_async()``, or ``asyncio.run(db.flush_async())``. A closed Db raises
        at the call. Cancelling it stops the wait, not the sync: a sync under way finishes."""
    def snapshot(self) -> int: ...
    def recovery_report(self, tenant: int | None = None) -> dict[str, int]:
        """What opening the data directory found and repaired.

        Keys: ``snapshot_lsn`` (the log position the snapshot covered, 0 without one),
        ``events_replayed`` (log records replayed after it), ``torn_bytes_truncated`` (a
        torn last write cut off) and ``empty_segments_removed``. All 0 when ephemeral.
        """
    @property
    def events_applied(self) -> int: ...
    @property
    def path(self) -> Path | None: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...
    def __enter__(self) -> Db: ...
    def __exit__(self, *args: object) -> bool: ...
    def __reduce__(self) -> NoReturn:
        """Raises ``TypeError``: a Db holds its data directory open in this process; open a
        new Db on the same path in the other process instead."""

_MigrationState = Literal["idle", "preparing_target", "dual_write", "finalizing", "complete"]

@final
class WriteAck:
    @property
    def region(self) -> str: ...
    @property
    def origin(self) -> int: ...
    @property
    def seq(self) -> int: ...
    @property
    def count(self) -> int: ...
    @property
    def duplicate(self) -> bool: ...

@final
class Served:
    @property
    def node(self) -> int: ...
    @property
    def region(self) -> str: ...
    @property
    def degraded(self) -> bool: ...
    @property
    def unreachable(self) -> list[int]: ...

_Concern = Literal["local", "majority", "all"] | int

@final
class Client:
    @property
    def last_served(self) -> Served | None: ...
    @property
    def node(self) -> int | None: ...
    def write(
        self,
        signal: str,
        item: int,
        weight: float = 1.0,
        ts: _Time | None = None,
        tenant: int | Tenant | None = None,
        write_concern: _Concern | None = None,
    ) -> WriteAck: ...
    def write_many(
        self,
        signal: str,
        items: _Ids,
        weights: _Weights | None = None,
        ts: _Times | None = None,
        tenant: int | Tenant | None = None,
        write_concern: _Concern | None = None,
    ) -> int: ...
    def score(
        self, signal: str, item: int, tenant: int | Tenant | None = None, at: _Time | None = None
    ) -> float: ...
    def scores(
        self,
        signal: str,
        items: _Ids,
        tenant: int | Tenant | None = None,
        at: _Time | None = None,
    ) -> Scores:
        """Decayed scores of ``items``. Unlike ``Db.scores`` it takes no ``errors=``: the
        client protocol does not carry it yet, so a refused item fails the call."""
    def window_count(
        self, signal: str, item: int, window: str, tenant: int | Tenant | None = None
    ) -> int: ...
    def retrieve(
        self,
        candidates: Iterable[int] | _Column,
        rank_by: dict[str, float],
        *,
        user: int | None = None,
        limit: int = 10,
        tenant: int | Tenant | None = None,
        at: _Time | None = None,
    ) -> Results: ...
    def hide(
        self,
        user: int,
        item: int,
        tenant: int | Tenant | None = None,
        write_concern: _Concern | None = None,
    ) -> WriteAck: ...
    def unhide(
        self,
        user: int,
        item: int,
        tenant: int | Tenant | None = None,
        write_concern: _Concern | None = None,
    ) -> WriteAck: ...
    def is_hidden(self, user: int, item: int, tenant: int | Tenant | None = None) -> bool: ...
    def lag(self, tenant: int | Tenant | None = None) -> dict[int, tuple[int, float, bool]]: ...
    def health(self, tenant: int | Tenant | None = None) -> Health: ...
    def control(self) -> dict[str, Any]:
        """What the answering node's control-plane voter knows: ``voter``, ``raft_term``,
        ``raft_leader`` (a node id or None), ``is_raft_leader``, ``committed``,
        ``applied``, ``commands`` and ``groups`` (per tenant: ``tenant``, ``leader``,
        ``term``, from the committed log). Without a control plane: ``voter=False``."""
    def drain(self, region: str) -> None:
        """Drains ``region``: the control plane moves its hosts' leadership to other regions
        and keeps it away until :meth:`rejoin`. Returns once committed. An unknown region
        raises ``InvalidArgument`` and commits nothing; a node without a control plane
        raises ``Unavailable``."""
    def rejoin(self, region: str) -> None:
        """Lets a drained ``region``'s hosts lead again. Returns once committed."""
    def regions(self) -> list[str]: ...
    def __reduce__(self) -> NoReturn:
        """Raises ``TypeError``: a Client holds this process's connections; call
        ``tidaldb.connect`` in the other process instead."""

def connect(
    addrs: Sequence[str],
    *,
    cluster_id: str,
    ca: str | os.PathLike[str] | None = None,
    cert: str | os.PathLike[str] | None = None,
    key: str | os.PathLike[str] | None = None,
    insecure: bool = False,
    timeout: float = 10.0,
    write_concern: _Concern | None = None,
) -> Client: ...

@final
class Partition:
    @property
    def regions(self) -> tuple[str, str]: ...
    @property
    def one_way(self) -> bool: ...
    @property
    def active(self) -> bool: ...
    def heal(self) -> None: ...
    def __enter__(self) -> Partition: ...
    def __exit__(self, *args: object) -> bool: ...

@disjoint_base
class _Scoped:
    """The reads and writes ``Cluster`` and ``Tenant`` share. On a ``Tenant``, ``tenant``
    may only be None or that tenant."""

    def write(
        self,
        signal: str,
        item: int,
        weight: float = 1.0,
        ts: _Time | None = None,
        region: str | None = None,
        tenant: int | Tenant | None = None,
        idempotency_key: int | str | bytes | None = None,
    ) -> WriteAck: ...
    def write_many(
        self,
        signal: str,
        items: _Ids,
        weights: _Weights | None = None,
        ts: _Times | None = None,
        region: str | None = None,
        tenant: int | Tenant | None = None,
    ) -> int: ...
    def score(
        self,
        signal: str,
        item: int,
        region: str | None = None,
        tenant: int | Tenant | None = None,
        at: _Time | None = None,
    ) -> float: ...
    def scores(
        self,
        signal: str,
        items: _Ids,
        region: str | None = None,
        tenant: int | Tenant | None = None,
        at: _Time | None = None,
        errors: Literal["raise", "nan"] = "raise",
    ) -> Scores:
        """Decayed scores of ``items``, each read where it is served; ``errors="nan"`` as
        in :meth:`Db.scores`."""
    def window_count(
        self,
        signal: str,
        item: int,
        window: str,
        region: str | None = None,
        tenant: int | Tenant | None = None,
        at: _Time | None = None,
    ) -> int:
        """Events of ``signal`` on ``item`` in ``window`` as of ``at`` (the cluster's
        virtual now when None)."""
    def window_sum(
        self,
        signal: str,
        item: int,
        window: str,
        region: str | None = None,
        tenant: int | Tenant | None = None,
        at: _Time | None = None,
    ) -> float:
        """The sum of the weights counted by :meth:`window_count`."""
    def velocity(
        self,
        signal: str,
        item: int,
        region: str | None = None,
        tenant: int | Tenant | None = None,
        at: _Time | None = None,
    ) -> float:
        """Weight per hour over the signal's shortest window, as of ``at``; the signal
        must be declared with ``velocity=True`` (``InvalidArgument`` otherwise)."""
    def total_count(
        self, signal: str, region: str, tenant: int | Tenant | None = None
    ) -> int: ...
    def retrieve(
        self,
        candidates: Iterable[int] | _Column,
        rank_by: dict[str, float],
        *,
        user: int | None = None,
        limit: int = 10,
        region: str | None = None,
        tenant: int | Tenant | None = None,
        at: _Time | None = None,
    ) -> Results: ...
    def hide(
        self, user: int, item: int, region: str | None = None, tenant: int | Tenant | None = None
    ) -> WriteAck: ...
    def unhide(
        self, user: int, item: int, region: str | None = None, tenant: int | Tenant | None = None
    ) -> WriteAck: ...
    def is_hidden(
        self, user: int, item: int, region: str | None = None, tenant: int | Tenant | None = None
    ) -> bool: ...

@final
class Cluster(_Scoped):
    def __new__(
        cls,
        schema: Schema,
        regions: Sequence[str] = ("us-east", "eu-west", "ap-south"),
        shards_per_region: int = 1,
        seed: int = 0,
        latency: _Duration = "20ms",
        jitter: _Duration = "5ms",
        loss: float = 0.0,
        write_concern: Literal["local", "majority", "all"] | int = "local",
        *,
        durability: Literal["immediate", "periodic"] | str = "immediate",
        max_retained: int | None = None,
        max_retained_own: int | None = None,
        max_future_skew: _Duration | None = None,
    ) -> Cluster:
        """``latency`` and ``jitter`` are at most a day (``InvalidArgument`` beyond).
        ``max_future_skew`` (default 5 minutes) is how far ahead of a replica's virtual
        clock a write's ``ts`` may be.

        ``max_retained`` and ``max_retained_own`` (at least 1; None for the defaults,
        1,048,576 and 4,194,304) bound the events each replica keeps in memory for its peers,
        relayed from other regions and its own. A peer that lacks older events is caught up
        from the replica's durable log, and ``health()`` says ``NeedsResync`` until it is."""
    @property
    def regions(self) -> list[str]: ...
    @property
    def shards_per_region(self) -> int: ...
    @property
    def seed(self) -> int: ...
    @property
    def now(self) -> float: ...
    @property
    def leader(self) -> str: ...
    @property
    def tenants(self) -> list[Tenant]: ...
    def version_vector(
        self, region: str, shard: int = 0, tenant: int | Tenant | None = None
    ) -> dict[int, int]: ...
    def state_digest(self, region: str, shard: int = 0, tenant: int | Tenant | None = None) -> int: ...
    def step(self) -> bool: ...
    def run_for(self, seconds: _Duration) -> None:
        """Runs ``seconds`` of virtual time. A duration that would take the clock past
        its range (the year 2116) raises ``InvalidArgument`` and runs nothing. Ctrl-C raises
        ``KeyboardInterrupt`` within about 50 ms, with the virtual time run until then kept."""
    def await_convergence(self, timeout: _Duration = 30.0) -> float:
        """Runs virtual time until every replica group has converged; returns the virtual
        seconds that took. ``Timeout`` names what still differs. Ctrl-C raises
        ``KeyboardInterrupt`` within about 50 ms; ``converged()`` is its coroutine twin."""
    def converged(self, timeout: _Duration = 30.0) -> Coroutine[Any, Any, float]:
        """``await_convergence`` as a coroutine, run on a worker thread so the event loop
        stays free: ``await cluster.converged()``, or ``asyncio.run(cluster.converged())``.
        Cancelling it stops the wait within about 50 ms, with the virtual time run until
        then kept."""
    def is_converged(self) -> bool: ...
    def partition(self, a: str, b: str, one_way: bool = False) -> Partition: ...
    def heal_all(self) -> None: ...
    def crash(self, region: str, lose_unsynced: bool = False, shard: int = 0) -> int: ...
    def restart(self, region: str, shard: int = 0) -> None:
        """Restarts a crashed host from its disks; ``Conflict`` if it is running."""
    def is_up(self, region: str, shard: int = 0) -> bool: ...
    def drain(self, region: str, shard: int = 0) -> None:
        """Drains a host for an upgrade: stops routing to it, moves its leaderships away,
        and waits (virtual time, up to 10 s) until no peer lacks an event only it holds.

        Raises ``Conflict`` while another host is drained, ``Timeout`` if replication
        stalls. Then :meth:`upgrade` and :meth:`rejoin` it.
        """
    def upgrade(self, region: str, shard: int = 0) -> None:
        """Restarts a drained host from its storage, as a new binary would; ``Conflict``
        if it was not drained."""
    def rejoin(self, region: str, shard: int = 0) -> None:
        """Starts the host if down, waits until it holds what its peers held, and routes
        to it again."""
    def lag(self, tenant: int | Tenant | None = None) -> dict[str, int]: ...
    def health(self) -> Health: ...
    def register_tenant(
        self,
        id: int,
        max_signals_per_sec: int | None = None,
        max_entities: int | None = None,
        max_storage_bytes: int | None = None,
        regions: Sequence[str] | None = None,
        label: str | None = None,
    ) -> Tenant: ...
    def tenant(self, id: int) -> Tenant: ...
    def __reduce__(self) -> NoReturn:
        """Raises ``TypeError``: a Cluster runs inside this process; build one from the same
        schema and options (and seed) in the other process instead."""

@final
class Tenant(_Scoped):
    @property
    def id(self) -> int: ...
    @property
    def label(self) -> str: ...
    @property
    def regions(self) -> list[str]: ...
    @property
    def cluster(self) -> Cluster: ...
    @property
    def max_signals_per_sec(self) -> int | None: ...
    @property
    def max_entities(self) -> int | None: ...
    @property
    def max_storage_bytes(self) -> int | None: ...
    @property
    def migration(self) -> Migration | None: ...
    def migrate(self, to_region: str, to_shard: int | None = None) -> Migration: ...
    def __reduce__(self) -> NoReturn:
        """Raises ``TypeError``: a Tenant is a view of a Cluster of this process; pass its id
        and call ``cluster.tenant(id)`` where the cluster lives."""

@final
class Migration:
    @property
    def tenant(self) -> int: ...
    @property
    def source(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def state(self) -> _MigrationState: ...
    def prepare_target(self) -> None: ...
    def enter_dual_write(self) -> None: ...
    def finalize(self) -> None: ...
    def gc_source(self, grace: _Duration = 0.0) -> None: ...
    def advance(self, grace: _Duration = 0.0) -> str: ...
    def run(self, progress: bool = False, grace: _Duration = 0.0) -> Coroutine[Any, Any, None]:
        """Runs every remaining step as a coroutine: ``await migration.run()``, or
        ``asyncio.run(migration.run())``. ``progress=True`` shows a tqdm bar. Cancelling
        it stops the step under way within about 50 ms; the record keeps the state
        reached, and a later ``run()`` resumes from it."""

@final
class _Job:
    """The native half of one awaitable, which ``tidaldb._async.run`` drives; not for
    direct use."""

    def start(self, event_loop: object, future: object) -> None:
        """Runs the work on a new thread; ``future`` (of ``event_loop``) gets its outcome.
        A job starts once: a second start raises ``RuntimeError``."""
    def cancel(self) -> None:
        """Asks the work to stop at its next safe point; a finished job ignores it."""
