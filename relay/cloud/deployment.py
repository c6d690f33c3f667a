"""Profile bindings in the five containers and a device's effective configuration
(cloud.md "Configuration profiles", "Deployment")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relay.cloud.context import Context, not_found
from relay.cloud.devices import device_key
from relay.cloud.groups import name_list
from relay.cloud.rules.deployment import (
    CONTAINERS,
    GLOBAL_KEY,
    ChainLink,
    DeviceContext,
    EffectiveConfig,
    profile_chain,
    resolve,
)
from relay.cloud.rules.errors import RuleError
from relay.cloud.rules.names import normalize_model
from relay.cloud.rules.standard_profiles import is_template

MAX_BOUND = 200


class Deployment:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.store = ctx.store

    def _key(self, container: str, key: str) -> str:
        """Validate the container and normalize its key; 404 if the target is unknown."""
        if container not in CONTAINERS:
            raise RuleError(
                "invalid_container",
                f"container must be one of {', '.join(CONTAINERS)}",
                "container",
                status=404,
            )
        if container == "global":
            if key != GLOBAL_KEY:
                raise RuleError("invalid_key", "the global container's key is '-'", "key", 404)
            return key
        if container == "model":
            return normalize_model(key, "key")
        if container == "device":
            device_id = device_key(key)
            if self.store.device(device_id) is None:
                raise not_found("device", key, "key")
            return device_id
        if container == "site":
            if self.store.site(key) is None:
                raise not_found("site", key, "key")
            return key
        if self.store.group(key) is None:
            raise not_found("device group", key, "key")
        return key

    def get(self, container: str, key: str) -> dict[str, Any]:
        key = self._key(container, key)
        return {"container": container, "key": key, "profiles": self.store.binding(container, key)}

    def overview(self) -> list[dict[str, Any]]:
        return [{"container": c, "key": k, "count": n} for c, k, n in self.store.binding_keys()]

    def set(self, container: str, key: str, value: object, actor: str) -> dict[str, Any]:
        key = self._key(container, key)
        names = name_list(value, "profiles")
        if len(names) > MAX_BOUND:
            raise RuleError("too_many", f"at most {MAX_BOUND} profiles per container", "profiles")
        for i, name in enumerate(names):
            where = f"profiles[{i}]"
            row = self.store.profile(name)
            if row is None:
                raise RuleError("unknown_profile", f"profile {name!r} does not exist", where, 404)
            if row["kind"] == "standard" and is_template(name):
                raise RuleError(
                    "template_not_bindable",
                    f"{name} is a template: copy it, fill in the values, and bind the copy",
                    where,
                )
            if row["kind"] == "imported":
                raise RuleError(
                    "csv_profile_not_bindable",
                    f"{name} is a CSV profile: it is bound to its own device only",
                    where,
                )
        with self.store.transaction():
            self.store.set_binding(container, key, names)
            self.ctx.config_changed()
        self.ctx.log(actor, "deploy", f"{container}/{key}", profiles=names)
        return self.get(container, key)

    def device_context(self, device_id: str) -> DeviceContext:
        row = self.store.device(device_key(device_id))
        if row is None:
            raise not_found("device", device_id)
        return DeviceContext(
            row["id"], row["site"], row["model"], tuple(self.store.device_groups(row["id"]))
        )

    def effective(self, device_id: str) -> EffectiveConfig:
        return self.effective_for(self.device_context(device_id))

    def effective_for(self, ctx: DeviceContext) -> EffectiveConfig:
        """Resolve a device; its CSV profile (if any) comes first, at the highest priority."""
        snapshot = self.ctx.config()
        empty: Sequence[str] = ()
        chain = profile_chain(ctx, lambda c, k: snapshot.bindings.get((c, k), empty))
        csv_profile = snapshot.csv_profile_of.get(ctx.device)
        if csv_profile is not None:
            chain = (ChainLink("device", ctx.device, csv_profile), *chain)
        return resolve(chain, snapshot.profiles)

    def effective_out(self, device_id: str) -> dict[str, Any]:
        result = self.effective(device_id)
        software: dict[str, Any] | None = None
        if result.software is not None:
            image = self.store.image(result.software.image)
            software = {
                "image": result.software.image,
                "profile": result.software.profile,
                "container": result.software.container,
                "found": image is not None,
            }
            if image is None:
                software["error"] = "software image not found"
            else:
                software.update(
                    model=image["model"], version=image["version"], filename=image["filename"]
                )
        return {
            "device": self.device_context(device_id).device,
            "parameters": {
                name: {"value": v.value, "profile": v.profile, "container": v.container}
                for name, v in sorted(result.parameters.items())
            },
            "software": software,
            "chain": [
                {"container": link.container, "key": link.key, "profile": link.profile}
                for link in result.chain
            ],
        }
