"""Behaviours of the provisioning request-path classifier (phones.md section 2)."""

from __future__ import annotations

import pytest

from relay.proto.polycom.paths import (
    MAX_NAME,
    MAX_PATH,
    UPLOAD_SUFFIXES,
    PathRejected,
    ProvPath,
    classify,
)

MAC = "0004f2a1b2c3"


def _rejected(raw: str) -> str:
    with pytest.raises(PathRejected) as info:
        classify(raw)
    return info.value.message


def test_default_master() -> None:
    assert classify("/000000000000.cfg") == ProvPath("default_master", "000000000000.cfg", "", None)


def test_master_by_mac() -> None:
    assert classify(f"/{MAC}.cfg") == ProvPath("master", f"{MAC}.cfg", "", MAC)


def test_master_mac_in_upper_case_is_lower_cased() -> None:
    assert classify("/0004F2A1B2C3.cfg") == ProvPath("master", f"{MAC}.cfg", "", MAC)


def test_generated_profile() -> None:
    assert classify(f"/{MAC}-profile.cfg") == ProvPath("generated", f"{MAC}-profile.cfg", "", MAC)


@pytest.mark.parametrize("suffix", UPLOAD_SUFFIXES)
def test_each_upload_suffix_is_an_upload(suffix: str) -> None:
    assert classify(f"/{MAC}{suffix}") == ProvPath("upload", f"{MAC}{suffix}", "", MAC)


def test_upload_in_a_directory_keeps_the_directory() -> None:
    assert classify(f"/logs/{MAC}-app.log") == ProvPath("upload", f"{MAC}-app.log", "logs", MAC)


def test_directory_is_matched_case_insensitively_and_lower_cased() -> None:
    assert classify(f"/Logs/{MAC}-boot.log").directory == "logs"


def test_other_mac_file_is_a_device_file() -> None:
    assert classify(f"/{MAC}-license.cfg") == ProvPath("device_file", f"{MAC}-license.cfg", "", MAC)


def test_global_file() -> None:
    assert classify("/000000000000-license.cfg") == ProvPath(
        "global_file", "000000000000-license.cfg", "", None
    )


def test_global_directory_is_a_global_file_not_an_upload() -> None:
    assert classify("/000000000000-directory.xml").kind == "global_file"


def test_firmware_is_a_resource() -> None:
    assert classify("/3111-44500-001.sip.ld") == ProvPath(
        "resource", "3111-44500-001.sip.ld", "", None
    )


def test_resource_in_a_directory() -> None:
    assert classify("/misc/ring.wav") == ProvPath("resource", "ring.wav", "misc", None)


def test_mac_prefixed_name_of_no_listed_shape_is_a_resource() -> None:
    assert classify(f"/{MAC}.log") == ProvPath("resource", f"{MAC}.log", "", None)


def test_image() -> None:
    assert classify("/images/0123abcd/sip.ld") == ProvPath("image", "sip.ld", "", None, "0123abcd")


def test_query_is_ignored() -> None:
    assert classify(f"/{MAC}.cfg?nocache=1&x=/../..").kind == "master"


def test_percent_encoded_safe_characters_are_decoded_once() -> None:
    assert classify("/site%2Ecfg").name == "site.cfg"


def test_master_in_a_directory_is_rejected() -> None:
    assert "root only" in _rejected(f"/misc/{MAC}.cfg")


def test_generated_in_a_directory_is_rejected() -> None:
    assert "root only" in _rejected(f"/misc/{MAC}-profile.cfg")


def test_unknown_directory_is_rejected() -> None:
    assert "not a served directory" in _rejected("/etc/passwd")


def test_images_under_a_directory_is_rejected() -> None:
    _rejected("/misc/0123abcd/sip.ld")


def test_image_id_in_upper_case_is_rejected() -> None:
    assert "image id" in _rejected("/images/0123ABCD/sip.ld")


def test_image_id_too_short_is_rejected() -> None:
    _rejected("/images/0123abc/sip.ld")


def test_image_without_a_file_is_rejected() -> None:
    _rejected("/images/0123abcd")


def test_more_than_three_segments_are_rejected() -> None:
    assert "segments" in _rejected("/images/0123abcd/x/sip.ld")


def test_path_not_starting_with_a_slash_is_rejected() -> None:
    _rejected(f"{MAC}.cfg")


def test_root_alone_is_rejected() -> None:
    assert "empty segment" in _rejected("/")


def test_double_slash_is_rejected() -> None:
    assert "empty segment" in _rejected("//misc/a.cfg")


def test_trailing_slash_is_rejected() -> None:
    _rejected("/misc/")


def test_space_is_rejected() -> None:
    _rejected("/my file.cfg")


def test_encoded_space_is_rejected() -> None:
    _rejected("/my%20file.cfg")


def test_nul_is_rejected() -> None:
    _rejected("/a.cfg%00.ld")


def test_control_character_is_rejected() -> None:
    _rejected("/a\r\n.cfg")


def test_backslash_is_rejected() -> None:
    _rejected("/misc\\a.cfg")


def test_drive_path_is_rejected() -> None:
    _rejected("/C:/a.cfg")


def test_double_encoding_is_rejected() -> None:
    assert "double encoding" in _rejected("/a%2525.cfg")


def test_malformed_percent_escape_is_rejected() -> None:
    _rejected("/a%2.cfg")


def test_name_starting_with_a_dot_is_rejected() -> None:
    _rejected("/.htaccess")


def test_name_over_the_limit_is_rejected() -> None:
    _rejected("/" + "a" * (MAX_NAME + 1))


def test_name_at_the_limit_is_accepted() -> None:
    assert classify("/" + "a" * MAX_NAME).kind == "resource"


def test_path_over_the_limit_is_rejected() -> None:
    _rejected("/misc/" + "%61" * (MAX_PATH // 3))


def test_non_ascii_is_rejected() -> None:
    _rejected("/caf\u00e9.cfg")


def test_non_string_is_rejected() -> None:
    _rejected(b"/a.cfg")  # type: ignore[arg-type]


TRAVERSALS = [
    "/../../etc/passwd",
    "/..",
    "/.",
    "/misc/..",
    "/misc/../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/%2E%2E/%2E%2E/etc/passwd",
    "/%2e%2E",
    "/.%2e",
    "/misc/%2e%2e",
    "/..%2f..%2fetc%2fpasswd",
    "/..%2F..%2Fetc%2Fpasswd",
    "/misc/..%2f0004f2a1b2c3.cfg",
    "/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/%252e%252e/%252e%252e/etc/passwd",
    "/%252e%252e%252f%252e%252e%252fetc%252fpasswd",
    "/%25252e%25252e",
    "/..%5c..%5cetc%5cpasswd",
    "/..%5C..%5Cetc%5Cpasswd",
    "/misc/..%5cpasswd",
    "/..\\..\\etc\\passwd",
    "/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
    "/%C0%AE%C0%AE%C0%AF%C0%AE%C0%AE%C0%AFetc%C0%AFpasswd",
    "/%c0%2e%c0%2e/etc/passwd",
    "/%e0%80%ae%e0%80%ae/etc/passwd",
    "/%f0%80%80%ae%f0%80%80%ae/etc/passwd",
    "/%c1%9c%c1%9c",
    "/\u2024\u2024/\u2024\u2024/etc/passwd",
    "/%e2%80%a4%e2%80%a4/etc/passwd",
    "/\uff0e\uff0e/\uff0e\uff0e/etc/passwd",
    "/%ef%bc%8e%ef%bc%8e/%ef%bc%8e%ef%bc%8e/etc/passwd",
    "/%u002e%u002e/%u002e%u002e/etc/passwd",
    "/..;/..;/etc/passwd",
    "/..%00/etc/passwd",
    "/%00../etc/passwd",
    "/....//....//etc/passwd",
    "/.../etc/passwd",
    "/misc/./../etc/passwd",
    "/misc/%2e/passwd",
    "/misc%2f..%2f..%2fetc%2fpasswd",
    "/images/0123abcd/..",
    "/images/0123abcd/%2e%2e",
    "/images/../../etc/passwd",
    "/..%252f..%252fetc%252fpasswd",
    "/%2e%2e%5c%2e%2e%5cetc%5cpasswd",
    "/..%255c..%255cetc%255cpasswd",
    "/etc/passwd",
    "//etc/passwd",
    "///etc/passwd",
    "/C:%5cWindows%5cwin.ini",
    "/file:%2f%2f%2fetc%2fpasswd",
    "../../etc/passwd",
    "%2e%2e/%2e%2e/etc/passwd",
]


@pytest.mark.parametrize("raw", TRAVERSALS)
def test_traversal_in_every_encoding_is_rejected(raw: str) -> None:
    _rejected(raw)
