"""The layers a phone keeps its settings in, and which one wins (phones.md sections 2 and 4).

The REST API reports each parameter's `Source` and resets layers one at a
time (`configReset/local|web|device|cloud`), so the phone cannot keep only
the merged result. Precedence, highest first, keeps the simulator's
provisioning order (relay.sim.phone): `local` (REST config/set, then handset
settings, then `<mac>-phone.cfg`), `web` (`<mac>-web.cfg`), `cloud`
(nothing in the simulator sets it), `config_files` (CONFIG_FILES, first file
wins, then license files), `device` (flash device settings) and `default`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

FACTORY_ADMIN_PASSWORD = "456"  # noqa: S105 (the phones' factory default)
ADMIN_PASSWORD = "device.auth.localAdminPassword"  # noqa: S105 (a parameter name)
REST_ENABLED = "apps.restapi.enabled"
SCREEN_CAPTURE = "up.screenCapture.enabled"
ALWAYS_REBOOT = "voIpProt.SIP.specialEvent.checkSync.alwaysReboot"

SOURCES = ("local", "web", "cloud", "config_files", "device", "default")
RESETTABLE = ("local", "web", "device", "cloud")

# Factory values of the parameters the simulator acts on (phones.md section 3).
DEFAULTS: Mapping[str, str] = MappingProxyType(
    {
        ADMIN_PASSWORD: FACTORY_ADMIN_PASSWORD,
        REST_ENABLED: "0",
        SCREEN_CAPTURE: "0",
        ALWAYS_REBOOT: "0",
        "diags.pcap.enabled": "0",
        "device.prov.ztpEnabled": "1",
        "prov.polling.enabled": "0",
        "prov.polling.mode": "abs",
        "prov.polling.period": "86400",
    }
)


class Settings:
    """Every layer of one phone; `effective()` is the merge the phone runs with."""

    def __init__(self, handset: Mapping[str, str] | None = None) -> None:
        self.rest: dict[str, str] = {}
        self.handset: dict[str, str] = dict(handset or {})
        self.phone_file: dict[str, str] = {}
        self.web: dict[str, str] = {}
        self.cloud: dict[str, str] = {}
        self.config_files: dict[str, str] = {}
        self.device: dict[str, str] = {}

    def provisioned(
        self,
        *,
        config_files: Mapping[str, str],
        phone_file: Mapping[str, str],
        web: Mapping[str, str],
    ) -> None:
        """Replace what the provisioning server supplies with this conversation's files."""
        self.config_files = dict(config_files)
        self.phone_file = dict(phone_file)
        self.web = dict(web)

    def effective(self) -> dict[str, str]:
        """Every parameter some layer sets, with the winning value (defaults not included)."""
        merged: dict[str, str] = {}
        for _source, layer in self._ranked():
            for name, value in layer.items():
                merged.setdefault(name, value)
        return merged

    def lookup(self, name: str) -> tuple[str, str] | None:
        """(value, source) of `name`, falling back to the factory default; None if unknown."""
        for source, layer in self._ranked():
            if name in layer:
                return layer[name], source
        if name in DEFAULTS:
            return DEFAULTS[name], "default"
        return None

    def running(self) -> dict[str, tuple[str, str]]:
        """(value, source) of every parameter the phone knows, defaults included."""
        names = [*self.effective(), *(name for name in DEFAULTS)]
        out: dict[str, tuple[str, str]] = {}
        for name in names:
            found = self.lookup(name)
            if found is not None and name not in out:
                out[name] = found
        return out

    def value(self, name: str) -> str:
        found = self.lookup(name)
        return found[0] if found is not None else ""

    def set_local(self, values: Mapping[str, str]) -> None:
        """REST config/set: the values join the `local` layer, above the handset's."""
        self.rest.update(values)

    def reset(self, layers: Iterable[str]) -> None:
        """configReset: clear the named layers (`local` is REST, handset and phone file)."""
        for layer in layers:
            if layer == "local":
                self.rest.clear()
                self.handset.clear()
                self.phone_file.clear()
            elif layer == "web":
                self.web.clear()
            elif layer == "device":
                self.device.clear()
            elif layer == "cloud":
                self.cloud.clear()
            else:
                raise ValueError(f"layer {layer!r} cannot be reset")

    def factory_reset(self) -> None:
        """Everything goes, including what provisioning supplied, until the next provisioning."""
        self.reset(RESETTABLE)
        self.config_files.clear()

    @property
    def admin_password(self) -> str:
        return self.value(ADMIN_PASSWORD) or FACTORY_ADMIN_PASSWORD

    def enabled(self, name: str) -> bool:
        return self.value(name) == "1"

    def _ranked(self) -> tuple[tuple[str, Mapping[str, str]], ...]:
        return (
            ("local", self.rest),
            ("local", self.handset),
            ("local", self.phone_file),
            ("web", self.web),
            ("cloud", self.cloud),
            ("config_files", self.config_files),
            ("device", self.device),
        )
