"""The coroutine behind every tidaldb awaitable, and delivery of its result.

``Db.flush_async()``, ``Cluster.converged()`` and ``Migration.run()`` return ``run(job)``:
a real coroutine, so ``asyncio.run(cluster.converged())`` works as it does for any
coroutine, and the work starts only when it is awaited. The job runs on a thread of its
own; its result comes back to the loop's thread through ``deliver``. Cancelling the
awaiting task (or closing the coroutine) cancels the job, which stops at the core's next
safe point, within about 50 ms.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol


class _Job(Protocol):
    def start(self, event_loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], /) -> None:
        """Runs the work on a new thread; ``future`` gets its outcome."""

    def cancel(self) -> None:
        """Asks the work to stop at its next safe point."""


async def run(job: _Job) -> Any:
    """Start ``job`` on the running loop and wait for its result; stop it if this
    coroutine is cancelled or closed before the job finished."""
    event_loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = event_loop.create_future()
    job.start(event_loop, future)
    try:
        return await future
    finally:
        job.cancel()


def deliver(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    """Resolve ``future`` with ``value`` (or raise it, if not ``ok``), unless it was
    cancelled or resolved meanwhile."""
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
