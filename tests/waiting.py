"""Synchronize on conditions, not on time: every wait names what it waits for and
gives up at a deadline with that name, so a slow machine waits longer and a broken
server fails the test instead of hanging it.

The deadlines are generous on purpose (30 s unless a wait says why it needs more): they
only bound a failure, they never decide a pass, so a busy machine passes the same tests
as an idle one. A test that needs a duration to pass is a benchmark (``benchmarks/``).
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], what: str, timeout: float = 30.0, interval: float = 0.05
) -> T:
    """Call ``condition`` until it returns something truthy, and return that; fail the
    test naming ``what`` if ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def accepts(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something listens on ``host:port`` now: a condition for ``wait_until``
    while a server started by a test (moto_server, say) comes up."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


def wait_for(
    fetch: Callable[[], T],
    ok: Callable[[T], object],
    what: str,
    timeout: float = 30.0,
    interval: float = 0.05,
) -> T:
    """Call ``fetch`` until ``ok`` accepts what it returns, and return that value (which
    may itself be falsy, a count of 0 say); fail naming ``what`` and the last value seen
    if ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if ok(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what}; last seen: {value!r:.500}"
            )
        time.sleep(interval)


async def await_until(
    condition: Callable[[], T | Awaitable[T]],
    what: str,
    within: float = 30.0,
    interval: float = 0.05,
) -> T:
    """``wait_until`` for a test on an event loop: ``condition`` may be a plain function or
    a coroutine function, and the loop keeps running between tries; fail naming ``what``
    if ``within`` seconds pass first."""
    try:
        async with asyncio.timeout(within):
            while True:
                value = condition()
                if inspect.isawaitable(value):
                    value = await value
                if value:
                    return value  # type: ignore[return-value]
                await asyncio.sleep(interval)
    except TimeoutError:
        raise AssertionError(f"timed out after {within:g} s waiting for {what}") from None
