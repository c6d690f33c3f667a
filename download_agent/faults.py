"""Why a download failed, in plain words plus what happens next (issue 6: "the
status says why"), and whether the partial bytes are still worth keeping."""

from __future__ import annotations


class FetchFailed(Exception):
    """One failed attempt; `discard` means the partial file must be deleted."""

    def __init__(self, reason: str, *, discard: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.discard = discard


def size_text(count: int) -> str:
    """Bytes as a person reads them: `512 B`, `1.5 MiB`, `2.0 GiB`."""
    if count < 1024:
        return f"{count} B"
    value = count / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def no_room(needed: int, free: int, reserve: int) -> str:
    """The refusal when `needed` more bytes would eat into the reserve."""
    short = needed + reserve - free
    return (
        f"not enough disk space: needs {size_text(short)} more, {size_text(free)} free, "
        f"{size_text(reserve)} kept in reserve; free space or lower the reserve"
    )


def shortfall(needed: int, free: int, reserve: int) -> str | None:
    """None when `needed` bytes fit above the reserve, else the reason they do not."""
    return None if free - needed >= reserve else no_room(needed, free, reserve)
