"""Keep-alive connections spread evenly over the workers.

Each worker listens on its own ``SO_REUSEPORT`` socket, and the kernel assigns every new connection to one of
them by a hash of its addresses. That avoids the pile-up of a shared socket (one worker accepting every
queued connection at once), but a hash only balances on average: 16 keep-alive connections split 8/8 in 3 of
10 trials measured here, and 10/6 or 11/5 in a third of them. Clients such as SageMaker's front end keep their
connections for a long time, so an unlucky split decides latency for the whole life of those connections: the
worker with 11 queues each request behind 10 others while the one with 5 waits.

So the workers publish how many connections each holds (a few integers in memory shared across the fork), and
a worker holding more than its fair share (the total divided by the worker count, rounded up) answers one
request with ``Connection: close``. The client opens a new connection, which the kernel hashes again; within a
few reconnects every worker holds its share (8/8 in 10 of 10 trials, at the same throughput). This is ordinary
HTTP/1.1: every client must reopen a connection the server closes after a response. At most one connection per
worker is closed per `MIN_INTERVAL_S`, so a balanced server never churns, and a busy one reconnects rarely.
"""

from __future__ import annotations

import mmap
import time
from collections.abc import Callable

__all__ = ["MIN_INTERVAL_S", "ConnectionBalancer", "SharedCounts"]

#: At most one forced reconnect per worker in this many seconds.
MIN_INTERVAL_S = 0.02
_INT = 4


class SharedCounts:
    """One integer per worker in anonymous shared memory: created before the fork, seen by every worker.

    Each slot has a single writer (its worker), and a slightly stale read only delays a rebalance, so no lock
    is needed."""

    def __init__(self, workers: int) -> None:
        self._memory = mmap.mmap(-1, max(1, workers) * _INT)
        self._slots = memoryview(self._memory).cast("i")

    def __len__(self) -> int:
        return len(self._slots)

    def __getitem__(self, index: int) -> int:
        return int(self._slots[index])

    def __setitem__(self, index: int, value: int) -> None:
        self._slots[index] = value

    def total(self) -> int:
        return sum(self._slots)


class ConnectionBalancer:
    """Decides, once per response, whether this worker should close the connection to rebalance."""

    def __init__(self, counts: SharedCounts, index: int, open_connections: Callable[[], int]) -> None:
        self._counts = counts
        self._index = index
        self._open = open_connections
        self._last_close = 0.0
        counts[index] = 0

    def should_close(self) -> bool:
        mine = self._open()
        counts = self._counts
        counts[self._index] = mine
        fair = -(-counts.total() // len(counts))  # ceiling division
        if mine <= fair:
            return False
        now = time.monotonic()
        if now - self._last_close < MIN_INTERVAL_S:
            return False
        self._last_close = now
        counts[self._index] = mine - 1  # let the others see it leave before its socket is closed
        return True
