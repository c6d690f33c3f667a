"""The TLS policy of certs/tls.py (issue 7, "TLS policy"), on the source and on the wire.

On the source: nothing in relay/, management_agent/, download_agent/ or certs/ turns
verification off except `certs.tls.phone_rest_context`, which only the phone REST client
uses, and TLS contexts are built only in certs/tls.py (the exceptions found are listed
with why). On the wire, with openssl as the real peer: a `server_context` listener refuses
TLS 1.0/1.1 and weak TLS 1.2 suites, accepts 1.2 and 1.3, resumes sessions for both;
`client_context` refuses a server its pinned CA did not sign or with another host name.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import shutil
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from certs.lab import ServerIdentity, ensure_lab_identity
from certs.tls import (
    MAXIMUM_VERSION,
    MINIMUM_VERSION,
    client_context,
    phone_rest_context,
    server_context,
)
from tests.ports import free_port

REPO = Path(__file__).resolve().parents[2]
AUDITED = ("relay", "management_agent", "download_agent", "certs")
HOST = "127.0.0.1"
FQDN = "relay.test.example"
OPENSSL = shutil.which("openssl")
PEER_TIMEOUT = 60.0

needs_openssl = pytest.mark.skipif(
    OPENSSL is None, reason="needs the openssl command (apt-get install openssl)"
)

# The one place allowed to verify nothing, and the one module allowed to use it.
PHONE_REST_EXCEPTION = ("certs/tls.py", "phone_rest_context")
PHONE_REST_USER = "management_agent/phone_client.py"
# Contexts built outside certs/tls.py today, each with why; fixing one removes its entry.
CONTEXT_EXCEPTIONS = {
    ("relay/sim/rest.py", "server_context"): (
        "the simulated phone's own REST listener: a phone's self-signed endpoint, "
        "not a relay listener"
    ),
    ("relay/sim/phone.py", "_client_context"): (
        "the simulated phone's HTTPS client: what a phone trusts (customCaCert1), "
        "not the relay's policy"
    ),
}
UNVERIFIED_NAMES = frozenset({"CERT_NONE", "_create_unverified_context"})
UNVERIFIED_KEYWORDS = frozenset({"ssl", "verify", "verify_ssl"})
CONTEXT_BUILDERS = frozenset({"SSLContext", "create_default_context"})


# -- the source ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    """One place in the source: which file, which function, what it does."""

    path: str
    function: str
    what: str
    line: int


class _Audit(ast.NodeVisitor):
    """Finds the ways to turn verification off and every TLS context built."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.scope: list[str] = []
        self.unverified: list[Finding] = []
        self.contexts: list[Finding] = []

    def _at(self, node: ast.expr | ast.stmt | ast.alias, what: str) -> Finding:
        return Finding(self.path, ".".join(self.scope) or "<module>", what, node.lineno)

    def _scoped(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in UNVERIFIED_NAMES:
            self.unverified.append(self._at(node, node.id))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in UNVERIFIED_NAMES:
            self.unverified.append(self._at(node, node.attr))
        self.generic_visit(node)

    def visit_alias(self, node: ast.alias) -> None:
        if node.name in UNVERIFIED_NAMES:
            self.unverified.append(self._at(node, node.name))

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            if (
                isinstance(target, ast.Attribute)
                and target.attr == "check_hostname"
                and _is_false(node.value)
            ):
                self.unverified.append(self._at(node, "check_hostname = False"))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        for keyword in node.keywords:
            if keyword.arg in UNVERIFIED_KEYWORDS and _is_false(keyword.value):
                self.unverified.append(self._at(node, f"{keyword.arg}=False"))
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in CONTEXT_BUILDERS:
            self.contexts.append(self._at(node, f"{name}("))
        self.generic_visit(node)


def _is_false(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def audit_source(path: str, source: str) -> _Audit:
    found = _Audit(path)
    found.visit(ast.parse(source, filename=path))
    return found


def audited_files() -> Iterator[tuple[str, str]]:
    for top in AUDITED:
        for file in sorted((REPO / top).rglob("*.py")):
            yield file.relative_to(REPO).as_posix(), file.read_text()


def audit_tree() -> tuple[list[Finding], list[Finding]]:
    unverified: list[Finding] = []
    contexts: list[Finding] = []
    for path, source in audited_files():
        found = audit_source(path, source)
        unverified += found.unverified
        contexts += found.contexts
    return unverified, contexts


@pytest.mark.parametrize(
    "snippet",
    [
        "context.check_hostname = False",
        "context.verify_mode = ssl.CERT_NONE",
        "from ssl import CERT_NONE",
        "context = ssl._create_unverified_context()",
        "session.get(url, ssl=False)",
        "requests.get(url, verify=False)",
        "aiohttp.TCPConnector(verify_ssl=False)",
    ],
)
def test_the_audit_finds_each_way_to_turn_verification_off(snippet: str) -> None:
    source = snippet if snippet.startswith("from") else f"def f():\n    {snippet}\n"
    assert audit_source("x.py", source).unverified


def test_nothing_but_the_phone_rest_exception_turns_verification_off() -> None:
    unverified, _ = audit_tree()
    outside = [f for f in unverified if (f.path, f.function) != PHONE_REST_EXCEPTION]
    assert outside == []
    assert {(f.path, f.function) for f in unverified} == {PHONE_REST_EXCEPTION}


def test_only_the_phone_rest_client_uses_the_phone_rest_exception() -> None:
    users = {
        path
        for path, source in audited_files()
        for node in ast.walk(ast.parse(source))
        if (isinstance(node, ast.Name) and node.id == PHONE_REST_EXCEPTION[1])
        or (isinstance(node, ast.alias) and node.name == PHONE_REST_EXCEPTION[1])
    }
    assert users == {PHONE_REST_USER}


def test_tls_contexts_are_built_only_in_certs_tls() -> None:
    _, contexts = audit_tree()
    elsewhere = [
        f
        for f in contexts
        if f.path != PHONE_REST_EXCEPTION[0] and (f.path, f.function) not in CONTEXT_EXCEPTIONS
    ]
    assert elsewhere == []


def test_each_listed_context_exception_still_exists() -> None:
    _, contexts = audit_tree()
    assert set(CONTEXT_EXCEPTIONS) <= {(f.path, f.function) for f in contexts}


def test_every_context_allows_tls_12_and_13_only(tmp_path: Path) -> None:
    identity = ensure_lab_identity(tmp_path / "lab", [FQDN], [])
    for context in (server_context(identity), client_context(identity.ca_cert)):
        assert (context.minimum_version, context.maximum_version) == (
            ssl.TLSVersion.TLSv1_2,
            ssl.TLSVersion.TLSv1_3,
        )
    phone = phone_rest_context()
    assert (phone.minimum_version, phone.maximum_version) == (MINIMUM_VERSION, MAXIMUM_VERSION)


# -- on the wire ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Listener:
    """A TLS listener on 127.0.0.1 that answers "ok" after the handshake; `refused` holds
    the reason (OpenSSL's) of each handshake it failed."""

    port: int
    refused: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def listening(context: ssl.SSLContext) -> AsyncIterator[Listener]:
    handlers: set[asyncio.Task[None]] = set()
    listener = Listener(0)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        # TLS after accept, so the handshake's failure reaches us with its reason.
        try:
            await writer.start_tls(context)
            writer.write(b"ok\n")
            await writer.drain()
        except ssl.SSLError as exc:
            listener.refused.append(exc.reason or str(exc))
        except OSError:
            pass
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    server = await asyncio.start_server(handle, HOST, 0)
    listener.port = server.sockets[0].getsockname()[1]
    try:
        yield listener
    finally:
        server.close()
        await server.wait_closed()
        await asyncio.gather(*handlers, return_exceptions=True)


async def s_client(port: int, *args: str) -> tuple[int, str]:
    """openssl s_client against 127.0.0.1:port: exit status and everything it printed."""
    assert OPENSSL is not None
    proc = await asyncio.create_subprocess_exec(
        OPENSSL,
        "s_client",
        "-connect",
        f"{HOST}:{port}",
        "-servername",
        FQDN,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), PEER_TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def fetch_ok(port: int, context: ssl.SSLContext, host: str = FQDN) -> bytes:
    """Connect with `context` (verifying `host`) and read the listener's answer."""
    reader, writer = await asyncio.open_connection(HOST, port, ssl=context, server_hostname=host)
    try:
        return await reader.readline()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@pytest.fixture
def identity(tmp_path: Path) -> ServerIdentity:
    return ensure_lab_identity(tmp_path / "lab", [FQDN], [])


@pytest.fixture
def stranger(tmp_path: Path) -> ServerIdentity:
    """A certificate for the same name from another CA, as an interceptor would show."""
    return ensure_lab_identity(tmp_path / "other-ca", [FQDN], [])


@needs_openssl
@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
async def test_server_refuses_tls_below_12(identity: ServerIdentity, version: str) -> None:
    async with listening(server_context(identity)) as listener:
        status, out = await s_client(listener.port, version, "-cipher", "DEFAULT@SECLEVEL=0")
    assert status != 0 and "Cipher is (NONE)" in out
    assert listener.refused == ["UNSUPPORTED_PROTOCOL"]


@needs_openssl
@pytest.mark.parametrize(("version", "name"), [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
async def test_server_accepts_tls_12_and_13(
    identity: ServerIdentity, version: str, name: str
) -> None:
    async with listening(server_context(identity)) as listener:
        status, out = await s_client(listener.port, version, "-ign_eof")
    assert status == 0 and f"New, {name}, Cipher is " in out
    assert listener.refused == []


@needs_openssl
@pytest.mark.parametrize(
    "suite",
    [
        "AES128-SHA",  # RSA key exchange (no forward secrecy), CBC
        "AES256-GCM-SHA384",  # AEAD but RSA key exchange
        "ECDHE-ECDSA-AES128-SHA",  # forward secrecy but CBC
    ],
)
async def test_server_refuses_tls12_suites_without_ecdhe_and_aead(
    identity: ServerIdentity, suite: str
) -> None:
    async with listening(server_context(identity)) as listener:
        status, _ = await s_client(listener.port, "-tls1_2", "-cipher", suite)
    assert status != 0
    assert listener.refused == ["NO_SHARED_CIPHER"]


@needs_openssl
async def test_server_chooses_the_tls12_suite_by_its_own_order(identity: ServerIdentity) -> None:
    client_order = "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256"
    async with listening(server_context(identity)) as listener:
        status, out = await s_client(listener.port, "-tls1_2", "-ign_eof", "-cipher", client_order)
    assert status == 0 and "Cipher is ECDHE-ECDSA-AES128-GCM-SHA256" in out


@needs_openssl
@pytest.mark.parametrize(("version", "name"), [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
async def test_server_resumes_sessions_from_tickets(
    identity: ServerIdentity, tmp_path: Path, version: str, name: str
) -> None:
    session = str(tmp_path / "session.pem")
    async with listening(server_context(identity)) as listener:
        first_status, first = await s_client(
            listener.port, version, "-ign_eof", "-sess_out", session
        )
        again_status, again = await s_client(
            listener.port, version, "-ign_eof", "-sess_in", session
        )
    assert first_status == 0 and f"New, {name}" in first
    assert again_status == 0 and f"Reused, {name}" in again


async def test_client_trusts_a_server_the_pinned_ca_signed(identity: ServerIdentity) -> None:
    async with listening(server_context(identity)) as listener:
        assert await fetch_ok(listener.port, client_context(identity.ca_cert)) == b"ok\n"


async def test_client_refuses_a_server_another_ca_signed(
    identity: ServerIdentity, stranger: ServerIdentity
) -> None:
    async with listening(server_context(stranger)) as listener:
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
            await fetch_ok(listener.port, client_context(identity.ca_cert))


async def test_client_refuses_a_server_certified_for_another_name(
    identity: ServerIdentity,
) -> None:
    async with listening(server_context(identity)) as listener:
        with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
            await fetch_ok(
                listener.port, client_context(identity.ca_cert), host="other.test.example"
            )


async def test_phone_rest_context_accepts_a_self_signed_phone(stranger: ServerIdentity) -> None:
    async with listening(server_context(stranger)) as listener:
        assert await fetch_ok(listener.port, phone_rest_context()) == b"ok\n"


@contextlib.asynccontextmanager
async def tls11_only_server(identity: ServerIdentity) -> AsyncIterator[int]:
    """openssl s_server speaking TLS 1.1 and nothing else: an outdated peer."""
    assert OPENSSL is not None
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        OPENSSL,
        "s_server",
        "-accept",
        f"{HOST}:{port}",
        "-tls1_1",
        "-cipher",
        "DEFAULT@SECLEVEL=0",
        "-cert",
        str(identity.cert),
        "-key",
        str(identity.key),
        # Its stdin stays open: at end of input s_server stops serving.
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        # It tells of its DH parameters, then "ACCEPT" once it listens.
        while not (line := await asyncio.wait_for(proc.stdout.readline(), PEER_TIMEOUT)).startswith(
            b"ACCEPT"
        ):
            assert line, "openssl s_server ended before it listened"
        yield port
    finally:
        proc.kill()
        await proc.communicate()


@needs_openssl
@pytest.mark.parametrize("client", ["client_context", "phone_rest_context"])
async def test_clients_do_not_settle_for_tls11(identity: ServerIdentity, client: str) -> None:
    """They offer only 1.2 and 1.3, so a 1.1-only peer ends the handshake with an alert."""
    context = client_context(identity.ca_cert) if client == "client_context" else None
    async with tls11_only_server(identity) as port:
        with pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION"):
            await fetch_ok(port, context or phone_rest_context())
