"""Device groups: priorities, top priority, default groups for auto-added devices
(cloud.md "Devices and device groups")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from relay.cloud.context import Context, conflict, not_found
from relay.cloud.rules.errors import RuleError
from relay.cloud.rules.names import check_name

MAX_DESCRIPTION = 512


def name_list(value: object, field: str) -> list[str]:
    """A JSON list of distinct names."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RuleError("invalid_type", f"{field} must be a list of names", field)
    if len(set(value)) != len(value):
        raise RuleError("duplicate", f"{field} lists a name twice", field)
    return list(value)


def _description(body: Mapping[str, Any]) -> str:
    value = body.get("description", "")
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise RuleError(
            "invalid_description", f"description must be text of at most {MAX_DESCRIPTION}"
        )
    return value


class Groups:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.store = ctx.store

    def _out(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "name": row["name"],
            "description": row["description"],
            "default": row["default_rank"] is not None,
            "device_count": row.get("device_count", 0),
        }

    def listing(self) -> list[dict[str, Any]]:
        return [self._out(r) for r in self.store.groups()]

    def get(self, name: str) -> dict[str, Any]:
        row = self.store.group(name)
        if row is None:
            raise not_found("device group", name)
        out = self._out(row)
        out["devices"] = self.store.group_members(name)
        out["device_count"] = len(out["devices"])
        out["profiles"] = self.store.binding("group", name)
        return out

    def require(self, names: Sequence[str], field: str) -> None:
        known = self.store.group_names()
        for name in names:
            if name not in known:
                raise RuleError(
                    "unknown_group", f"device group {name!r} does not exist", field, status=404
                )

    def create(self, body: Mapping[str, Any], actor: str) -> dict[str, Any]:
        name = body.get("name")
        name = check_name(name if isinstance(name, str) else "", "name", "group name")
        if self.store.group(name) is not None:
            raise conflict("exists", f"a device group named {name!r} already exists", "name")
        self.store.insert_group(
            {"name": name, "description": _description(body), "created": self.ctx.now()}
        )
        self.ctx.log(actor, "add", f"group/{name}")
        return self.get(name)

    def update(self, name: str, body: Mapping[str, Any], actor: str) -> dict[str, Any]:
        if self.store.group(name) is None:
            raise not_found("device group", name)
        changes: dict[str, Any] = {}
        if "description" in body:
            changes["description"] = _description(body)
        new = name
        if "name" in body and body["name"] != name:
            raw = body["name"]
            new = check_name(raw if isinstance(raw, str) else "", "name", "group name")
            if self.store.group(new) is not None:
                raise conflict("exists", f"a device group named {new!r} already exists", "name")
            changes["name"] = new
        with self.store.transaction():
            if changes:
                self.store.update_group(name, changes)
            self.ctx.config_changed()
        self.ctx.log(actor, "edit", f"group/{name}", fields=sorted(body))
        return self.get(new)

    def delete(self, name: str, actor: str) -> None:
        """Deleting a group removes its device and profile associations."""
        with self.store.transaction():
            if not self.store.delete_group(name):
                raise not_found("device group", name)
            self.ctx.config_changed()
        self.ctx.log(actor, "delete", f"group/{name}")

    def set_top_priority(self, name: str, actor: str) -> dict[str, Any]:
        if self.store.group(name) is None:
            raise not_found("device group", name)
        with self.store.transaction():
            self.store.set_group_top_priority(name)
        self.ctx.log(actor, "top_priority", f"group/{name}")
        return self.get(name)

    def change_members(
        self, name: str, add: Sequence[str], remove: Sequence[str], actor: str
    ) -> dict[str, Any]:
        if self.store.group(name) is None:
            raise not_found("device group", name)
        found = self.store.devices_by_ids([*add, *remove])
        missing = [d for d in [*add, *remove] if d not in found]
        if missing:
            raise RuleError(
                "unknown_device",
                f"unknown device(s): {', '.join(missing[:10])}",
                "devices",
                status=404,
            )
        with self.store.transaction():
            self.store.add_group_members(name, add)
            self.store.remove_group_members(name, remove)
        self.ctx.log(actor, "edit", f"group/{name}", added=len(add), removed=len(remove))
        return self.get(name)

    def default_groups(self) -> list[str]:
        return self.store.default_groups()

    def set_default_groups(self, value: object, actor: str) -> list[str]:
        names = name_list(value, "groups")
        self.require(names, "groups")
        with self.store.transaction():
            self.store.set_default_groups(names)
        self.ctx.log(actor, "edit", "default-groups", groups=names)
        return self.store.default_groups()
