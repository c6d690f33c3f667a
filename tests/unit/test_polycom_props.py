"""Properties of the Polycom codecs: round trips, and any input in, only the module's error out."""

from __future__ import annotations

import re
from xml.sax.saxutils import quoteattr

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.proto.polycom.master import (
    DIRECTORY_ATTRIBUTES,
    MasterFile,
    MasterFileError,
    ModelOverride,
    app_file_path_for,
    config_files_for,
    expand_macros,
    parse_master,
    render_master,
)
from relay.proto.polycom.models import PART_NUMBERS, ModelError, firmware_file_name
from relay.proto.polycom.paths import (
    DIRECTORIES,
    UPLOAD_SUFFIXES,
    PathRejected,
    ProvPath,
    classify,
)
from relay.proto.polycom.useragent import (
    UserAgentError,
    format_user_agent,
    normalize_model,
    parse_user_agent,
)

FUZZ = settings(max_examples=300, deadline=None)
ROUND_TRIP = settings(max_examples=200, deadline=None)

# --- master file -----------------------------------------------------------

# What a URL may hold: no whitespace, backslash, control or XML-illegal characters.
url_characters = st.one_of(
    st.sampled_from("&<>\"'/:?=%@#;[]_.-"),
    st.characters(
        min_codepoint=0x21,
        exclude_categories=("Cs", "Zs", "Zl", "Zp", "Cc"),
        exclude_characters="\\\ufffe\uffff\x85\xa0",
    ),
)
urls = st.text(url_characters, max_size=40)
entries = st.text(url_characters.filter(lambda c: c != ","), min_size=1, max_size=30)
model_names = st.from_regex(r"[A-Za-z0-9]{1,10}", fullmatch=True)
extra_names = st.from_regex(r"_mac_cfg[A-Za-z0-9_.\-]{0,12}", fullmatch=True)
extra_values = st.text(
    st.one_of(st.sampled_from("&<>\"'\n\r\t "), st.characters(exclude_categories=("Cs",))).filter(
        lambda c: re.fullmatch("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]", c) is None
    ),
    max_size=20,
)


@st.composite
def masters(draw: st.DrawFn) -> MasterFile:
    directories = draw(st.lists(st.sampled_from(DIRECTORY_ATTRIBUTES), unique=True))
    extras = draw(st.lists(extra_names, unique=True, max_size=3))
    attributes = [(name, draw(urls)) for name in directories]
    attributes += [(name, draw(extra_values)) for name in extras]
    models = draw(st.lists(model_names, unique_by=str.upper, max_size=4))
    return MasterFile(
        app_file_path=draw(urls),
        config_files=tuple(draw(st.lists(entries, max_size=5))),
        attributes=tuple(draw(st.permutations(attributes))),
        models=tuple(
            ModelOverride(model, draw(urls), tuple(draw(st.lists(entries, max_size=3))))
            for model in models
        ),
    )


@ROUND_TRIP
@given(masters())
def test_render_then_parse_gives_the_master_back(master: MasterFile) -> None:
    assert parse_master(render_master(master)) == master


@ROUND_TRIP
@given(masters())
def test_render_is_deterministic(master: MasterFile) -> None:
    assert render_master(master) == render_master(master)


@ROUND_TRIP
@given(masters(), model_names)
def test_lookups_return_the_override_or_the_generic_value(master: MasterFile, model: str) -> None:
    override = next((m for m in master.models if m.model.upper() == model.upper()), None)
    expected_files = override.config_files if override and override.config_files else None
    expected_path = override.app_file_path if override and override.app_file_path else None
    assert config_files_for(master, model) == (expected_files or master.config_files)
    assert app_file_path_for(master, model) == (expected_path or master.app_file_path)


def _parse_or_refuse(data: bytes, max_bytes: int | None = None) -> None:
    """Parse must refuse with MasterFileError or return a master that renders again."""
    try:
        master = (
            parse_master(data) if max_bytes is None else parse_master(data, max_bytes=max_bytes)
        )
    except MasterFileError as exc:
        assert exc.message
        return
    assert parse_master(render_master(master)) == master


@FUZZ
@given(st.binary(max_size=2000))
def test_any_bytes_raise_only_master_file_error(data: bytes) -> None:
    _parse_or_refuse(data)


FRAGMENTS = [
    "<APPLICATION",
    "</APPLICATION>",
    "<APPLICATION_VVX500",
    "<APPLICATION_",
    "</APPLICATION_VVX500>",
    "<polycomConfig>",
    ' APP_FILE_PATH="sip.ld"',
    ' CONFIG_FILES="a.cfg, b.cfg,,"',
    ' CONFIG_FILES=" , "',
    ' APP_FILE_PATH_VVX500="x"',
    ' CONFIG_FILES_VVX500="y"',
    ' MISC_FILES=""',
    ' LOG_FILE_DIRECTORY="logs"',
    ' _mac_cfg_x="v"',
    ' _mac_cfg="&#10;"',
    " ",
    "/>",
    ">",
    "=",
    '"',
    "&amp;",
    "&#0;",
    "&lol;",
    "<!DOCTYPE x>",
    '<!ENTITY lol "lol">',
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    '<?xml version="1.0"?>',
    '<?xml version="1.0" encoding="utf-16"?>',
    '<?xml version="1.0" encoding="rot13"?>',
    "\ufeff",
    "\x00",
    "\\",
]

xmlish_text = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)), max_size=40).map(
    "".join
)


@FUZZ
@given(
    xmlish_text,
    st.sampled_from(["utf-8", "utf-16", "latin-1"]),
    st.one_of(st.none(), st.integers(1, 400)),
)
def test_xmlish_text_raises_only_master_file_error(
    text: str, encoding: str, max_bytes: int | None
) -> None:
    _parse_or_refuse(text.encode(encoding, errors="replace"), max_bytes)


attribute_names = st.one_of(
    st.sampled_from(
        [*DIRECTORY_ATTRIBUTES, "APP_FILE_PATH", "CONFIG_FILES", "APP_FILE_PATH_VVX500"]
    ),
    extra_names,
    st.from_regex(r"[A-Za-z_:][A-Za-z0-9_.:\-]{0,20}", fullmatch=True),
)
XML_ILLEGAL = "".join(map(chr, [*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0xFFFE, 0xFFFF]))


@st.composite
def elements(draw: st.DrawFn, tag: str) -> str:
    """A well-formed element, so the rules past the XML parser get exercised too."""
    attributes = draw(st.dictionaries(attribute_names, st.text(max_size=10), max_size=4))
    spelled = "".join(
        f" {name}={quoteattr(value.translate({ord(c): None for c in XML_ILLEGAL}))}"
        for name, value in attributes.items()
    )
    return f"<{tag}{spelled}/>"


child_tags = st.one_of(
    st.sampled_from(["APPLICATION_VVX500", "APPLICATION_SPIP650", "OTHER", "APPLICATION_"]),
    st.from_regex(r"APPLICATION_[A-Za-z0-9_.\-]{0,8}", fullmatch=True),
)


@FUZZ
@given(
    st.sampled_from(["APPLICATION", "polycomConfig", "root"]),
    st.data(),
    st.lists(child_tags, max_size=4),
)
def test_well_formed_documents_raise_only_master_file_error(
    root: str, data: st.DataObject, children: list[str]
) -> None:
    opening = data.draw(elements(root))[: -len("/>")]
    body = "".join(data.draw(elements(tag)) for tag in children)
    _parse_or_refuse(f"{opening}>{body}</{root}>".encode())


@FUZZ
@given(
    st.text(max_size=40),
    st.from_regex(r"[0-9A-Fa-f]{12}", fullmatch=True),
    model_names,
)
def test_expand_macros_leaves_no_macro_behind(value: str, mac: str, model: str) -> None:
    expanded = expand_macros(value + "[PHONE_MAC_ADDRESS][PHONE_MODEL]", mac=mac, model=model)
    assert expanded == (
        value.replace("[PHONE_MAC_ADDRESS]", mac.lower()).replace("[PHONE_MODEL]", model)
        + mac.lower()
        + model
    )


# --- User-Agent -------------------------------------------------------------

families = st.from_regex(r"Poly[A-Za-z0-9]{0,12}", fullmatch=True)
model_tokens = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_]{0,10}", fullmatch=True)
firmwares = st.from_regex(r"[0-9]{1,2}(\.[0-9]{1,5}){0,4}", fullmatch=True)
stages = st.sampled_from(["application", "updater", ""])
serials = st.one_of(st.none(), st.from_regex(r"[0-9a-f]{12}", fullmatch=True))
prefixes = st.sampled_from(["FileTransport", "Microbrowser/1.1", "", "A B/2 (C)"])


@ROUND_TRIP
@given(families, model_tokens, firmwares, stages, serials, prefixes)
def test_format_then_parse_gives_the_parts_back(
    family: str, model_token: str, firmware: str, stage: str, serial: str | None, prefix: str
) -> None:
    text = format_user_agent(family, model_token, firmware, stage, serial, prefix)
    agent = parse_user_agent(text)
    assert (agent.family, agent.model, agent.firmware, agent.stage, agent.serial) == (
        family,
        normalize_model(model_token),
        firmware,
        stage,
        serial,
    )


UA_FRAGMENTS = [
    "FileTransport ",
    "PolycomVVX-",
    "VVX_500",
    "-UA/",
    "5.9.7.4477",
    " Type/Application",
    " Type/",
    " (SN:",
    "0004f2a1b2c3",
    ")",
    " ",
    "-",
    "/",
]


@FUZZ
@given(st.one_of(st.text(max_size=600), st.lists(st.sampled_from(UA_FRAGMENTS)).map("".join)))
def test_any_text_gives_a_user_agent_or_user_agent_error(text: str) -> None:
    try:
        agent = parse_user_agent(text)
    except UserAgentError as exc:
        assert exc.message
        return
    assert agent.family.startswith("Poly")
    assert agent.stage in ("application", "updater", "")
    assert "_" not in agent.model


# --- firmware file names ----------------------------------------------------


@ROUND_TRIP
@given(st.from_regex(r"(https?://[a-z]{1,8}(:[0-9]{1,4})?/)?([a-z0-9]{1,6}/){0,3}", fullmatch=True))
def test_firmware_name_changes_only_the_last_segment(directory: str) -> None:
    for part_number in PART_NUMBERS.values():
        assert firmware_file_name(directory + "sip.ld", part_number) == (
            f"{directory}{part_number}.sip.ld"
        )


@FUZZ
@given(st.text(max_size=60), st.sampled_from([*PART_NUMBERS.values(), "", "x"]))
def test_any_firmware_path_gives_a_name_or_model_error(path: str, part_number: str) -> None:
    try:
        name = firmware_file_name(path, part_number)
    except ModelError as exc:
        assert exc.message
        return
    assert f"{part_number}." in name
    assert len(name) == len(path) + len(part_number) + 1


# --- request paths ----------------------------------------------------------

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]*")
PATH_FRAGMENTS = [
    "/",
    ".",
    "..",
    "%2e",
    "%2E",
    "%2f",
    "%5c",
    "%25",
    "%c0%ae",
    "%00",
    "\\",
    "\u2024",
    "\uff0e",
    "?",
    "images/",
    "0123abcd/",
    "misc/",
    "logs/",
    "000000000000",
    "0004F2A1B2C3",
    ".cfg",
    "-profile.cfg",
    "-app.log",
    "-x",
    "a",
    "%",
]


def _classify_or_reject(raw: str) -> ProvPath | None:
    try:
        classified = classify(raw)
    except PathRejected as exc:
        assert exc.message
        return None
    assert NAME_RE.fullmatch(classified.name) is not None
    assert ".." not in classified.name.split("/")
    assert classified.directory == "" or classified.directory in DIRECTORIES
    if classified.kind in ("master", "generated", "upload", "device_file"):
        assert classified.mac is not None
        assert re.fullmatch(r"[0-9a-f]{12}", classified.mac) is not None
        assert classified.name.startswith(classified.mac)
    else:
        assert classified.mac is None
    return classified


@FUZZ
@given(st.text(max_size=80))
def test_any_text_gives_a_prov_path_or_path_rejected(raw: str) -> None:
    _classify_or_reject(raw)


@FUZZ
@given(st.lists(st.sampled_from(PATH_FRAGMENTS), max_size=12).map("".join))
def test_path_like_text_gives_a_prov_path_or_path_rejected(raw: str) -> None:
    _classify_or_reject(raw)
    _classify_or_reject("/" + raw)


@FUZZ
@given(st.lists(st.sampled_from(PATH_FRAGMENTS), max_size=12).map("".join))
def test_no_classified_path_holds_a_dot_dot_segment_after_decoding(raw: str) -> None:
    classified = _classify_or_reject("/" + raw)
    if classified is not None:
        assert classified.name not in (".", "..")


macs = st.from_regex(r"[0-9A-Fa-f]{12}", fullmatch=True).filter(lambda mac: mac != "000000000000")


@ROUND_TRIP
@given(macs, st.sampled_from(UPLOAD_SUFFIXES), st.sampled_from(sorted(DIRECTORIES)))
def test_every_upload_in_every_directory_is_an_upload(
    mac: str, suffix: str, directory: str
) -> None:
    assert classify(f"/{directory}/{mac}{suffix}") == ProvPath(
        "upload", f"{mac.lower()}{suffix}", directory, mac.lower()
    )


@ROUND_TRIP
@given(macs)
def test_every_mac_master_is_a_master(mac: str) -> None:
    assert classify(f"/{mac}.cfg") == ProvPath("master", f"{mac.lower()}.cfg", "", mac.lower())


@ROUND_TRIP
@given(
    st.from_regex(r"[0-9a-f]{8,64}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,30}", fullmatch=True),
)
def test_every_safe_image_path_is_an_image(image_id: str, name: str) -> None:
    assert classify(f"/images/{image_id}/{name}") == ProvPath("image", name, "", None, image_id)
