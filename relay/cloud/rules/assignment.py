"""Which relay carries out tasks on, and monitors, which phone (cloud.md "Tenant,
relays and PIN"; docs/agent-link.md "Which relay serves which phone").

- A phone at a site marked site-specific is served only by relays of that site,
  and such a relay serves no other site.
- Other phones go to a relay of their own site if there is one, else to any
  relay not bound to a site-specific site, spread by a hash of the MAC so that
  monitoring is shared and the choice is stable.
- Active relays are preferred; when none is active the phone keeps its
  inactive relay (its jobs wait for it to come back).
Pure: the caller says which relays are active.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RelayPlace:
    relay_id: str
    site: str | None
    active: bool


def _pick(mac: str, relays: Sequence[RelayPlace]) -> str | None:
    if not relays:
        return None
    pool = [r for r in relays if r.active] or list(relays)
    pool.sort(key=lambda r: r.relay_id)
    digest = int.from_bytes(hashlib.sha256(mac.encode()).digest()[:8], "big")
    return pool[digest % len(pool)].relay_id


def relay_for(
    mac: str,
    site: str | None,
    relays: Sequence[RelayPlace],
    site_specific: Collection[str],
) -> str | None:
    """The relay that serves this phone, or None when no relay can."""
    if site is not None and site in site_specific:
        return _pick(mac, [r for r in relays if r.site == site])
    free = [r for r in relays if r.site not in site_specific]
    own = [r for r in free if site is not None and r.site == site]
    if any(r.active for r in own) or (own and not any(r.active for r in free)):
        return _pick(mac, own)
    return _pick(mac, free)
