"""Issue 7, "Done when": an admin uploads a relay certificate, reads exactly what is
wrong with a bad one, and has a good one served by the relay, through the cloud.

`relay.app.run` in-process (cloud, agents and the relay's listeners on loopback);
the admin's REST API; PFX files made by `openssl pkcs12 -export`; curl and
`openssl s_client` as the phones' side, reaching the relay by the certificate's
name (`--resolve`) because a relay certificate must not name an IP address.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.certs.pki import FQDN, PASSWORD, chain, openssl_in, pem
from tests.e2e.conftest import Service

INSTALL_TIMEOUT = 30.0
FAST = pytest.mark.parametrize("service", [{"heartbeat_seconds": 1.0}], indirect=True)


def _port(url: str) -> int:
    return int(url.rstrip("/").rsplit(":", 1)[1])


async def _upload(service: Service, pfx: bytes, password: str = PASSWORD) -> Any:
    body = {"pfx": base64.b64encode(pfx).decode(), "password": password, "fqdns": [FQDN]}
    return await service.api.put(f"/relays/{service.facts['relay_id']}/certificate", body)


async def _state(service: Service, wanted: str) -> dict[str, Any]:
    relay = service.facts["relay_id"]
    async with asyncio.timeout(INSTALL_TIMEOUT):
        while True:
            seen: dict[str, Any] = (await service.api.get(f"/relays/{relay}/certificate")).body
            if seen["state"] == wanted:
                return seen
            await asyncio.sleep(0.2)


async def _curl(service: Service, cacert: Path, host: str = FQDN) -> tuple[int, str]:
    """curl's exit status and HTTP status for the default master file, at `host` (the
    relay runs in this event loop: the client must not block it)."""
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("needs curl (Debian package curl)")
    port = _port(service.facts["relay_https"])
    process = await asyncio.create_subprocess_exec(
        *[
            curl,
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
            str(cacert),
            "--resolve",
            f"{FQDN}:{port}:127.0.0.1",
            "-u",
            f"{service.facts['prov_user']}:{service.facts['prov_password']}",
            f"https://{host}:{port}/000000000000.cfg",
        ],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    async with asyncio.timeout(30):
        out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


@FAST
async def test_an_uploaded_certificate_is_served_by_the_relay(
    service: Service, tmp_path: Path
) -> None:
    pki = chain()
    pfx = openssl_in(tmp_path).pfx(pki.leaf.cert, pki.leaf.key, pki.cas)
    root = tmp_path / "root.pem"
    root.write_bytes(pem(pki.root.cert))
    assert (await _curl(service, root))[0] != 0  # the relay still serves its lab certificate

    reply = await _upload(service, pfx)
    assert reply.status == 200, reply.text
    installed = await _state(service, "installed")

    assert installed["serving"] == installed["fingerprint"]
    assert await _curl(service, root) == (0, "200")


@FAST
async def test_a_bad_certificate_is_refused_with_the_reason_and_never_reaches_the_relay(
    service: Service, tmp_path: Path
) -> None:
    pki = chain(dns=("other.example",), cn="other.example")
    pfx = openssl_in(tmp_path).pfx(pki.leaf.cert, pki.leaf.key, pki.cas)

    reply = await _upload(service, pfx)

    assert reply.status == 422, reply.text
    assert [e["code"] for e in reply.body["errors"]] == ["fqdn_missing"]
    relay = service.facts["relay_id"]
    assert (await service.api.get(f"/relays/{relay}/certificate")).body["state"] == "none"


@FAST
async def test_a_deleted_certificate_puts_the_relay_back_on_its_own(
    service: Service, tmp_path: Path
) -> None:
    pki = chain()
    pfx = openssl_in(tmp_path).pfx(pki.leaf.cert, pki.leaf.key, pki.cas)
    assert (await _upload(service, pfx)).status == 200
    await _state(service, "installed")

    relay = service.facts["relay_id"]
    assert (await service.api.call("DELETE", f"/relays/{relay}/certificate")).status == 204

    await _state(service, "none")
    lab_ca = Path(service.facts["ca_cert"])
    async with asyncio.timeout(INSTALL_TIMEOUT):
        while True:
            if (await _curl(service, lab_ca, "127.0.0.1"))[0] == 0:
                break
            await asyncio.sleep(0.2)
