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

def parse_duration(value: float | str | datetime.timedelta, name: str = "duration") -> float:
    """Reads a duration as every tidaldb call does.

    Args:
        value: seconds, text such as ``"7d"``, ``"90m"`` or ``"250ms"``, or a ``timedelta``.
        name: the argument the error message names: ``"seconds"``, ``"every"``,
            ``"grace"``, ``"timeout"``, ``"latency"`` or ``"jitter"`` (else ``"duration"``).

    Returns:
        The duration in seconds.

    Raises:
        InvalidArgument: ``value`` is negative, not finite or not a duration.

    Example:
        >>> parse_duration("90m")
        5400.0
    """

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

@final
class Schema:
    """The signals of a database, declared before it opens.

    ``signal()`` returns the same schema, so declarations chain. A schema pickles,
    copies, and compares equal to one that declares the same signals in the same order.

    Example:
        >>> schema = Schema().signal("view", half_life="7d", windows=["1h", "24h"])
        >>> schema.names
        ['view']
    """

    def __new__(cls) -> Schema: ...
    def signal(
        self,
        name: str,
        kind: Literal["item", "user", "creator"] | str = "item",
        half_life: _Duration | None = None,
        lifetime: _Duration | None = None,
        windows: list[str] | None = None,
        velocity: bool = False,
    ) -> Schema:
        """Declares a signal. On error the schema stays as it was.

        Args:
            name: the signal's name, unique in the schema.
            kind: the entity the signal is about: ``"item"``, ``"user"`` or ``"creator"``.
            half_life: exponential decay with this half-life.
            lifetime: linear decay to zero over this duration. With neither, the signal
                is permanent.
            windows: exact event counts and weight sums kept over these windows
                (``"1h"``, ``"24h"``, ``"7d"``, ``"30d"``, ``"all"``).
            velocity: keep weight per hour over the shortest window (needs ``windows``).

        Returns:
            This schema.

        Raises:
            SchemaError: a duplicate name, both ``half_life`` and ``lifetime``, or
                ``velocity`` without a bounded window.
            InvalidArgument: an unknown ``kind`` or window, or a bad duration.

        Example:
            >>> Schema().signal("like", half_life="30d").signal("buy", lifetime="90d").names
            ['like', 'buy']
        """
    @property
    def names(self) -> list[str]:
        """The signal names, in declaration order."""
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
    """One result of a query: an item and its combined score."""

    @property
    def item(self) -> int:
        """The item id."""
    @property
    def score(self) -> float:
        """The weighted sum of the item's decayed signal scores the query ranked by."""

@final
class QueryStats:
    """How a query went: how many candidates it read and which shards answered."""

    @property
    def candidates_considered(self) -> int:
        """Candidates given to the query."""
    @property
    def candidates_after_filter(self) -> int:
        """Candidates left once the user's hidden items were removed."""
    @property
    def hidden_filtered(self) -> int:
        """Candidates removed because the user hid them."""
    @property
    def returned(self) -> int:
        """Items returned (at most ``limit``)."""
    @property
    def elapsed(self) -> float:
        """Seconds the query took."""
    @property
    def degraded(self) -> bool:
        """True when a shard or replica could not be reached: the answer may lack data."""
    @property
    def shards_reached(self) -> list[int]:
        """The shards that answered."""
    @property
    def shards_unreachable(self) -> list[int]:
        """The shards that could not be reached."""
    @property
    def regions_unreachable(self) -> list[str]:
        """Regions with a replica the answering replicas could not hear from: the data they
        may hold that the answer lacks. Empty for an embedded ``Db``."""
    def _repr_html_(self) -> str:
        """The stats as an HTML table, for Jupyter."""

@final
class Results:
    """The top items of a query, best first, and how the query went.

    A sequence of :class:`ScoredItem`; converts to numpy, pandas, polars and Arrow.

    Example:
        >>> top = db.retrieve([1, 2, 3], {"view": 1.0}, limit=2)
        >>> best = top[0].item if top else None
        >>> df = top.to_pandas()
    """

    @property
    def items(self) -> list[ScoredItem]:
        """The items, best first."""
    @property
    def stats(self) -> QueryStats:
        """How the query went."""
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[ScoredItem]: ...
    @overload
    def __getitem__(self, key: SupportsIndex, /) -> ScoredItem: ...
    @overload
    def __getitem__(self, key: slice, /) -> list[ScoredItem]: ...
    def to_numpy(self) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float64]]:
        """The results as two arrays.

        Returns:
            ``(items, scores)``: uint64 and float64 arrays, best first.
        """
    def to_pandas(self) -> Any:
        """A pandas DataFrame of ``item`` (uint64) and ``score`` (float64), best first.

        Raises:
            ImportError: pandas is not installed (tidaldb does not depend on it).
        """
    def to_polars(self) -> Any:
        """A polars DataFrame of ``item`` (UInt64) and ``score`` (Float64), best first.

        Raises:
            ImportError: polars is not installed (tidaldb does not depend on it).
        """
    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """The Arrow PyCapsule stream of the ``item`` and ``score`` columns: for
        ``pyarrow.table(results)``, ``polars.DataFrame(results)``, DuckDB. Uses pyarrow,
        or polars when pyarrow is not installed."""
    def _repr_html_(self) -> str:
        """The results as an HTML table, for Jupyter."""

@final
class Db:
    """An embedded database: in memory, or durable in a data directory.

    Every method of a closed Db raises ``Unavailable``, and every method of a Db used in
    a child process after ``fork()`` raises ``ForkedProcess``. A Db still open at
    interpreter exit is flushed and closed then.

    Args:
        schema: the signals the database keeps.
        path: the data directory, created if missing; in memory when None.
        durability: ``"immediate"`` syncs each write before returning. ``"batched"``
            syncs in groups, every 4,096 writes or every ``sync_interval``, whichever
            comes first: a crash may lose the writes of the last interval (longer if the
            process was stalled), and :meth:`flush` syncs at once.
        sync_interval: how long a ``"batched"`` write may wait for its sync (default
            10 ms, at most an hour). Refused with ``"immediate"``, which waits for none.
        max_future_skew: how far ahead of this machine's clock a write's ``ts`` may be
            (default 5 minutes).
        ingest_threads: threads a bulk write (``signals``) of 8,192 events or more may be
            applied on, partitioned by item (default: every core). It is spread only while
            that has been timed faster than one thread, which it is not when other work
            keeps the cores busy. Scores, windows and query results are bit-identical
            whatever the count; only the speed changes.

    Raises:
        SchemaError: ``path`` holds a database of a different schema.
        InvalidArgument: an unknown ``durability``, a ``sync_interval`` out of range or
            given with ``"immediate"``, a bad ``max_future_skew``, or an ``ingest_threads``
            below 1.
        Unavailable: the directory is open already (in this process or another) or
            cannot be read.
        Corruption: the log cannot be recovered.

    Example:
        >>> with Db(Schema().signal("view", half_life="7d")) as db:
        ...     db.signal("view", 42, ts=1_700_000_000.0)
        ...     round(db.score("view", 42, at=1_700_000_000.0 + 7 * 86_400), 9)
        0.5
    """

    def __new__(
        cls,
        schema: Schema,
        path: str | os.PathLike[str] | None = None,
        *,
        durability: Literal["immediate", "batched"] | str = "immediate",
        sync_interval: _Duration | None = None,
        max_future_skew: _Duration | None = None,
        ingest_threads: int | None = None,
    ) -> Db: ...
    def signal(
        self,
        name: str,
        item: int,
        weight: float = 1.0,
        ts: _Time | None = None,
        tenant: int | None = None,
    ) -> None:
        """Records one event.

        An in-memory ``Db`` (no ``path``) checks the event at once, then applies it
        together with the next ones, before any other call on the ``Db`` runs: a
        read always sees it, and a loop of single calls costs about what a dict
        update does.

        Args:
            name: a declared signal.
            item: the entity id, an unsigned 64-bit int.
            weight: the event's weight, finite.
            ts: when it happened; now when None.
            tenant: a tenant id given to :meth:`register_tenant`: writes to that
                tenant's own log, under its quotas.

        Raises:
            NotFound: an unknown signal or tenant.
            InvalidArgument: a weight that is not finite, or a ``ts`` out of range or
                further ahead than ``max_future_skew``.
            QuotaExceeded: the tenant is over a quota.
            Unavailable: the Db is closed, or the write could not be logged.

        Example:
            >>> db.signal("view", 42, weight=2.0, ts=1_700_000_000.0)
        """
    def signals(
        self,
        name: str,
        items: _Ids,
        weights: _Weights,
        ts: _Times | None = None,
    ) -> int:
        """Records ``weights[i]`` on ``items[i]`` at ``ts[i]`` (now when None), all or none.

        The columns may be numpy arrays, pandas or polars Series, pyarrow arrays or
        sequences. They are read as they are at the call: the GIL is released once they
        are copied. A call of 65,536 events or more to an in-memory ``Db`` copies nothing
        instead: it reads contiguous uint64/float64 arrays in place, a chunk at a time,
        holding the GIL while it reads. Other Python threads are not kept waiting: the
        call lets them run once per switch interval (``sys.getswitchinterval()``), as
        Python's own threads share the GIL. A thread (or signal handler) that changes
        the arrays during the call changes the rows not yet written; the call checks
        them again, and one made invalid stops it there with ``InvalidArgument``, the
        events before it written (the exception's ``written`` says how many). Ctrl-C
        raises ``KeyboardInterrupt`` within about 50 ms: stopped while the batch is
        checked, nothing is written; stopped while it is applied, the chunks applied stay
        (committed) and the exception's ``written`` says how many events, the first ones.

        Returns:
            How many events were written.

        Raises:
            NotFound: an unknown signal.
            InvalidArgument: columns of different lengths, or any bad weight or time;
                nothing is written (unless another thread made a row bad during the call:
                see above).
            Unavailable: the Db is closed, or the batch could not be logged.

        Example:
            >>> db.signals("view", np.array([1, 2, 3], dtype=np.uint64), np.ones(3))
            3
        """
    def score(
        self, name: str, item: int, at: _Time | None = None, tenant: int | None = None
    ) -> float:
        """The decayed score of ``item``.

        Args:
            name: a declared signal.
            item: the entity id.
            at: the time read; now when None.
            tenant: the tenant to read; the default tenant when None.

        Returns:
            The sum of the item's event weights, each decayed to ``at``; 0.0 without events.

        Raises:
            NotFound: an unknown signal or tenant.
            InvalidArgument: ``at`` out of range or before a linear signal's retained
                history.
            Unavailable: the Db is closed.
        """
    def register_tenant(
        self,
        id: int,
        max_signals_per_sec: int | None = None,
        max_entities: int | None = None,
        max_storage_bytes: int | None = None,
        label: str | None = None,
    ) -> None:
        """Registers a tenant, durably, with its own log and state (``{path}/tenants/{id}/``).

        Pass ``tenant=id`` to :meth:`signal`, :meth:`score`, :meth:`total_count` and
        :meth:`recovery_report`; the other calls serve the default tenant.

        Args:
            id: the tenant id, not 0 (the built-in default tenant).
            max_signals_per_sec: writes admitted per second; None for unlimited.
            max_entities: distinct entities with signals; None for unlimited.
            max_storage_bytes: the tenant's log size; None for unlimited.
            label: a human-readable name.

        Raises:
            Conflict: the tenant is registered already.
            InvalidArgument: id 0 or a zero quota.
            Unavailable: the Db is closed.
        """
    @property
    def tenants(self) -> list[int]:
        """The registered tenants' ids, in order (not the default tenant, 0)."""
    def total_count(self, signal: str, tenant: int | None = None) -> int:
        """Events of ``signal`` over all time and every item.

        Raises:
            NotFound: an unknown signal or tenant.
            InvalidArgument: the signal declares no windows.
            Unavailable: the Db is closed.
        """
    def scores(
        self,
        name: str,
        items: _Ids,
        at: _Time | None = None,
        errors: Literal["raise", "nan"] = "raise",
    ) -> Scores:
        """Decayed scores of many items at ``at`` (now when None), in their order.

        The GIL is released meanwhile, and Ctrl-C raises ``KeyboardInterrupt`` within
        about 50 ms.

        Args:
            name: a declared signal.
            items: the item ids, as a column.
            at: the time read; now when None.
            errors: ``"nan"`` gives NaN for an item whose score cannot be read (before a
                linear signal's retained history, or an overflow) instead of raising.

        Returns:
            A float64 :class:`tidaldb.Scores` array, one score per item.

        Raises:
            NotFound: an unknown signal.
            InvalidArgument: a bad id column, or an unreadable score with ``errors="raise"``.
            Unavailable: the Db is closed.
        """
    def window_count(self, name: str, item: int, window: str, at: _Time | None = None) -> int:
        """Events of ``name`` on ``item`` within ``window`` before ``at`` (now when None).

        Raises:
            NotFound: an unknown signal, or a window the signal does not declare.
            Unavailable: the Db is closed.

        Example:
            >>> db.window_count("view", 42, "24h")
            1
        """
    def window_sum(self, name: str, item: int, window: str, at: _Time | None = None) -> float:
        """The sum of the weights :meth:`window_count` counts.

        Raises:
            NotFound: an unknown signal, or a window the signal does not declare.
            Unavailable: the Db is closed.
        """
    def velocity(self, name: str, item: int, at: _Time | None = None) -> float:
        """Weight per hour of ``name`` on ``item`` over the signal's shortest window.

        Raises:
            NotFound: an unknown signal.
            InvalidArgument: the signal was not declared with ``velocity=True``.
            Unavailable: the Db is closed.
        """
    def hide(self, user: int, item: int, ts: _Time | None = None) -> None:
        """Hides ``item`` from ``user``: :meth:`retrieve` with ``user=`` leaves it out.

        Hides and unhides are ordered by ``ts``, the time they happened, so a backfilled
        stream lands as it happened: an old hide written after a newer unhide leaves the
        item visible. At equal ``ts`` the one written later wins.

        Args:
            user: the user's id.
            item: the item's id.
            ts: when the user hid it; now when None.

        Raises:
            InvalidArgument: a ``ts`` out of range or further ahead than
                ``max_future_skew``.
            Unavailable: the Db is closed, or the hide could not be logged.

        Example:
            >>> db.hide(1, 7, ts=1_700_000_000.0)
        """
    def unhide(self, user: int, item: int, ts: _Time | None = None) -> None:
        """Undoes a :meth:`hide` that happened before ``ts``; unhiding an item that is not
        hidden does nothing.

        Args:
            user: the user's id.
            item: the item's id.
            ts: when the user unhid it; now when None.

        Raises:
            InvalidArgument: a ``ts`` out of range or further ahead than
                ``max_future_skew``.
            Unavailable: the Db is closed, or the unhide could not be logged.

        Example:
            >>> db.unhide(1, 7)
        """
    def is_hidden(self, user: int, item: int) -> bool:
        """Whether ``item`` is hidden from ``user``.

        Raises:
            Unavailable: the Db is closed.
        """
    def retrieve(
        self,
        candidates: Iterable[int] | _Column,
        rank_by: dict[str, float],
        *,
        user: int | None = None,
        limit: int = 10,
        at: _Time | None = None,
    ) -> Results:
        """The top candidates by ``sum(coefficient * score(signal))``.

        Args:
            candidates: the item ids to rank.
            rank_by: ``{signal: coefficient}``.
            user: leave out the items this user hid.
            limit: at most this many results; 0 gives none.
            at: the time read; now when None.

        Returns:
            The results, best first.

        Raises:
            NotFound: an unknown signal in ``rank_by``.
            InvalidArgument: an empty ``rank_by``, a coefficient that is not finite, or
                a bad candidate id.
            Unavailable: the Db is closed.

        Example:
            >>> db.retrieve([1, 2, 3], {"view": 1.0, "like": 3.0}, limit=2).to_numpy()
        """
    def flush(self) -> None:
        """Syncs every acknowledged write to disk now (a no-op in memory).

        Raises:
            Unavailable: the Db is closed, or the sync failed.
        """
    def flush_async(self) -> Coroutine[Any, Any, None]:
        """``flush()`` as a coroutine, run on a worker thread so the event loop stays free:
        ``await db.flush_async()``, or ``asyncio.run(db.flush_async())``. Cancelling it
        stops the wait, not the sync: a sync under way finishes.

        Raises:
            Unavailable: the Db is closed (at the call), or the sync failed.
        """
    def snapshot(self) -> int:
        """Writes a snapshot now, so that the next open replays less of the log.

        Returns:
            The log position it covers; 0 in memory.

        Raises:
            Unavailable: the Db is closed, or the snapshot could not be written.
        """
    def recovery_report(self, tenant: int | None = None) -> dict[str, int]:
        """What opening the data directory found and repaired.

        Returns:
            ``snapshot_lsn`` (the log position the snapshot covered, 0 without one),
            ``events_replayed`` (log records replayed after it), ``torn_bytes_truncated``
            (a torn last write cut off) and ``empty_segments_removed``; all 0 in memory.

        Raises:
            NotFound: an unknown tenant.
            Unavailable: the Db is closed.
        """
    @property
    def events_applied(self) -> int:
        """Events applied in total (signals, hides and unhides), summed over origins."""
    @property
    def path(self) -> Path | None:
        """The data directory; None in memory."""
    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
    def close(self) -> None:
        """Syncs and releases the data directory. Closing twice does nothing.

        Raises:
            Unavailable: the final sync failed (the Db is closed all the same).
        """
    def __enter__(self) -> Db: ...
    def __exit__(self, *args: object) -> bool: ...
    def __reduce__(self) -> NoReturn:
        """Raises ``TypeError``: a Db holds its data directory open in this process; open a
        new Db on the same path in the other process instead."""

_MigrationState = Literal["idle", "target_created", "dual_write", "finalized", "complete"]

@final
class WriteAck:
    """The acknowledgement of a write: which replica appended it, and whether it was new.

    ``(origin, seq)`` is the event's id in every region.
    """

    @property
    def region(self) -> str:
        """The region of the replica that appended the events (their origin)."""
    @property
    def origin(self) -> int:
        """The origin replica's node id: with ``seq``, the event's id everywhere."""
    @property
    def seq(self) -> int:
        """The origin's sequence number of the first event written."""
    @property
    def count(self) -> int:
        """Events written: 0 for a duplicate."""
    @property
    def duplicate(self) -> bool:
        """True when this retried an idempotency key already applied: nothing was written,
        and ``origin``/``seq`` name the original event."""

@final
class Served:
    """Which node answered a client's last call, and whether its answer may miss writes."""

    @property
    def node(self) -> int:
        """The answering node's id."""
    @property
    def region(self) -> str:
        """The answering node's region."""
    @property
    def degraded(self) -> bool:
        """True when some replica of its group was not heard within its peer timeout: the
        answer stands for what had reached this node."""
    @property
    def unreachable(self) -> list[int]:
        """The replicas it could not hear, by node id."""

_Concern = Literal["local", "majority", "all"] | int

@final
class Client:
    """A connection to a tidaldb cluster of server processes; see :func:`connect`.

    Thread-safe: calls from several threads take turns. Every call raises
    ``Unavailable`` when no node answers, and ``ForkedProcess`` in a forked child.
    A write whose outcome the client cannot know raises ``OutcomeUnknown``.
    """

    @property
    def last_served(self) -> Served | None:
        """Which node answered the last call, and whether it was degraded; None before any."""
    @property
    def node(self) -> int | None:
        """The id of the node this client is connected to now."""
    def write(
        self,
        signal: str,
        item: int,
        weight: float = 1.0,
        ts: _Time | None = None,
        tenant: int | Tenant | None = None,
        write_concern: _Concern | None = None,
    ) -> WriteAck:
        """Writes one event.

        Args:
            signal: a declared signal.
            item: the entity id.
            weight: the event's weight, finite.
            ts: when it happened; now when None.
            tenant: the tenant written; the default tenant when None.
            write_concern: ``"local"``, ``"majority"``, ``"all"`` or a number of other
                replicas that must hold the event first; the client's default when None.

        Returns:
            The acknowledgement.

        Raises:
            NotFound: an unknown signal or tenant.
            InvalidArgument: a bad weight or time.
            QuotaExceeded: the tenant is over a quota.
            Timeout: the write concern was not met in time.
            OutcomeUnknown: the node failed after the request was sent.
            Unavailable: no node answered.

        Example:
            >>> client.write("view", 42, write_concern="majority").count
            1
        """
    def write_many(
        self,
        signal: str,
        items: _Ids,
        weights: _Weights | None = None,
        ts: _Times | None = None,
        tenant: int | Tenant | None = None,
        write_concern: _Concern | None = None,
    ) -> int:
        """Writes ``weights[i]`` (1.0 when None) on ``items[i]`` at ``ts[i]`` (now when None).

        The batch is written whole or not at all.

        Returns:
            How many events were written.

        Raises:
            NotFound: an unknown signal or tenant.
            InvalidArgument: columns of different lengths, or a bad weight or time.
            QuotaExceeded: the tenant is over a quota.
            Timeout: the write concern was not met in time.
            OutcomeUnknown: the node failed after the request was sent.
            Unavailable: no node answered.
        """
    def score(
        self, signal: str, item: int, tenant: int | Tenant | None = None, at: _Time | None = None
    ) -> float:
        """The decayed score of ``item`` at ``at`` (now when None).

        Raises:
            NotFound: an unknown signal or tenant.
            InvalidArgument: a bad ``at``.
            Unavailable: no node answered.
        """
    def scores(
        self,
        signal: str,
        items: _Ids,
        tenant: int | Tenant | None = None,
        at: _Time | None = None,
        errors: Literal["raise", "nan"] = "raise",
    ) -> Scores:
        """Decayed scores of ``items`` at ``at`` (the server's now when None), in their
        order, read by the node that answers.

        Args:
            signal: a declared signal.
            items: the item ids, as a column.
            tenant: the tenant read; the default tenant when None.
            at: the time read.
            errors: ``"nan"`` gives NaN for an item whose score cannot be read (before a
                linear signal's retained history, or an overflow) instead of raising.

        Returns:
            A float64 :class:`tidaldb.Scores` array, one score per item.

        Raises:
            NotFound: an unknown signal or tenant.
            InvalidArgument: a bad id column, ``at`` or ``errors``, or an unreadable
                score with ``errors="raise"``.
            Unavailable: no node answered.

        Example:
            >>> client.scores("view", [1, 2, 3], errors="nan")
        """
    def window_count(
        self, signal: str, item: int, window: str, tenant: int | Tenant | None = None
    ) -> int:
        """Events of ``signal`` on ``item`` within ``window``, as of now.

        Raises:
            NotFound: an unknown signal or tenant, or a window the signal does not declare.
            Unavailable: no node answered.
        """
    def retrieve(
        self,
        candidates: Iterable[int] | _Column,
        rank_by: dict[str, float],
        *,
        user: int | None = None,
        limit: int = 10,
        tenant: int | Tenant | None = None,
        at: _Time | None = None,
    ) -> Results:
        """The top ``limit`` candidates by ``sum(coefficient * score(signal))``, minus the
        items ``user`` hid; as in :meth:`Db.retrieve`.

        Raises:
            NotFound: an unknown signal or tenant.
            InvalidArgument: an empty ``rank_by`` or a bad coefficient or candidate.
            Unavailable: no node answered.
        """
    def hide(
        self,
        user: int,
        item: int,
        ts: _Time | None = None,
        tenant: int | Tenant | None = None,
        write_concern: _Concern | None = None,
    ) -> WriteAck:
        """Hides ``item`` from ``user`` until an unhide with a later ``ts``.

        Args:
            ts: when the user hid it; the server's time now when None. Hides and
                unhides are ordered by it, as in :meth:`Db.hide`.

        Raises:
            InvalidArgument: a ``ts`` out of range or too far ahead.
            Timeout: the write concern was not met in time.
            OutcomeUnknown: the node failed after the request was sent.
            Unavailable: no node answered.
        """
    def unhide(
        self,
        user: int,
        item: int,
        ts: _Time | None = None,
        tenant: int | Tenant | None = None,
        write_concern: _Concern | None = None,
    ) -> WriteAck:
        """Undoes a hide of ``item`` for ``user`` that happened before ``ts``.

        Args:
            ts: when the user unhid it; the server's time now when None.

        Raises:
            InvalidArgument: a ``ts`` out of range or too far ahead.
            Timeout: the write concern was not met in time.
            OutcomeUnknown: the node failed after the request was sent.
            Unavailable: no node answered.
        """
    def is_hidden(self, user: int, item: int, tenant: int | Tenant | None = None) -> bool:
        """Whether ``item`` is hidden from ``user``, as the answering node holds it.

        Raises:
            Unavailable: no node answered.
        """
    def lag(self, tenant: int | Tenant | None = None) -> dict[int, tuple[int, float, bool]]:
        """The answering node's replication lag behind each peer.

        Returns:
            ``{peer node id: (events, seconds, reachable)}``.

        Raises:
            Unavailable: no node answered.
        """
    def health(self, tenant: int | Tenant | None = None) -> Health:
        """The answering node's view of its replica group: region verdicts and one row
        per replica, with lag (a :class:`tidaldb.Health`, which renders as tables).

        Raises:
            Unavailable: no node answered.
        """
    def control(self) -> dict[str, Any]:
        """What the answering node's control-plane voter knows: ``voter``, ``raft_term``,
        ``raft_leader`` (a node id or None), ``is_raft_leader``, ``committed``,
        ``applied``, ``commands``, ``groups`` (per tenant: ``tenant``, ``leader``,
        ``term``, from the committed log) and ``drained`` (the drained regions: a rolling
        upgrade's progress). Without a control plane: ``voter=False``.

        ``majority`` is region health as the majority sees it, on every node: the Raft
        leader's verdict, with ``leader``, ``raft_term``, ``age_ms``, ``regions`` (pairs of
        name and ``"Healthy"``, ``"Degraded"``, ``"NeedsResync"`` or ``"Offline"``) and
        ``unreachable`` (the regions the majority cannot reach). When the node has not
        heard the Raft leader lately it cannot vouch for that view: ``error`` then says
        so, and the other fields are empty.

        Raises:
            Unavailable: no node answered.

        Example:
            >>> client.control()["majority"]["unreachable"]
            []
        """
    def drain(self, region: str) -> None:
        """Drains ``region``: the control plane moves its hosts' leadership to other regions
        and keeps it away until :meth:`rejoin`. Returns once committed. Sent to a voter
        that does not lead Raft, it is forwarded to the one that does.

        Raises:
            InvalidArgument: an unknown region; nothing is committed.
            Conflict: another region is drained; hosts are drained one at a time.
            Unavailable: the node has no control plane, or no node answered.
        """
    def rejoin(self, region: str) -> None:
        """Lets a drained ``region``'s hosts lead again. Returns once committed.

        Raises:
            InvalidArgument: an unknown region; nothing is committed.
            Unavailable: the node has no control plane, or no node answered.
        """
    def register_tenant(
        self,
        id: int,
        max_signals_per_sec: int | None = None,
        max_entities: int | None = None,
        max_storage_bytes: int | None = None,
        regions: Sequence[str] | None = None,
        label: str | None = None,
    ) -> None:
        """Registers a tenant while the cluster runs. Returns once the control plane has
        committed it; the nodes of its regions then open their replicas within about a
        second (``control()["groups"]`` lists each tenant's ``hosts``). Pass ``tenant=id``
        to the reads and writes of a client of those nodes.

        Args:
            id: the tenant id, not 0 (the built-in default tenant).
            max_signals_per_sec: writes each replica admits per second; None for unlimited.
            max_entities: distinct entities with signals, a hard cap over all its regions
                together; None for unlimited.
            max_storage_bytes: the tenant's log, at 64 bytes an event, a hard cap over all its
                regions together; None for unlimited.
            regions: the regions its data may live in; every region when None.
            label: a human-readable name.

        Raises:
            Conflict: the tenant is registered already (also id 0); nothing is committed.
            NotFound: an unknown region; nothing is committed.
            InvalidArgument: a zero quota or an empty ``regions``; nothing is committed.
            Unavailable: the node has no control plane, or no node answered.
        """
    def add_voter(self, node: int) -> None:
        """Lets ``node`` vote in the control plane: one that follows the log as a Raft
        learner (a node outside ``[control] voters``, or one :meth:`remove_voter` removed).
        Returns once the new configuration is applied on the node asked.

        Raises:
            InvalidArgument: a node the cluster does not have; nothing changes.
            Conflict: the node votes already, or another change of voters is being applied.
            Unavailable: the node has no control plane, or no node answered.
            Timeout: the change did not apply within 10 s (it may still).
        """
    def remove_voter(self, node: int) -> None:
        """Stops ``node`` voting in the control plane: the others decide without it (to
        replace its machine, say); it goes on following the log as a Raft learner. The
        change is a Raft configuration change, kept in the log and its snapshots, so it
        survives restarts. Removing the current leader moves its leadership first. Returns
        once applied on the node asked.

        Raises:
            InvalidArgument: a node the cluster does not have, or the last voter; nothing
                changes.
            Conflict: the node does not vote, or another change of voters is being applied.
            Unavailable: the node has no control plane, or no node answered.
            Timeout: the change did not apply within 10 s (it may still).
        """
    def migrate_tenant(self, id: int, to_region: str, from_region: str | None = None) -> None:
        """Moves a registered tenant's replica from ``from_region`` to ``to_region`` without
        downtime, and returns once the migration has begun. The control plane's leader then
        takes its steps (``control()["migrations"]`` shows the one reached): the target's
        node opens a replica and catches up; once it holds everything the source does, the
        source stops serving the tenant (its reads move to the tenant's other nodes: give
        clients both nodes), hands over its caps' rights, and its copy is deleted. A
        leader that dies mid-way is replaced, and the next one continues from the
        committed step.

        Args:
            id: the tenant.
            to_region: the region it moves to; one where it has no replica.
            from_region: the region it leaves; None when it lives in one region.

        Raises:
            NotFound: an unknown tenant.
            InvalidArgument: an unknown region, a target where the tenant already is, or
                no ``from_region`` for a tenant in several regions; nothing is committed.
            Conflict: the tenant is migrating already; nothing is committed.
            Unavailable: the node has no control plane, or no node answered.
        """
    def regions(self) -> list[str]:
        """The cluster's region names, indexed by region id.

        Raises:
            Unavailable: no node answered.
        """
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
) -> Client:
    """Connects to the first of ``addrs`` that answers; ``tidaldb.connect`` wraps it.

    Args:
        addrs: ``"host:port"`` client addresses of the cluster's servers.
        cluster_id: the cluster's id; a server of another cluster is refused.
        ca: the CA certificate (PEM) that signed the servers' certificates.
        cert: this client's certificate (PEM).
        key: this client's private key (PEM). TLS is used when ``ca``, ``cert`` and
            ``key`` are all given.
        insecure: connect without TLS; one of the two is required.
        timeout: seconds to wait for a node.
        write_concern: the default write concern of the client's writes.

    Returns:
        The connected client.

    Raises:
        InvalidArgument: neither TLS files nor ``insecure=True``, or a bad argument.
        Unavailable: no address answered, or TLS failed.

    Example:
        >>> client = connect(["127.0.0.1:7000"], cluster_id="dev", insecure=True)
    """

@final
class Partition:
    """A network partition in place, from :meth:`Cluster.partition`.

    ``heal()``, leaving its ``with`` block or ``Cluster.heal_all()`` heals it; dropping
    the handle does not.
    """

    @property
    def regions(self) -> tuple[str, str]:
        """The two regions, as ``(a, b)``."""
    @property
    def one_way(self) -> bool:
        """True when only messages from ``a`` to ``b`` are dropped."""
    @property
    def active(self) -> bool:
        """True until healed (by this handle or by ``heal_all``)."""
    def heal(self) -> None:
        """Heals this partition; healing twice does nothing."""
    def __enter__(self) -> Partition: ...
    def __exit__(self, *args: object) -> bool: ...

@disjoint_base
class _Scoped:
    """The reads and writes ``Cluster`` and ``Tenant`` share. On a ``Tenant``, ``tenant``
    may only be None or that tenant.

    ``region=None`` serves a call from the replica that leads the item's shard; a region
    name, from that region's replica. Every call raises ``NotFound`` for an unknown
    signal, region or tenant, and ``ForkedProcess`` in a forked child.
    """

    def write(
        self,
        signal: str,
        item: int,
        weight: float = 1.0,
        ts: _Time | None = None,
        region: str | None = None,
        tenant: int | Tenant | None = None,
        idempotency_key: int | str | bytes | None = None,
    ) -> WriteAck:
        """Writes one event.

        Args:
            signal: a declared signal.
            item: the entity id.
            weight: the event's weight, finite.
            ts: when it happened; the cluster's virtual now when None.
            region: the region whose replica takes the write; the item's leader when None.
            tenant: the tenant written; the default tenant when None.
            idempotency_key: a retry with the same key writes nothing and returns the
                original event's ack, with ``duplicate=True``.

        Returns:
            The acknowledgement.

        Raises:
            NotFound: an unknown signal, region or tenant.
            InvalidArgument: a bad weight or time, or a region outside the tenant's.
            QuotaExceeded: the tenant is over a quota.
            Timeout: the cluster's write concern was not met.
            Unavailable: the replica is down or cut off.

        Example:
            >>> cluster.write("view", 42, idempotency_key="order-17").duplicate
            False
        """
    def write_many(
        self,
        signal: str,
        items: _Ids,
        weights: _Weights | None = None,
        ts: _Times | None = None,
        region: str | None = None,
        tenant: int | Tenant | None = None,
    ) -> int:
        """Writes ``weights[i]`` (1.0 when None) on ``items[i]`` at ``ts[i]`` (now when None).

        Each shard's part is written whole or not at all.

        Returns:
            How many events were written.

        Raises:
            NotFound: an unknown signal, region or tenant.
            InvalidArgument: columns of different lengths, or a bad weight or time.
            QuotaExceeded: the tenant is over a quota.
            Unavailable: a replica is down or cut off.
        """
    def score(
        self,
        signal: str,
        item: int,
        region: str | None = None,
        tenant: int | Tenant | None = None,
        at: _Time | None = None,
    ) -> float:
        """The decayed score of ``item`` at ``at`` (the virtual now when None), read in
        ``region``.

        Raises:
            NotFound: an unknown signal, region or tenant.
            InvalidArgument: a bad ``at``.
            Unavailable: the replica is down.
        """
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
        in :meth:`Db.scores`.

        Returns:
            A float64 :class:`tidaldb.Scores` array, one score per item.

        Raises:
            NotFound: an unknown signal, region or tenant.
            InvalidArgument: a bad id column, or an unreadable score with ``errors="raise"``.
            Unavailable: a replica is down.
        """
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
        virtual now when None).

        Raises:
            NotFound: an unknown signal, region or tenant, or an undeclared window.
            Unavailable: the replica is down.
        """
    def window_sum(
        self,
        signal: str,
        item: int,
        window: str,
        region: str | None = None,
        tenant: int | Tenant | None = None,
        at: _Time | None = None,
    ) -> float:
        """The sum of the weights counted by :meth:`window_count`.

        Raises:
            NotFound: an unknown signal, region or tenant, or an undeclared window.
            Unavailable: the replica is down.
        """
    def velocity(
        self,
        signal: str,
        item: int,
        region: str | None = None,
        tenant: int | Tenant | None = None,
        at: _Time | None = None,
    ) -> float:
        """Weight per hour over the signal's shortest window, as of ``at``.

        Raises:
            NotFound: an unknown signal, region or tenant.
            InvalidArgument: the signal was not declared with ``velocity=True``.
            Unavailable: the replica is down.
        """
    def total_count(
        self, signal: str, region: str, tenant: int | Tenant | None = None
    ) -> int:
        """Events of ``signal`` (one that declares windows) that ``region``'s replicas
        hold, over every item; 0 where the tenant keeps no replica.

        Raises:
            NotFound: an unknown signal, region or tenant.
            InvalidArgument: the signal declares no windows.
        """
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
    ) -> Results:
        """The top ``limit`` candidates by ``sum(coefficient * score(signal))``, minus the
        items ``user`` hid; as in :meth:`Db.retrieve`. ``stats.degraded`` is set when a
        shard or replica could not be reached.

        Raises:
            NotFound: an unknown signal, region or tenant.
            InvalidArgument: an empty ``rank_by`` or a bad coefficient or candidate.
        """
    def hide(
        self,
        user: int,
        item: int,
        ts: _Time | None = None,
        region: str | None = None,
        tenant: int | Tenant | None = None,
    ) -> WriteAck:
        """Hides ``item`` from ``user`` until an unhide with a later ``ts``.

        Args:
            ts: when the user hid it; the simulation's time now when None. Hides and
                unhides are ordered by it, as in :meth:`Db.hide`.

        Raises:
            InvalidArgument: a ``ts`` out of range or too far ahead.
            NotFound: an unknown region or tenant.
            Unavailable: the replica is down or cut off.
        """
    def unhide(
        self,
        user: int,
        item: int,
        ts: _Time | None = None,
        region: str | None = None,
        tenant: int | Tenant | None = None,
    ) -> WriteAck:
        """Undoes a hide of ``item`` for ``user`` that happened before ``ts``.

        Args:
            ts: when the user unhid it; the simulation's time now when None.

        Raises:
            InvalidArgument: a ``ts`` out of range or too far ahead.
            NotFound: an unknown region or tenant.
            Unavailable: the replica is down or cut off.
        """
    def is_hidden(
        self, user: int, item: int, region: str | None = None, tenant: int | Tenant | None = None
    ) -> bool:
        """Whether ``item`` is hidden from ``user``, as the replica read holds it.

        Raises:
            NotFound: an unknown region or tenant.
            Unavailable: the replica is down.
        """

@final
class Cluster(_Scoped):
    """A tidaldb cluster on the deterministic simulator, in this process.

    One replica of every shard in every region, on virtual time that starts at
    2026-01-01T00:00:00Z and moves only in :meth:`step`, :meth:`run_for`,
    :meth:`await_convergence` / :meth:`converged`, replicated write concerns and
    migration steps. A run is a function of its ``seed``.

    Args:
        schema: the signals every replica keeps.
        regions: the region names.
        shards_per_region: shards in each region; each has a replica in every region.
        seed: the seed the run is a function of.
        latency: one-way link delay, at most a day.
        jitter: random extra delay, at most a day.
        loss: the fraction of messages dropped, in [0, 1].
        write_concern: ``"local"``, ``"majority"``, ``"all"`` or a number of other
            replicas a write waits for.
        durability: when each replica syncs its log. ``"immediate"``: before a write is
            acknowledged. ``"periodic"``: every ``sync_interval`` of the replica's clock,
            so a crash loses what it wrote since its last sync (its peers may still hold
            it, and give it back when it restarts).
        sync_interval: how often ``"periodic"`` replicas sync (default 100 ms, at most an
            hour). Refused with ``"immediate"``.
        max_retained: events relayed from other regions each replica keeps in memory for
            its peers (at least 1; default 1,048,576).
        max_retained_own: the same for its own events (default 4,194,304). A peer that
            lacks older events is caught up from the durable log, and ``health()`` says
            ``NeedsResync`` until it is.
        max_future_skew: how far ahead of a replica's virtual clock a write's ``ts`` may
            be (default 5 minutes).

    Raises:
        InvalidArgument: a bad argument (no regions, a duplicate region, a delay past a
            day, a loss outside [0, 1], ...).

    Example:
        >>> cluster = Cluster(Schema().signal("view", half_life="1h"), seed=7)
        >>> cluster.write("view", 42).region
        'us-east'
        >>> cluster.await_convergence() > 0
        True
    """

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
        sync_interval: _Duration | None = None,
        max_retained: int | None = None,
        max_retained_own: int | None = None,
        max_future_skew: _Duration | None = None,
    ) -> Cluster: ...
    @property
    def regions(self) -> list[str]:
        """The region names, in the order given."""
    @property
    def shards_per_region(self) -> int:
        """Shards in each region; every shard has a replica in every region."""
    @property
    def seed(self) -> int:
        """The seed the run is a function of."""
    @property
    def now(self) -> float:
        """The virtual time now, in Unix seconds. A float resolves about 0.25 µs here, so
        pass explicit ``ts=``/``at=`` when you compare reads with ``==``."""
    @property
    def leader(self) -> str:
        """The region of shard 0's leader, as the control plane sees it.

        Raises:
            Unavailable: that leader is down and not yet replaced (the election timeout
                is 500 ms).
        """
    @property
    def tenants(self) -> list[Tenant]:
        """The registered tenants (not the built-in default tenant)."""
    def version_vector(
        self, region: str, shard: int = 0, tenant: int | Tenant | None = None
    ) -> dict[int, int]:
        """What ``region``'s replica of ``shard`` has applied.

        Returns:
            ``{origin node id: highest seq applied}``.

        Raises:
            NotFound: an unknown region or tenant.
            InvalidArgument: a shard the cluster does not have.
        """
    def state_digest(self, region: str, shard: int = 0, tenant: int | Tenant | None = None) -> int:
        """A 64-bit digest of the state of ``region``'s replica of ``shard``: equal on two
        replicas that applied the same events, different (with overwhelming probability)
        when any score, window, hide or dedup entry differs.

        Raises:
            NotFound: an unknown region or tenant.
            InvalidArgument: a shard the cluster does not have.
        """
    def step(self) -> bool:
        """Runs one scheduled happening (a delivery or a tick).

        Returns:
            False if nothing was scheduled.
        """
    def run_for(self, seconds: _Duration) -> None:
        """Runs ``seconds`` of virtual time. Ctrl-C raises ``KeyboardInterrupt`` within
        about 50 ms, with the virtual time run until then kept.

        Raises:
            InvalidArgument: a negative duration, or one that would take the clock past
                its range (the year 2116); nothing runs.

        Example:
            >>> cluster.run_for("250ms")
        """
    def await_convergence(self, timeout: _Duration = 30.0) -> float:
        """Runs virtual time until every replica group has converged. Ctrl-C raises
        ``KeyboardInterrupt`` within about 50 ms; :meth:`converged` is its coroutine twin.

        Returns:
            The virtual seconds it took.

        Raises:
            Timeout: not converged within ``timeout`` virtual seconds; names what differs.
            InvalidArgument: a bad ``timeout``.
        """
    def converged(self, timeout: _Duration = 30.0) -> Coroutine[Any, Any, float]:
        """:meth:`await_convergence` as a coroutine, run on a worker thread so the event
        loop stays free: ``await cluster.converged()``, or
        ``asyncio.run(cluster.converged())``. Cancelling it stops the wait within about
        50 ms, with the virtual time run until then kept.

        Raises:
            Timeout: not converged within ``timeout`` virtual seconds.
        """
    def is_converged(self) -> bool:
        """True when every replica group holds the same events with nothing in flight."""
    def partition(self, a: str, b: str, one_way: bool = False) -> Partition:
        """Cuts region ``a`` off from ``b`` (both directions unless ``one_way``).

        Returns:
            The handle that heals it; as a context manager it heals on exit.

        Raises:
            NotFound: an unknown region.
            InvalidArgument: ``a`` and ``b`` are the same region.

        Example:
            >>> with cluster.partition("us-east", "eu-west"):
            ...     cluster.run_for(1.0)
        """
    def heal_all(self) -> None:
        """Heals every partition."""
    def crash(self, region: str, lose_unsynced: bool = False, shard: int = 0) -> int:
        """Crashes the host of ``shard`` in ``region``: every tenant's replica on it.

        Args:
            region: the host's region.
            lose_unsynced: lose what its disks had not synced.
            shard: the host's shard.

        Returns:
            How many events were lost.

        Raises:
            NotFound: an unknown region.
            InvalidArgument: a shard the cluster does not have.
        """
    def restart(self, region: str, shard: int = 0) -> None:
        """Restarts a crashed host from its disks; it then catches up.

        Raises:
            NotFound: an unknown region.
            InvalidArgument: a shard the cluster does not have.
            Conflict: the host is running.
        """
    def is_up(self, region: str, shard: int = 0) -> bool:
        """Whether the host of ``shard`` in ``region`` is up.

        Raises:
            NotFound: an unknown region.
            InvalidArgument: a shard the cluster does not have.
        """
    def drain(self, region: str, shard: int = 0) -> None:
        """Drains a host for an upgrade: stops routing to it, moves its leaderships away,
        and waits (virtual time, up to 10 s) until no peer lacks an event only it holds.
        Then :meth:`upgrade` and :meth:`rejoin` it.

        Raises:
            NotFound: an unknown region.
            InvalidArgument: a shard the cluster does not have.
            Conflict: another host is drained.
            Timeout: replication stalls (a partition, say).
        """
    def upgrade(self, region: str, shard: int = 0) -> None:
        """Restarts a drained host from its storage, as a new binary would.

        Raises:
            NotFound: an unknown region.
            InvalidArgument: a shard the cluster does not have.
            Conflict: the host was not drained.
        """
    def rejoin(self, region: str, shard: int = 0) -> None:
        """Starts the host if down, waits until it holds what its peers held, and routes
        to it again.

        Raises:
            NotFound: an unknown region.
            InvalidArgument: a shard the cluster does not have.
            Timeout: it did not catch up.
        """
    def lag(self, tenant: int | Tenant | None = None) -> dict[str, int]:
        """Events each region's replicas lack, as the control plane last measured.

        Returns:
            ``{region: events}``.
        """
    def health(self) -> Health:
        """The control plane's health report (a :class:`tidaldb.Health` dict, which renders
        as tables)."""
    def register_tenant(
        self,
        id: int,
        max_signals_per_sec: int | None = None,
        max_entities: int | None = None,
        max_storage_bytes: int | None = None,
        regions: Sequence[str] | None = None,
        label: str | None = None,
    ) -> Tenant:
        """Registers a tenant with its quotas and residency and starts its replicas.

        Args:
            id: the tenant id, not 0 (the built-in default tenant).
            max_signals_per_sec: writes each replica admits per second (bursts of twice
                that pass); None for unlimited.
            max_entities: distinct entities with signals, a hard cap over all its regions
                together; None for unlimited.
            max_storage_bytes: the tenant's log, at 64 bytes an event, a hard cap over all its
                regions together; None for unlimited. The home region starts with the caps'
                rights; another region borrows them as it needs, so its first writes near a
                cap may raise QuotaExceeded with ``retry_after`` set (see the README).
            regions: the regions its data may live in; all of the cluster's when None.
            label: a human-readable name.

        Returns:
            The tenant.

        Raises:
            Conflict: the tenant is registered already, or id 0 (the built-in default
                tenant).
            NotFound: an unknown region.
            InvalidArgument: a zero quota or an empty ``regions``.

        Example:
            >>> acme = cluster.register_tenant(7, max_entities=10_000, label="acme")
            >>> acme.write("view", 42).count
            1
        """
    def tenant(self, id: int) -> Tenant:
        """The registered tenant ``id``.

        Raises:
            NotFound: no tenant has that id.
        """
    def __reduce__(self) -> NoReturn:
        """Raises ``TypeError``: a Cluster runs inside this process; build one from the same
        schema and options (and seed) in the other process instead."""

@final
class Tenant(_Scoped):
    """A registered tenant of a :class:`Cluster`: its own replicas, log, sequence numbers
    and quotas. Its methods are the cluster's with ``tenant=`` fixed. Get one from
    :meth:`Cluster.register_tenant` or :meth:`Cluster.tenant`."""

    @property
    def id(self) -> int:
        """The tenant id."""
    @property
    def label(self) -> str:
        """The human-readable name given at registration."""
    @property
    def regions(self) -> list[str]:
        """The regions the tenant's data may live in (all of the cluster's when
        unrestricted); only a migration changes them."""
    @property
    def cluster(self) -> Cluster:
        """The cluster the tenant lives in."""
    @property
    def max_signals_per_sec(self) -> int | None:
        """Signals per second each replica admits (bursts of twice that pass); None:
        unlimited."""
    @property
    def max_entities(self) -> int | None:
        """Distinct entities with signals; None: unlimited."""
    @property
    def max_storage_bytes(self) -> int | None:
        """The tenant's log, at 64 bytes an event; None: unlimited."""
    @property
    def migration(self) -> Migration | None:
        """The tenant's migration while one is under way; None before and after."""
    def migrate(self, to_region: str, to_shard: int | None = None) -> Migration:
        """Starts moving the tenant's replica of ``to_shard`` (its only shard by default)
        to ``to_region``. Nothing moves until a step runs.

        Returns:
            The migration, in state ``"idle"``.

        Raises:
            NotFound: an unknown region.
            InvalidArgument: a shard the cluster does not have, or a target the tenant
                cannot move to (where it lives already, say).
            Conflict: a migration of the tenant is under way.

        Example:
            >>> asyncio.run(acme.migrate("eu-west").run())
        """
    def __reduce__(self) -> NoReturn:
        """Raises ``TypeError``: a Tenant is a view of a Cluster of this process; pass its id
        and call ``cluster.tenant(id)`` where the cluster lives."""

@final
class Migration:
    """Moves a tenant's replica of a shard to another region in four steps
    (:meth:`prepare_target`, :meth:`enter_dual_write`, :meth:`finalize`,
    :meth:`gc_source`), or all of them with ``await run()``.

    Reads and writes are served throughout; each step is idempotent, and
    :attr:`Tenant.migration` resumes one after an interruption. A step of a migration a
    newer one has replaced raises ``Conflict``.
    """

    @property
    def tenant(self) -> int:
        """The tenant's id (``cluster.tenant(id)`` gives the :class:`Tenant`)."""
    @property
    def source(self) -> str:
        """The region the tenant moves from."""
    @property
    def target(self) -> str:
        """The region the tenant moves to."""
    @property
    def state(self) -> _MigrationState:
        """The last step reached, in order:

        - ``"idle"``: registered, nothing has moved;
        - ``"target_created"``: the target replica exists (:meth:`prepare_target` then
          waits until it has caught up);
        - ``"dual_write"``: writes are acknowledged once both sides hold them;
        - ``"finalized"``: reads and writes go to the target; the source is kept;
        - ``"complete"``: the source's copy is gone.

        Example:
            >>> m.prepare_target(); m.state
            'target_created'
        """
    def prepare_target(self) -> None:
        """Creates the target replica and waits (in virtual time) until it holds everything
        the source had applied.

        Raises:
            Timeout: the target did not catch up.
            Conflict: a newer migration replaced this one.
        """
    def enter_dual_write(self) -> None:
        """From now on a write is acknowledged once both source and target hold it.

        Raises:
            Timeout: the target did not acknowledge in time.
            Conflict: a newer migration replaced this one, or the target is not prepared.
        """
    def finalize(self) -> None:
        """Waits until the target holds all the source has, then routes to the target.

        Raises:
            Timeout: the target did not catch up.
            Conflict: a newer migration replaced this one, or it is not in dual write.
        """
    def gc_source(self, grace: _Duration = 0.0) -> None:
        """After ``grace`` of virtual time, deletes the source's copy.

        Raises:
            Conflict: a newer migration replaced this one, or it is not finalized.
            InvalidArgument: a bad ``grace``.
        """
    def advance(self, grace: _Duration = 0.0) -> str:
        """Takes the next step the migration is ready for: :meth:`prepare_target`,
        :meth:`enter_dual_write`, :meth:`finalize`, then ``gc_source(grace)``.

        Returns:
            The state reached; a complete migration stays ``"complete"``.

        Raises:
            Timeout: the step did not finish.
            Conflict: a newer migration replaced this one.
        """
    def run(self, progress: bool = False, grace: _Duration = 0.0) -> Coroutine[Any, Any, None]:
        """Runs every remaining step as a coroutine: ``await migration.run()``, or
        ``asyncio.run(migration.run())``. ``progress=True`` shows a tqdm bar (``pip install
        tidaldb[notebook]``). Cancelling
        it stops the step under way within about 50 ms; the record keeps the state
        reached, and a later ``run()`` resumes from it.

        Raises:
            Timeout: a step did not finish.
            Conflict: a newer migration replaced this one.
        """

@final
class _Job:
    """The native half of one awaitable, which ``tidaldb._async.run`` drives; not for
    direct use."""

    def start(self, event_loop: object, future: object) -> None:
        """Runs the work on a new thread; ``future`` (of ``event_loop``) gets its outcome.
        A job starts once: a second start raises ``RuntimeError``."""
    def cancel(self) -> None:
        """Asks the work to stop at its next safe point; a finished job ignores it."""
