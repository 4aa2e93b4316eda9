"""``tidaldb.connect``: a client of ``tidaldb serve`` processes.

The client speaks tidaldb's client protocol over TCP, with mutual TLS unless the servers run
``--insecure``. Its reads and writes are those of one region of ``tidaldb.Cluster``; any node
takes writes, and a client given several addresses fails over to the next when one stops
answering. ``client.last_served`` says which node answered the last call and whether it was
degraded (some replica of its group was unreachable, so its answer may miss their writes).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Union

from tidaldb import _native

_Path = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class TLS:
    """PEM files for mutual TLS: the cluster's CA, and this client's certificate and key
    (signed by that CA). ``tidaldb cert`` makes a test set."""

    ca: _Path
    cert: _Path
    key: _Path


def connect(
    addrs: str | Sequence[str],
    *,
    cluster_id: str = "tidaldb",
    tls: TLS | None = None,
    insecure: bool = False,
    timeout: float = 10.0,
    write_concern: Literal["local", "majority", "all"] | int = "local",
) -> _native.Client:
    """Connects to a tidaldb cluster.

    ``addrs`` is one ``"host:port"`` (a node's client port), a comma-separated list, or a
    sequence of them; the client uses the first that answers and fails over to the others.
    ``tls`` gives the PEM files for mutual TLS; ``insecure=True`` is for servers run with
    ``--insecure``, and exactly one of the two is required. ``write_concern`` is the default
    for writes (each write may override it): ``"local"`` acknowledges after the answering
    node's log append, an int ``k`` after ``k`` other replicas hold the write, ``"majority"``
    and ``"all"`` as their names say.

    Returns:
        The connected :class:`tidaldb.Client`.

    Raises:
        InvalidArgument: neither or both of ``tls`` and ``insecure``, or a bad timeout or
            write concern.
        Unavailable: no address answered, or the TLS handshake failed.
        TypeError: ``tls`` is not a :class:`TLS`.

    Example:
        >>> client = tidaldb.connect("127.0.0.1:7100", insecure=True)
        >>> client.write("view", 42).count
        1
    """
    if isinstance(addrs, str):
        addrs = [a.strip() for a in addrs.split(",") if a.strip()]
    if tls is not None and not isinstance(tls, TLS):
        raise TypeError(f"tls: expected tidaldb.TLS, got {type(tls).__name__}")
    return _native.connect(
        list(addrs),
        cluster_id=cluster_id,
        ca=None if tls is None else os.fspath(tls.ca),
        cert=None if tls is None else os.fspath(tls.cert),
        key=None if tls is None else os.fspath(tls.key),
        insecure=insecure,
        timeout=timeout,
        write_concern=write_concern,
    )
