"""Where the relay looks for firmware it can serve from its own disk.

The download agent (issue 6) publishes verified images under `<data-dir>/images/`;
a firmware request whose file is there is answered locally, anything else is
relayed to the cloud (architecture.md, data flow 1). Names arrive already
screened by relay.proto.polycom.paths (or relay.proto.tftp.names), and the
lookup re-checks that the answer lies under the root anyway.
"""

from __future__ import annotations

from pathlib import Path

FIRMWARE_SUFFIXES = (".ld", ".bin", ".tar", ".img")


class ImageDirectory:
    """Published images, looked up by the name the phone asked for."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def find(self, name: str) -> Path | None:
        """The file to serve for request path `name`, or None to relay it."""
        relative = name.lstrip("/")
        if not relative.endswith(FIRMWARE_SUFFIXES) or "\\" in relative or "\0" in relative:
            return None
        root = self.root.resolve()
        candidate = (root / relative).resolve()
        if not candidate.is_relative_to(root) or not candidate.is_file():
            return None
        return candidate
