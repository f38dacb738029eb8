"""`ConnectionBalancer`: when a worker closes a keep-alive connection to even out the workers' shares."""

from __future__ import annotations

import os

import pytest
from sagemaker_serve import balance
from sagemaker_serve.balance import ConnectionBalancer, SharedCounts


class Connections:
    def __init__(self, count: int) -> None:
        self.count = count

    def __call__(self) -> int:
        return self.count


def test_a_worker_over_its_fair_share_closes_one_connection() -> None:
    counts = SharedCounts(2)
    counts[1] = 6
    assert ConnectionBalancer(counts, 0, Connections(10)).should_close()


def test_the_closing_worker_publishes_its_count_without_the_closed_connection() -> None:
    counts = SharedCounts(2)
    counts[1] = 6
    ConnectionBalancer(counts, 0, Connections(10)).should_close()
    assert counts[0] == 9


@pytest.mark.parametrize(("mine", "other"), [(8, 8), (9, 8), (1, 0), (0, 0), (3, 7)])
def test_a_worker_within_its_fair_share_keeps_its_connections(mine: int, other: int) -> None:
    counts = SharedCounts(2)
    counts[1] = other
    balancer = ConnectionBalancer(counts, 0, Connections(mine))
    assert not balancer.should_close()
    assert counts[0] == mine


def test_forced_closes_are_rate_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(balance.time, "monotonic", lambda: now[0])
    counts = SharedCounts(2)
    counts[1] = 0
    balancer = ConnectionBalancer(counts, 0, Connections(12))
    assert balancer.should_close()
    now[0] += balance.MIN_INTERVAL_S / 2
    assert not balancer.should_close()
    now[0] += balance.MIN_INTERVAL_S
    assert balancer.should_close()


def test_counts_are_shared_with_a_forked_worker() -> None:
    counts = SharedCounts(3)
    pid = os.fork()
    if pid == 0:  # the "worker" writes its slot and leaves
        counts[2] = 42
        os._exit(0)
    os.waitpid(pid, 0)
    assert counts[2] == 42
    assert counts.total() == 42
