"""The exceptions tidaldb raises.

Every one derives from :class:`TidalError`, and also from the nearest built-in exception
where one fits, so that ``except ValueError`` keeps working in code that does not know
tidaldb. The Rust extension raises these classes with the core's own message.
"""

from __future__ import annotations

__all__ = [
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
]


class TidalError(Exception):
    """Base class of every error tidaldb raises.

    ``written`` is 0 except after a ``write_many`` that a cluster split over several
    shards (one request each): when a later part fails (a quota, a timeout), the earlier
    parts stay written, and ``written`` says how many events they held. It is also set
    by a large ``Db.signals`` whose arrays another thread made invalid during the call:
    the events before the bad chunk stay written.
    """

    written: int = 0


class SchemaError(TidalError, ValueError):
    """The schema is invalid, or does not match the data directory it is opened on."""


class InvalidArgument(TidalError, ValueError):
    """An argument is outside its domain: a NaN weight, a timestamp out of range, a
    numpy array of the wrong dtype or shape, an unknown entity kind or window name."""


class NotFound(TidalError, KeyError):
    """A name that does not exist, such as a signal the schema does not declare."""

    def __str__(self) -> str:
        # KeyError quotes its argument (repr); these messages are sentences, not keys.
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class Corruption(TidalError):
    """Bytes on disk fail their checksum or do not parse; the message names file and offset."""


class Unavailable(TidalError):
    """The database cannot serve the call: it is closed, open elsewhere, or its disk failed."""


class ForkedProcess(Unavailable):
    """A handle was used in a process forked from the one that created it: a ``Db``, a
    ``Cluster`` (or its ``Tenant``, ``Migration`` and ``Partition`` handles) or a
    ``tidaldb.connect`` client, inherited through ``os.fork`` or multiprocessing's
    ``"fork"`` start method (the default on Linux before Python 3.14).

    The threads that serve the handle did not survive the fork, and a write from the
    child would corrupt the parent's files, so every call is refused and nothing is
    written. The child never closes or flushes the inherited handle, not even when it is
    garbage-collected, and the parent goes on unharmed. Create the handle in the child
    (a ``Db`` on another directory, or once the parent has closed it), or start the child
    with the ``"spawn"`` or ``"forkserver"`` method.
    """


class OutcomeUnknown(Unavailable):
    """A write was sent to a server that stopped answering before it acknowledged: it may
    have been applied there (and then replicates) or lost with the server. The client does
    not retry it on another server, where it could count twice; read back before writing it
    again."""


class QuotaExceeded(TidalError):
    """A tenant's quota (rate, entities, storage) would be exceeded; nothing of the
    refused request was written (see ``written`` for a batch split over shards).

    Raised by tidaldb, it carries what a caller needs to back off without parsing the
    message: ``quota`` (``"signals_per_sec"``, ``"entities"`` or ``"storage_bytes"``),
    ``limit`` (the configured limit), ``retry_after`` (seconds until the write would pass,
    or None when waiting cannot help: a hard cap, or a batch larger than the burst) and
    ``tenant`` (the tenant id).
    """

    quota: str | None = None
    limit: int | None = None
    retry_after: float | None = None
    tenant: int | None = None


class Timeout(TidalError, TimeoutError):
    """The operation did not complete in time."""


class Conflict(TidalError):
    """The request conflicts with the cluster's state: a tenant registered twice, or a
    second migration of a tenant that is already migrating."""
