"""relay.proto.dhcp.backlog: DISCOVERs wait newest first, and the stale or surplus are shed."""

from __future__ import annotations

import pytest

from relay.proto.dhcp.backlog import MAX_AGE, DiscoverBacklog
from relay.proto.dhcp.packet import DhcpError

NOW = 1000.0


def filled(count: int, *, at: float = NOW, capacity: int = 64) -> DiscoverBacklog:
    backlog = DiscoverBacklog(capacity=capacity)
    for n in range(count):
        backlog.add(f"discover {n}".encode(), f"198.51.100.{n}", at)
    return backlog


def test_the_newest_discover_is_taken_first() -> None:
    backlog = filled(3)

    assert backlog.take(3, NOW) == [
        (b"discover 2", "198.51.100.2"),
        (b"discover 1", "198.51.100.1"),
        (b"discover 0", "198.51.100.0"),
    ]


def test_no_more_than_the_budget_is_taken_and_the_rest_waits() -> None:
    backlog = filled(5)

    assert [data for data, _source in backlog.take(2, NOW)] == [b"discover 4", b"discover 3"]
    assert len(backlog) == 3
    assert [data for data, _source in backlog.take(9, NOW)] == [
        b"discover 2",
        b"discover 1",
        b"discover 0",
    ]


def test_a_discover_older_than_the_maximum_age_is_shed() -> None:
    backlog = filled(2, at=NOW)
    backlog.add(b"fresh", "198.51.100.9", NOW + MAX_AGE)

    taken = backlog.take(9, NOW + MAX_AGE + 0.5)

    assert taken == [(b"fresh", "198.51.100.9")]
    assert backlog.shed == 2


def test_past_its_capacity_the_oldest_discover_is_shed() -> None:
    backlog = filled(5, capacity=3)

    assert len(backlog) == 3
    assert backlog.shed == 2
    assert [data for data, _source in backlog.take(9, NOW)] == [
        b"discover 4",
        b"discover 3",
        b"discover 2",
    ]


def test_a_discover_taken_is_not_counted_as_shed() -> None:
    backlog = filled(4)

    backlog.take(4, NOW)

    assert (len(backlog), backlog.shed) == (0, 0)


@pytest.mark.parametrize(("capacity", "max_age"), [(0, MAX_AGE), (8, 0.0)])
def test_a_backlog_needs_room_and_time(capacity: int, max_age: float) -> None:
    with pytest.raises(DhcpError, match="positive capacity and age"):
        DiscoverBacklog(capacity=capacity, max_age=max_age)
