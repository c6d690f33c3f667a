"""Files the control plane keeps on disk: resource files, device files, what phones
upload (logs and override files), and firmware images.

Layout under `<cloud dir>/files/`: `resources/<name>`, `device/<name>`,
`uploads/<mac>/<name>`, `logs/<mac>/<YYYY-MM-DD>/<name>`, `blobs/<sha256>`.
Every replacement is written to a temporary file and renamed, so a reader sees
the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path
from typing import Any

from relay.cloud.context import Context, not_found
from relay.cloud.rules.errors import RuleError
from relay.cloud.rules.files import (
    LOG_KEEP_DAYS,
    MAX_LOG_DAY_BYTES,
    check_device_file,
    check_resource_name,
    expired_log_days,
    log_day,
)

_LOG_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


class Files:
    def __init__(self, ctx: Context, root: Path) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.root = root
        for sub in ("resources", "device", "uploads", "logs", "blobs", "incoming"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    # -- resource files ------------------------------------------------------

    def put_resource(self, name: str, data: bytes, actor: str) -> dict[str, Any]:
        check_resource_name(name, len(data))
        write_atomically(self.root / "resources" / name, data)
        row = {
            "kind": "resource",
            "name": name,
            "directory": "",
            "device_id": None,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "created": self.ctx.now(),
        }
        with self.store.transaction():
            self.store.put_file(row)
        self.ctx.log(actor, "upload", f"resource/{name}", size=len(data))
        return row

    def resources(self) -> list[dict[str, Any]]:
        return self.store.files("resource")

    def resource_path(self, name: str) -> Path:
        if self.store.file("resource", name) is None:
            raise not_found("resource file", name)
        return self.root / "resources" / name

    def _refuse_if_bound(self, kind: str, name: str) -> None:
        users = self.store.file_users(kind, name)
        if users:
            where = ", ".join(f"{u['profile']}:{u['parameter']}" for u in users[:5])
            raise RuleError(
                "file_in_use",
                f"{name} is bound to profile parameters ({where}); unbind first",
                "name",
                status=409,
            )

    def delete_resource(self, name: str, actor: str) -> None:
        self._refuse_if_bound("resource", name)
        if not self.store.delete_file("resource", name):
            raise not_found("resource file", name)
        (self.root / "resources" / name).unlink(missing_ok=True)
        self.ctx.log(actor, "delete", f"resource/{name}")

    # -- device files --------------------------------------------------------

    def put_device_file(self, name: str, directory: str, data: bytes, actor: str) -> dict[str, Any]:
        mac, name = check_device_file(name, directory, len(data))
        if mac is not None and self.store.device(mac) is None:
            raise not_found("device", mac, "name")
        write_atomically(self.root / "device" / name, data)
        row = {
            "kind": "device",
            "name": name,
            "directory": directory,
            "device_id": mac,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "created": self.ctx.now(),
        }
        with self.store.transaction():
            self.store.put_file(row)
            self.ctx.config_changed()
        self.ctx.log(actor, "upload", f"device-file/{name}", size=len(data))
        return row

    def device_files(self) -> list[dict[str, Any]]:
        return self.store.files("device")

    def device_file(self, name: str) -> tuple[dict[str, Any], Path] | None:
        row = self.store.file("device", name)
        if row is None:
            return None
        return row, self.root / "device" / name

    def delete_device_file(self, name: str, actor: str) -> None:
        self._refuse_if_bound("device", name)
        with self.store.transaction():
            if not self.store.delete_file("device", name):
                raise not_found("device file", name)
            self.ctx.config_changed()
        (self.root / "device" / name).unlink(missing_ok=True)
        self.ctx.log(actor, "delete", f"device-file/{name}")

    # -- what phones upload --------------------------------------------------

    def _log_path(self, mac: str, day: str, name: str) -> Path:
        return self.root / "logs" / mac / day / name

    def append_log(self, mac: str, name: str, data: bytes) -> int:
        """Phones PUT their logs repeatedly; each PUT is appended to the day's file."""
        now = self.ctx.now()
        path = self._log_path(mac, log_day(now), name)
        path.parent.mkdir(parents=True, exist_ok=True)
        size = path.stat().st_size if path.exists() else 0
        if size + len(data) > MAX_LOG_DAY_BYTES:
            raise RuleError("too_large", "this log has reached its daily limit", status=413)
        with path.open("ab") as fh:
            fh.write(data)
        self.prune_logs(mac)
        return size + len(data)

    def log_size(self, mac: str, name: str) -> int | None:
        path = self._log_path(mac, log_day(self.ctx.now()), name)
        return path.stat().st_size if path.exists() else None

    def put_upload(self, mac: str, name: str, data: bytes) -> None:
        write_atomically(self.root / "uploads" / mac / name, data)

    def upload_path(self, mac: str, name: str) -> Path | None:
        path = self.root / "uploads" / mac / name
        return path if path.is_file() else None

    def prune_logs(self, mac: str) -> None:
        base = self.root / "logs" / mac
        if not base.is_dir():
            return
        days = [p.name for p in base.iterdir() if p.is_dir()]
        for day in expired_log_days(days, self.ctx.now()):
            shutil.rmtree(base / day, ignore_errors=True)

    def logs(self, mac: str) -> dict[str, Any]:
        """Log files by date, newest first (kept LOG_KEEP_DAYS days)."""
        self.prune_logs(mac)
        base = self.root / "logs" / mac
        days = (
            sorted((p for p in base.iterdir() if p.is_dir()), reverse=True) if base.is_dir() else []
        )
        return {
            "keep_days": LOG_KEEP_DAYS,
            "days": [
                {
                    "date": d.name,
                    "files": [
                        {"name": f.name, "size": f.stat().st_size} for f in sorted(d.iterdir())
                    ],
                }
                for d in days
            ],
            "uploads": sorted(p.name for p in (self.root / "uploads" / mac).glob("*"))
            if (self.root / "uploads" / mac).is_dir()
            else [],
        }

    def log_path(self, mac: str, day: str, name: str) -> Path:
        """A stored log, by names the API was given: only `<mac>-boot.log`/`<mac>-app.log`
        of that device and a real date, so nothing outside its folder can be named."""
        if not _LOG_DAY.fullmatch(day) or name not in (f"{mac}-boot.log", f"{mac}-app.log"):
            raise not_found("log", f"{day}/{name}")
        path = self._log_path(mac, day, name)
        if not path.is_file():
            raise not_found("log", f"{day}/{name}")
        return path

    def delete_log(self, mac: str, day: str, name: str, actor: str) -> None:
        self.log_path(mac, day, name).unlink()
        self.ctx.log(actor, "delete", f"device/{mac}/logs/{day}/{name}")

    # -- firmware images -----------------------------------------------------

    def incoming(self) -> Path:
        """A fresh temporary path on the same file system as the blobs."""
        return self.root / "incoming" / os.urandom(8).hex()

    def blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256

    def publish_blob(self, tmp: Path, sha256: str) -> Path:
        """Content-addressed: the same image uploaded twice is stored once."""
        final = self.blob_path(sha256)
        if final.exists():
            tmp.unlink(missing_ok=True)
        else:
            tmp.replace(final)
        return final
