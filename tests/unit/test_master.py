"""Behaviours of the master-file codec (phones.md section 3)."""

from __future__ import annotations

import pytest

from relay.proto.polycom.master import (
    DIRECTORY_ATTRIBUTES,
    MAX_MASTER_BYTES,
    MasterFile,
    MasterFileError,
    ModelOverride,
    app_file_path_for,
    config_files_for,
    expand_macros,
    parse_master,
    render_master,
)

# phones.md section 3, verbatim.
SPEC_EXAMPLE = b"""<?xml version="1.0" standalone="yes"?>
<APPLICATION APP_FILE_PATH="sip.ld" CONFIG_FILES="0004f2a1b2c3-profile.cfg, site.cfg"
  MISC_FILES="" LOG_FILE_DIRECTORY="" OVERRIDES_DIRECTORY="" CONTACTS_DIRECTORY=""
  LICENSE_DIRECTORY="" USER_PROFILES_DIRECTORY="" CALL_LISTS_DIRECTORY=""
  COREFILE_DIRECTORY="">
  <APPLICATION_VVX500 APP_FILE_PATH_VVX500="https://relay.example/sw/6.4.3/sip.ld"
    CONFIG_FILES_VVX500=""/>
</APPLICATION>
"""

SPEC_MASTER = MasterFile(
    app_file_path="sip.ld",
    config_files=("0004f2a1b2c3-profile.cfg", "site.cfg"),
    models=(ModelOverride("VVX500", app_file_path="https://relay.example/sw/6.4.3/sip.ld"),),
)

VENDOR_STYLE = b"""<?xml version="1.0" standalone="yes"?>
<!-- Default Master SIP Configuration File-->
<APPLICATION APP_FILE_PATH="sip.ld" CONFIG_FILES="phone1.cfg,sip.cfg ,, "
  MISC_FILES="" LOG_FILE_DIRECTORY="logs" OVERRIDES_DIRECTORY="overrides"
  CONTACTS_DIRECTORY="" LICENSE_DIRECTORY="" USER_PROFILES_DIRECTORY=""
  CALL_LISTS_DIRECTORY="" COREFILE_DIRECTORY="" SOMETHING_NEW="x">
  <APPLICATION_SPIP650 APP_FILE_PATH_SPIP650="sip_3.ld" CONFIG_FILES_SPIP650="spip.cfg"/>
  <APPLICATION_VVX500 APP_FILE_PATH_VVX500="" CONFIG_FILES_VVX500=""/>
  <OTHER_ELEMENT a="b"/>
</APPLICATION>
"""


def _parse_error(data: bytes, **kwargs: int) -> str:
    with pytest.raises(MasterFileError) as info:
        parse_master(data, **kwargs)
    return info.value.message


def _render_error(master: MasterFile) -> str:
    with pytest.raises(MasterFileError) as info:
        render_master(master)
    return info.value.message


def test_render_reproduces_the_phones_md_example_byte_for_byte() -> None:
    assert render_master(SPEC_MASTER) == SPEC_EXAMPLE


def test_parse_reads_the_phones_md_example() -> None:
    assert parse_master(SPEC_EXAMPLE) == SPEC_MASTER


def test_render_always_writes_every_directory_attribute() -> None:
    text = render_master(MasterFile()).decode()
    for name in DIRECTORY_ATTRIBUTES:
        assert f' {name}=""' in text


def test_render_writes_given_directory_attributes_in_canonical_order() -> None:
    master = MasterFile(attributes=(("LOG_FILE_DIRECTORY", "logs"), ("MISC_FILES", "misc")))
    text = render_master(master).decode()
    assert 'MISC_FILES="misc" LOG_FILE_DIRECTORY="logs"' in text


def test_render_writes_mac_cfg_attributes_after_the_directories() -> None:
    master = MasterFile(attributes=(("_mac_cfg_a", "1"), ("MISC_FILES", "misc")))
    text = render_master(master).decode()
    assert text.index('COREFILE_DIRECTORY=""') < text.index('_mac_cfg_a="1"')


def test_render_is_deterministic() -> None:
    assert render_master(SPEC_MASTER) == render_master(SPEC_MASTER)


def test_render_escapes_xml_special_characters() -> None:
    master = MasterFile(app_file_path='https://h/sip.ld?a=1&b="<>"')
    assert b'APP_FILE_PATH="https://h/sip.ld?a=1&amp;b=&quot;&lt;&gt;&quot;"' in render_master(
        master
    )


def test_empty_directory_attributes_equal_absent_ones() -> None:
    assert MasterFile(attributes=(("MISC_FILES", ""),)) == MasterFile()


def test_attributes_are_normalised_to_directory_order_then_mac_cfg() -> None:
    master = MasterFile(
        attributes=(("_mac_cfg_z", ""), ("COREFILE_DIRECTORY", "core"), ("MISC_FILES", "m"))
    )
    assert master.attributes == (
        ("MISC_FILES", "m"),
        ("COREFILE_DIRECTORY", "core"),
        ("_mac_cfg_z", ""),
    )


def test_parse_splits_config_files_trimming_and_dropping_empties() -> None:
    assert parse_master(VENDOR_STYLE).config_files == ("phone1.cfg", "sip.cfg")


def test_parse_keeps_non_empty_directory_attributes_only() -> None:
    assert parse_master(VENDOR_STYLE).attributes == (
        ("LOG_FILE_DIRECTORY", "logs"),
        ("OVERRIDES_DIRECTORY", "overrides"),
    )


def test_parse_reads_model_overrides_in_order() -> None:
    assert parse_master(VENDOR_STYLE).models == (
        ModelOverride("SPIP650", "sip_3.ld", ("spip.cfg",)),
        ModelOverride("VVX500"),
    )


def test_parse_ignores_unknown_attributes_and_elements() -> None:
    master = parse_master(VENDOR_STYLE)
    assert all(name != "SOMETHING_NEW" for name, _ in master.attributes)


def test_parse_reads_mac_cfg_attributes() -> None:
    data = b'<APPLICATION _mac_cfg_x="a b"/>'
    assert parse_master(data).attributes == (("_mac_cfg_x", "a b"),)


def test_parse_of_a_missing_app_file_path_gives_empty() -> None:
    assert parse_master(b"<APPLICATION/>") == MasterFile()


def test_parse_reads_utf16() -> None:
    assert parse_master(SPEC_EXAMPLE.decode().encode("utf-16")) == SPEC_MASTER


def test_parse_refuses_a_doctype() -> None:
    assert "DOCTYPE" in _parse_error(b"<!DOCTYPE x [<!ENTITY a 'b'>]><APPLICATION/>")


def test_parse_refuses_a_doctype_in_utf16() -> None:
    data = '<!DOCTYPE APPLICATION [<!ENTITY a "b">]><APPLICATION/>'.encode("utf-16")
    assert "DOCTYPE" in _parse_error(data)


def test_parse_refuses_a_configuration_file_root_with_a_hint() -> None:
    assert "CONFIG_FILES" in _parse_error(b"<polycomConfig/>")


def test_parse_refuses_an_unknown_root() -> None:
    assert "<APPLICATION>" in _parse_error(b"<root/>")


def test_parse_refuses_malformed_xml_with_its_position() -> None:
    assert "line 1" in _parse_error(b"<APPLICATION")


def test_parse_refuses_empty_input() -> None:
    assert "empty" in _parse_error(b"  \n")


def test_parse_refuses_input_over_max_bytes() -> None:
    assert "limit of 10 bytes" in _parse_error(b"<APPLICATION/>", max_bytes=10)


def test_parse_refuses_an_unreadable_declared_encoding() -> None:
    assert "encoding" in _parse_error(b'<?xml version="1.0" encoding="rot13"?><APPLICATION/>')


def test_parse_refuses_an_invalid_model_element_name() -> None:
    assert "model" in _parse_error(b"<APPLICATION><APPLICATION_VVX-500/></APPLICATION>")


def test_parse_refuses_a_model_given_twice() -> None:
    data = b"<APPLICATION><APPLICATION_VVX500/><APPLICATION_vvx500/></APPLICATION>"
    assert "second" in _parse_error(data)


def test_parse_refuses_an_app_file_path_with_a_space() -> None:
    assert "spaces" in _parse_error(b'<APPLICATION APP_FILE_PATH="my sip.ld"/>')


def test_parse_refuses_an_app_file_path_over_255_characters() -> None:
    data = f'<APPLICATION APP_FILE_PATH="{"a" * 256}"/>'.encode()
    assert "255" in _parse_error(data)


def test_parse_refuses_a_config_files_list_over_2047_characters() -> None:
    files = ", ".join(f"{index:03d}" + "a" * 200 for index in range(10))
    assert "2047" in _parse_error(f'<APPLICATION CONFIG_FILES="{files}"/>'.encode())


def test_parse_refuses_deep_nesting() -> None:
    data = b"<APPLICATION>" + b"<a>" * 40 + b"</a>" * 40 + b"</APPLICATION>"
    assert "nested" in _parse_error(data)


def test_render_refuses_a_comma_in_a_config_file_entry() -> None:
    assert "','" in _render_error(MasterFile(config_files=("a.cfg,b.cfg",)))


def test_render_refuses_an_empty_config_file_entry() -> None:
    assert "non-empty" in _render_error(MasterFile(config_files=("",)))


def test_render_refuses_a_config_file_entry_over_255_characters() -> None:
    assert "255" in _render_error(MasterFile(config_files=("a" * 256,)))


def test_render_refuses_a_config_files_list_over_2047_characters() -> None:
    assert "2047" in _render_error(MasterFile(config_files=("a" * 250,) * 9))


def test_render_accepts_a_config_files_list_of_exactly_2047_characters() -> None:
    files = ("a" * 253,) * 8 + ("b" * (2047 - 8 * 253 - 8 * 2),)
    assert len(", ".join(files)) == 2047
    assert parse_master(render_master(MasterFile(config_files=files))).config_files == files


def test_render_refuses_an_app_file_path_with_a_backslash() -> None:
    assert "backslashes" in _render_error(MasterFile(app_file_path="sw\\sip.ld"))


def test_render_refuses_a_url_with_a_space() -> None:
    assert "spaces" in _render_error(MasterFile(app_file_path="https://h/my sip.ld"))


def test_render_refuses_xml_illegal_characters() -> None:
    master = MasterFile(attributes=(("_mac_cfg_a", "x\x01"),))
    assert "U+0001" in _render_error(master)


def test_render_refuses_an_unknown_attribute_name() -> None:
    assert "not allowed" in _render_error(MasterFile(attributes=(("FOO", "x"),)))


def test_render_refuses_a_mac_cfg_name_that_is_not_an_xml_name() -> None:
    assert "not allowed" in _render_error(MasterFile(attributes=(("_mac_cfg a", "x"),)))


def test_render_refuses_a_duplicate_attribute() -> None:
    master = MasterFile(attributes=(("MISC_FILES", "a"), ("MISC_FILES", "b")))
    assert "twice" in _render_error(master)


def test_render_refuses_an_invalid_model_name() -> None:
    assert "model" in _render_error(MasterFile(models=(ModelOverride("VVX_500"),)))


def test_render_refuses_two_overrides_for_one_model() -> None:
    master = MasterFile(models=(ModelOverride("VVX500"), ModelOverride("vvx500")))
    assert "two overrides" in _render_error(master)


def test_render_refuses_a_list_where_a_tuple_is_expected() -> None:
    assert "tuple" in _render_error(MasterFile(config_files=["a.cfg"]))  # type: ignore[arg-type]


def test_render_refuses_output_over_the_size_limit() -> None:
    big = ModelOverride("M", app_file_path="&" * 255, config_files=("&" * 255,) * 7)
    models = tuple(
        ModelOverride(f"M{index}", big.app_file_path, big.config_files) for index in range(256)
    )
    assert str(MAX_MASTER_BYTES) in _render_error(MasterFile(models=models))


def test_config_files_for_prefers_the_model_override() -> None:
    master = MasterFile(
        config_files=("site.cfg",), models=(ModelOverride("VVX500", config_files=("v.cfg",)),)
    )
    assert config_files_for(master, "VVX500") == ("v.cfg",)


def test_config_files_for_falls_back_when_the_override_is_empty() -> None:
    master = MasterFile(config_files=("site.cfg",), models=(ModelOverride("VVX500"),))
    assert config_files_for(master, "VVX500") == ("site.cfg",)


def test_config_files_for_an_unlisted_model_is_the_generic_list() -> None:
    assert config_files_for(SPEC_MASTER, "VVX400") == SPEC_MASTER.config_files


def test_app_file_path_for_prefers_the_model_override() -> None:
    assert app_file_path_for(SPEC_MASTER, "VVX500") == "https://relay.example/sw/6.4.3/sip.ld"


def test_app_file_path_for_an_unlisted_model_is_the_generic_path() -> None:
    assert app_file_path_for(SPEC_MASTER, "VVX400") == "sip.ld"


def test_model_lookup_ignores_case_and_underscores() -> None:
    assert app_file_path_for(SPEC_MASTER, "vvx_500") == "https://relay.example/sw/6.4.3/sip.ld"


def test_expand_macros_substitutes_mac_in_lower_case_and_model() -> None:
    value = "[PHONE_MAC_ADDRESS]-[PHONE_MODEL].cfg"
    assert expand_macros(value, mac="0004F2A1B2C3", model="VVX500") == "0004f2a1b2c3-VVX500.cfg"


def test_expand_macros_leaves_other_text_alone() -> None:
    value = "${mac_address}.cfg [phone_model]"
    assert expand_macros(value, mac="0004f2a1b2c3", model="VVX500") == value


def test_expand_macros_refuses_a_malformed_mac() -> None:
    with pytest.raises(MasterFileError):
        expand_macros("x", mac="00:04:f2:a1:b2:c3", model="VVX500")


def test_expand_macros_refuses_a_malformed_model() -> None:
    with pytest.raises(MasterFileError):
        expand_macros("x", mac="0004f2a1b2c3", model="[PHONE_MODEL]")
