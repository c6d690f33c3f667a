"""What `relay images` and the cloud are told: pure formatting."""

from __future__ import annotations

from download_agent.faults import no_room, shortfall, size_text
from download_agent.status import Progress, RateMeter, document, report
from relay.sync.images import CachedImage, ImageReport

IMAGE = CachedImage("0000abcd", "VVX", "6.4.3", "sip.ld", 1000, "a" * 64)


def test_an_image_not_started_yet_is_syncing_at_zero() -> None:
    entry = document([IMAGE], {}, 10, 5, now=1.0)["images"][0]
    assert (entry["status"], entry["progress"], entry["bytes_done"]) == ("syncing", 0.0, 0)


def test_a_syncing_image_shows_its_bytes_progress_and_rate() -> None:
    progress = {IMAGE.sha256: Progress("syncing", 250, 1234.6)}
    entry = document([IMAGE], progress, 10, 5, now=1.0)["images"][0]
    assert (entry["progress"], entry["bytes_done"], entry["rate_bps"]) == (0.25, 250, 1235)


def test_a_failed_image_shows_its_reason_and_no_rate() -> None:
    progress = {IMAGE.sha256: Progress("failed", 250, 99.0, "HTTP 503")}
    entry = document([IMAGE], progress, 10, 5, now=1.0)["images"][0]
    assert (entry["status"], entry["reason"], entry["rate_bps"]) == ("failed", "HTTP 503", 0)


def test_the_document_lists_the_disk_room_and_when() -> None:
    doc = document([IMAGE], {}, free_bytes=10, reserve_bytes=5, now=12.34567)
    assert (doc["free_bytes"], doc["reserve_bytes"], doc["updated"]) == (10, 5, 12.346)
    assert set(doc["images"][0]) == {
        "id", "model", "version", "filename", "size", "status", "progress", "bytes_done",
        "rate_bps", "reason",
    }  # fmt: skip


def test_the_report_reads_back_through_the_wire_model() -> None:
    progress = {IMAGE.sha256: Progress("failed", 0, 0.0, "x" * 2000)}
    sent = report([IMAGE], progress, 10, 5)
    assert ImageReport.from_wire(sent.to_wire()) == sent
    assert len(sent.states[0].reason) == 512


def test_the_rate_follows_the_bytes_per_second() -> None:
    meter = RateMeter()
    meter.update(0, now=0.0)
    for second in range(1, 20):
        rate = meter.update(second * 1000, now=float(second))
    assert 990 <= rate <= 1000


def test_sizes_read_like_a_person_writes_them() -> None:
    assert [size_text(n) for n in (512, 1536, 3 * 2**20, 5 * 2**30)] == [
        "512 B",
        "1.5 KiB",
        "3.0 MiB",
        "5.0 GiB",
    ]


def test_the_space_refusal_says_what_is_missing_and_how_to_fix_it() -> None:
    assert no_room(needed=3 * 2**20, free=2**20, reserve=2**30) == (
        "not enough disk space: needs 1.0 GiB more, 1.0 MiB free, 1.0 GiB kept in reserve; "
        "free space or lower the reserve"
    )


def test_an_image_that_fits_above_the_reserve_is_not_refused() -> None:
    assert shortfall(needed=10, free=20, reserve=10) is None
    assert shortfall(needed=11, free=20, reserve=10) is not None
