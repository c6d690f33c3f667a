"""PhoneClient against a scripted HTTPS phone: auth schemes, retries, limits, failures."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
import ssl
from collections.abc import Callable

import pytest
from aiohttp import web

from management_agent.phone_client import PhoneClient, PhoneError, phone_ssl_context
from tests.ports import free_port

from .conftest import ADMIN_PASSWORD, FakePhone, rest_reply, target, until

Client = Callable[..., PhoneClient]
BASIC = "Basic " + base64.b64encode(f"Polycom:{ADMIN_PASSWORD}".encode()).decode()
INFO = "/api/v1/mgmt/device/info"


def _params(header: str) -> dict[str, str]:
    return {
        m[1]: m[2] if m[2] is not None else m[3]
        for m in re.finditer(r'(\w+)=(?:"([^"]*)"|([^\s,]+))', header)
    }


class DigestPhone:
    """Digest with SHA-256, checked independently of management_agent.digest.

    `expire_after` answers a nonce that many times, then refuses it (with
    stale=true when `say_stale`), as phones do when a nonce times out.
    """

    def __init__(self, *, expire_after: int = 100, say_stale: bool = True) -> None:
        self.nonces: dict[str, int] = {}
        self.issued = 0
        self.expire_after = expire_after
        self.say_stale = say_stale

    def challenge(self, stale: bool = False) -> web.Response:
        self.issued += 1
        nonce = f"nonce{self.issued}"
        self.nonces[nonce] = 0
        header = f'Digest realm="phone", qop="auth", algorithm=SHA-256, nonce="{nonce}"'
        if stale:
            header += ", stale=true"
        return web.Response(status=401, headers={"WWW-Authenticate": header})

    async def __call__(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Digest "):
            return self.challenge()
        p = _params(header)
        if p.get("nonce") not in self.nonces:
            return self.challenge()

        def h(text: str) -> str:
            return hashlib.sha256(text.encode()).hexdigest()

        ha1 = h(f"Polycom:phone:{ADMIN_PASSWORD}")
        ha2 = h(f"{request.method}:{request.path}")
        expected = h(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:auth:{ha2}")
        count = int(p["nc"], 16)
        if p.get("response") != expected or count <= self.nonces[p["nonce"]]:
            return self.challenge()
        if count > self.expire_after:
            del self.nonces[p["nonce"]]
            return self.challenge(stale=self.say_stale)
        self.nonces[p["nonce"]] = count
        return rest_reply({"ok": "yes"})


async def test_basic_is_sent_first_and_answers_in_one_request(
    fake_phone: FakePhone, client_for: Client
) -> None:
    client = client_for(fake_phone.port)
    assert await client.call(target(), "GET", INFO) is None
    assert fake_phone.seen == [("GET", INFO, BASIC)]
    assert client.auth_scheme(target().mac) == "basic"


async def test_data_is_sent_in_the_data_envelope(fake_phone: FakePhone, client_for: Client) -> None:
    client = client_for(fake_phone.port)
    await client.call(target(), "POST", "/api/v1/mgmt/config/set", {"a.b": "1"})
    assert fake_phone.bodies == [b'{"data": {"a.b": "1"}}']


async def test_sha256_digest_is_answered_after_the_basic_try(
    fake_phone: FakePhone, client_for: Client
) -> None:
    fake_phone.handler = DigestPhone()
    client = client_for(fake_phone.port)
    assert await client.call(target(), "GET", INFO) == {"ok": "yes"}
    assert [auth.split()[0] for _m, _p, auth in fake_phone.seen] == ["Basic", "Digest"]
    assert client.auth_scheme(target().mac) == "digest"


async def test_remembered_digest_counts_nonce_uses_without_new_challenges(
    fake_phone: FakePhone, client_for: Client
) -> None:
    fake_phone.handler = DigestPhone()
    client = client_for(fake_phone.port)
    for _ in range(3):
        await client.call(target(), "GET", INFO)
    counts = [_params(auth).get("nc") for _m, _p, auth in fake_phone.seen[1:]]
    assert counts == ["00000001", "00000002", "00000003"]


@pytest.mark.parametrize("say_stale", [True, False])
async def test_expired_nonce_is_replaced_by_the_fresh_challenge(
    fake_phone: FakePhone, client_for: Client, say_stale: bool
) -> None:
    phone = DigestPhone(expire_after=1, say_stale=say_stale)
    fake_phone.handler = phone
    client = client_for(fake_phone.port)
    await client.call(target(), "GET", INFO)
    assert await client.call(target(), "GET", INFO) == {"ok": "yes"}
    assert phone.issued == 2
    assert _params(fake_phone.seen[-1][2])["nonce"] == "nonce2"


async def test_wrong_password_fails_after_one_fresh_digest_answer(
    fake_phone: FakePhone, client_for: Client
) -> None:
    fake_phone.handler = DigestPhone()
    client = client_for(fake_phone.port)
    with pytest.raises(PhoneError, match="authentication failed") as caught:
        await client.call(target(password="wrong"), "GET", INFO)
    assert caught.value.http == 401
    assert len(fake_phone.seen) == 2


async def test_wrong_basic_password_fails_at_once(
    fake_phone: FakePhone, client_for: Client
) -> None:
    async def basic_only(_request: web.Request) -> web.Response:
        return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="phone"'})

    fake_phone.handler = basic_only
    with pytest.raises(PhoneError, match="authentication failed"):
        await client_for(fake_phone.port).call(target(), "GET", INFO)
    assert len(fake_phone.seen) == 1


async def test_busy_4001_is_retried_with_backoff_then_succeeds(
    fake_phone: FakePhone, client_for: Client
) -> None:
    answers = iter([rest_reply(status="4001"), rest_reply(status="4001"), rest_reply([1])])

    async def busy_twice(_request: web.Request) -> web.Response:
        return next(answers)

    fake_phone.handler = busy_twice
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    client = client_for(fake_phone.port, backoff=1.0, sleep=sleep)
    assert await client.call(target(), "GET", INFO) == [1]
    assert len(delays) == 2
    assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0


async def test_http_403_busy_gives_up_after_the_retries(
    fake_phone: FakePhone, client_for: Client
) -> None:
    async def always_busy(_request: web.Request) -> web.Response:
        return web.Response(status=403, text="one request at a time\n")

    fake_phone.handler = always_busy
    client = client_for(fake_phone.port, retries=3)
    with pytest.raises(PhoneError, match=r"phone busy.*after 3 retries") as caught:
        await client.call(target(), "GET", INFO)
    assert caught.value.http == 403
    assert len(fake_phone.seen) == 4


async def test_403_with_another_status_is_not_retried(
    fake_phone: FakePhone, client_for: Client
) -> None:
    async def factory_password(_request: web.Request) -> web.Response:
        return rest_reply(status="4010", http=403)

    fake_phone.handler = factory_password
    with pytest.raises(PhoneError) as caught:
        await client_for(fake_phone.port).call(target(), "GET", INFO)
    assert caught.value.status == "4010"
    assert len(fake_phone.seen) == 1


async def test_a_phone_that_never_answers_is_offline_after_the_timeout(
    fake_phone: FakePhone, client_for: Client
) -> None:
    release = asyncio.Event()

    async def hang(_request: web.Request) -> web.Response:
        await release.wait()
        return rest_reply()

    fake_phone.handler = hang
    client = client_for(fake_phone.port, timeout=0.2)
    started = asyncio.get_running_loop().time()
    with pytest.raises(PhoneError, match=r"device offline: no answer within 0\.2 s"):
        await client.call(target(), "POST", "/api/v1/callctrl/dial", {"Dest": "1"})
    assert asyncio.get_running_loop().time() - started < 1.0
    assert len(fake_phone.seen) == 1
    release.set()
    await until(lambda: fake_phone.in_progress == 0)


async def test_refused_connection_is_offline_after_one_quick_retry(client_for: Client) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    client = client_for(free_port(), sleep=sleep)
    with pytest.raises(PhoneError, match="device offline") as caught:
        await client.call(target(), "GET", INFO)
    assert caught.value.offline
    assert len(slept) == 1


async def test_answers_over_the_cap_are_refused(fake_phone: FakePhone, client_for: Client) -> None:
    async def huge(_request: web.Request) -> web.Response:
        return rest_reply({"x": "y" * (5 * 1024 * 1024)})

    fake_phone.handler = huge
    with pytest.raises(PhoneError, match="more than 4194304 bytes"):
        await client_for(fake_phone.port).call(target(), "GET", INFO)


async def test_malformed_json_is_a_bad_answer(fake_phone: FakePhone, client_for: Client) -> None:
    async def html(_request: web.Request) -> web.Response:
        return web.Response(text="<html>hello</html>", content_type="text/html")

    fake_phone.handler = html
    with pytest.raises(PhoneError, match="bad answer from the phone"):
        await client_for(fake_phone.port).call(target(), "GET", INFO)


async def test_fetch_returns_the_body_with_the_same_auth(
    fake_phone: FakePhone, client_for: Client
) -> None:
    async def png(_request: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG\r\n\x1a\nrest", content_type="image/png")

    fake_phone.handler = png
    client = client_for(fake_phone.port)
    assert await client.fetch(target(), "/captureScreen") == b"\x89PNG\r\n\x1a\nrest"
    assert fake_phone.seen == [("GET", "/captureScreen", BASIC)]


async def test_fetch_does_not_retry_403(fake_phone: FakePhone, client_for: Client) -> None:
    async def disabled(_request: web.Request) -> web.Response:
        return web.Response(status=403, text="screen capture is disabled\n")

    fake_phone.handler = disabled
    with pytest.raises(PhoneError) as caught:
        await client_for(fake_phone.port).fetch(target(), "/captureScreen")
    assert caught.value.http == 403
    assert len(fake_phone.seen) == 1


async def test_one_phone_never_gets_two_requests_at_once(
    fake_phone: FakePhone, client_for: Client
) -> None:
    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(0.02)
        return rest_reply()

    fake_phone.handler = slow
    client = client_for(fake_phone.port)
    await asyncio.gather(*(client.call(target(), "GET", INFO) for _ in range(8)))
    assert fake_phone.peak == 1
    assert len(fake_phone.seen) == 8


async def test_failures_are_logged_once_without_secrets(
    fake_phone: FakePhone, client_for: Client, caplog: pytest.LogCaptureFixture
) -> None:
    async def refuse(_request: web.Request) -> web.Response:
        return rest_reply(status="4005")

    fake_phone.handler = refuse
    caplog.set_level(logging.DEBUG, logger="management_agent")
    with pytest.raises(PhoneError):
        await client_for(fake_phone.port).call(target(), "GET", INFO)
    records = [r for r in caplog.records if r.name == "management_agent.phone"]
    assert [r.getMessage() for r in records] == ["phone_request_failed"]
    fields = records[0].fields  # type: ignore[attr-defined]
    assert fields["status"] == "4005" and fields["path"] == INFO
    assert ADMIN_PASSWORD not in repr(fields) and BASIC not in caplog.text


async def test_closed_client_refuses_requests(fake_phone: FakePhone, client_for: Client) -> None:
    client = client_for(fake_phone.port)
    await client.aclose()
    with pytest.raises(PhoneError, match="closed"):
        await client.call(target(), "GET", INFO)


def test_phone_tls_context_requires_tls12_and_verifies_nothing() -> None:
    context = phone_ssl_context()
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname
