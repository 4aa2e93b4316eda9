"""Run ``tidaldb serve`` processes on this machine: for trying a cluster, for notebooks, and
for tests that need real servers.

>>> from tidaldb.servers import LocalServers
>>> with LocalServers(3, signals=[{"name": "view", "kind": "item", "half_life": "1h"}]) as s:
...     client = s.connect()
...     _ = client.write("view", 42)

Each node gets free ports on 127.0.0.1, its own data directory and config file under one
base directory, and a log file of its stderr. Unless ``insecure=True``, a test CA is made
with ``tidaldb cert`` and every node and the client use mutual TLS. Every process is
stopped when the ``with`` block ends, or by ``close()``, even after an error.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from tidaldb import _native
from tidaldb.__main__ import binary
from tidaldb._client import TLS, connect
from tidaldb.exceptions import Unavailable

_REGIONS = ("us-east", "eu-west", "ap-south", "sa-east", "af-south")


_PORT_SPAN = 10_000
_next_port = itertools.count()


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago. It lies below the kernel's
    ephemeral range (and below the range the Rust test harness uses), so that no outgoing
    connection, of these servers or any other process, can take it between this check and
    the server's own bind. Each process walks the range from its own starting point."""
    low = max(1024, _ephemeral_low() - 2 * _PORT_SPAN)
    start = (os.getpid() * 7919) % _PORT_SPAN
    for _ in range(_PORT_SPAN):
        port = low + (start + next(_next_port)) % _PORT_SPAN
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise Unavailable("no free port left below the ephemeral range")


@dataclass
class ServerNode:
    """One server process and where it lives."""

    id: int
    region: str
    peer_port: int
    client_port: int
    http_port: int
    dir: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def client_addr(self) -> str:
        """The address clients connect to, for :func:`tidaldb.connect`."""
        return f"127.0.0.1:{self.client_port}"

    @property
    def http_addr(self) -> str:
        """The address of the node's HTTP endpoint (health and metrics)."""
        return f"127.0.0.1:{self.http_port}"

    @property
    def config(self) -> Path:
        """The node's TOML config file."""
        return self.dir / "node.toml"

    @property
    def log(self) -> Path:
        """The file the node's process logs to."""
        return self.dir / "tidaldb.log"

    @property
    def pid(self) -> int | None:
        """The process id while started; None before."""
        return None if self.process is None else self.process.pid

    def is_running(self) -> bool:
        """Whether the node's process was started and has not exited."""
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        """The node's log so far; empty before it wrote one."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")


class LocalServers:
    """``n`` tidaldb server processes replicating to each other on 127.0.0.1.

    ``signals`` declares the schema, one dict per signal with the keys of a config's
    ``[[signals]]`` (name, kind, half_life or lifetime, windows, velocity). ``tenants`` lists
    extra tenants as dicts of ``[[tenants]]`` keys (id, label, quotas). ``timing`` overrides
    ``heartbeat``, ``peer_timeout``, ``replication_timeout`` and ``election_timeout``. With
    ``control=True`` every node votes in a replicated control plane, which elects the
    group's leader and replaces one that dies or is cut off (see ``Client.control()``).
    """

    def __init__(
        self,
        n: int = 3,
        *,
        signals: Sequence[Mapping[str, Any]],
        tenants: Sequence[Mapping[str, Any]] = (),
        insecure: bool = False,
        base_dir: str | os.PathLike[str] | None = None,
        cluster_id: str = "tidaldb",
        durability: str = "immediate",
        timing: Mapping[str, str] | None = None,
        control: bool = False,
    ) -> None:
        if not 1 <= n <= len(_REGIONS):
            raise ValueError(f"n must be 1 to {len(_REGIONS)}, got {n}")
        self._owns_dir = base_dir is None
        self.base = Path(base_dir or tempfile.mkdtemp(prefix="tidaldb-servers-"))
        self.cluster_id = cluster_id
        self.insecure = insecure
        self.regions = list(_REGIONS[:n])
        self.nodes = [
            ServerNode(
                id=i + 1,
                region=self.regions[i],
                peer_port=free_port(),
                client_port=free_port(),
                http_port=free_port(),
                dir=self.base / f"n{i + 1}",
            )
            for i in range(n)
        ]
        self._signals = list(signals)
        self._tenants = list(tenants)
        self._durability = durability
        self._timing = dict(timing or {"heartbeat": "20ms", "peer_timeout": "300ms"})
        self._control = control
        self.certs = self.base / "certs"
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> LocalServers:
        """Writes the configs (and certificates) and starts every node."""
        if not self.insecure:
            names = [f"n{n.id}" for n in self.nodes] + ["client"]
            args = ["cert", "--out", str(self.certs)]
            for name in names:
                args += ["--name", name]
            subprocess.run([str(binary()), *args], check=True, capture_output=True)
        for node in self.nodes:
            node.dir.mkdir(parents=True, exist_ok=True)
            node.config.write_text(self._config(node))
        self._started = True
        try:
            for node in self.nodes:
                self.start_node(node.id, wait=False)
            for node in self.nodes:
                self.wait_ready(node.id, timeout)
        except BaseException:
            # No caller will reach close(): stop the nodes that did start.
            self.close()
            raise
        return self

    def start_node(self, node_id: int, *, wait: bool = True, timeout: float = 30.0) -> None:
        """Starts (or restarts) one node from its config and data directory."""
        node = self.node(node_id)
        if node.is_running():
            raise RuntimeError(f"node {node_id} is already running (pid {node.pid})")
        args = [str(binary()), "serve", "--config", str(node.config)]
        if self.insecure:
            args.append("--insecure")
        with open(node.log, "ab") as log:
            node.process = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        if wait:
            self.wait_ready(node_id, timeout)

    def wait_ready(self, node_id: int, timeout: float = 30.0) -> None:
        """Waits until the node answers a client."""
        node = self.node(node_id)
        deadline = time.monotonic() + timeout
        while True:
            if not node.is_running():
                raise Unavailable(
                    f"node {node_id} exited with {node.process and node.process.returncode}; "
                    f"its log:\n{node.log_text()[-3000:]}"
                )
            try:
                self.connect([node_id], timeout=1.0).regions()
                return
            except Unavailable:
                if time.monotonic() > deadline:
                    raise Unavailable(
                        f"node {node_id} did not answer within {timeout}s; its log:\n"
                        f"{node.log_text()[-3000:]}"
                    ) from None
                time.sleep(0.05)

    def kill(self, node_id: int) -> None:
        """SIGKILL: the process dies at once, as in a crash."""
        self._signal(node_id, signal.SIGKILL)

    def stop(self, node_id: int, timeout: float = 30.0) -> int:
        """SIGTERM: a graceful stop (stop accepting, sync, close). Returns the exit code."""
        return self._signal(node_id, signal.SIGTERM, timeout)

    def _signal(self, node_id: int, sig: signal.Signals, timeout: float = 30.0) -> int:
        node = self.node(node_id)
        if node.process is None:
            raise RuntimeError(f"node {node_id} was never started")
        if node.process.poll() is None:
            node.process.send_signal(sig)
        return node.process.wait(timeout)

    def close(self) -> None:
        """Stops every process that is still running; removes the directory if it made it."""
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.kill()
                node.process.wait()
        if self._owns_dir:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> LocalServers:
        return self if self._started else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- clients -----------------------------------------------------------------------

    def node(self, node_id: int) -> ServerNode:
        """The node with id ``node_id``.

        Raises:
            KeyError: no node has that id.
        """
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(f"no node {node_id}; nodes are {[n.id for n in self.nodes]}")

    def tls(self) -> TLS | None:
        """The client's TLS files, or None when insecure."""
        if self.insecure:
            return None
        return TLS(self.certs / "ca.pem", self.certs / "client.pem", self.certs / "client.key")

    def connect(self, node_ids: Sequence[int] | None = None, **kwargs: Any) -> _native.Client:
        """A client of the given nodes (all by default), in that order."""
        ids = [n.id for n in self.nodes] if node_ids is None else list(node_ids)
        addrs = [self.node(i).client_addr for i in ids]
        return connect(
            addrs, cluster_id=self.cluster_id, tls=self.tls(), insecure=self.insecure, **kwargs
        )

    # -- configs -----------------------------------------------------------------------

    def _config(self, node: ServerNode) -> str:
        lines = [
            f"cluster_id = {_toml(self.cluster_id)}",
            f"regions = {_toml(self.regions)}",
            f"node_id = {node.id}",
            f"region = {_toml(node.region)}",
            f"role = {_toml('leader' if node.id == 1 else 'follower')}",
            f"data_dir = {_toml(str(node.dir / 'data'))}",
            f"durability = {_toml(self._durability)}",
            "",
            "[listen]",
            f"peer = {_toml(f'127.0.0.1:{node.peer_port}')}",
            f"client = {_toml(node.client_addr)}",
            f"http = {_toml(node.http_addr)}",
            "",
            "[timing]",
            *(f"{k} = {_toml(v)}" for k, v in self._timing.items()),
            "",
        ]
        if self._control:
            lines += ["[control]", f"voters = {_toml([n.id for n in self.nodes])}", ""]
        if not self.insecure:
            lines += [
                "[tls]",
                f"ca = {_toml(str(self.certs / 'ca.pem'))}",
                f"cert = {_toml(str(self.certs / f'n{node.id}.pem'))}",
                f"key = {_toml(str(self.certs / f'n{node.id}.key'))}",
                "",
            ]
        for peer in self.nodes:
            if peer.id != node.id:
                lines += [
                    "[[peers]]",
                    f"node_id = {peer.id}",
                    f"region = {_toml(peer.region)}",
                    f"addr = {_toml(f'127.0.0.1:{peer.peer_port}')}",
                    "",
                ]
        for table, rows in (("signals", self._signals), ("tenants", self._tenants)):
            for row in rows:
                lines.append(f"[[{table}]]")
                lines += [f"{k} = {_toml(v)}" for k, v in row.items()]
                lines.append("")
        return "\n".join(lines)
