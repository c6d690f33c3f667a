"""The control plane's side of the phone-facing provisioning service.

Runs on the control-plane worker thread. Identifies phones (auto-adding unknown
ones into the default groups), builds their master and configuration files
from the effective configuration, and caches the bytes per device until
something that could change them changes (profiles, bindings, sites, the
tenant, the device's own site, model or groups).
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

from relay.cloud.context import Context
from relay.cloud.deployment import Deployment
from relay.cloud.devices import Devices
from relay.cloud.files import Files
from relay.cloud.rules.deployment import DeviceContext
from relay.cloud.rules.provisioning import (
    Software,
    TenantDefaults,
    configuration,
    download_base,
    master,
    profile_config_files,
)
from relay.cloud.rules.sites import INTERNET
from relay.cloud.tenancy import Tenancy, verify_password
from relay.proto.polycom.cfgfile import render_config
from relay.proto.polycom.master import render_master
from relay.proto.polycom.useragent import UserAgent

MAX_CACHED = 100_000
RECORD_EVERY = 60.0


class Provisioning:
    def __init__(
        self,
        ctx: Context,
        tenancy: Tenancy,
        devices: Devices,
        deployment: Deployment,
        files: Files,
    ) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.tenancy = tenancy
        self.devices = devices
        self.deployment = deployment
        self.files = files
        self._verified: dict[str, str] = {}
        self._cache: dict[tuple[str | None, str], tuple[object, bytes]] = {}

    # -- the account -----------------------------------------------------------

    def account_configured(self) -> bool:
        row = self.tenancy.tenant()
        return bool(row["prov_user"] and row["prov_password_hash"])

    def check_account(self, user: str, password: str) -> bool:
        """Basic-auth check; a verified pair is remembered (against the stored hash, so a
        password change forgets it): scrypt on every phone request would be the bottleneck."""
        row = self.tenancy.tenant()
        stored = row["prov_password_hash"]
        if not row["prov_user"] or not stored:
            return False
        key = hashlib.sha256(f"{user}\0{password}".encode()).hexdigest()
        if self._verified.get(key) == stored:
            return True
        ok = hmac.compare_digest(user.encode(), str(row["prov_user"]).encode()) and (
            verify_password(password, stored)
        )
        if ok:
            self._verified = {key: stored}
        return ok

    # -- phones ------------------------------------------------------------------

    def identify(
        self,
        mac: str,
        agent: UserAgent | None,
        user_agent: str,
        public_ip: str | None,
        private_ip: str | None,
    ) -> bool:
        """Record a phone's contact; False when it is unknown and auto-add is off."""
        if self.store.device(mac) is None and not self.tenancy.tenant()["auto_add"]:
            return False
        self.devices.record_contact(
            mac,
            agent.model if agent else None,
            agent.firmware if agent else None,
            public_ip,
            private_ip,
            user_agent[:512] or None,
        )
        return True

    def generated(
        self,
        kind: str,
        mac: str,
        agent: UserAgent | None,
        user_agent: str,
        public_ip: str | None,
        private_ip: str | None,
    ) -> bytes | None:
        """One phone request for its master or configuration file, in one worker call:
        identify, build (cached), and record the result. None: unknown, not auto-added."""
        if not self.identify(mac, agent, user_agent, public_ip, private_ip):
            return None
        if kind == "master":
            return self.master_file(mac)
        try:
            data = self.config_file(mac)
        except Exception as exc:
            self.record(mac, False, f"cannot build the configuration file: {exc}")
            raise
        self.record(mac, True)
        return data

    def record(self, mac: str, ok: bool, reason: str = "") -> None:
        """Last provisioning time and result (SUCCESS, or FAILED with the reason). A repeat
        success within a minute is not rewritten: it is the hot path's largest write."""
        row = self.store.device(mac)
        if row is None:
            return
        now = self.ctx.now()
        if (
            ok
            and row["last_result"] == "SUCCESS"
            and row["last_provisioned"]
            and now - row["last_provisioned"] < RECORD_EVERY
        ):
            return
        self.store.update_device(
            mac,
            {
                "last_provisioned": now,
                "last_result": "SUCCESS" if ok else "FAILED",
                "last_error": None if ok else reason,
            },
        )

    # -- generated files ---------------------------------------------------------

    def _context(self, mac: str | None) -> tuple[DeviceContext, dict[str, Any] | None]:
        if mac is None:
            return DeviceContext("-", None, None, ()), None
        row = self.store.device(mac)
        if row is None:
            return DeviceContext(mac, None, None, ()), None
        return DeviceContext(
            mac, row["site"], row["model"], tuple(self.store.device_groups(mac))
        ), row

    def _fingerprint(self, context: DeviceContext) -> object:
        return (self.ctx.config_generation(), self.ctx.sites_generation(), context)

    def _cached(self, mac: str | None, kind: str) -> bytes:
        context, row = self._context(mac)
        fingerprint = self._fingerprint(context)
        hit = self._cache.get((mac, kind))
        if hit is not None and hit[0] == fingerprint:
            return hit[1]
        data = self._build(kind, mac, context, row)
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[(mac, kind)] = (fingerprint, data)
        return data

    def master_file(self, mac: str | None) -> bytes:
        return self._cached(mac, "master")

    def config_file(self, mac: str) -> bytes:
        return self._cached(mac, "config")

    def _software(self, image_id: str | None) -> Software | None:
        image = self.store.image(image_id) if image_id else None
        if image is None:
            return None
        return Software(image["id"], image["model"], image["version"], image["filename"])

    def _base(self, site: str | None) -> str:
        tenant = self.tenancy.tenant()
        site_row = self.store.site(site) if site else None
        return download_base(
            site_path=site_row["download_path"] if site_row else "",
            on_internet=site in (None, INTERNET),
            tenant_enterprise=tenant["download_path_enterprise"],
            tenant_internet=tenant["download_path_internet"],
        )

    def _build(
        self, kind: str, mac: str | None, context: DeviceContext, row: dict[str, Any] | None
    ) -> bytes:
        result = self.deployment.effective_for(context)
        effective = {name: v.value for name, v in result.parameters.items()}
        software = self._software(result.software.image if result.software else None)
        base = self._base(context.site)
        if kind == "config":
            tenant = self.tenancy.tenant()
            defaults = TenantDefaults(
                tenant["device_admin_password"], tenant["polling_start"], tenant["polling_end"]
            )
            return render_config(
                configuration(effective, defaults, mac=mac, software=software, base=base)
            )
        snapshot = self.ctx.config()
        chain_files = [
            snapshot.profiles[link.profile].parameters.get("CONFIG_FILES", "")
            for link in result.chain
        ]
        return render_master(
            master(
                effective,
                profile_config_files(chain_files),
                mac=mac,
                model=context.model,
                software=software,
                base=base,
                device_config_files=self._device_config_files(mac),
            )
        )

    def _device_config_files(self, mac: str | None) -> list[str]:
        """`.cfg` device files: the phone's own first (they win), then the global ones."""
        own: list[str] = []
        shared: list[str] = []
        for row in self.store.files("device"):
            if not row["name"].endswith(".cfg"):
                continue
            path = f"{row['directory']}/{row['name']}" if row["directory"] else row["name"]
            if row["device_id"] is None:
                shared.append(path)
            elif row["device_id"] == mac:
                own.append(path)
        return own + shared

    # -- images --------------------------------------------------------------------

    def image(self, image_id: str) -> tuple[Path, dict[str, Any]] | None:
        row = self.store.image(image_id)
        if row is None or not row["stored"]:
            return None
        return self.files.blob_path(row["sha256"]), row
