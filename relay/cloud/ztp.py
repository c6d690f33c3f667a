"""The zero-touch redirect service: ZTP profiles, device assignments by MAC, the
partner API key, and the directory relays sync (phones.md section 1 item 5;
docs/agent-link.md "ZTP directory").

Methods run on the control plane's worker thread. A MAC belongs to one tenant
at a time: assigning one that another tenant holds is the partner API's 409
"registered to another account", and to every other call of this tenant that
MAC does not exist (404). Every change bumps the tenant's directory version,
so relays fetch the directory only when it changed. Profile passwords are
returned by the partner API (phones need them) but never logged.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from typing import Any

from relay.cloud.context import Context, conflict, not_found
from relay.cloud.relays import iso
from relay.cloud.rules.ztp import (
    MAX_DEVICES,
    MAX_PROFILES,
    ZtpAnswer,
    ZtpDirectoryData,
    etag_of,
    none_match,
    parse_assignment,
    parse_mac,
    parse_profile,
)
from relay.cloud.store.store import Row
from relay.cloud.tenancy import Tenancy, token_digest

KEY_PREFIX = "ztp_"
MAX_KEY = 128
SHOWN_MACS = 5  # how many of a profile's devices a refused delete names


def _profile_out(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "url": row["url"],
        "user": row["username"],
        "password": row["password"],
        "devices": row["device_count"],
        "created": iso(row["created"]),
    }


def _device_out(row: Row) -> dict[str, Any]:
    return {"id": row["mac"], "profile": row["profile_id"], "created": iso(row["created"])}


class Ztp:
    def __init__(self, ctx: Context, tenancy: Tenancy) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.tenancy = tenancy

    # -- the partner API key -------------------------------------------------------

    def create_key(self, actor: str) -> str:
        """A new key for this tenant, shown once; the previous key stops working. A
        256-bit random key needs no slow hash: its SHA-256 digest is what is kept."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        self.store.put_ztp_key(self.tenancy.tenant()["id"], token_digest(key), self.ctx.now())
        self.ctx.log(actor, "rotate", "ztp-key")
        return key

    def authenticate(self, key: str) -> str | None:
        """The tenant whose partner API key this is, or None."""
        if not key.startswith(KEY_PREFIX) or len(key) > MAX_KEY:
            return None
        return self.store.ztp_key_tenant(token_digest(key))

    # -- profiles ------------------------------------------------------------------

    def profiles(self, tenant_id: str) -> list[dict[str, Any]]:
        return [_profile_out(r) for r in self.store.ztp_profiles(tenant_id)]

    def profile(self, tenant_id: str, profile_id: str) -> dict[str, Any]:
        row = self.store.ztp_profile(tenant_id, profile_id)
        if row is None:
            raise not_found("ZTP profile", profile_id[:64])
        return _profile_out(row)

    def create_profile(self, tenant_id: str, body: Mapping[str, Any], actor: str) -> dict[str, Any]:
        profile = parse_profile(body)
        if self.store.ztp_profile_named(tenant_id, profile.name) is not None:
            raise conflict(
                "ztp_profile_exists", f"a ZTP profile named {profile.name!r} exists", "name"
            )
        if self.store.ztp_profile_count(tenant_id) >= MAX_PROFILES:
            raise conflict("too_many_profiles", f"an account holds at most {MAX_PROFILES} profiles")
        profile_id = uuid.uuid4().hex[:12]
        with self.store.transaction():
            self.store.insert_ztp_profile(
                {
                    "id": profile_id,
                    "tenant_id": tenant_id,
                    "name": profile.name,
                    "url": profile.url,
                    "username": profile.user,
                    "password": profile.password,
                    "created": self.ctx.now(),
                }
            )
            self.store.bump_ztp_version(tenant_id)
        self.ctx.log(actor, "add", f"ztp-profile/{profile_id}", name=profile.name, url=profile.url)
        return self.profile(tenant_id, profile_id)

    def delete_profile(self, tenant_id: str, profile_id: str, actor: str) -> None:
        """Refused (409) while devices use it: they would lose their redirect silently."""
        row = self.store.ztp_profile(tenant_id, profile_id)
        if row is None:
            raise not_found("ZTP profile", profile_id[:64])
        used = int(row["device_count"])
        if used:
            macs = self.store.ztp_profile_macs(profile_id, SHOWN_MACS)
            more = ", ..." if used > len(macs) else ""
            raise conflict(
                "ztp_profile_in_use",
                f"ZTP profile {profile_id!r} is assigned to {used} device(s) "
                f"({', '.join(macs)}{more}); delete or reassign them first",
            )
        with self.store.transaction():
            self.store.delete_ztp_profile(tenant_id, profile_id)
            self.store.bump_ztp_version(tenant_id)
        self.ctx.log(actor, "delete", f"ztp-profile/{profile_id}")

    # -- devices ---------------------------------------------------------------------

    def devices(self, tenant_id: str) -> list[dict[str, Any]]:
        return [_device_out(r) for r in self.store.ztp_devices(tenant_id)]

    def device(self, tenant_id: str, mac_text: str) -> dict[str, Any]:
        mac = parse_mac(mac_text)
        row = self.store.ztp_device(mac)
        if row is None or row["tenant_id"] != tenant_id:
            raise not_found("ZTP device", mac)
        return _device_out(row)

    def assign(
        self, tenant_id: str, body: Mapping[str, Any], actor: str
    ) -> tuple[dict[str, Any], bool]:
        """Assign a MAC to a profile (True: newly registered) or move it to another one."""
        mac, profile_id = parse_assignment(body)
        if self.store.ztp_profile(tenant_id, profile_id) is None:
            raise not_found("ZTP profile", profile_id, "profile")
        current = self.store.ztp_device(mac)
        if current is not None and current["tenant_id"] != tenant_id:
            raise conflict(
                "registered_elsewhere",
                f"device {mac} is registered to another account; that account must delete it first",
                "id",
            )
        if current is None and self.store.ztp_device_count(tenant_id) >= MAX_DEVICES:
            raise conflict("too_many_devices", f"an account holds at most {MAX_DEVICES} devices")
        with self.store.transaction():
            self.store.put_ztp_device(
                {
                    "mac": mac,
                    "tenant_id": tenant_id,
                    "profile_id": profile_id,
                    "created": self.ctx.now(),
                }
            )
            self.store.bump_ztp_version(tenant_id)
        self.ctx.log(actor, "assign", f"ztp-device/{mac}", profile=profile_id)
        return self.device(tenant_id, mac), current is None

    def delete_device(self, tenant_id: str, mac_text: str, actor: str) -> None:
        mac = parse_mac(mac_text)
        with self.store.transaction():
            if not self.store.delete_ztp_device(tenant_id, mac):
                raise not_found("ZTP device", mac)
            self.store.bump_ztp_version(tenant_id)
        self.ctx.log(actor, "delete", f"ztp-device/{mac}")

    # -- the directory relays sync ---------------------------------------------------

    def directory(self, tenant_id: str) -> ZtpDirectoryData:
        return ZtpDirectoryData(
            self.store.ztp_version(tenant_id),
            {
                r["mac"]: ZtpAnswer(r["mac"], r["url"], r["username"], r["password"])
                for r in self.store.ztp_directory_rows(tenant_id)
            },
        )

    def relay_directory(self, if_none_match: str | None) -> tuple[str, dict[str, Any] | None]:
        """The ETag and the directory of the relays' tenant (relays belong to the one
        tenant), or None for the body when `if_none_match` already names that ETag."""
        tenant_id = self.tenancy.tenant()["id"]
        etag = etag_of(tenant_id, self.store.ztp_version(tenant_id))
        if none_match(if_none_match, etag):
            return etag, None
        return etag, self.directory(tenant_id).to_wire()
