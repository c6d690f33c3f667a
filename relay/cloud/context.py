"""What every part of the control plane shares: the store, the activity log, the
clock, and the read caches that the rules need on hot paths.

Caches are rebuilt lazily after a write bumps their generation; they are only
touched from the control plane's worker thread.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from relay.cloud.activity import ActivityLog
from relay.cloud.rules.deployment import ProfileData
from relay.cloud.rules.errors import RuleError
from relay.cloud.rules.sites import INTERNET, PublicSubnet, SiteIndex, SiteSubnets, parse_cidr
from relay.cloud.store.store import Store


def subnets_from_json(text: str) -> tuple[PublicSubnet, ...]:
    return tuple(
        PublicSubnet(
            parse_cidr(p["cidr"], "cidr"), tuple(parse_cidr(q, "cidr") for q in p["private"])
        )
        for p in json.loads(text)
    )


def subnets_to_json(public: tuple[PublicSubnet, ...]) -> list[dict[str, object]]:
    return [{"cidr": str(p.cidr), "private": [str(q) for q in p.private]} for p in public]


@dataclass
class ConfigSnapshot:
    """Profiles and bindings as the deployment rules read them."""

    profiles: Mapping[str, ProfileData]
    bindings: Mapping[tuple[str, str], list[str]]
    csv_profile_of: Mapping[str, str]


@dataclass
class Context:
    store: Store
    activity: ActivityLog
    clock: Callable[[], float] = time.time
    _sites_gen: int = 0
    _sites_built: int = -1
    _site_index: SiteIndex | None = None
    _parsed_subnets: dict[str, tuple[PublicSubnet, ...]] = field(default_factory=dict)
    _config_gen: int = 0
    _config_built: int = -1
    _config: ConfigSnapshot | None = field(default=None)

    def now(self) -> float:
        return self.clock()

    def log(self, actor: str, op: str, target: str, **detail: object) -> None:
        self.activity.record(self.now(), actor, op, target, **detail)

    def sites_changed(self) -> None:
        self._sites_gen += 1

    def config_changed(self) -> None:
        self._config_gen += 1

    def config_generation(self) -> int:
        return self._config_gen

    def sites_generation(self) -> int:
        return self._sites_gen

    def site_index(self) -> SiteIndex:
        if self._site_index is None or self._sites_built != self._sites_gen:
            parsed: dict[str, tuple[PublicSubnet, ...]] = {}
            sites = []
            for name, text in self.store.subnets_of_all_sites():
                subnets = self._parsed_subnets.get(text) or subnets_from_json(text)
                parsed[text] = subnets
                sites.append(SiteSubnets(name, subnets))
            self._parsed_subnets = parsed  # unchanged sites are not parsed again
            self._site_index = SiteIndex(sites)
            self._sites_built = self._sites_gen
        return self._site_index

    def match_site(self, public_ip: str | None, private_ip: str | None) -> str:
        """A device's site; devices with no known public address are on the Internet site."""
        if not public_ip:
            return INTERNET
        try:
            public = IPv4Address(public_ip)
            private = IPv4Address(private_ip) if private_ip else None
        except ValueError:
            return INTERNET
        return self.site_index().match(public, private) or INTERNET

    def config(self) -> ConfigSnapshot:
        if self._config is None or self._config_built != self._config_gen:
            params = self.store.all_parameters()
            profiles: dict[str, ProfileData] = {}
            owners: dict[str, str] = {}
            for row in self.store.profiles():
                name = row["name"]
                profiles[name] = ProfileData(name, params.get(name, {}), row["software"])
                if row["owner_device"]:
                    owners[row["owner_device"]] = name
            self._config = ConfigSnapshot(profiles, self.store.all_bindings(), owners)
            self._config_built = self._config_gen
        return self._config


def not_found(what: str, key: str, field: str | None = None) -> RuleError:
    return RuleError("not_found", f"{what} {key!r} does not exist", field, status=404)


def conflict(code: str, message: str, field: str | None = None) -> RuleError:
    return RuleError(code, message, field, status=409)
