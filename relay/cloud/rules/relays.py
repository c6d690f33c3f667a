"""A relay's link status as the console shows it (cloud.md "Tenant, relays and PIN";
docs/agent-link.md "Heartbeat").

Agents heartbeat every 2 minutes; after 10 minutes without one the agent is
`inactive`, its download agent likewise but separately (10 minutes without a
heartbeat that said `running`). Pure: `now` is an argument.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LinkPolicy:
    """The intervals of the agent link; `relay up` may change them (tests shorten them)."""

    heartbeat_seconds: float = 120.0
    monitor_seconds: float = 7200.0
    inactive_after: float = 600.0


DEFAULT_LINK = LinkPolicy()


def agent_status(last_heartbeat: float | None, now: float, policy: LinkPolicy) -> str:
    if last_heartbeat is not None and now - last_heartbeat < policy.inactive_after:
        return "active"
    return "inactive"


def download_agent_status(
    last_running: float | None, last_state: str, now: float, policy: LinkPolicy
) -> str:
    """`absent` when no heartbeat ever said it ran or is installed (the relay has none);
    a download agent reported `stopped` but never seen running is `inactive`."""
    if last_running is not None and now - last_running < policy.inactive_after:
        return "active"
    if last_running is None and last_state == "absent":
        return "absent"
    return "inactive"
