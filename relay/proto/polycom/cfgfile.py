"""Codec of Polycom/Poly phone configuration files (phones.md section 3).

A configuration file is XML whose elements carry parameters as attributes.
This module turns such a file into an ordered ``name -> value`` mapping and
back. It is pure (stdlib only) and reads untrusted bytes, so every input is
capped and every failure is one ``ConfigFileError`` that says what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from xml.parsers import expat

MAX_CONFIG_BYTES = 5 * 1024 * 1024

_MAX_PARAMETERS = 100_000
_MAX_VALUE_BYTES = 64 * 1024
_MAX_DEPTH = 32
_MAX_NAME_LENGTH = 255

# Brackets are left out on purpose: XML attribute names cannot hold them, so a
# name with one could never be written to, nor read from, a configuration file.
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
# XML 1.0 `Char` excludes these; a file holding them cannot be read back.
_XML_ILLEGAL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Newlines and tabs become character references: attribute-value
# normalisation would otherwise turn them into spaces on the way back in.
_ATTRIBUTE_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "\n": "&#10;",
        "\r": "&#13;",
        "\t": "&#9;",
    }
)

_ROOTS = frozenset({"polycomConfig", "PHONE_CONFIG"})
_MASTER_ROOT = "APPLICATION"
_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
_NAME_RULE = (
    "names start with a letter or '_', hold only letters, digits, '_', '.' and '-', "
    f"and are at most {_MAX_NAME_LENGTH} characters"
)


class ConfigFileError(ValueError):
    """A configuration file, or parameters to render, broke a rule of phones.md section 3."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def is_valid_parameter_name(name: str) -> bool:
    """Whether `name` can be a parameter: an XML attribute name Polycom phones accept."""
    return 0 < len(name) <= _MAX_NAME_LENGTH and _NAME_RE.fullmatch(name) is not None


def parse_config(data: bytes, *, max_bytes: int = MAX_CONFIG_BYTES) -> dict[str, str]:
    """Read a `.cfg`/`.xml` configuration file into its parameters, in document order.

    Every attribute of every element below the root is a parameter; the first
    occurrence of a name wins, as on the phone (phones.md section 3, CONFIG_FILES).
    """
    if len(data) > max_bytes:
        raise ConfigFileError(
            f"the configuration file is {len(data)} bytes, over the limit of {max_bytes} "
            "bytes; split it into several files listed in CONFIG_FILES"
        )
    if not data.strip():
        raise ConfigFileError(
            "the configuration file is empty; upload an XML file with a <polycomConfig> root"
        )
    # Refused before parsing: a DTD is how entity bombs and external entities
    # get in, and phone configuration files never need one. The handler in
    # _Reader catches the same in encodings these bytes do not match (UTF-16).
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise _doctype_error()
    return _Reader().read(data)


def render_config(parameters: Mapping[str, str]) -> bytes:
    """Write `parameters` as the `<polycomConfig>` file the phone reads.

    One element per first name segment; every `device.*` parameter gets the
    `.set="1"` companions without which the phone ignores it (phones.md section 3).
    """
    if len(parameters) > _MAX_PARAMETERS:
        raise ConfigFileError(
            f"{len(parameters)} parameters are more than the {_MAX_PARAMETERS} a configuration "
            "file may hold; split them across several profiles"
        )
    elements: dict[str, list[str]] = {}
    for name, value in parameters.items():
        _check_parameter_to_render(name, value)
        segment = name.split(".", 1)[0]
        attributes = elements.setdefault(segment, ['device.set="1"'] if segment == "device" else [])
        if name.startswith("device."):
            attributes.append(f'{name}.set="1"')
        attributes.append(f'{name}="{value.translate(_ATTRIBUTE_ESCAPES)}"')
    lines = [_XML_DECLARATION, "<polycomConfig>"]
    lines.extend(
        f"  <{segment} {' '.join(attributes)}/>" for segment, attributes in elements.items()
    )
    lines.append("</polycomConfig>")
    rendered = ("\n".join(lines) + "\n").encode("utf-8")
    if len(rendered) > MAX_CONFIG_BYTES:
        raise ConfigFileError(
            f"the rendered configuration file would be {len(rendered)} bytes, over the limit "
            f"of {MAX_CONFIG_BYTES} bytes; split the parameters across several profiles"
        )
    return rendered


def _is_set_companion(name: str) -> bool:
    """`device.set` and `device.<name>.set` are generation artefacts, not parameters.

    phones.md section 3: the phone needs them beside every `device.*` parameter.
    """
    return name.startswith("device.") and name.endswith(".set")


def _check_parameter_to_render(name: object, value: object) -> None:
    """Refuse what parse_config would refuse, so every rendered file reads back."""
    if not isinstance(name, str) or not is_valid_parameter_name(name):
        raise ConfigFileError(f"parameter name {_shorten(repr(name))} is not valid: {_NAME_RULE}")
    if _is_set_companion(name):
        raise ConfigFileError(
            f"parameter {name!r} is a .set companion, which render_config writes itself "
            "for every device.* parameter; remove it"
        )
    if not isinstance(value, str):
        raise ConfigFileError(
            f"parameter {name!r} has a {type(value).__name__} value; give it a string"
        )
    illegal = _XML_ILLEGAL_RE.search(value)
    if illegal is not None:
        raise ConfigFileError(
            f"parameter {name!r} holds the character U+{ord(illegal.group()):04X}, which XML "
            "cannot carry; remove it from the value"
        )
    if len(value.encode("utf-8")) > _MAX_VALUE_BYTES:
        raise ConfigFileError(_long_value_message(repr(name)))


def _doctype_error() -> ConfigFileError:
    return ConfigFileError(
        "the configuration file contains a DOCTYPE or ENTITY declaration, which is refused "
        "for safety (entity expansion, external entities); remove the <!DOCTYPE ...> block, "
        "phone configuration files never need one"
    )


def _long_value_message(parameter: str) -> str:
    return (
        f"the value of parameter {parameter} is longer than {_MAX_VALUE_BYTES // 1024} KiB; "
        "shorten it or serve the content as a separate file"
    )


def _shorten(text: str) -> str:
    """Keep user text in a message without echoing megabytes of it."""
    return text if len(text) <= 80 else text[:77] + "..."


class _Reader:
    """One expat pass whose handlers raise as soon as a cap is hit, so bad input stops early."""

    def __init__(self) -> None:
        self._parser = expat.ParserCreate()
        self._parser.ordered_attributes = True
        self._parser.StartDoctypeDeclHandler = self._refuse_doctype
        self._parser.StartElementHandler = self._start
        self._parser.EndElementHandler = self._end
        self._depth = 0
        self._count = 0
        self._parameters: dict[str, str] = {}

    def read(self, data: bytes) -> dict[str, str]:
        try:
            self._parser.Parse(data, True)
        except ConfigFileError:
            raise
        except expat.ExpatError as exc:
            raise ConfigFileError(
                "the configuration file is not well-formed XML: "
                f"{expat.ErrorString(exc.code)} at line {exc.lineno}, column {exc.offset}; "
                "fix the XML there"
            ) from None
        except (LookupError, ValueError) as exc:
            # pyexpat hands a declared non-builtin encoding to Python's codecs,
            # which can only supply single-byte text encodings.
            raise ConfigFileError(
                f"the configuration file declares an encoding that cannot be read ({exc}); "
                "save it as UTF-8"
            ) from None
        return self._parameters

    def _refuse_doctype(self, *_args: object) -> None:
        raise _doctype_error()

    def _start(self, tag: str, attributes: list[str]) -> None:
        self._depth += 1
        if self._depth == 1:
            _check_root(tag)
            return  # The root's attributes (xmlns, schema location) are not parameters.
        line = self._parser.CurrentLineNumber
        if self._depth > _MAX_DEPTH:
            raise ConfigFileError(
                f"elements are nested more than {_MAX_DEPTH} deep at line {line}; "
                "flatten the file, phones read the attributes at any depth"
            )
        for name, value in zip(attributes[::2], attributes[1::2], strict=True):
            self._add(name, value, line)

    def _end(self, _tag: str) -> None:
        self._depth -= 1

    def _add(self, name: str, value: str, line: int) -> None:
        # A companion is checked by its base name: `<255-char name>.set` is fine.
        companion = _is_set_companion(name)
        if not is_valid_parameter_name(name.removesuffix(".set") if companion else name):
            raise ConfigFileError(
                f"parameter name {_shorten(repr(name))} at line {line} is not valid: {_NAME_RULE}"
            )
        if companion:
            return
        if len(value.encode("utf-8")) > _MAX_VALUE_BYTES:
            raise ConfigFileError(_long_value_message(f"{name!r} at line {line}"))
        self._count += 1
        if self._count > _MAX_PARAMETERS:
            raise ConfigFileError(
                f"the configuration file sets more than {_MAX_PARAMETERS} parameters; "
                "split it into several files listed in CONFIG_FILES"
            )
        self._parameters.setdefault(name, value)


def _check_root(tag: str) -> None:
    """Accept the two configuration roots of phones.md section 3; explain a master file."""
    if tag == _MASTER_ROOT:
        raise ConfigFileError(
            "this is a master file (<APPLICATION> root), not a configuration file; "
            "set master attributes (CONFIG_FILES, APP_FILE_PATH, ...) as profile "
            "parameters instead"
        )
    if tag not in _ROOTS:
        raise ConfigFileError(
            f"the root element is <{_shorten(tag)}>, but a configuration file has the "
            "root <polycomConfig> (or the legacy <PHONE_CONFIG>); wrap the parameters in "
            "<polycomConfig>"
        )
