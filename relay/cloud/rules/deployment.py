"""Deployment: which profiles apply to a device and the configuration they add up to.

cloud.md "Configuration profiles": five containers, highest priority first:
Device, Site, Device Model, Device Group, Global; inside a container the
profiles are ordered. Each parameter's effective value, and the software, come
from the highest-priority binding that sets it, and users must see which
profile and container it came from, so every result carries its origin.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

CONTAINERS: tuple[str, ...] = ("device", "site", "model", "group", "global")
GLOBAL_KEY = "-"


@dataclass(frozen=True, slots=True)
class DeviceContext:
    """What decides a device's bindings; groups are highest priority first."""

    device: str
    site: str | None
    model: str | None
    groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ProfileData:
    """The part of a profile that deployment merges."""

    name: str
    parameters: Mapping[str, str]
    software: str | None


@dataclass(frozen=True, slots=True)
class ChainLink:
    """One profile bound in one container under one key (device, site, ...)."""

    container: str
    key: str
    profile: str


@dataclass(frozen=True, slots=True)
class EffectiveValue:
    """A parameter's winning value and where it came from (shown to users)."""

    value: str
    profile: str
    container: str
    key: str


@dataclass(frozen=True, slots=True)
class EffectiveSoftware:
    """The winning software image and where it came from."""

    image: str
    profile: str
    container: str
    key: str


@dataclass(frozen=True, slots=True)
class EffectiveConfig:
    """Applied profiles (highest priority first) and the merged result."""

    chain: tuple[ChainLink, ...]
    parameters: Mapping[str, EffectiveValue]
    software: EffectiveSoftware | None


def profile_chain(
    ctx: DeviceContext, bindings: Callable[[str, str], Sequence[str]]
) -> tuple[ChainLink, ...]:
    """Every profile bound to the device, in cloud.md's container order.

    A profile bound in several places keeps only its highest-priority position:
    a lower repeat could never supply a value, and listing it twice would
    misreport where the device's configuration comes from.
    """
    places: list[tuple[str, str]] = [("device", ctx.device)]
    if ctx.site is not None:
        places.append(("site", ctx.site))
    if ctx.model is not None:
        places.append(("model", ctx.model))
    places.extend(("group", group) for group in ctx.groups)
    places.append(("global", GLOBAL_KEY))
    seen: set[str] = set()
    chain: list[ChainLink] = []
    for container, key in places:
        for profile in bindings(container, key):
            if profile not in seen:
                seen.add(profile)
                chain.append(ChainLink(container, key, profile))
    return tuple(chain)


def resolve(chain: Sequence[ChainLink], profiles: Mapping[str, ProfileData]) -> EffectiveConfig:
    """Merge the chain: the first (highest-priority) profile setting a value wins.

    Links whose profile is absent (deleted while the chain was built) are left
    out of the result's chain. An empty software id counts as no software.
    """
    applied: list[ChainLink] = []
    parameters: dict[str, EffectiveValue] = {}
    software: EffectiveSoftware | None = None
    for link in chain:
        profile = profiles.get(link.profile)
        if profile is None:
            continue
        applied.append(link)
        for name, value in profile.parameters.items():
            if name not in parameters:
                parameters[name] = EffectiveValue(value, link.profile, link.container, link.key)
        if software is None and profile.software:
            software = EffectiveSoftware(profile.software, link.profile, link.container, link.key)
    return EffectiveConfig(tuple(applied), MappingProxyType(parameters), software)
