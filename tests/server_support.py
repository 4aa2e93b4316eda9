"""Real ``tidaldb serve`` processes for the client tests, and how to wait on them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import tidaldb
from tidaldb.servers import LocalServers

T = TypeVar("T")

#: A one-hour exponential signal with a window, a permanent counter, and a signal for users.
SIGNALS = [
    {"name": "view", "kind": "item", "half_life": "1h", "windows": ["1h", "24h"]},
    {"name": "count", "kind": "item", "windows": ["30d"]},
]
TENANTS = [{"id": 7, "label": "acme", "max_entities": 3}]


def servers(n: int = 3, **kwargs: object) -> LocalServers:
    return LocalServers(n, signals=SIGNALS, tenants=TENANTS, **kwargs)  # type: ignore[arg-type]


def eventually(read: Callable[[], T], ok: Callable[[T], bool], timeout: float = 20.0) -> T:
    """Polls ``read`` until ``ok`` holds of its value; fails with the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout}s; last value: {value!r}")
        time.sleep(0.05)


class Reader(threading.Thread):
    """Calls ``read`` over and over until stopped (``done.set()``); counts successes and
    keeps every failure: the concurrent reader of the zero-downtime tests."""

    def __init__(self, read: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self.read = read
        self.ok = 0
        self.failures: list[BaseException] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                self.read()
                self.ok += 1
            except Exception as e:  # noqa: BLE001 - every failure is what the test counts
                self.failures.append(e)
            time.sleep(0.002)


def control_servers(n: int = 3) -> LocalServers:
    """``n`` started server processes with a control plane whose Raft leader every node
    knows; stop them with ``close()`` (or use them as a context manager)."""
    s = LocalServers(n, signals=SIGNALS, control=True).start()
    ids = [node.id for node in s.nodes]
    try:
        eventually(
            lambda: [s.connect([i]).control()["raft_leader"] for i in ids],
            lambda seen: seen[0] is not None and len(set(seen)) == 1,
        )
    except BaseException:
        s.close()
        raise
    return s


def hosts_of(client: tidaldb.Client, tenant: int) -> list[int] | None:
    """The processes the control plane places ``tenant`` on, or None if it has no group."""
    for group in client.control()["groups"]:
        if group["tenant"] == tenant:
            return list(group["hosts"])
    return None


def settled_commands(admin: tidaldb.Client) -> int:
    """The control plane's command count once two readings half a second apart agree."""
    seen: list[int] = []

    def read() -> list[int]:
        seen.append(admin.control()["commands"])
        time.sleep(0.5)
        return seen

    return eventually(read, lambda s: len(s) >= 2 and s[-1] == s[-2])[-1]
