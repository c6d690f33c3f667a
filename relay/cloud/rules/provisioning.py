"""What a phone is sent: its master file and its generated configuration file
(phones.md section 3; cloud.md "Configuration profiles", "Software").

Pure: takes the device's effective configuration and the facts around it,
returns the master file's content and the configuration parameters. The
service renders them with relay.proto.polycom and caches the bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from relay.cloud.rules.profiles import ADMIN_PASSWORD_PARAMETER, is_master_attribute
from relay.proto.polycom.master import DIRECTORY_ATTRIBUTES, MasterFile, ModelOverride

MAC_VARIABLE = "${mac_address}"
GENERATED_SUFFIX = "-profile.cfg"
PHONE_MAC_MACRO = "[PHONE_MAC_ADDRESS]"
CX_MODELS = ("CX5100", "CX5500")


@dataclass(frozen=True, slots=True)
class TenantDefaults:
    """What every provisioned phone gets unless a profile says otherwise."""

    admin_password: str
    polling_start: str = "03:00"
    polling_end: str = "05:00"


@dataclass(frozen=True, slots=True)
class Software:
    """The image a device's profiles select, as the phone will fetch it."""

    image_id: str
    model_family: str
    version: str
    filename: str


def default_parameters(defaults: TenantDefaults) -> dict[str, str]:
    """REST API on, the tenant's own admin password (never a well-known value), and
    polling at a random time inside the nightly window (cloud.md)."""
    return {
        "apps.restapi.enabled": "1",
        ADMIN_PASSWORD_PARAMETER: defaults.admin_password,
        "prov.polling.enabled": "1",
        "prov.polling.mode": "random",
        "prov.polling.period": "86400",
        "prov.polling.time": defaults.polling_start,
        "prov.polling.timeRandomEnd": defaults.polling_end,
    }


def substitute_mac(value: str, mac: str | None) -> str:
    """`${mac_address}` is replaced with the phone's MAC wherever it appears; in the
    default master file, with the phone's own macro."""
    return value.replace(MAC_VARIABLE, mac if mac is not None else PHONE_MAC_MACRO)


def download_base(
    *,
    site_path: str,
    on_internet: bool,
    tenant_enterprise: str,
    tenant_internet: str,
) -> str:
    """Site download path, else the tenant's path for enterprise sites or the Internet."""
    if site_path and not on_internet:
        return site_path
    return tenant_internet if on_internet else tenant_enterprise


def image_path(base: str, software: Software) -> str:
    """Where the phone fetches the image: under the download base, or relative to the
    provisioning server itself when no download path is set."""
    relative = f"images/{software.image_id}/{software.filename}"
    if not base:
        return relative
    return base.rstrip("/") + "/" + relative


def cx_parameters(base: str, software: Software) -> dict[str, str]:
    """cloud.md: CX5100/CX5500 software adds the auto-update attributes (Sunday 01:00)."""
    server = f"{base.rstrip('/')}/swupdate/CX/{software.version}"
    return {
        "device.local.updateTime": "3600",
        "device.local.updateInterval": "604800",
        "device.local.autoUpdateEnabled": "1",
        "device.local.updateServer": server,
    }


def configuration(
    effective: Mapping[str, str],
    defaults: TenantDefaults,
    *,
    mac: str | None,
    software: Software | None,
    base: str,
) -> dict[str, str]:
    """The parameters of the generated configuration file, highest priority first.

    Master-file attributes go to the master file instead. `.set` companions are
    added when the file is rendered.
    """
    out = {
        name: substitute_mac(value, mac)
        for name, value in effective.items()
        if not is_master_attribute(name)
    }
    if software is not None and software.model_family.upper() in CX_MODELS:
        for name, value in cx_parameters(base, software).items():
            out.setdefault(name, value)
    for name, value in default_parameters(defaults).items():
        out.setdefault(name, value)
    return out


def master(
    effective: Mapping[str, str],
    profile_config_files: Sequence[str],
    *,
    mac: str | None,
    model: str | None,
    software: Software | None,
    base: str,
    device_config_files: Sequence[str] = (),
) -> MasterFile:
    """The master file: the generated file first (highest priority), then device files
    (per-device before global), then the profiles' own CONFIG_FILES entries."""
    generated = (mac if mac is not None else PHONE_MAC_MACRO) + GENERATED_SUFFIX
    files: list[str] = []
    for name in (generated, *device_config_files, *profile_config_files):
        name = substitute_mac(name, mac)
        if name and name not in files:
            files.append(name)
    app_file_path = effective.get("APP_FILE_PATH", "")
    if not app_file_path and software is not None:
        app_file_path = image_path(base, software)
    app_file_path = substitute_mac(app_file_path, mac)
    attributes = tuple(
        (name, substitute_mac(effective[name], mac))
        for name in DIRECTORY_ATTRIBUTES
        if effective.get(name)
    ) + tuple(
        (name, substitute_mac(value, mac))
        for name, value in effective.items()
        if name.startswith("_mac_cfg")
    )
    models: tuple[ModelOverride, ...] = ()
    if model and app_file_path:
        models = (ModelOverride(model, app_file_path),)
    return MasterFile(app_file_path, tuple(files), attributes, models)


def profile_config_files(values: Sequence[str]) -> list[str]:
    """CONFIG_FILES of every profile in the chain (highest first), as one list."""
    out: list[str] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out
