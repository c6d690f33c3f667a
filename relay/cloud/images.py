"""Software images known to the control plane; each produces a software profile
(cloud.md "Software"). Uploaded images are stored once per content and served to
phones; relay caching comes with the download agent."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from relay.cloud.context import Context, not_found
from relay.cloud.files import Files
from relay.cloud.rules.errors import RuleError
from relay.cloud.rules.names import check_name

_SHA256 = re.compile(r"[0-9a-f]{64}")
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.\-_]{0,63}")
_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-_]{0,127}")
MAX_IMAGE = 4 * 2**30
_URL = re.compile(r"https?://[^\s\\]{1,1000}")


def software_profile_name(model: str, version: str) -> str:
    return f"Software-{model}-{version}"


class Images:
    def __init__(self, ctx: Context, files: Files) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.files = files
        # Run inside the deleting transaction, before the row goes: the relay image set
        # drops the image and wakes the relays watching it.
        self.on_delete: list[Callable[[str], None]] = []

    def listing(self) -> list[dict[str, Any]]:
        return self.store.images()

    def get(self, image_id: str) -> dict[str, Any]:
        row = self.store.image(image_id)
        if row is None:
            raise not_found("image", image_id)
        return row

    def register(self, body: Mapping[str, Any], actor: str) -> dict[str, Any]:
        """Register an image by its facts: model family, version, file name, size, sha256."""
        facts = self._facts(body)
        url = body.get("url", "")
        if url and (not isinstance(url, str) or not _URL.fullmatch(url)):
            raise RuleError("invalid_url", "url must be an http(s) URL", "url")
        size = body.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_IMAGE:
            raise RuleError("invalid_size", "size must be a byte count up to 4 GiB", "size")
        sha256 = body.get("sha256")
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise RuleError("invalid_sha256", "sha256 must be 64 lowercase hex digits", "sha256")
        return self._add({**facts, "size": size, "sha256": sha256, "url": url, "stored": 0}, actor)

    def add_upload(
        self, query: Mapping[str, str], tmp: Path, size: int, sha256: str, actor: str
    ) -> dict[str, Any]:
        """An uploaded image file (already streamed to `tmp` and hashed); stored once per
        content, served to phones from the provisioning service."""
        try:
            facts = self._facts(query)
            if not 0 < size <= MAX_IMAGE:
                raise RuleError("invalid_size", "an image is 1 byte to 4 GiB", "body")
            self.files.publish_blob(tmp, sha256)
        finally:
            tmp.unlink(missing_ok=True)
        return self._add({**facts, "size": size, "sha256": sha256, "url": "", "stored": 1}, actor)

    @staticmethod
    def _facts(body: Mapping[str, Any]) -> dict[str, str]:
        def text(key: str, pattern: re.Pattern[str], example: str) -> str:
            value = body.get(key)
            if not isinstance(value, str) or not pattern.fullmatch(value):
                raise RuleError("invalid_" + key, f"{key} must look like {example}", key)
            return value

        return {
            "model": check_name(text("model", _VERSION, "VVX"), "model", "model family"),
            "version": text("version", _VERSION, "6.4.3"),
            "filename": text("filename", _FILENAME, "sip.ld"),
        }

    def _add(self, facts: dict[str, Any], actor: str) -> dict[str, Any]:
        model, version = facts["model"], facts["version"]
        profile = software_profile_name(model, version)
        if self.store.profile(profile) is not None:
            raise RuleError(
                "exists",
                f"{model} {version} is already registered ({profile})",
                "version",
                status=409,
            )
        row = {"id": uuid.uuid4().hex[:16], **facts, "created": self.ctx.now()}
        with self.store.transaction():
            self.store.insert_image(row)
            self.store.insert_profile(
                {
                    "name": profile,
                    "kind": "software",
                    "software": row["id"],
                    "description": f"{model} software {version}",
                    "modified": self.ctx.now(),
                    "modified_by": "system",
                }
            )
            self.ctx.config_changed()
        self.ctx.log(actor, "add", f"image/{row['id']}", model=model, version=version)
        return row

    def delete(self, image_id: str, actor: str) -> None:
        """Profiles that chose the image then say "software image not found"."""
        row = self.get(image_id)
        with self.store.transaction():
            for hook in self.on_delete:
                hook(image_id)
            self.store.delete_image(image_id)
            self.store.delete_profile(software_profile_name(row["model"], row["version"]))
            self.ctx.config_changed()
        self.ctx.log(actor, "delete", f"image/{image_id}")
