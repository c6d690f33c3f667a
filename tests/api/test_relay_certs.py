"""A relay's own certificate over the API (issue 7; docs/agent-link.md "Certificates"):
the admin uploads a PFX made by `openssl pkcs12 -export`, reads the validation report
and the relay's state; the relay's agent fetches it by etag and reports what it serves.
"""

from __future__ import annotations

import base64
import json
import logging
import stat
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.cloud.relaycerts import parse_upload
from relay.cloud.rules.errors import RuleError
from relay.cloud.secretbox import SecretBox, SecretError
from relay.sync.certificates import CertificateState, RelayCertificate
from tests.api.conftest import (
    Api,
    Clock,
    Reply,
    error_of,
    register_relay,
    relay_auth,
    served_plane,
)
from tests.certs.pki import FQDN, PASSWORD, Chain, Openssl, chain, key_pem, openssl_in, pem

OTHER_FQDN = "relay.other.example"


@dataclass
class Cloud:
    api: Api
    clock: Clock
    data_dir: Path


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[Cloud]:
    """The API over a control plane on a settable clock that starts at the real time (the
    test certificates are dated from it)."""
    clock = Clock(time.time())
    async with served_plane(tmp_path, clock) as served:
        yield Cloud(served.api, clock, tmp_path / "cloud")


@pytest.fixture
def api(cloud: Cloud) -> Api:
    return cloud.api


@pytest.fixture
def openssl(tmp_path: Path) -> Openssl:
    directory = tmp_path / "openssl"
    directory.mkdir()
    return openssl_in(directory)


@pytest.fixture
def pki() -> Chain:
    return chain()


@pytest.fixture
def good_pfx(openssl: Openssl, pki: Chain) -> bytes:
    return openssl.pfx(pki.leaf.cert, pki.leaf.key, pki.cas)


async def relay(api: Api, name: str = FQDN) -> tuple[str, str]:
    credential = await register_relay(api, name)
    return credential.relay_id, relay_auth(credential)


def body(pfx: bytes, password: str | None = PASSWORD, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"pfx": base64.b64encode(pfx).decode(), **extra}
    if password is not None:
        out["password"] = password
    return out


async def upload(api: Api, relay_id: str, pfx: bytes, **extra: Any) -> Reply:
    return await api.put(f"/relays/{relay_id}/certificate", body(pfx, **extra))


async def view(api: Api, relay_id: str) -> dict[str, Any]:
    reply = await api.get(f"/relays/{relay_id}/certificate")
    assert reply.status == 200, reply.text
    result: dict[str, Any] = reply.body
    return result


async def agent_get(api: Api, auth: str, etag: str | None = None) -> Reply:
    """A GET as the relay's agent; header names in lower case."""
    headers = {} if etag is None else {"If-None-Match": f'"{etag}"'}
    async with api.session.get(
        api.base + "/agent/certificate", headers={"Authorization": auth, **headers}
    ) as resp:
        raw = await resp.read()
        parsed = json.loads(raw) if resp.content_type == "application/json" and raw else None
        headers = {k.lower(): v for k, v in resp.headers.items()}
        return Reply(resp.status, parsed, raw.decode(), headers)


async def report_state(api: Api, auth: str, state: CertificateState) -> Reply:
    return await api.put("/agent/certificate/status", state.to_wire(), auth=auth)


def codes(findings: list[dict[str, str]]) -> list[str]:
    return [f["code"] for f in findings]


def stored_bytes(data_dir: Path) -> dict[str, bytes]:
    """Every file the cloud keeps (database, its WAL, the activity log), but the key file."""
    return {
        str(p): p.read_bytes()
        for p in data_dir.rglob("*")
        if p.is_file() and p.name != "secretbox.key"
    }


async def activity(api: Api) -> list[dict[str, Any]]:
    reply = await api.get("/activity")
    entries: list[dict[str, Any]] = reply.body["entries"]
    return entries


# -- upload ------------------------------------------------------------------


async def test_a_valid_pfx_is_accepted_with_its_report(api: Api, good_pfx: bytes) -> None:
    relay_id, _ = await relay(api)
    reply = await upload(api, relay_id, good_pfx)
    assert reply.status == 200, reply.text
    assert reply.body["ok"] is True
    assert reply.body["errors"] == []
    assert "private_ca" in codes(reply.body["warnings"])
    assert reply.body["certificate"]["dns_names"] == [FQDN]


async def test_an_accepted_certificate_is_pending_until_the_relay_has_it(
    api: Api, good_pfx: bytes, pki: Chain
) -> None:
    relay_id, _ = await relay(api)
    await upload(api, relay_id, good_pfx)
    got = await view(api, relay_id)
    assert got["state"] == "pending"
    assert got["delivered"] is False
    assert got["fingerprint"] == pki.leaf.cert.fingerprint(hashes.SHA256()).hex()
    assert got["not_after"] == pki.leaf.cert.not_valid_after_utc.isoformat()
    assert got["report"]["ok"] is True


async def test_a_wrong_password_is_422_with_the_report_and_nothing_is_stored(
    api: Api, good_pfx: bytes
) -> None:
    relay_id, _ = await relay(api)
    reply = await upload(api, relay_id, good_pfx, password="not-the-password")
    assert reply.status == 422, reply.text
    assert reply.body["ok"] is False
    assert codes(reply.body["errors"]) == ["bad_password"]
    assert error_of(reply)["code"] == "invalid_certificate"
    assert await view(api, relay_id) == {"state": "none"}


async def test_a_pem_file_instead_of_a_pfx_is_422_not_pkcs12_and_nothing_is_stored(
    api: Api, pki: Chain
) -> None:
    relay_id, _ = await relay(api)
    reply = await upload(api, relay_id, pem(pki.leaf.cert) + key_pem(pki.leaf.key))
    assert reply.status == 422, reply.text
    assert codes(reply.body["errors"]) == ["not_pkcs12"]
    assert await view(api, relay_id) == {"state": "none"}


async def test_a_certificate_without_the_relays_fqdn_is_422_fqdn_missing(
    api: Api, good_pfx: bytes
) -> None:
    relay_id, _ = await relay(api)
    reply = await upload(api, relay_id, good_pfx, fqdns=[OTHER_FQDN])
    assert reply.status == 422, reply.text
    assert codes(reply.body["errors"]) == ["fqdn_missing"]
    assert await view(api, relay_id) == {"state": "none"}


async def test_a_refused_upload_keeps_the_certificate_already_accepted(
    api: Api, good_pfx: bytes
) -> None:
    relay_id, _ = await relay(api)
    await upload(api, relay_id, good_pfx)
    before = await view(api, relay_id)
    await upload(api, relay_id, good_pfx, password="wrong")
    assert await view(api, relay_id) == before


async def test_fqdns_given_are_checked_instead_of_the_relays_name(
    api: Api, openssl: Openssl
) -> None:
    relay_id, _ = await relay(api, "relay-1")
    both = chain(dns=(FQDN, OTHER_FQDN))
    pfx = openssl.pfx(both.leaf.cert, both.leaf.key, both.cas)
    reply = await upload(api, relay_id, pfx, fqdns=[FQDN, OTHER_FQDN])
    assert reply.status == 200, reply.text
    assert (await view(api, relay_id))["fqdns"] == [FQDN, OTHER_FQDN]


async def test_without_fqdns_the_relays_name_is_the_fqdn_checked(api: Api, good_pfx: bytes) -> None:
    relay_id, _ = await relay(api, FQDN)
    await upload(api, relay_id, good_pfx)
    assert (await view(api, relay_id))["fqdns"] == [FQDN]


async def test_without_fqdns_or_a_relay_fqdn_the_upload_is_400_asking_for_fqdns(
    api: Api, good_pfx: bytes
) -> None:
    relay_id, _ = await relay(api, "relay-1")
    reply = await upload(api, relay_id, good_pfx)
    assert reply.status == 400, reply.text
    assert error_of(reply)["code"] == "fqdns_required"
    assert "fqdns" in error_of(reply)["message"]


async def test_a_pfx_that_is_not_base64_is_400(api: Api) -> None:
    relay_id, _ = await relay(api)
    reply = await api.put(f"/relays/{relay_id}/certificate", {"pfx": "not base64!"})
    assert reply.status == 400, reply.text
    assert error_of(reply)["field"] == "pfx"


async def test_an_upload_over_512_kib_is_413(api: Api) -> None:
    relay_id, _ = await relay(api)
    reply = await upload(api, relay_id, b"\0" * (400 * 1024))
    assert reply.status == 413, reply.text


async def test_an_upload_for_an_unknown_relay_is_404(api: Api, good_pfx: bytes) -> None:
    reply = await upload(api, "no-such-relay", good_pfx)
    assert reply.status == 404, reply.text


async def test_a_refused_upload_is_in_the_activity_log_with_its_codes(
    api: Api, good_pfx: bytes
) -> None:
    relay_id, _ = await relay(api)
    await upload(api, relay_id, good_pfx, password="wrong")
    entry = next(e for e in await activity(api) if e["op"] == "upload_refused")
    assert entry["target"] == f"relay/{relay_id}/certificate"
    assert entry["detail"]["errors"] == ["bad_password"]


async def test_an_accepted_upload_is_in_the_activity_log_with_its_fingerprint(
    api: Api, good_pfx: bytes
) -> None:
    relay_id, _ = await relay(api)
    await upload(api, relay_id, good_pfx)
    entry = next(e for e in await activity(api) if e["op"] == "upload")
    assert entry["detail"]["fingerprint"] == (await view(api, relay_id))["fingerprint"]


# -- secrets -----------------------------------------------------------------


async def test_the_password_is_never_returned_logged_or_stored(
    cloud: Cloud, good_pfx: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    api = cloud.api
    relay_id, auth = await relay(api)
    replies = [
        await upload(api, relay_id, good_pfx, password=PASSWORD + "x"),
        await upload(api, relay_id, good_pfx),
        await api.get(f"/relays/{relay_id}/certificate"),
        await api.get(f"/relays/{relay_id}"),
        await agent_get(api, auth),
        await api.get("/activity"),
    ]
    assert all(PASSWORD not in r.text for r in replies)
    assert all(PASSWORD not in f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for name, data in stored_bytes(cloud.data_dir).items():
        assert PASSWORD.encode() not in data, name


async def test_the_private_key_is_stored_only_encrypted(
    cloud: Cloud, good_pfx: bytes, pki: Chain
) -> None:
    relay_id, _ = await relay(cloud.api)
    await upload(cloud.api, relay_id, good_pfx)
    der = pki.leaf.key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    body_line = key_pem(pki.leaf.key).splitlines()[1]
    for name, data in stored_bytes(cloud.data_dir).items():
        assert b"PRIVATE KEY" not in data, name
        assert der not in data and body_line not in data, name


async def test_the_key_file_is_32_bytes_readable_by_its_owner_only(
    cloud: Cloud, good_pfx: bytes
) -> None:
    relay_id, _ = await relay(cloud.api)
    await upload(cloud.api, relay_id, good_pfx)
    key_file = cloud.data_dir / "secretbox.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_bytes()) == 32


def test_a_sealed_secret_does_not_open_for_another_record(tmp_path: Path) -> None:
    box = SecretBox(tmp_path / "secretbox.key")
    sealed = box.seal(b"key", b"relay-certificate/a/f")
    assert box.open(sealed, b"relay-certificate/a/f") == b"key"
    with pytest.raises(SecretError):
        box.open(sealed, b"relay-certificate/b/f")


def test_a_sealed_secret_does_not_open_under_a_new_key_file(tmp_path: Path) -> None:
    sealed = SecretBox(tmp_path / "one.key").seal(b"key", b"ad")
    with pytest.raises(SecretError):
        SecretBox(tmp_path / "two.key").open(sealed, b"ad")


# -- the admin's view ----------------------------------------------------------


async def test_without_an_upload_the_state_is_none(api: Api) -> None:
    relay_id, _ = await relay(api)
    assert await view(api, relay_id) == {"state": "none"}


async def test_the_certificate_of_an_unknown_relay_is_404(api: Api) -> None:
    reply = await api.get("/relays/no-such-relay/certificate")
    assert reply.status == 404, reply.text


async def test_the_report_is_judged_again_against_the_clock(
    cloud: Cloud, good_pfx: bytes, pki: Chain
) -> None:
    relay_id, _ = await relay(cloud.api)
    await upload(cloud.api, relay_id, good_pfx)
    expiry = pki.leaf.cert.not_valid_after_utc
    cloud.clock.now = (expiry + timedelta(days=1)).timestamp()
    report = (await view(cloud.api, relay_id))["report"]
    assert report["ok"] is False
    assert "expired" in codes(report["errors"])


async def test_the_report_warns_when_the_certificate_expires_within_30_days(
    cloud: Cloud, good_pfx: bytes, pki: Chain
) -> None:
    relay_id, _ = await relay(cloud.api)
    await upload(cloud.api, relay_id, good_pfx)
    cloud.clock.now = (pki.leaf.cert.not_valid_after_utc - timedelta(days=10)).timestamp()
    report = (await view(cloud.api, relay_id))["report"]
    assert "expires_soon" in codes(report["warnings"])


async def test_the_relay_shows_its_certificate_state(api: Api, good_pfx: bytes) -> None:
    relay_id, _ = await relay(api)
    await upload(api, relay_id, good_pfx)
    got = (await api.get(f"/relays/{relay_id}")).body["certificate"]
    assert got["state"] == "pending"
    assert "report" not in got


# -- the agent's side ------------------------------------------------------------


async def test_the_agent_gets_the_chain_and_key_with_an_etag(
    api: Api, good_pfx: bytes, pki: Chain
) -> None:
    relay_id, auth = await relay(api)
    await upload(api, relay_id, good_pfx)
    reply = await agent_get(api, auth)
    assert reply.status == 200, reply.text
    certificate = RelayCertificate.from_wire(reply.body)
    assert reply.headers["etag"] == f'"{certificate.etag}"'
    chain_certs = x509.load_pem_x509_certificates(certificate.chain_pem.encode())
    assert chain_certs == [pki.leaf.cert, pki.intermediate.cert, pki.root.cert]
    key = serialization.load_pem_private_key(certificate.key_pem.encode(), None)
    assert key.public_key() == pki.leaf.cert.public_key()


async def test_the_fetch_marks_the_certificate_delivered(api: Api, good_pfx: bytes) -> None:
    relay_id, auth = await relay(api)
    await upload(api, relay_id, good_pfx)
    await agent_get(api, auth)
    assert (await view(api, relay_id))["delivered"] is True


async def test_the_agent_gets_304_with_the_current_etag(api: Api, good_pfx: bytes) -> None:
    relay_id, auth = await relay(api)
    await upload(api, relay_id, good_pfx)
    etag = (await agent_get(api, auth)).body["etag"]
    reply = await agent_get(api, auth, etag)
    assert reply.status == 304
    assert reply.headers["etag"] == f'"{etag}"'


async def test_a_new_upload_of_the_same_pfx_changes_the_etag(api: Api, good_pfx: bytes) -> None:
    relay_id, auth = await relay(api)
    await upload(api, relay_id, good_pfx)
    etag = (await agent_get(api, auth)).body["etag"]
    await upload(api, relay_id, good_pfx)
    reply = await agent_get(api, auth, etag)
    assert reply.status == 200
    assert reply.body["etag"] != etag


async def test_the_agent_gets_404_without_an_uploaded_certificate(api: Api) -> None:
    _, auth = await relay(api)
    reply = await agent_get(api, auth)
    assert reply.status == 404


async def test_another_relay_never_gets_this_relays_certificate(api: Api, good_pfx: bytes) -> None:
    relay_id, _ = await relay(api)
    _, other = await relay(api, OTHER_FQDN)
    await upload(api, relay_id, good_pfx)
    assert (await agent_get(api, other)).status == 404


async def test_the_agent_route_refuses_an_admin_token(api: Api) -> None:
    reply = await api.get("/agent/certificate")
    assert reply.status == 401


async def test_after_delete_the_agent_gets_404(api: Api, good_pfx: bytes) -> None:
    relay_id, auth = await relay(api)
    await upload(api, relay_id, good_pfx)
    etag = (await agent_get(api, auth)).body["etag"]
    reply = await api.delete(f"/relays/{relay_id}/certificate")
    assert reply.status == 204
    assert (await agent_get(api, auth, etag)).status == 404
    assert await view(api, relay_id) == {"state": "none"}


async def test_the_status_answer_is_the_current_etag(api: Api, good_pfx: bytes) -> None:
    relay_id, auth = await relay(api)
    await upload(api, relay_id, good_pfx)
    etag = (await agent_get(api, auth)).body["etag"]
    reply = await report_state(api, auth, CertificateState(serving=""))
    assert reply.status == 200, reply.text
    assert reply.body == {"etag": etag}


async def test_the_status_answer_is_empty_without_a_certificate(api: Api) -> None:
    _, auth = await relay(api)
    reply = await report_state(api, auth, CertificateState(serving=""))
    assert reply.body == {"etag": ""}


async def test_a_relay_serving_the_certificate_shows_it_installed(
    api: Api, good_pfx: bytes
) -> None:
    relay_id, auth = await relay(api)
    await upload(api, relay_id, good_pfx)
    delivered = RelayCertificate.from_wire((await agent_get(api, auth)).body)
    previous = "ab" * 32
    await report_state(
        api, auth, CertificateState(serving=delivered.fingerprint, previous=previous)
    )
    got = await view(api, relay_id)
    assert got["state"] == "installed"
    assert (got["serving"], got["previous"], got["error"]) == (delivered.fingerprint, previous, "")
    assert (await api.get(f"/relays/{relay_id}")).body["certificate"]["state"] == "installed"


async def test_a_relay_reporting_an_install_error_shows_it_failed(
    api: Api, good_pfx: bytes
) -> None:
    relay_id, auth = await relay(api)
    await upload(api, relay_id, good_pfx)
    await agent_get(api, auth)
    own = "cd" * 32
    await report_state(api, auth, CertificateState(serving=own, error="disk full"))
    got = await view(api, relay_id)
    assert (got["state"], got["serving"], got["error"]) == ("failed", own, "disk full")


async def test_an_error_reported_before_the_fetch_is_not_a_failure(
    api: Api, good_pfx: bytes
) -> None:
    relay_id, auth = await relay(api)
    await upload(api, relay_id, good_pfx)
    await report_state(api, auth, CertificateState(serving="", error="an older problem"))
    await agent_get(api, auth)
    got = await view(api, relay_id)
    assert (got["state"], got["error"]) == ("pending", "")


async def test_a_malformed_status_is_400_naming_the_field(api: Api) -> None:
    _, auth = await relay(api)
    reply = await api.put("/agent/certificate/status", {"serving": "not-hex"}, auth=auth)
    assert reply.status == 400, reply.text
    assert "serving" in error_of(reply)["message"]


# -- the upload body under random input ---------------------------------------------

KEYS = st.sampled_from(["pfx", "password", "fqdns", "fqdn", "other"])
VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.text(max_size=40),
        st.sampled_from(["MAo=", "relay.branch.example", "", " ", "a" * 300, "A" * 600_000]),
    ),
    lambda inner: st.lists(inner, max_size=40) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=60,
)


@settings(max_examples=300, deadline=None)
@given(raw=st.one_of(VALUES, st.dictionaries(KEYS, VALUES, max_size=4)))
def test_the_upload_parser_raises_only_rule_errors_that_never_quote_the_password(
    raw: object,
) -> None:
    try:
        parsed = parse_upload(raw)
    except RuleError as exc:
        assert exc.status in (400, 413)
        password = raw.get("password") if isinstance(raw, dict) else None
        if isinstance(password, str) and len(password) > 3:
            assert password not in exc.message
    else:
        assert isinstance(parsed.pfx, bytes)
        assert repr(parsed).startswith("Upload(fqdns=")
