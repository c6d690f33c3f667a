"""The User-Agent of Polycom/Poly phones (phones.md section 2).

Every provisioning request carries one, e.g.
``FileTransport PolycomVVX-VVX_500-UA/5.9.7.4477 Type/Application``: the
product family, the model, the firmware version and the boot stage (the
Updater writes the boot log, the Application fetches the configuration). The
relay reads it to pick per-model files and to decide whether to offer
firmware; the simulator writes it. Pure stdlib; any text in gives a
``UserAgent`` or one ``UserAgentError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_USER_AGENT = 512

# "<family>-<model token>-UA/<firmware>": the family has no '-', so the first
# '-' ends it; the model token has no '-' either, so "-UA/" ends it.
_FAMILY = r"Poly[A-Za-z0-9]{0,60}"
_MODEL_PART = r"[A-Za-z0-9][A-Za-z0-9_]{0,63}"
_FIRMWARE = r"[0-9][0-9A-Za-z._\-]{0,63}"
_PRODUCT_RE = re.compile(
    rf"(?P<family>{_FAMILY})-(?P<model>{_MODEL_PART})-UA/(?P<firmware>{_FIRMWARE})"
)
_SERIAL_RE = re.compile(r"\(SN:(?P<serial>[0-9A-Za-z]{1,64})\)")
_TYPE_RE = re.compile(r"Type/(?P<type>[A-Za-z]{1,32})")
_STAGES = {"application": "Application", "updater": "Updater"}
_PREFIX_TOKEN_RE = re.compile(r"[!-~]{1,128}")


class UserAgentError(ValueError):
    """A User-Agent is not a phone's, or parts to format would not make one."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class UserAgent:
    """What a phone says about itself; `model` is the master-file spelling (VVX500)."""

    family: str
    model: str
    firmware: str
    stage: str
    serial: str | None


def parse_user_agent(text: str) -> UserAgent:
    """Read family, model, firmware, stage and serial from a phone's User-Agent.

    Tokens are whitespace-separated; extra ones before and after (proxies,
    `Microbrowser/1.1`) are tolerated. The first `<family>-<model>-UA/<fw>`
    token counts. A `Type/` other than Application or Updater is treated as
    an unknown extra token, giving stage "".
    """
    if not isinstance(text, str):
        raise UserAgentError(f"the User-Agent is a {type(text).__name__}, not text")
    if len(text) > MAX_USER_AGENT:
        raise UserAgentError(
            f"the User-Agent is {len(text)} characters, over the limit of {MAX_USER_AGENT}"
        )
    tokens = text.split()
    product = next(
        (match for token in tokens if (match := _PRODUCT_RE.fullmatch(token)) is not None), None
    )
    if product is None:
        raise UserAgentError(
            f"the User-Agent {_shorten(text)!r} is not a Polycom/Poly phone's: it has no "
            "'<family>-<model>-UA/<firmware>' token such as 'PolycomVVX-VVX_500-UA/5.9.7.4477'"
        )
    serial = next(
        (match["serial"].lower() for token in tokens if (match := _SERIAL_RE.fullmatch(token))),
        None,
    )
    stage = next(
        (
            match["type"].lower()
            for token in tokens
            if (match := _TYPE_RE.fullmatch(token)) and match["type"].lower() in _STAGES
        ),
        "",
    )
    return UserAgent(
        family=product["family"],
        model=normalize_model(product["model"]),
        firmware=product["firmware"],
        stage=stage,
        serial=serial,
    )


def normalize_model(model_token: str) -> str:
    """The User-Agent model token as master files name it: "VVX_500" -> "VVX500"."""
    return model_token.replace("_", "")


def format_user_agent(
    family: str,
    model_token: str,
    firmware: str,
    stage: str,
    serial: str | None = None,
    prefix: str = "FileTransport",
) -> str:
    """Write the User-Agent a phone sends; parse_user_agent reads every result back.

    `model_token` is the raw token ("VVX_500"); `stage` is "application",
    "updater" or "" (no Type token); `prefix` is the leading token(s), "" for none.
    """
    parts = {"family": family, "model token": model_token, "firmware": firmware}
    for label, value in parts.items():
        if not isinstance(value, str):
            raise UserAgentError(f"the {label} is a {type(value).__name__}; give a string")
    product = f"{family}-{model_token}-UA/{firmware}"
    match = _PRODUCT_RE.fullmatch(product)
    if match is None or (match["family"], match["model"]) != (family, model_token):
        raise UserAgentError(
            f"{_shorten(product)!r} is not a phone product token: the family starts with "
            "'Poly' and holds letters and digits, the model token holds letters, digits "
            "and '_', the firmware starts with a digit"
        )
    tokens = _prefix_tokens(prefix)
    tokens.append(product)
    if serial is not None:
        if not isinstance(serial, str) or _SERIAL_RE.fullmatch(f"(SN:{serial})") is None:
            raise UserAgentError(
                f"serial {_shorten(repr(serial))} is not 1 to 64 letters and digits"
            )
        tokens.append(f"(SN:{serial})")
    if stage:
        if stage not in _STAGES:
            raise UserAgentError(
                f"stage {_shorten(repr(stage))} is not one of 'application', 'updater' or ''"
            )
        tokens.append(f"Type/{_STAGES[stage]}")
    text = " ".join(tokens)
    if len(text) > MAX_USER_AGENT:
        raise UserAgentError(
            f"the User-Agent would be {len(text)} characters, over the limit of {MAX_USER_AGENT}"
        )
    return text


def _prefix_tokens(prefix: object) -> list[str]:
    """Split the prefix, refusing tokens parse_user_agent would read as phone data."""
    if not isinstance(prefix, str):
        raise UserAgentError(f"the prefix is a {type(prefix).__name__}; give a string")
    if prefix == "":
        return []
    tokens = prefix.split(" ")
    for token in tokens:
        if (
            _PREFIX_TOKEN_RE.fullmatch(token) is None
            or _PRODUCT_RE.fullmatch(token)
            or _SERIAL_RE.fullmatch(token)
            or _TYPE_RE.fullmatch(token)
        ):
            raise UserAgentError(
                f"prefix {_shorten(prefix)!r} must be printable ASCII tokens separated by "
                "single spaces, none of them a product, '(SN:...)' or 'Type/...' token"
            )
    return tokens


def _shorten(text: str) -> str:
    """Keep user text in a message without echoing all of it."""
    return text if len(text) <= 80 else text[:77] + "..."
