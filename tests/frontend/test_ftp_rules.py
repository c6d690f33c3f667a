"""Which names an FTP command may act on, what phones may write, and the replies for the
cloud's refusals (relay.frontend.ftp_rules): pure, without sockets; fuzzed with hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.cloud.rules.files import MAX_LOG_PUT_BYTES, MAX_OVERRIDE_BYTES
from relay.frontend.ftp_rules import (
    ROOT,
    Upload,
    WriteRefused,
    change_directory,
    failure_reply,
    ftp_time,
    modification_time,
    resolve,
    upload,
)
from relay.proto.polycom.paths import DIRECTORIES, PathRejected, classify

MAC = "0004f2a1b2c3"
FUZZ = settings(max_examples=500, deadline=None)


def test_a_relative_name_is_taken_from_the_root() -> None:
    target = resolve(ROOT, f"{MAC}.cfg")
    assert (target.path, target.names.kind, target.names.mac) == (f"/{MAC}.cfg", "master", MAC)


def test_an_absolute_name_is_taken_as_is() -> None:
    assert resolve("/logs", f"/{MAC}.cfg").path == f"/{MAC}.cfg"


def test_a_relative_name_in_a_served_directory_keeps_the_directory() -> None:
    target = resolve("/logs", f"{MAC}-app.log")
    assert (target.path, target.names.directory) == (f"/logs/{MAC}-app.log", "logs")


@pytest.mark.parametrize(
    "name",
    [
        "../etc/passwd",
        "/../etc/passwd",
        "logs/../../x.cfg",
        "..",
        "/etc/passwd",
        "a b.cfg",
        "a\\b.cfg",
        "%2e%2e/x.cfg",
        "x.cfg?y",
        "",
        "a" * 600,
    ],
)
def test_a_name_outside_the_provisioning_names_is_refused(name: str) -> None:
    with pytest.raises(PathRejected):
        resolve(ROOT, name)


def test_cwd_enters_a_served_directory_in_lower_case() -> None:
    assert change_directory(ROOT, "LOGS") == "/logs"


def test_cwd_to_the_root_or_nothing_is_the_root() -> None:
    assert change_directory("/logs", "/") == ROOT
    assert change_directory("/logs", "") == ROOT


def test_cwd_takes_an_absolute_directory_and_a_trailing_slash() -> None:
    assert change_directory("/logs", "/contacts/") == "/contacts"


@pytest.mark.parametrize("argument", ["..", "../etc", "/etc", "logs/core", "/logs/..", "."])
def test_cwd_anywhere_else_is_refused(argument: str) -> None:
    with pytest.raises(PathRejected):
        change_directory(ROOT, argument)


def test_a_served_directory_is_not_entered_twice() -> None:
    with pytest.raises(PathRejected):
        change_directory("/logs", "logs")


@pytest.mark.parametrize("suffix", ["-boot.log", "-app.log"])
def test_a_log_may_be_stored_and_appended_up_to_the_log_limit(suffix: str) -> None:
    names = classify(f"/{MAC}{suffix}")
    expected = Upload(MAX_LOG_PUT_BYTES, log=True)
    assert upload(names, append=False) == expected
    assert upload(names, append=True) == expected


@pytest.mark.parametrize("suffix", ["-phone.cfg", "-web.cfg", "-system.cfg"])
def test_an_override_file_may_be_stored_up_to_the_override_limit(suffix: str) -> None:
    assert upload(classify(f"/{MAC}{suffix}"), append=False) == Upload(MAX_OVERRIDE_BYTES, False)


def test_an_override_file_is_not_appended_to() -> None:
    with pytest.raises(WriteRefused):
        upload(classify(f"/{MAC}-phone.cfg"), append=True)


@pytest.mark.parametrize(
    "path", ["/000000000000.cfg", f"/{MAC}.cfg", f"/{MAC}-profile.cfg", "/sip.ld", f"/{MAC}-x.cfg"]
)
def test_names_phones_do_not_write_are_refused(path: str) -> None:
    with pytest.raises(WriteRefused):
        upload(classify(path), append=False)


@pytest.mark.parametrize(
    ("status", "code"),
    [(404, "550"), (401, "530"), (403, "550"), (413, "552"), (416, "554"), (429, "451")],
)
def test_a_refusal_of_the_cloud_has_its_ftp_reply(status: int, code: str) -> None:
    assert failure_reply(status).startswith(code + " ")


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_cloud_failure_is_a_reply_phones_retry_on(status: int) -> None:
    assert failure_reply(status).startswith("451 ")


def test_an_http_date_becomes_an_mdtm_time_in_utc() -> None:
    assert modification_time("Sun, 06 Nov 1994 08:49:37 GMT") == "19941106084937"
    assert modification_time("Sun, 06 Nov 1994 09:49:37 +0100") == "19941106084937"


@pytest.mark.parametrize("text", ["", "yesterday", "Sun, 06 Nov 1994 08:49:37", "1" * 100])
def test_a_date_that_is_not_an_http_date_has_no_mdtm_time(text: str) -> None:
    assert modification_time(text) is None


def test_ftp_time_is_utc() -> None:
    assert ftp_time(0) == "19700101000000"


# -- fuzz ---------------------------------------------------------------------------

names = st.one_of(
    st.text(max_size=700),
    st.lists(
        st.sampled_from(
            [MAC, ".cfg", "-app.log", "..", ".", "/", "\\", "%2e", "%", "?", "logs", "images", " "]
        ),
        max_size=12,
    ).map("".join),
)
directories = st.sampled_from([ROOT, *(f"/{d}" for d in sorted(DIRECTORIES))])


@FUZZ
@given(directories, names)
def test_resolve_answers_a_screened_name_or_path_rejected(cwd: str, argument: str) -> None:
    try:
        target = resolve(cwd, argument)
    except PathRejected:
        return
    assert ".." not in target.path.split("/")
    assert target.names == classify(target.path)


@FUZZ
@given(directories, names)
def test_cwd_answers_a_served_directory_or_path_rejected(cwd: str, argument: str) -> None:
    try:
        directory = change_directory(cwd, argument)
    except PathRejected:
        return
    assert directory == ROOT or directory[1:] in DIRECTORIES


http_dates = st.builds(
    "{}, {:02d} {} {} {:02d}:{:02d}:{:02d} {}".format,
    st.sampled_from(["Sun", "Mon", "Xyz"]),
    st.integers(0, 40),
    st.sampled_from(["Jan", "Feb", "Dec", "Foo"]),
    st.integers(0, 20_000),
    st.integers(0, 30),
    st.integers(0, 70),
    st.integers(0, 70),
    st.sampled_from(["GMT", "+0000", "-1400", "+1400", "-0000", "UT", ""]),
)


@FUZZ
@given(st.one_of(st.text(max_size=100), http_dates))
def test_modification_time_answers_a_time_val_or_none(text: str) -> None:
    answer = modification_time(text)
    assert answer is None or (len(answer) == 14 and answer.isdigit())
