"""The control plane as one object: every service over one store.

All calls run on one worker thread (`CloudWorker`): SQLite work stays off
the event loop, and writes are serialized without locks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ParamSpec, TypeVar

from relay.cloud.activity import ActivityLog
from relay.cloud.context import Context
from relay.cloud.deployment import Deployment
from relay.cloud.devices import Devices
from relay.cloud.files import Files
from relay.cloud.groups import Groups
from relay.cloud.images import Images
from relay.cloud.monitor import Monitor
from relay.cloud.profiles import Profiles
from relay.cloud.provisioning import Provisioning
from relay.cloud.relaycerts import RelayCerts
from relay.cloud.relayimages import RelayImages
from relay.cloud.relays import Relays
from relay.cloud.rules.relays import DEFAULT_LINK, LinkPolicy
from relay.cloud.secretbox import SecretBox
from relay.cloud.sites import Sites
from relay.cloud.store.store import Store
from relay.cloud.tasks import Tasks
from relay.cloud.tenancy import Tenancy
from relay.cloud.ztp import Ztp

P = ParamSpec("P")
T = TypeVar("T")


class ControlPlane:
    def __init__(
        self,
        data_dir: Path,
        clock: Callable[[], float] = time.time,
        *,
        link: LinkPolicy = DEFAULT_LINK,
    ) -> None:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.ctx = Context(Store(data_dir / "cloud.db"), ActivityLog(data_dir / "activity"), clock)
        self.store = self.ctx.store
        self.activity = self.ctx.activity
        self.tenancy = Tenancy(self.ctx)
        self.sites = Sites(self.ctx)
        self.groups = Groups(self.ctx)
        self.devices = Devices(self.ctx, self.groups)
        self.profiles = Profiles(self.ctx)
        self.deployment = Deployment(self.ctx)
        self.files = Files(self.ctx, data_dir / "files")
        self.images = Images(self.ctx, self.files)
        self.relay_images = RelayImages(self.ctx, self.files)
        self.images.on_delete.append(self.relay_images.image_deleted)
        self.provisioning = Provisioning(
            self.ctx, self.tenancy, self.devices, self.deployment, self.files
        )
        self.relays = Relays(self.ctx, self.tenancy, link)
        self.relay_certs = RelayCerts(self.ctx, SecretBox(data_dir / "secretbox.key"))
        self.monitor = Monitor(self.ctx, self.tenancy, self.relays, link)
        self.tasks = Tasks(self.ctx, self.tenancy, self.relays.places, data_dir / "tasks")
        self.ztp = Ztp(self.ctx, self.tenancy)

    def bootstrap(self) -> str | None:
        """Make a new tenant usable; returns the first admin token if it was just created."""
        _, token = self.tenancy.ensure_tenant()
        self.sites.ensure_defaults()
        self.profiles.install_standard()
        self.relays.ensure_pin()
        return token

    def close(self) -> None:
        self.store.close()


class CloudWorker:
    """Runs control-plane calls on its one thread and awaits them from the loop."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cloud-store")

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    def close(self) -> None:
        self._pool.submit(self.plane.close).result()
        self._pool.shutdown(wait=True)
