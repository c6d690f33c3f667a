"""Which published image a phone's request names (relay.frontend.firmware, issue 6)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from relay.frontend.firmware import PublishedImages, resolve
from relay.sync.images import CachedImage
from tests.frontend.published import publish

VVX = CachedImage("a1b2c3d4e5f60718", "VVX", "6.4.3", "sip.ld", 10, "0" * 64)
TRIO = CachedImage("0718a1b2c3d4e5f6", "Trio", "7.2.0", "sip.ld", 10, "1" * 64)
SET = (VVX,)


def test_the_image_path_the_cloud_writes_names_the_image() -> None:
    assert resolve(SET, f"/images/{VVX.id}/sip.ld") == VVX


def test_the_part_number_the_phone_puts_in_front_still_names_the_image() -> None:
    assert resolve(SET, f"images/{VVX.id}/3111-44500-001.sip.ld") == VVX


def test_another_file_name_under_the_image_is_not_the_image() -> None:
    assert resolve(SET, f"images/{VVX.id}/other.ld") is None


def test_an_unknown_image_id_is_relayed() -> None:
    assert resolve(SET, "images/ffffffffffffffff/sip.ld") is None


def test_a_root_name_serves_the_only_image_with_that_file_name() -> None:
    assert resolve(SET, "3111-44500-001.sip.ld") == VVX


def test_a_root_name_chooses_by_the_part_numbers_model_family() -> None:
    assert resolve((VVX, TRIO), "3111-44500-001.sip.ld") == VVX


def test_an_ambiguous_root_name_is_left_to_the_cloud() -> None:
    assert resolve((VVX, TRIO), "sip.ld") is None


def test_dot_dot_and_backslashes_never_name_an_image() -> None:
    assert resolve(SET, f"images/{VVX.id}/../{VVX.id}/sip.ld") is None
    assert resolve(SET, "images\\sip.ld") is None


def test_no_index_means_nothing_is_served(tmp_path: Path) -> None:
    assert PublishedImages(tmp_path).find("sip.ld") is None


def test_an_unreadable_index_serves_nothing(tmp_path: Path) -> None:
    (tmp_path / "index.json").write_bytes(b"{not json")
    assert PublishedImages(tmp_path).images() == ()


def test_a_replaced_index_is_read_again(tmp_path: Path) -> None:
    images = PublishedImages(tmp_path)
    publish(tmp_path, b"first", filename="a.ld")
    assert images.find("a.ld") is not None
    publish(tmp_path, b"second", filename="b.ld")
    assert images.find("b.ld") is not None


def test_open_holds_a_shared_lock_until_closed(tmp_path: Path) -> None:
    image = publish(tmp_path, b"firmware")
    opened = PublishedImages(tmp_path).open("sip.ld")
    assert opened is not None
    fd, served = opened
    blob = os.open(tmp_path / "blobs" / image.sha256, os.O_RDONLY)
    try:
        assert served == image
        assert os.pread(fd, 100, 0) == b"firmware"
        try:
            fcntl.flock(blob, fcntl.LOCK_EX | fcntl.LOCK_NB)
            raise AssertionError("the blob was not locked while served")
        except BlockingIOError:
            pass
        os.close(fd)
        fcntl.flock(blob, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(blob)


def test_a_blob_of_the_wrong_size_is_not_served(tmp_path: Path) -> None:
    image = publish(tmp_path, b"firmware")
    (tmp_path / "blobs" / image.sha256).write_bytes(b"firm")
    assert PublishedImages(tmp_path).open("sip.ld") is None
