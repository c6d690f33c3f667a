"""What the relay's listeners serve across a rotation, seen by real peers: `openssl
s_client` (with and without SNI), `curl --cacert` over HTTPS and FTPS, and 20 rate-limited
curl downloads of a published image that must all complete while the certificate is
rotated and rolled back under them.

The rig is the relay's FrontEnd given `ServingCertificate.context`, as `relay up` wires
it; its cloud is a stub that accepts every phone account (only the TLS side is under test).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509

from certs.lab import ServerIdentity, ensure_lab_identity
from certs.rotation import ServingCertificate, fingerprint
from relay.frontend.firmware import PublishedImages
from relay.frontend.stack import FrontEnd, FrontEndPorts
from relay.frontend.upstream import Upstream
from tests.certs.pki import FQDN, Chain, chain, key_pem, pem
from tests.frontend.published import publish
from tests.phones.conftest import RelayFactory, relay_up  # noqa: F401 - the fixture

IMAGE = "/3111-48500-001.sip.ld"
IMAGE_BYTES = 50 * 1000 * 1000
DOWNLOADS = 20
RATE = "10M"
ACCOUNT = "phones:pw"
CLIENT_TIMEOUT = 120.0
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def _binary(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"needs {name} (Debian package {package})")
    return found


@dataclass
class Rig:
    serving: ServingCertificate
    lab: ServerIdentity
    https: int
    ftp: int
    images: Path
    workdir: Path

    def install(self, c: Chain) -> str:
        served = self.serving.install(
            pem(c.leaf.cert, c.intermediate.cert, c.root.cert), key_pem(c.leaf.key)
        )
        return served.fingerprint

    def root_file(self, c: Chain) -> Path:
        path = self.workdir / f"root-{fingerprint(c.root.cert)[:12]}.pem"
        path.write_bytes(pem(c.root.cert))
        return path


async def _stub_cloud(request: web.Request) -> web.Response:
    """Every account is good; every file is a small one."""
    return web.Response(body=b"" if request.method == "HEAD" else b"<cfg/>\n")


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    lab = ensure_lab_identity(tmp_path / "tls", ["localhost"], ["127.0.0.1"])
    serving = ServingCertificate(lab, tmp_path / "tls" / "relay")
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _stub_cloud)
    cloud = web.AppRunner(app, access_log=None)
    await cloud.setup()
    site = web.TCPSite(cloud, "127.0.0.1", 0)
    await site.start()
    cloud_port = int(cloud.addresses[0][1])
    images = tmp_path / "images"
    images.mkdir()
    front = FrontEnd(
        Upstream(f"http://127.0.0.1:{cloud_port}/", "relay-1", "secret"),
        PublishedImages(images),
        serving.context,
        FrontEndPorts("127.0.0.1", 0, None, ftp=0),
    )
    try:
        facts = await front.start()
        https = int(facts["relay_https"].rstrip("/").rsplit(":", 1)[1])
        ftp = int(facts["relay_ftp"].rstrip("/").rsplit(":", 1)[1])
        yield Rig(serving, lab, https, ftp, images, tmp_path)
    finally:
        await front.close()
        await cloud.cleanup()
        # Published files are read on the loop's default executor: stop its threads.
        await asyncio.get_running_loop().shutdown_default_executor()


async def _run(*args: str, stdin: bytes = b"") -> tuple[int, bytes, bytes]:
    process = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(CLIENT_TIMEOUT):
            out, err = await process.communicate(stdin)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out, err


async def _s_client(port: int, *options: str) -> tuple[int, bytes]:
    openssl = _binary("openssl", "openssl")
    code, out, _ = await _run(
        openssl, "s_client", "-connect", f"127.0.0.1:{port}", *options, stdin=b"Q\n"
    )
    return code, out


async def _served_leaf(port: int, *options: str) -> str:
    """The fingerprint of the leaf `openssl s_client` was given."""
    code, out = await _s_client(port, *options)
    found = _PEM.search(out)
    assert code == 0 and found is not None, out.decode(errors="replace")
    return fingerprint(x509.load_pem_x509_certificate(found.group()))


async def _curl(*args: str) -> int:
    curl = _binary("curl", "curl")
    code, _, _ = await _run(curl, "-s", "-o", "/dev/null", "--max-time", "60", *args)
    return code


async def _https_verifies(rig: Rig, cafile: Path, host: str) -> bool:
    """Does curl, trusting only `cafile`, accept the listener as `host`? (curl exit 60:
    the certificate did not verify)."""
    url = f"https://{host}:{rig.https}/"
    code = await _curl("--cacert", str(cafile), "--resolve", f"{host}:{rig.https}:127.0.0.1", url)
    assert code in (0, 60), code
    return code == 0


@pytest.mark.parametrize("sni", [True, False], ids=["sni", "no-sni"])
async def test_s_client_gets_the_lab_certificate_before_and_the_new_one_after(
    rig: Rig, sni: bool
) -> None:
    options = ["-servername", FQDN] if sni else ["-noservername"]
    lab = rig.serving.serving().fingerprint
    before = await _served_leaf(rig.https, *options)
    new = rig.install(chain())
    after = await _served_leaf(rig.https, *options)
    assert (before, after) == (lab, new)


async def test_curl_trusting_the_new_root_connects_only_after_the_rotation(rig: Rig) -> None:
    c = chain()
    root = rig.root_file(c)
    assert await _https_verifies(rig, rig.lab.ca_cert, "localhost")
    assert not await _https_verifies(rig, root, FQDN)
    rig.install(c)
    assert await _https_verifies(rig, root, FQDN)
    assert not await _https_verifies(rig, rig.lab.ca_cert, "localhost")


async def test_curl_trusting_the_lab_ca_connects_again_after_a_rollback(rig: Rig) -> None:
    rig.install(chain())
    rig.serving.rollback()
    assert await _https_verifies(rig, rig.lab.ca_cert, "localhost")


@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
async def test_tls_1_0_and_1_1_are_refused_after_a_rotation(rig: Rig, version: str) -> None:
    rig.install(chain())
    # The client itself is made willing (SECLEVEL 0): only the server can refuse.
    code, out = await _s_client(rig.https, version, "-cipher", "DEFAULT@SECLEVEL=0")
    assert code != 0
    assert _PEM.search(out) is None


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
async def test_tls_1_2_and_1_3_are_accepted_after_a_rotation(rig: Rig, version: str) -> None:
    new = rig.install(chain())
    assert await _served_leaf(rig.https, version, "-servername", FQDN) == new


async def test_ftps_serves_the_new_certificate_after_a_rotation(rig: Rig) -> None:
    c = chain()
    root = rig.root_file(c)
    publish(rig.images, b"image", filename="sip.ld", model="VVX")
    url = f"ftp://{FQDN}:{rig.ftp}{IMAGE}"
    args = ["--ssl-reqd", "-u", ACCOUNT, "--resolve", f"{FQDN}:{rig.ftp}:127.0.0.1", url]
    assert await _curl("--cacert", str(root), *args) == 60
    rig.install(c)
    assert await _curl("--cacert", str(root), *args) == 0


async def _wait_until_started(headers: list[Path]) -> None:
    """Every download has its response headers, so all are in flight."""
    async with asyncio.timeout(CLIENT_TIMEOUT):
        # curl writes the files: nothing in this process could set an Event.
        while not all(h.exists() and h.stat().st_size > 0 for h in headers):  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_twenty_downloads_in_flight_survive_a_rotation_and_a_rollback(rig: Rig) -> None:
    bash = _binary("bash", "bash")
    curl = _binary("curl", "curl")
    data = os.urandom(IMAGE_BYTES)
    publish(rig.images, data, filename="sip.ld", model="VVX")
    headers = [rig.workdir / f"headers-{n}" for n in range(DOWNLOADS)]
    url = f"https://localhost:{rig.https}{IMAGE}"
    downloads = [
        asyncio.create_task(
            _run(
                bash,
                "-o",
                "pipefail",
                "-c",
                f'"{curl}" -sS --fail --limit-rate {RATE} --cacert "{rig.lab.ca_cert}" '
                f'-u {ACCOUNT} -D "{h}" "{url}" | sha256sum',
            )
        )
        for h in headers
    ]
    try:
        await _wait_until_started(headers)
        new = rig.install(chain())
        rotated = await _served_leaf(rig.https, "-noservername")
        back = rig.serving.rollback().fingerprint
        rolled_back = await _served_leaf(rig.https, "-noservername")
        results = await asyncio.gather(*downloads)
    finally:
        for task in downloads:
            task.cancel()
        await asyncio.gather(*downloads, return_exceptions=True)
    assert (rotated, rolled_back) == (new, back)
    expected = hashlib.sha256(data).hexdigest()
    assert [(code, out.split()[:1]) for code, out, _ in results] == [
        (0, [expected.encode()])
    ] * DOWNLOADS


async def test_relay_up_serves_a_certificate_installed_by_another_process(
    relay_up: RelayFactory,  # noqa: F811
) -> None:
    async with relay_up(agent=True, heartbeat_seconds=60.0) as relay:
        port = int(str(relay.facts["relay_https"]).rstrip("/").rsplit(":", 1)[1])
        ftp = int(str(relay.facts["relay_ftp"]).rstrip("/").rsplit(":", 1)[1])
        tls = Path(relay.facts["data_dir"]) / "tls"
        lab = ServerIdentity(tls / "ca.pem", tls / "server.pem", tls / "server.key")
        c = chain()
        # What `relay certs install` does: another writer of the same files.
        new = (
            ServingCertificate(lab, tls / "relay")
            .install(pem(c.leaf.cert, c.intermediate.cert, c.root.cert), key_pem(c.leaf.key))
            .fingerprint
        )
        async with asyncio.timeout(CLIENT_TIMEOUT):
            # The relay polls the files (certs.rotation.RELOAD_SECONDS): nothing to await.
            while await _served_leaf(port, "-noservername") != new:  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        assert await _served_leaf(ftp, "-starttls", "ftp") == new
