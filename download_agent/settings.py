"""How the download agent runs: one frozen value, built from flags by `__main__`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

GIB = 2**30
IMAGES_DIR = "images"


@dataclass(frozen=True, slots=True)
class DownloadSettings:
    """`reserve_bytes` is never filled (issue 6: "refuses to fill the disk");
    `rate_limit` caps WAN bytes/s (0 = unlimited); `stall_seconds` is how long a
    download may receive nothing before it counts as stalled."""

    data_dir: Path
    reserve_bytes: int = GIB
    rate_limit: int = 0
    stall_seconds: float = 30.0
    poll_wait: float = 30.0
    report_seconds: float = 2.0
    status_seconds: float = 0.5
    sweep_seconds: float = 5.0
    retry_base: float = 1.0
    retry_cap: float = 300.0
    cloud_ca: Path | None = None

    @property
    def images_dir(self) -> Path:
        return self.data_dir / IMAGES_DIR
