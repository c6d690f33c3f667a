"""Compaction of the lease event log: the events that still matter, in their order.

The adapter persists every lease change as an event and rebuilds its table
with `LeaseTable.restore`, which replays them (relay/proto/dhcp/leases.py).
The log only grows; `compact` gives the shorter log to write in its place.

What it keeps is decided per address and without the configuration, so that
a lease is kept even while the configuration (a narrowed range, a new
reservation) would skip it, and comes back when the configuration does:

- the last `LeaseGranted` of the address: the engine grants an address only
  when nobody holds it and it is not in conflict (RFC 2131 section 4.3.1),
  so every earlier event of the address is about a lease that had ended and
  a conflict that was over when it was granted;
- after that grant, the owner's releases and its last decline, which end
  the lease (RFC 2131 sections 4.3.3 and 4.3.4);
- the last decline of the address by anyone, while its conflict hold lasts.

Every lease active at `now`, and every address in conflict at `now`, is
restored from the compacted log exactly as from the whole log. What may be
forgotten is which *ended* lease a client had before its last one, so its
preferred "previous address" (section 4.3.1) is the newer one.

Pure stdlib (relay.proto rules).
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address

from relay.proto.dhcp.leases import LeaseEvent, LeaseGranted, LeaseReleased


def compact(events: Sequence[LeaseEvent], now: float) -> list[LeaseEvent]:
    """The events of `events` (oldest first) that `LeaseTable.restore` still needs at `now`."""
    last_grant: dict[IPv4Address, int] = {}
    for index, event in enumerate(events):
        if isinstance(event, LeaseGranted):
            last_grant[event.ip] = index
    kept: set[int] = set(last_grant.values())
    owner_decline: dict[IPv4Address, int] = {}
    any_decline: dict[IPv4Address, int] = {}
    for index, event in enumerate(events):
        grant = last_grant.get(event.ip)
        if isinstance(event, LeaseGranted) or (grant is not None and index < grant):
            continue
        owned = grant is not None and events[grant].mac == event.mac
        if isinstance(event, LeaseReleased):
            if owned:
                kept.add(index)
            continue
        if owned:
            owner_decline[event.ip] = index
        if event.until > now:
            any_decline[event.ip] = index
    kept.update(owner_decline.values())
    kept.update(any_decline.values())
    return [events[index] for index in sorted(kept)]
