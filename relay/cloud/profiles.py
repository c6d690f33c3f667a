"""Configuration profiles of the four types (cloud.md "Configuration profiles").

Standard profiles are shipped and read-only; user-defined ones are edited
freely; software profiles are generated per image; user-imported ones come
from device CSV files and belong to one device. Names are unique across all
types.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any

from relay.cloud.context import Context, conflict, not_found
from relay.cloud.rules.devices_csv import csv_parameters
from relay.cloud.rules.errors import RuleError
from relay.cloud.rules.profiles import check_parameters, check_profile_name
from relay.cloud.rules.standard_profiles import NEW_TENANT_GLOBAL, STANDARD_PROFILES
from relay.proto.polycom.cfgfile import ConfigFileError, parse_config, render_config

KINDS = ("standard", "user", "software", "imported")
MAX_DESCRIPTION = 512
MAX_IMPORT_BYTES = 5 * 1024 * 1024


def _description(body: Mapping[str, Any]) -> str:
    value = body.get("description", "")
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise RuleError(
            "invalid_description",
            f"description must be text of at most {MAX_DESCRIPTION} characters",
            "description",
        )
    return value


def _parameters(body: Mapping[str, Any]) -> dict[str, str]:
    value = body.get("parameters", {})
    if not isinstance(value, dict):
        raise RuleError("invalid_type", "parameters must be an object of name: value", "parameters")
    return check_parameters(value)


class Profiles:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.store = ctx.store

    def install_standard(self) -> None:
        """Ship the standard set; a new tenant also gets NEW_TENANT_GLOBAL bound at Global."""
        now = self.ctx.now()
        new_tenant = not self.store.profiles("standard")
        with self.store.transaction():
            for std in STANDARD_PROFILES:
                existing = self.store.profile(std.name)
                if existing is None:
                    self.store.insert_profile(
                        {
                            "name": std.name,
                            "kind": "standard",
                            "description": std.description,
                            "modified": now,
                            "modified_by": "system",
                        }
                    )
                elif existing["kind"] != "standard":
                    continue
                self.store.set_parameters(std.name, dict(std.parameters))
            if new_tenant:
                self.store.set_binding("global", "-", list(NEW_TENANT_GLOBAL))
            self.ctx.config_changed()

    def _row(self, name: str) -> dict[str, Any]:
        row = self.store.profile(name)
        if row is None:
            raise not_found("profile", name)
        return row

    def _software(self, image_id: str | None) -> dict[str, Any] | None:
        if image_id is None:
            return None
        image = self.store.image(image_id)
        if image is None:
            return {"image": image_id, "found": False, "error": "software image not found"}
        return {
            "image": image_id,
            "found": True,
            "model": image["model"],
            "version": image["version"],
            "filename": image["filename"],
        }

    def _out(self, row: Mapping[str, Any], full: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": row["name"],
            "type": row["kind"],
            "description": row["description"],
            "software": self._software(row["software"]),
            "device": row["owner_device"],
            "modified": row["modified"],
            "modified_by": row["modified_by"],
        }
        if full:
            out["parameters"] = self.store.parameters(row["name"])
            out["files"] = [
                {"parameter": f["parameter"], "kind": f["kind"], "file": f["file"]}
                for f in self.store.profile_files(row["name"])
                if out["parameters"].get(f["parameter"]) == f["file"]
            ]
            out["bindings"] = [
                {"container": c, "key": k} for c, k in self.store.bindings_of_profile(row["name"])
            ]
            if row["owner_device"]:
                out["bindings"].insert(0, {"container": "device", "key": row["owner_device"]})
        return out

    def listing(self, kind: str | None = None) -> list[dict[str, Any]]:
        if kind is not None and kind not in KINDS:
            raise RuleError("invalid_type", f"type must be one of {', '.join(KINDS)}", "type", 400)
        return [self._out(r, full=False) for r in self.store.profiles(kind)]

    def get(self, name: str) -> dict[str, Any]:
        return self._out(self._row(name), full=True)

    def _files(self, body: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
        """`files`: {parameter: file name} binds a parameter to a resource file or a global
        device file; the parameter's value becomes the file's name, which phones fetch
        from the provisioning server (cloud.md "Resource and device files")."""
        value = body.get("files", {})
        if not isinstance(value, dict):
            raise RuleError("invalid_type", "files must be an object of parameter: file", "files")
        out: dict[str, tuple[str, str]] = {}
        for parameter, file in value.items():
            where = f"files.{parameter}"
            if not isinstance(file, str):
                raise RuleError("invalid_type", "a file name must be a string", where)
            check_parameters({parameter: file}, "files")
            if self.store.file("resource", file) is not None:
                out[parameter] = ("resource", file)
            elif (row := self.store.file("device", file)) is not None and row["device_id"] is None:
                out[parameter] = ("device", file)
            else:
                raise RuleError(
                    "unknown_file",
                    f"{file!r} is neither a resource file nor a global device file",
                    where,
                    status=404,
                )
        return out

    def _check_software(self, value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or self.store.image(value) is None:
            raise RuleError("unknown_image", f"software image {value!r} does not exist", "software")
        return value

    def _check_new_name(self, value: object) -> str:
        name = check_profile_name(value if isinstance(value, str) else "")
        existing = self.store.profile(name)
        if existing is not None:
            raise conflict(
                "exists", f"a {existing['kind']} profile is already named {name!r}", "name"
            )
        return name

    def create(self, body: Mapping[str, Any], actor: str) -> dict[str, Any]:
        name = self._check_new_name(body.get("name"))
        row = {
            "name": name,
            "kind": "user",
            "description": _description(body),
            "software": self._check_software(body.get("software")),
            "modified": self.ctx.now(),
            "modified_by": actor,
        }
        params = _parameters(body)
        files = self._files(body)
        params.update({p: f for p, (_, f) in files.items()})
        with self.store.transaction():
            self.store.insert_profile(row)
            self.store.set_parameters(name, params)
            for parameter, (kind, file) in files.items():
                self.store.bind_file(name, parameter, kind, file)
            self.ctx.config_changed()
        self.ctx.log(actor, "add", f"profile/{name}")
        return self.get(name)

    def _editable(self, name: str) -> dict[str, Any]:
        row = self._row(name)
        if row["kind"] in ("standard", "software"):
            raise RuleError(
                "read_only",
                f"{name} is a {row['kind']} profile and cannot be changed; copy it instead",
                "name",
                status=403,
            )
        return row

    def update(self, name: str, body: Mapping[str, Any], actor: str) -> dict[str, Any]:
        """Edit; `parameters` replaces the set, `add_parameters` merges (latest edit wins)."""
        row = self._editable(name)
        changes: dict[str, Any] = {"modified": self.ctx.now(), "modified_by": actor}
        new = name
        if "name" in body and body["name"] != name:
            if row["kind"] == "imported":
                raise RuleError("read_only", "a CSV profile keeps its device's name", "name", 403)
            new = self._check_new_name(body["name"])
            changes["name"] = new
        if "description" in body:
            changes["description"] = _description(body)
        if "software" in body:
            changes["software"] = self._check_software(body["software"])
        params: dict[str, str] | None = None
        if "parameters" in body:
            params = _parameters(body)
        if "add_parameters" in body:
            added = _parameters({"parameters": body["add_parameters"]})
            params = {**(params if params is not None else self.store.parameters(name)), **added}
        files = self._files(body)
        if files:
            base = params if params is not None else self.store.parameters(name)
            params = {**base, **{p: f for p, (_, f) in files.items()}}
        if params is not None and row["kind"] == "imported":
            params = csv_parameters(params, self.store.csv_parameter_spellings())
        with self.store.transaction():
            self.store.update_profile(name, changes)
            if params is not None:
                self.store.set_parameters(new, params)
            for parameter, (kind, file) in files.items():
                self.store.bind_file(new, parameter, kind, file)
            self.ctx.config_changed()
        self.ctx.log(actor, "edit", f"profile/{name}", fields=sorted(body))
        return self.get(new)

    def delete(self, name: str, actor: str) -> None:
        """Deleting removes every binding of the profile (ON DELETE CASCADE)."""
        self._editable(name)
        with self.store.transaction():
            self.store.delete_profile(name)
            self.ctx.config_changed()
        self.ctx.log(actor, "delete", f"profile/{name}")

    def copy(self, name: str, body: Mapping[str, Any], actor: str) -> dict[str, Any]:
        """Copy any profile into a new user-defined one (how templates are used)."""
        source = self._row(name)
        new = self._check_new_name(body.get("name"))
        description = _description(body) if "description" in body else source["description"]
        with self.store.transaction():
            self.store.insert_profile(
                {
                    "name": new,
                    "kind": "user",
                    "description": description,
                    "software": source["software"],
                    "modified": self.ctx.now(),
                    "modified_by": actor,
                }
            )
            self.store.set_parameters(new, self.store.parameters(name))
            self.ctx.config_changed()
        self.ctx.log(actor, "copy", f"profile/{name}", to=new)
        return self.get(new)

    def import_file(self, name: str, data: bytes, actor: str) -> dict[str, Any]:
        """Merge the parameters of a `.cfg`/`.xml` file into a profile (latest edit wins)."""
        self._editable(name)
        try:
            parsed = parse_config(data, max_bytes=MAX_IMPORT_BYTES)
        except ConfigFileError as exc:
            raise RuleError("invalid_config_file", exc.message, "body") from exc
        return self.update(name, {"add_parameters": parsed}, actor)

    def export_zip(self, names: Sequence[str] | None = None) -> bytes:
        """One `<name>.cfg` per user-defined profile, plus `profiles.json` describing them."""
        rows = self.store.profiles("user")
        if names is not None:
            wanted = set(names)
            for n in wanted:
                row = self._row(n)
                if row["kind"] != "user":
                    raise RuleError(
                        "not_exportable",
                        f"{n} is a {row['kind']} profile; only user-defined profiles are exported",
                        "name",
                    )
            rows = [r for r in rows if r["name"] in wanted]
        manifest = []
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for row in rows:
                params = self.store.parameters(row["name"])
                zf.writestr(f"{row['name']}.cfg", render_config(params))
                manifest.append(
                    {
                        "name": row["name"],
                        "description": row["description"],
                        "software": row["software"],
                        "file": f"{row['name']}.cfg",
                    }
                )
            zf.writestr("profiles.json", json.dumps(manifest, indent=2))
        return buffer.getvalue()
