"""Behaviours of the configuration-file codec (phones.md section 3)."""

from __future__ import annotations

import pytest

from relay.proto.polycom.cfgfile import (
    MAX_CONFIG_BYTES,
    ConfigFileError,
    is_valid_parameter_name,
    parse_config,
    render_config,
)

POLYCOM_SAMPLE = b"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<!-- Generated for 0004f2a1b2c3 -->
<polycomConfig xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:noNamespaceSchemaLocation="polycomConfig.xsd">
  <device device.set="1"
    device.prov.serverName.set="1" device.prov.serverName="relay.example"
    device.prov.serverType.set="1" device.prov.serverType="2"/>
  <prov prov.polling.enabled="1" prov.polling.mode="abs" prov.polling.period="86400"/>
  <reg>
    <reg.1 reg.1.address="1001" reg.1.displayName="Front Desk &amp; Lobby"
      reg.1.auth.userId="1001" reg.1.auth.password="s3cr&#233;t"/>
  </reg>
  <feature feature.enhancedFeatureKeys.enabled="1"/>
  <voIpProt voIpProt.SIP.specialEvent.checkSync.alwaysReboot="0">text is ignored</voIpProt>
</polycomConfig>
"""

LEGACY_SAMPLE = b"""<?xml version="1.0" standalone="yes"?>
<PHONE_CONFIG>
  <ALL reg.1.address="1002" reg.1.label="Reception" voIpProt.server.1.address="pbx.local"/>
  <OVERRIDES up.backlight.idleIntensity="1"/>
</PHONE_CONFIG>
"""


def _error(data: bytes, **kwargs: int) -> str:
    with pytest.raises(ConfigFileError) as info:
        parse_config(data, **kwargs)
    return info.value.message


def _wrap(body: str) -> bytes:
    return f"<polycomConfig>{body}</polycomConfig>".encode()


def test_realistic_polycom_config_is_read_in_document_order() -> None:
    assert list(parse_config(POLYCOM_SAMPLE).items()) == [
        ("device.prov.serverName", "relay.example"),
        ("device.prov.serverType", "2"),
        ("prov.polling.enabled", "1"),
        ("prov.polling.mode", "abs"),
        ("prov.polling.period", "86400"),
        ("reg.1.address", "1001"),
        ("reg.1.displayName", "Front Desk & Lobby"),
        ("reg.1.auth.userId", "1001"),
        ("reg.1.auth.password", "s3cr\u00e9t"),
        ("feature.enhancedFeatureKeys.enabled", "1"),
        ("voIpProt.SIP.specialEvent.checkSync.alwaysReboot", "0"),
    ]


def test_legacy_phone_config_root_is_read() -> None:
    assert parse_config(LEGACY_SAMPLE) == {
        "reg.1.address": "1002",
        "reg.1.label": "Reception",
        "voIpProt.server.1.address": "pbx.local",
        "up.backlight.idleIntensity": "1",
    }


def test_root_attributes_are_not_parameters() -> None:
    assert parse_config(b'<polycomConfig a.b="1"><x c.d="2"/></polycomConfig>') == {"c.d": "2"}


def test_set_companions_are_dropped_when_read() -> None:
    data = _wrap('<device device.set="1" device.a.set="1" device.a="x"/><up up.set="1"/>')
    assert parse_config(data) == {"device.a": "x", "up.set": "1"}


def test_device_parameter_without_companion_is_still_read() -> None:
    assert parse_config(_wrap('<device device.a="x"/>')) == {"device.a": "x"}


def test_first_occurrence_wins() -> None:
    data = _wrap('<a reg.1.address="first"/><b><c reg.1.address="second" z="1"/></b>')
    assert parse_config(data) == {"reg.1.address": "first", "z": "1"}


def test_master_file_is_refused_with_hint() -> None:
    message = _error(b'<APPLICATION APP_FILE_PATH="sip.ld" CONFIG_FILES="site.cfg"/>')
    assert "master file" in message
    assert "CONFIG_FILES" in message
    assert "profile parameters" in message


def test_unknown_root_is_refused_naming_it_and_the_accepted_ones() -> None:
    message = _error(b'<settings a="1"/>')
    assert "<settings>" in message
    assert "<polycomConfig>" in message
    assert "<PHONE_CONFIG>" in message


def test_doctype_is_refused() -> None:
    data = b'<?xml version="1.0"?><!DOCTYPE polycomConfig><polycomConfig/>'
    assert "DOCTYPE" in _error(data)


def test_entity_declaration_is_refused() -> None:
    data = b'<!ENTITY lol "lol"><polycomConfig/>'
    assert "ENTITY" in _error(data)


def test_billion_laughs_is_refused() -> None:
    data = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        b'<polycomConfig><a b="&lol2;"/></polycomConfig>'
    )
    assert "DOCTYPE" in _error(data)


def test_doctype_in_utf16_is_refused() -> None:
    data = '<!DOCTYPE x SYSTEM "file:///etc/passwd"><polycomConfig/>'.encode("utf-16")
    assert "DOCTYPE" in _error(data)


def test_undeclared_entity_reference_is_malformed() -> None:
    assert "undefined entity" in _error(_wrap('<a b="&xxe;"/>'))


def test_empty_input_is_refused() -> None:
    assert "empty" in _error(b"")


def test_whitespace_only_input_is_refused_as_empty() -> None:
    assert "empty" in _error(b" \n\t")


def test_input_over_max_bytes_is_refused() -> None:
    data = _wrap('<a b="1"/>')
    assert "over the limit" in _error(data, max_bytes=len(data) - 1)
    assert parse_config(data, max_bytes=len(data)) == {"b": "1"}


def test_default_size_cap_is_five_mebibytes() -> None:
    data = _wrap("<a/>" + " " * MAX_CONFIG_BYTES)
    assert "over the limit" in _error(data)


def test_more_than_100000_parameters_is_refused() -> None:
    body = "".join(f'<a p{i}="1"/>' for i in range(100_001))
    assert "more than 100000 parameters" in _error(_wrap(body))


def test_100000_parameters_are_accepted() -> None:
    body = "".join(f'<a p{i}="1"/>' for i in range(100_000))
    assert len(parse_config(_wrap(body))) == 100_000


def test_invalid_parameter_name_is_refused_with_its_line() -> None:
    message = _error(b'<polycomConfig>\n<a b:c="1"/></polycomConfig>')
    assert "'b:c'" in message
    assert "line 2" in message


def test_over_long_parameter_name_is_refused() -> None:
    assert "is not valid" in _error(_wrap(f'<a {"n" * 256}="1"/>'))


def test_companion_of_longest_name_is_accepted() -> None:
    name = "device." + "n" * 248
    assert parse_config(_wrap(f'<device {name}.set="1" {name}="v"/>')) == {name: "v"}


def test_companion_of_invalid_name_is_refused() -> None:
    name = "device." + "n" * 249
    assert "is not valid" in _error(_wrap(f'<device {name}.set="1"/>'))


def test_value_over_64_kib_is_refused() -> None:
    assert "64 KiB" in _error(_wrap(f'<a b="{"x" * (64 * 1024 + 1)}"/>'))


def test_value_cap_counts_utf8_bytes() -> None:
    two_byte_char = "\u00e9"
    assert "64 KiB" in _error(_wrap(f'<a b="{two_byte_char * (32 * 1024 + 1)}"/>'))


def test_value_of_64_kib_is_accepted() -> None:
    assert parse_config(_wrap(f'<a b="{"x" * 64 * 1024}"/>'))["b"] == "x" * 64 * 1024


def test_nesting_deeper_than_32_is_refused() -> None:
    assert "nested more than 32" in _error(_wrap("<a>" * 32 + "</a>" * 32))


def test_nesting_of_32_is_accepted() -> None:
    body = "<a>" * 30 + '<a b="1"/>' + "</a>" * 30
    assert parse_config(_wrap(body)) == {"b": "1"}


def test_malformed_xml_reports_line_and_column() -> None:
    message = _error(b'<polycomConfig>\n  <a b="1">\n</polycomConfig>')
    assert "not well-formed" in message
    assert "line 3, column 2" in message


def test_utf8_bom_is_accepted() -> None:
    assert parse_config(b"\xef\xbb\xbf" + _wrap('<a b="\u00e9"/>')) == {"b": "\u00e9"}


def test_declared_latin1_encoding_is_decoded() -> None:
    data = (
        b'<?xml version="1.0" encoding="ISO-8859-1"?><polycomConfig><a b="\xe9"/></polycomConfig>'
    )
    assert parse_config(data) == {"b": "\u00e9"}


def test_declared_windows1252_encoding_is_decoded() -> None:
    data = (
        b'<?xml version="1.0" encoding="windows-1252"?><polycomConfig><a b="\x80"/></polycomConfig>'
    )
    assert parse_config(data) == {"b": "\u20ac"}


def test_utf16_input_is_decoded() -> None:
    assert parse_config(_wrap('<a b="\u00e9"/>').decode().encode("utf-16")) == {"b": "\u00e9"}


@pytest.mark.parametrize("encoding", ["no-such-codec", "rot13", "shift_jis", "idna"])
def test_unreadable_declared_encoding_is_refused(encoding: str) -> None:
    data = f'<?xml version="1.0" encoding="{encoding}"?><polycomConfig/>'.encode()
    assert "encoding" in _error(data)


def test_parameter_names_accept_polycom_spellings() -> None:
    for name in [
        "reg.1.displayName",
        "feature.enhancedFeatureKeys.enabled",
        "device.prov.serverName",
        "_mac_cfg_custom",
        "CONFIG_FILES",
        "efk.efklist.1.mname-x",
        "n" * 255,
    ]:
        assert is_valid_parameter_name(name), name


def test_parameter_names_reject_unsafe_spellings() -> None:
    for name in [
        "",
        "a b",
        'a"b',
        "a'b",
        "a<b",
        "a=b",
        "a:b",
        "1abc",
        "-a",
        ".a",
        "a\n",
        "n" * 256,
    ]:
        assert not is_valid_parameter_name(name), name


def test_brackets_are_not_valid_in_names_as_xml_attribute_names_cannot_hold_them() -> None:
    assert not is_valid_parameter_name("efk.list[1]")
    assert "not well-formed" in _error(_wrap('<a efk.list[1]="x"/>'))


def test_render_writes_the_phone_file_layout() -> None:
    rendered = render_config(
        {"reg.1.address": "1001", "device.prov.serverName": "relay.example", "reg.1.label": "L"}
    )
    assert rendered == (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        b"<polycomConfig>\n"
        b'  <reg reg.1.address="1001" reg.1.label="L"/>\n'
        b'  <device device.set="1" device.prov.serverName.set="1"'
        b' device.prov.serverName="relay.example"/>\n'
        b"</polycomConfig>\n"
    )


def test_device_parameters_get_set_companions() -> None:
    rendered = render_config({"device.prov.serverName": "r", "device.prov.serverType": "2"})
    assert b'device.set="1"' in rendered
    assert b'device.prov.serverName.set="1" device.prov.serverName="r"' in rendered
    assert b'device.prov.serverType.set="1" device.prov.serverType="2"' in rendered


def test_render_of_nothing_is_an_empty_polycom_config() -> None:
    assert parse_config(render_config({})) == {}


def test_render_escapes_attribute_values() -> None:
    rendered = render_config({"a.b": "&<>\"\n\r\t'"})
    assert b'a.b="&amp;&lt;&gt;&quot;&#10;&#13;&#9;\'"' in rendered


def test_render_is_deterministic() -> None:
    parameters = {"b.x": "1", "a.y": "2", "device.z": "3"}
    assert render_config(parameters) == render_config(dict(parameters))


def test_render_refuses_invalid_name() -> None:
    with pytest.raises(ConfigFileError, match="is not valid"):
        render_config({"a b": "1"})


def test_render_refuses_set_companion() -> None:
    with pytest.raises(ConfigFileError, match="companion"):
        render_config({"device.prov.serverName.set": "1"})


def test_render_refuses_xml_illegal_character() -> None:
    with pytest.raises(ConfigFileError, match="U\\+0001"):
        render_config({"a.b": "x\x01y"})


def test_render_refuses_non_string_value() -> None:
    with pytest.raises(ConfigFileError, match="string"):
        render_config({"a.b": 1})  # type: ignore[dict-item]


def test_render_refuses_value_over_64_kib() -> None:
    with pytest.raises(ConfigFileError, match="64 KiB"):
        render_config({"a.b": "x" * (64 * 1024 + 1)})


def test_render_refuses_more_than_100000_parameters() -> None:
    with pytest.raises(ConfigFileError, match="100000"):
        render_config({f"p{i}": "" for i in range(100_001)})


def test_render_refuses_output_over_the_size_cap() -> None:
    with pytest.raises(ConfigFileError, match="rendered configuration file"):
        render_config({f"p{i}": "x" * 60_000 for i in range(100)})


def test_error_is_a_value_error_with_message() -> None:
    with pytest.raises(ValueError, match="empty") as info:
        parse_config(b"")
    assert isinstance(info.value, ConfigFileError)
    assert info.value.message == str(info.value)
