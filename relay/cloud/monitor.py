"""The device monitor (cloud.md "Device monitor"; docs/agent-link.md "Devices to
monitor"): which phones each relay watches, what the relays report, and the
dashboard.

A relay watches the phones relay.cloud.rules.assignment gives it that have a
known address (the private one, which a relay inside the network reaches,
else the public one). Without a relay only online/offline is known, from the
phones' own contacts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from relay.cloud.context import Context
from relay.cloud.relays import Relays, iso
from relay.cloud.rules.assignment import relay_for
from relay.cloud.rules.monitor import is_online, tally
from relay.cloud.rules.relays import LinkPolicy
from relay.cloud.store.store import Row, dumps
from relay.cloud.tenancy import Tenancy
from relay.proto.polycom.models import has_rest_api
from relay.sync.messages import Call, DeviceStatus, Line, Target, Watchlist


def status_detail(row: Mapping[str, Any] | None) -> dict[str, Any]:
    """The monitor's fields of a device's detail, from its device_status row (None:
    never checked). SIP registration and call status use the agent link's own rules."""
    if row is None:
        return {
            "sip_registration": "unknown",
            "call_status": "idle",
            "calls": [],
            "lines": [],
            "uptime": None,
            "last_restart": None,
            "last_checked": None,
            "monitored_by": None,
        }
    status = DeviceStatus(
        device="",
        online=bool(row["online"]),
        checked=row["checked"],
        reason=row["reason"],
        lines=tuple(Line.from_wire(x) for x in json.loads(row["lines"])),
        calls=tuple(Call.from_wire(x) for x in json.loads(row["calls"])),
        uptime=row["uptime"],
        last_restart=row["last_restart"],
    )
    return {
        "sip_registration": status.sip_registration,
        "call_status": status.call_status,
        "calls": [c.to_wire() for c in status.calls],
        "lines": [line.to_wire() for line in status.lines],
        "uptime": status.uptime,
        "last_restart": iso(status.last_restart),
        "last_checked": iso(status.checked),
        "monitored_by": row["relay_id"],
    }


class Monitor:
    def __init__(self, ctx: Context, tenancy: Tenancy, relays: Relays, policy: LinkPolicy) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.tenancy = tenancy
        self.relays = relays
        self.policy = policy

    def record(self, relay_id: str, status: DeviceStatus) -> None:
        """Keep what a relay found; a MAC the cloud does not know is ignored (the device
        was deleted after the relay fetched its watchlist). A check time in the future
        (a relay's clock ahead) counts as now, so it cannot hide later contacts."""
        row = self.store.device_by_mac(status.device)
        if row is None:
            return
        now = self.ctx.now()
        self.store.put_device_status(
            {
                "device_id": row["id"],
                "online": int(status.online),
                "checked": min(status.checked, now) if status.checked else now,
                "reason": status.reason,
                "lines": dumps([line.to_wire() for line in status.lines]),
                "calls": dumps([call.to_wire() for call in status.calls]),
                "uptime": status.uptime,
                "last_restart": status.last_restart,
                "relay_id": relay_id,
            }
        )
        if status.firmware and status.firmware != row["firmware"]:
            self.store.update_device(row["id"], {"firmware": status.firmware})

    def target(self, row: Mapping[str, Any], password: str) -> Target | None:
        """How a relay reaches a device, or None when it cannot (no MAC or no address)."""
        address = row["private_ip"] or row["public_ip"]
        if not row["mac"] or not address:
            return None
        model, firmware = row["model"] or "", row["firmware"] or ""
        return Target(
            row["mac"], address, model, firmware, has_rest_api(model, row["firmware"]), password
        )

    def watchlist(self, relay_id: str) -> Watchlist:
        places = self.relays.places(self.ctx.now())
        site_specific = self.store.site_specific_sites()
        password = self.tenancy.device_admin_password()
        targets: list[Target] = []
        for row in self.store.monitored_devices():
            target = self.target(row, password)
            if target is None:
                continue
            if relay_for(target.mac, row["site"], places, site_specific) == relay_id:
                targets.append(target)
        return Watchlist(tuple(targets), self.policy.monitor_seconds)

    def dashboard(self) -> dict[str, Any]:
        """cloud.md "Device monitor": online and total; counts by type, site, group, model
        (a device without a type, site or model counts under "unknown")."""
        now = self.ctx.now()
        groups = self.store.all_device_groups()
        rows: list[tuple[Row, bool]] = [
            (r, is_online(now, r["last_seen"], r["status_checked"], r["status_online"]))
            for r in self.store.monitored_devices()
        ]
        return {
            "online": sum(1 for _, on in rows if on),
            "total": len(rows),
            "by_type": tally((r["type"] or "unknown", on) for r, on in rows),
            "by_site": tally((r["site"] or "unknown", on) for r, on in rows),
            "by_group": tally((g, on) for r, on in rows for g in groups.get(r["id"], [])),
            "by_model": tally((r["model"] or "unknown", on) for r, on in rows),
        }
