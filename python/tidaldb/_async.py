"""Delivery of a Rust worker's result to an asyncio future, on the loop's own thread."""

from __future__ import annotations

import asyncio
from typing import Any


def deliver(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    """Resolve ``future`` with ``value`` (or raise it, if not ``ok``), unless it was
    cancelled or resolved meanwhile."""
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
