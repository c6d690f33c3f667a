"""How a simulated phone names itself in its User-Agent (phones.md section 2).

Master files spell models "VVX500"; the User-Agent carries a family and a
model token ("PolycomVVX-VVX_500-UA/..."), so the simulator derives both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Model prefix -> User-Agent family, from the User-Agents phones.md section 2 lists.
_FAMILIES = {
    "VVX": "PolycomVVX",
    "SPIP": "PolycomSoundPointIP",
    "SSIP": "PolycomSoundStationIP",
    "TRIO": "PolycomRealPresenceTrio",
    "CX": "PolycomCX",
}
_MODEL_RE = re.compile(r"(?P<prefix>[A-Za-z]+)(?P<rest>[0-9][A-Za-z0-9]*)?")
# CX5100/CX5500 keep their local settings in <mac>-system.cfg (phones.md section 2).
_SYSTEM_CFG_MODELS = frozenset({"CX5100", "CX5500"})


@dataclass(frozen=True, slots=True)
class UserAgentIdentity:
    """The family and model token format_user_agent takes."""

    family: str
    model_token: str


def user_agent_identity(model: str) -> UserAgentIdentity:
    """ "VVX500" -> PolycomVVX / VVX_500; "EdgeE450" -> PolyEdge / Edge_E450."""
    if model.upper().startswith("EDGE") and len(model) > 4:
        return UserAgentIdentity("PolyEdge", f"Edge_{model[4:]}")
    match = _MODEL_RE.fullmatch(model)
    if match is None:
        raise ValueError(f"model {model!r} is not letters followed by digits, like VVX500")
    prefix, rest = match["prefix"], match["rest"]
    family = _FAMILIES.get(prefix.upper(), f"Polycom{prefix}")
    return UserAgentIdentity(family, f"{prefix}_{rest}" if rest else prefix)


def uses_system_cfg(model: str) -> bool:
    """Whether the model's override file is `<mac>-system.cfg` rather than `<mac>-phone.cfg`."""
    return model.upper() in _SYSTEM_CFG_MODELS
