"""The pure parts of the simulated phone's web server: auth schemes, digest, settings layers."""

from __future__ import annotations

import hashlib

import pytest

from relay.sim.httpauth import DigestVerifier, auth_scheme_for, parse_params
from relay.sim.layers import Settings
from relay.sim.restate import Call


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def digest_header(challenge: str, password: str, nc: str = "00000001", uri: str = "/x") -> str:
    params = parse_params(challenge.removeprefix("Digest "))
    assert params is not None
    nonce, realm = params["nonce"], params["realm"]
    ha1 = md5(f"Polycom:{realm}:{password}")
    ha2 = md5(f"GET:{uri}")
    response = md5(f"{ha1}:{nonce}:{nc}:cn1:auth:{ha2}")
    return (
        f'Digest username="Polycom", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'qop=auth, nc={nc}, cnonce="cn1", response="{response}", algorithm=MD5'
    )


@pytest.mark.parametrize(
    ("model", "scheme"),
    [
        ("VVX101", "basic"),
        ("VVX250", "basic"),
        ("VVX310", "basic"),
        ("VVX450", "basic"),
        ("VVX500", "digest"),
        ("VVX600", "digest"),
        ("VVX1500", "digest"),
        ("SPIP650", None),
        ("SSIP7000", None),
    ],
)
def test_auth_scheme_is_decided_by_model(model: str, scheme: str | None) -> None:
    assert auth_scheme_for(model) == scheme


def test_digest_accepts_a_correct_answer_once() -> None:
    verifier = DigestVerifier()
    header = digest_header(verifier.challenge(), "pw")

    assert verifier.check(header, "GET", "/x", "pw")
    assert not verifier.check(header, "GET", "/x", "pw")  # same nc again: a replay


def test_digest_refuses_a_wrong_password_uri_or_unknown_nonce() -> None:
    verifier = DigestVerifier()
    challenge = verifier.challenge()

    assert not verifier.check(digest_header(challenge, "nope"), "GET", "/x", "pw")
    assert not verifier.check(digest_header(challenge, "pw", uri="/y"), "GET", "/x", "pw")
    assert not verifier.check(digest_header(DigestVerifier().challenge(), "pw"), "GET", "/x", "pw")


def test_settings_layers_rank_local_over_web_over_config_files_over_device() -> None:
    settings = Settings({"a": "handset"})
    settings.provisioned(
        config_files={"a": "cfg", "b": "cfg", "c": "cfg"}, phone_file={}, web={"b": "web"}
    )
    settings.device["d"] = "device"

    assert settings.lookup("a") == ("handset", "local")
    assert settings.lookup("b") == ("web", "web")
    assert settings.lookup("c") == ("cfg", "config_files")
    assert settings.lookup("d") == ("device", "device")
    assert settings.lookup("apps.restapi.enabled") == ("0", "default")
    assert settings.lookup("unknown") is None


def test_factory_reset_restores_the_factory_admin_password() -> None:
    settings = Settings()
    settings.provisioned(
        config_files={"device.auth.localAdminPassword": "s3"}, phone_file={}, web={}
    )
    assert settings.admin_password == "s3"

    settings.factory_reset()

    assert settings.admin_password == "456"


def test_a_call_rings_back_for_two_seconds_then_is_connected() -> None:
    placed = Call("0x5a0", 1, "2002", "SIP", started=100.0)

    assert (placed.state(101.9), placed.duration(101.9)) == ("RingBack", 1)
    assert (placed.state(102.0), placed.duration(107.5)) == ("Connected", 7)
