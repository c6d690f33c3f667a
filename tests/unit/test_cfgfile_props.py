"""Properties of the configuration-file codec: round trip, and any bytes in, no crash out."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.proto.polycom.cfgfile import (
    ConfigFileError,
    is_valid_parameter_name,
    parse_config,
    render_config,
)

# Code points XML 1.0 cannot carry at all (render refuses them).
XML_ILLEGAL = "".join(map(chr, [*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0xFFFE, 0xFFFF]))

names = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,30}", fullmatch=True),
    st.builds(
        "{}.{}".format,
        st.sampled_from(["device", "reg", "voIpProt", "prov", "up", "feature"]),
        st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,20}", fullmatch=True),
    ),
).filter(lambda name: not (name.startswith("device.") and name.endswith(".set")))

values = st.text(
    alphabet=st.one_of(
        st.sampled_from("&<>\"'\n\r\t ]"),
        st.characters(exclude_categories=("Cs",), exclude_characters=XML_ILLEGAL),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(names, values, max_size=20))
def test_render_then_parse_gives_the_parameters_back(parameters: dict[str, str]) -> None:
    assert parse_config(render_config(parameters)) == parameters


def _parse_or_refuse(data: bytes, max_bytes: int | None = None) -> None:
    """Parse must either refuse with ConfigFileError or return valid parameters."""
    try:
        if max_bytes is None:
            parameters = parse_config(data)
        else:
            parameters = parse_config(data, max_bytes=max_bytes)
    except ConfigFileError as exc:
        assert exc.message
        return
    for name, value in parameters.items():
        assert is_valid_parameter_name(name)
        assert not (name.startswith("device.") and name.endswith(".set"))
        assert isinstance(value, str)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_raise_only_config_file_error(data: bytes) -> None:
    _parse_or_refuse(data)


FRAGMENTS = [
    "<polycomConfig>",
    "</polycomConfig>",
    "<PHONE_CONFIG>",
    "</PHONE_CONFIG>",
    "<ALL ",
    "<APPLICATION ",
    "<reg>",
    "</reg>",
    "<a ",
    "</a>",
    "/>",
    ">",
    "=",
    '"',
    "'",
    " ",
    "\n",
    "&amp;",
    "&#10;",
    "&#0;",
    "&#xD800;",
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
    '<?xml version="1.0" encoding="shift_jis"?>',
    '<?xml version="1.0" encoding="cp1252"?>',
    'device.set="1"',
    'device.a.set="1"',
    'reg.1.address="1"',
    'xmlns:xsi="urn:x"',
    "\ufeff",
    "\x00",
]

xmlish_text = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6), names), max_size=40
).map("".join)


@settings(max_examples=300, deadline=None)
@given(
    xmlish_text,
    st.sampled_from(["utf-8", "utf-16", "latin-1", "cp1252"]),
    st.one_of(st.none(), st.integers(1, 400)),
)
def test_xmlish_text_raises_only_config_file_error(
    text: str, encoding: str, max_bytes: int | None
) -> None:
    _parse_or_refuse(text.encode(encoding, errors="replace"), max_bytes)


attribute_names = st.one_of(
    names, st.from_regex(r"[A-Za-z_:][A-Za-z0-9_.:\-]{0,300}", fullmatch=True)
)


@st.composite
def elements(draw: st.DrawFn, depth: int) -> str:
    """A well-formed element, so the rules past the XML parser get exercised too."""
    tag = draw(st.sampled_from(["a", "reg", "device", "ALL"]))
    attributes = draw(st.dictionaries(attribute_names, st.text(max_size=10), max_size=4))
    spelled = "".join(
        f" {name}={quoteattr(value.translate({ord(c): None for c in XML_ILLEGAL}))}"
        for name, value in attributes.items()
    )
    children = ""
    if depth < 40 and draw(st.booleans()):
        children = "".join(draw(st.lists(elements(depth + 1), max_size=2)))
    return f"<{tag}{spelled}>{children}</{tag}>"


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["polycomConfig", "PHONE_CONFIG", "APPLICATION", "root"]),
    st.lists(elements(1), max_size=3),
)
def test_well_formed_documents_raise_only_config_file_error(root: str, children: list[str]) -> None:
    _parse_or_refuse(f"<{root}>{''.join(children)}</{root}>".encode())
