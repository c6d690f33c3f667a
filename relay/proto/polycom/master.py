"""Codec of the Polycom/Poly master configuration file (phones.md section 3).

The master file (`000000000000.cfg` or `<mac>.cfg`) is the first file a phone
fetches (phones.md section 2): its `<APPLICATION>` root names the firmware
(`APP_FILE_PATH`), the configuration files to read (`CONFIG_FILES`), the
directories for logs, overrides and the like, and per-model overrides in
`<APPLICATION_<MODEL>>` children. This module renders and reads it. It is pure
(stdlib only) and reads untrusted bytes, so every input is capped and every
failure is one ``MasterFileError`` that says what to fix.

Equality: `render_master` always writes every DIRECTORY_ATTRIBUTES attribute
(empty meaning "the provisioning server root", phones.md section 3), so an
empty directory attribute and an absent one are the same file. ``MasterFile``
therefore normalises its ``attributes`` on construction: directory attributes
with an empty value are dropped and the rest come first, in
DIRECTORY_ATTRIBUTES order, then the `_mac_cfg*` ones in the order given. Hence
``parse_master(render_master(m)) == m`` for every ``m`` that renders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from xml.parsers import expat

MAX_MASTER_BYTES = 1024 * 1024

DIRECTORY_ATTRIBUTES = (
    "MISC_FILES",
    "LOG_FILE_DIRECTORY",
    "OVERRIDES_DIRECTORY",
    "CONTACTS_DIRECTORY",
    "LICENSE_DIRECTORY",
    "USER_PROFILES_DIRECTORY",
    "CALL_LISTS_DIRECTORY",
    "COREFILE_DIRECTORY",
)

# phones.md section 3: APP_FILE_PATH <= 255, each CONFIG_FILES entry <= 255,
# the whole list <= 2047. The other attributes hold paths or URLs too, so the
# same 255 applies to them.
_MAX_VALUE = 255
_MAX_CONFIG_FILES_LIST = 2047
_MAX_MODELS = 256
_MAX_EXTRA_ATTRIBUTES = 64
_MAX_NAME_LENGTH = 255
_MAX_MODEL_LENGTH = 64
_MAX_DEPTH = 32

_ROOT = "APPLICATION"
_MODEL_PREFIX = "APPLICATION_"
_EXTRA_PREFIX = "_mac_cfg"
_XML_DECLARATION = '<?xml version="1.0" standalone="yes"?>'

_MODEL_RE = re.compile(r"[A-Za-z0-9]+")
_EXTRA_NAME_RE = re.compile(r"_mac_cfg[A-Za-z0-9_.\-]*")
_MAC_RE = re.compile(r"[0-9A-Fa-f]{12}")
# XML 1.0 `Char` excludes these; a file holding them cannot be read back.
_XML_ILLEGAL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# phones.md section 2: "URLs may not contain spaces or backslashes". Other
# whitespace and control characters are refused with them: no phone can fetch
# such a URL, and CONFIG_FILES parsing trims whitespace around entries anyway.
_URL_ILLEGAL_RE = re.compile(r"[\s\\\x00-\x1f\x7f-\x9f]")
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
# Line grouping of the root start tag, as in phones.md's example.
_ROOT_LINES = (
    DIRECTORY_ATTRIBUTES[0:4],
    DIRECTORY_ATTRIBUTES[4:7],
    DIRECTORY_ATTRIBUTES[7:8],
)


class MasterFileError(ValueError):
    """A master file, or a MasterFile to render, broke a rule of phones.md section 3."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class ModelOverride:
    """`<APPLICATION_<model> APP_FILE_PATH_<model>=... CONFIG_FILES_<model>=...>`.

    Empty values mean "use the generic one" (config_files_for, app_file_path_for).
    """

    model: str
    app_file_path: str = ""
    config_files: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MasterFile:
    """The content of a master file; see the module docstring for equality."""

    app_file_path: str = ""
    config_files: tuple[str, ...] = ()
    attributes: tuple[tuple[str, str], ...] = ()
    models: tuple[ModelOverride, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.attributes, tuple):
            object.__setattr__(self, "attributes", _normalized_attributes(self.attributes))


def _normalized_attributes(
    attributes: tuple[tuple[str, str], ...],
) -> tuple[tuple[str, str], ...]:
    """Drop empty directory attributes, put the rest first in canonical order.

    The sort is stable, so duplicates survive for render_master to refuse.
    """
    rank = {name: index for index, name in enumerate(DIRECTORY_ATTRIBUTES)}
    last = len(DIRECTORY_ATTRIBUTES)
    kept = [
        item for item in attributes if not (_is_pair(item) and item[0] in rank and item[1] == "")
    ]
    return tuple(sorted(kept, key=lambda item: rank.get(item[0], last) if _is_pair(item) else last))


def _is_pair(item: object) -> bool:
    return (
        isinstance(item, tuple)
        and len(item) == 2
        and isinstance(item[0], str)
        and isinstance(item[1], str)
    )


def render_master(master: MasterFile) -> bytes:
    """Write `master` in exactly the shape of phones.md section 3's example.

    Every DIRECTORY_ATTRIBUTES attribute is written, empty unless given, so the
    file says explicitly where each kind of file goes.
    """
    _check_master(master)
    given = dict(master.attributes)
    config_files = ", ".join(master.config_files)
    lines = [
        _XML_DECLARATION,
        f"<APPLICATION APP_FILE_PATH={_quote(master.app_file_path)} "
        f"CONFIG_FILES={_quote(config_files)}",
    ]
    lines.extend(
        "  " + " ".join(f"{name}={_quote(given.get(name, ''))}" for name in group)
        for group in _ROOT_LINES
    )
    lines.extend(
        f"  {name}={_quote(value)}"
        for name, value in master.attributes
        if name not in DIRECTORY_ATTRIBUTES
    )
    lines[-1] += ">"
    for override in master.models:
        model = override.model
        lines.append(
            f"  <{_MODEL_PREFIX}{model} APP_FILE_PATH_{model}={_quote(override.app_file_path)}"
        )
        lines.append(f"    CONFIG_FILES_{model}={_quote(', '.join(override.config_files))}/>")
    lines.append(f"</{_ROOT}>")
    rendered = ("\n".join(lines) + "\n").encode("utf-8")
    if len(rendered) > MAX_MASTER_BYTES:
        raise MasterFileError(
            f"the rendered master file would be {len(rendered)} bytes, over the limit of "
            f"{MAX_MASTER_BYTES} bytes; use fewer model overrides"
        )
    return rendered


def parse_master(data: bytes, *, max_bytes: int = MAX_MASTER_BYTES) -> MasterFile:
    """Read a master file; whatever it returns renders again (same rules both ways).

    CONFIG_FILES is split on ',' with whitespace trimmed and empty entries
    dropped. Unknown root attributes and unknown child elements are ignored,
    as the phone ignores them.
    """
    if len(data) > max_bytes:
        raise MasterFileError(
            f"the master file is {len(data)} bytes, over the limit of {max_bytes} bytes; "
            "a master file only names other files, keep it small"
        )
    if not data.strip():
        raise MasterFileError(
            "the master file is empty; upload an XML file with an <APPLICATION> root"
        )
    # Refused before parsing: a DTD is how entity bombs and external entities
    # get in, and master files never need one. The handler in _Reader catches
    # the same in encodings these bytes do not match (UTF-16).
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise _doctype_error()
    master = _Reader().read(data)
    _check_master(master)
    return master


def config_files_for(master: MasterFile, model: str) -> tuple[str, ...]:
    """The CONFIG_FILES a phone of `model` reads: its override if non-empty, else generic.

    Models match ignoring case and underscores ("VVX_500" finds APPLICATION_VVX500).
    """
    override = _override_for(master, model)
    if override is not None and override.config_files:
        return override.config_files
    return master.config_files


def app_file_path_for(master: MasterFile, model: str) -> str:
    """The APP_FILE_PATH a phone of `model` fetches: its override if non-empty, else generic."""
    override = _override_for(master, model)
    if override is not None and override.app_file_path:
        return override.app_file_path
    return master.app_file_path


def expand_macros(value: str, *, mac: str, model: str) -> str:
    """Substitute the phone-side macros `[PHONE_MAC_ADDRESS]` and `[PHONE_MODEL]`.

    phones.md section 3. The MAC is written as 12 lower-case hex digits; one
    pass, so substituted text is never expanded again.
    """
    if not isinstance(mac, str) or _MAC_RE.fullmatch(mac) is None:
        raise MasterFileError(
            f"MAC {_shorten(repr(mac))} is not 12 hex digits; give it without separators"
        )
    if not isinstance(model, str) or not _is_model(model):
        raise MasterFileError(
            f"model {_shorten(repr(model))} is not valid: models are 1 to "
            f"{_MAX_MODEL_LENGTH} letters and digits, like VVX500"
        )
    if not isinstance(value, str):
        raise MasterFileError(f"the value to expand is a {type(value).__name__}; give a string")
    replacements = {"[PHONE_MAC_ADDRESS]": mac.lower(), "[PHONE_MODEL]": model}
    return re.sub(
        r"\[PHONE_MAC_ADDRESS\]|\[PHONE_MODEL\]",
        lambda match: replacements[match.group()],
        value,
    )


def _model_key(model: str) -> str:
    return model.replace("_", "").upper()


def _override_for(master: MasterFile, model: str) -> ModelOverride | None:
    key = _model_key(model)
    for override in master.models:
        if _model_key(override.model) == key:
            return override
    return None


def _is_model(model: str) -> bool:
    return len(model) <= _MAX_MODEL_LENGTH and _MODEL_RE.fullmatch(model) is not None


def _quote(value: str) -> str:
    return '"' + value.translate(_ATTRIBUTE_ESCAPES) + '"'


def check_master_attribute(name: str, value: str) -> None:
    """Check one master-file attribute as `render_master` would (so a value saved in a
    profile can never make a phone's master file unrenderable)."""
    if name == "APP_FILE_PATH":
        _check_master(MasterFile(app_file_path=value))
    elif name == "CONFIG_FILES":
        _check_master(MasterFile(config_files=_split_config_files(value)))
    else:
        _check_attributes(((name, value),))


def _check_master(master: object) -> None:
    """Refuse what parse_master would refuse, so every rendered file reads back."""
    if not isinstance(master, MasterFile):
        raise MasterFileError(f"expected a MasterFile, got a {type(master).__name__}")
    _check_url("APP_FILE_PATH", master.app_file_path)
    _check_config_files("CONFIG_FILES", master.config_files)
    _check_attributes(master.attributes)
    _check_models(master.models)


def _check_attributes(attributes: object) -> None:
    if not isinstance(attributes, tuple):
        raise MasterFileError("attributes must be a tuple of (name, value) pairs")
    seen: set[str] = set()
    extra = 0
    for item in attributes:
        if not _is_pair(item):
            raise MasterFileError(
                f"attribute {_shorten(repr(item))} is not a (name, value) pair of strings"
            )
        name, value = item
        if name in seen:
            raise MasterFileError(f"attribute {name!r} is given twice; keep one")
        seen.add(name)
        if name in DIRECTORY_ATTRIBUTES:
            _check_url(name, value)
            continue
        if len(name) > _MAX_NAME_LENGTH or _EXTRA_NAME_RE.fullmatch(name) is None:
            raise MasterFileError(
                f"attribute name {_shorten(repr(name))} is not allowed: a master file "
                f"attribute is one of {', '.join(DIRECTORY_ATTRIBUTES)} or starts with "
                f"'{_EXTRA_PREFIX}' followed by letters, digits, '_', '.' or '-' "
                f"(at most {_MAX_NAME_LENGTH} characters)"
            )
        extra += 1
        if extra > _MAX_EXTRA_ATTRIBUTES:
            raise MasterFileError(
                f"more than {_MAX_EXTRA_ATTRIBUTES} '{_EXTRA_PREFIX}*' attributes; remove some"
            )
        _check_text(name, value)


def _check_models(models: object) -> None:
    if not isinstance(models, tuple):
        raise MasterFileError("models must be a tuple of ModelOverride")
    if len(models) > _MAX_MODELS:
        raise MasterFileError(
            f"{len(models)} model overrides are more than the {_MAX_MODELS} allowed; "
            "remove the ones for models you do not have"
        )
    seen: dict[str, str] = {}
    for override in models:
        if not isinstance(override, ModelOverride):
            raise MasterFileError(
                f"model override {_shorten(repr(override))} is not a ModelOverride"
            )
        model = override.model
        if not isinstance(model, str) or not _is_model(model):
            raise MasterFileError(
                f"model {_shorten(repr(model))} is not valid: models are 1 to "
                f"{_MAX_MODEL_LENGTH} letters and digits, like VVX500"
            )
        key = _model_key(model)
        if key in seen:
            raise MasterFileError(
                f"model {model!r} has two overrides (also {seen[key]!r}); merge them"
            )
        seen[key] = model
        _check_url(f"APP_FILE_PATH_{model}", override.app_file_path)
        _check_config_files(f"CONFIG_FILES_{model}", override.config_files)


def _check_config_files(attribute: str, files: object) -> None:
    if not isinstance(files, tuple):
        raise MasterFileError(f"{attribute} must be a tuple of file names")
    for entry in files:
        if not isinstance(entry, str) or entry == "":
            raise MasterFileError(
                f"{attribute} has the entry {_shorten(repr(entry))}; "
                "every entry is a non-empty file name or URL"
            )
        if "," in entry:
            raise MasterFileError(
                f"{attribute} entry {_shorten(repr(entry))} contains ',', which separates "
                "entries; list the files separately"
            )
        _check_url(attribute, entry)
    joined = len(", ".join(files))
    if joined > _MAX_CONFIG_FILES_LIST:
        raise MasterFileError(
            f"{attribute} is {joined} characters long, over the phone's limit of "
            f"{_MAX_CONFIG_FILES_LIST}; list fewer files or use shorter names"
        )


def _check_url(attribute: str, value: object) -> None:
    if not isinstance(value, str):
        raise MasterFileError(f"{attribute} has a {type(value).__name__} value; give a string")
    _check_text(attribute, value)
    bad = _URL_ILLEGAL_RE.search(value)
    if bad is not None:
        raise MasterFileError(
            f"{attribute} value {_shorten(repr(value))} contains {bad.group()!r}; URLs and "
            "file names may not contain spaces, backslashes or control characters "
            "(percent-encode them)"
        )


def _check_text(attribute: str, value: str) -> None:
    illegal = _XML_ILLEGAL_RE.search(value)
    if illegal is not None:
        raise MasterFileError(
            f"{attribute} holds the character U+{ord(illegal.group()):04X}, which XML cannot "
            "carry; remove it"
        )
    if len(value) > _MAX_VALUE:
        raise MasterFileError(
            f"{attribute} is {len(value)} characters long, over the phone's limit of "
            f"{_MAX_VALUE}; shorten it"
        )


def _doctype_error() -> MasterFileError:
    return MasterFileError(
        "the master file contains a DOCTYPE or ENTITY declaration, which is refused for "
        "safety (entity expansion, external entities); remove the <!DOCTYPE ...> block, "
        "master files never need one"
    )


def _shorten(text: str) -> str:
    """Keep user text in a message without echoing megabytes of it."""
    return text if len(text) <= 80 else text[:77] + "..."


def _split_config_files(value: str) -> tuple[str, ...]:
    return tuple(entry for part in value.split(",") if (entry := part.strip()))


class _Reader:
    """One expat pass whose handlers raise as soon as a cap is hit, so bad input stops early."""

    def __init__(self) -> None:
        self._parser = expat.ParserCreate()
        self._parser.ordered_attributes = True
        self._parser.StartDoctypeDeclHandler = self._refuse_doctype
        self._parser.EntityDeclHandler = self._refuse_doctype
        self._parser.StartElementHandler = self._start
        self._parser.EndElementHandler = self._end
        self._depth = 0
        self._app_file_path = ""
        self._config_files: tuple[str, ...] = ()
        self._attributes: list[tuple[str, str]] = []
        self._models: list[ModelOverride] = []
        self._model_keys: set[str] = set()

    def read(self, data: bytes) -> MasterFile:
        try:
            self._parser.Parse(data, True)
        except MasterFileError:
            raise
        except expat.ExpatError as exc:
            raise MasterFileError(
                "the master file is not well-formed XML: "
                f"{expat.ErrorString(exc.code)} at line {exc.lineno}, column {exc.offset}; "
                "fix the XML there"
            ) from None
        except (LookupError, ValueError) as exc:
            # pyexpat hands a declared non-builtin encoding to Python's codecs,
            # which can only supply single-byte text encodings.
            raise MasterFileError(
                f"the master file declares an encoding that cannot be read ({exc}); "
                "save it as UTF-8"
            ) from None
        return MasterFile(
            app_file_path=self._app_file_path,
            config_files=self._config_files,
            attributes=tuple(self._attributes),
            models=tuple(self._models),
        )

    def _refuse_doctype(self, *_args: object) -> None:
        raise _doctype_error()

    def _start(self, tag: str, attributes: list[str]) -> None:
        self._depth += 1
        pairs = list(zip(attributes[::2], attributes[1::2], strict=True))
        if self._depth == 1:
            self._root(tag, pairs)
        elif self._depth == 2 and tag.startswith(_MODEL_PREFIX):
            self._model(tag.removeprefix(_MODEL_PREFIX), pairs)
        elif self._depth > _MAX_DEPTH:
            raise MasterFileError(
                f"elements are nested more than {_MAX_DEPTH} deep at line "
                f"{self._parser.CurrentLineNumber}; a master file is one level deep"
            )

    def _end(self, _tag: str) -> None:
        self._depth -= 1

    def _root(self, tag: str, pairs: list[tuple[str, str]]) -> None:
        if tag != _ROOT:
            hint = (
                "this is a configuration file, not a master file; list it in CONFIG_FILES"
                if tag in ("polycomConfig", "PHONE_CONFIG")
                else "a master file has the root <APPLICATION>"
            )
            raise MasterFileError(f"the root element is <{_shorten(tag)}>; {hint}")
        for name, value in pairs:
            if name == "APP_FILE_PATH":
                self._app_file_path = value
            elif name == "CONFIG_FILES":
                self._config_files = _split_config_files(value)
            elif name in DIRECTORY_ATTRIBUTES or name.startswith(_EXTRA_PREFIX):
                self._attributes.append((name, value))

    def _model(self, model: str, pairs: list[tuple[str, str]]) -> None:
        line = self._parser.CurrentLineNumber
        if not _is_model(model):
            raise MasterFileError(
                f"element <{_MODEL_PREFIX}{_shorten(model)}> at line {line} does not name a "
                f"model: models are 1 to {_MAX_MODEL_LENGTH} letters and digits, like VVX500"
            )
        key = _model_key(model)
        if key in self._model_keys:
            raise MasterFileError(
                f"model {model!r} has a second <{_MODEL_PREFIX}{model}> at line {line}; "
                "merge them into one"
            )
        self._model_keys.add(key)
        if len(self._models) >= _MAX_MODELS:
            raise MasterFileError(
                f"the master file has more than {_MAX_MODELS} model overrides; remove the "
                "ones for models you do not have"
            )
        values = dict(pairs)
        self._models.append(
            ModelOverride(
                model=model,
                app_file_path=values.get(f"APP_FILE_PATH_{model}", ""),
                config_files=_split_config_files(values.get(f"CONFIG_FILES_{model}", "")),
            )
        )
