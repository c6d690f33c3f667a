"""Whether a device is online (cloud.md "Device monitor").

Any message from the device sets it online; a relay's monitor check says
online or offline. Whichever is newer wins: a contact after the last check
means online, a check after the last contact says what it found. Without a
check newer than its last contact, a phone that has not been heard from for
a day's poll plus the polling window (26 hours) is offline, as before relays
existed. Pure: `now` is an argument.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

CONTACT_WINDOW = 26 * 3600.0


def is_online(
    now: float,
    last_seen: float | None,
    checked: float | None,
    checked_online: bool | None,
) -> bool:
    if checked is not None and (last_seen is None or last_seen <= checked):
        return bool(checked_online)
    return last_seen is not None and now - last_seen < CONTACT_WINDOW


def tally(entries: Iterable[tuple[str, bool]]) -> dict[str, dict[str, int]]:
    """name -> {online, total}, names sorted (dashboard "counts by type, site, group, model")."""
    out: dict[str, dict[str, Any]] = {}
    for name, online in entries:
        counts = out.setdefault(name, {"online": 0, "total": 0})
        counts["total"] += 1
        counts["online"] += int(online)
    return dict(sorted(out.items()))
