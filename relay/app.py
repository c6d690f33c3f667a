"""Composition root of `relay up`: every service in one process.

Today that is the embedded control plane and its REST API; later issues add
the relay's services here. Once everything listens, `on_ready` gets the facts
that scripts (the JSON ready line) and people (the banner) need.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import secrets
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from certs.lab import ensure_lab_identity
from certs.rotation import ServingCertificate
from certs.tls import client_context, server_context
from download_agent.link import CloudImages
from download_agent.settings import DownloadSettings
from download_agent.syncer import DownloadAgent
from management_agent.agent import CREDENTIAL_FILE, Agent, AgentSettings
from management_agent.certfeed import CertFeed
from management_agent.link import Identity, Revoked, register
from management_agent.ztpfeed import ZtpFeed
from relay import __version__
from relay.cloud.api.errors import Handler
from relay.cloud.api.phones import PhoneService, build_phone_app
from relay.cloud.api.routes import build_app
from relay.cloud.controlplane import CloudWorker, ControlPlane
from relay.cloud.rules.relays import LinkPolicy
from relay.config import Config
from relay.demo import run_demo
from relay.frontend.dhcp import DhcpServer
from relay.frontend.dhcpsetup import start_dhcp
from relay.frontend.firmware import PublishedImages
from relay.frontend.stack import FrontEnd, FrontEndError, FrontEndPorts
from relay.frontend.upstream import Upstream
from relay.frontend.ztp import ZtpDirectory, ztp_routes
from relay.logs import event
from relay.secretfile import read_secret, write_secret
from relay.sync.messages import Registration

log = logging.getLogger("relay.app")


LISTEN_BACKLOG = 4096


class StartupError(RuntimeError):
    """A service could not start; the message says what to do."""


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One structured line per API request (never the Authorization header)."""
    started = time.perf_counter()
    response = await handler(request)
    event(
        logging.getLogger("cloud.api"),
        "request",
        method=request.method,
        path=request.path,
        status=response.status,
        ms=round((time.perf_counter() - started) * 1000, 1),
        source=request.remote,
    )
    return response


async def _listen(
    runner: web.AppRunner,
    host: str,
    port: int,
    what: str,
    ssl_context: ssl.SSLContext | None = None,
) -> int:
    """Bind one runner (one runner per service) and return the port it got."""
    await runner.setup()
    # Phones boot together after a power cut: a deep accept queue instead of aiohttp's 128
    # (2,000 simulated phones overflowed it 6,548 times, see bench/RESULTS.md).
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, backlog=LISTEN_BACKLOG)
    try:
        await site.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"{what}: port {port} on {host} is in use; pass another port or --free-ports"
            ) from exc
        raise StartupError(f"{what}: cannot listen on {host}:{port}: {exc.strerror}") from exc
    return int(runner.addresses[-1][1])


def _provisioning_account(plane: ControlPlane, path: Path) -> tuple[str | None, str | None]:
    """A new data directory gets a random provisioning account (there is no default one);
    its password is kept 0600 beside the admin token, and shown while it is still valid."""
    if not plane.provisioning.account_configured():
        user, password = "phones", secrets.token_urlsafe(18)
        plane.tenancy.update(
            {"provisioning_account": {"user": user, "password": password}}, "system"
        )
        write_secret(path, json.dumps({"user": user, "password": password}))
        event(log, "provisioning_account_created", account_file=str(path))
        return user, password
    try:
        saved = json.loads(read_secret(path) or "{}")
    except ValueError:
        saved = {}
    user, password = saved.get("user"), saved.get("password")
    if (
        isinstance(user, str)
        and isinstance(password, str)
        and plane.provisioning.check_account(user, password)
    ):
        return user, password
    return plane.tenancy.tenant()["prov_user"], None


def _with_account(url: str, user: str | None, password: str | None) -> str:
    """The boot URL of DHCP options 160/161: the provisioning URL with the tenant's
    account in it (phones.md section 1), as far as this process knows the account."""
    if not user:
        return url
    scheme, _, rest = url.partition("://")
    login = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
    return f"{scheme}://{login}@{rest}"


def _loopback(host: str) -> str:
    """How the relay reaches the embedded cloud: the wildcard is not an address to dial."""
    return "127.0.0.1" if host in ("0.0.0.0", "", "localhost") else host  # noqa: S104


def _free_port(host: str, kind: socket.SocketKind) -> int:
    """A port free on `host` now, for simulated phones that all listen on one number."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


async def _embedded_identity(worker: CloudWorker, api_root: str, agent_dir: Path) -> Identity:
    """The embedded agent's credential: kept from an earlier run if the cloud still
    knows it (the API port may have changed), else a new registration with the PIN."""
    plane = worker.plane
    path = agent_dir / CREDENTIAL_FILE
    try:
        saved = Identity.load(path)
    except ValueError:
        saved = None
    if saved is not None and await worker.call(
        plane.relays.authenticate, saved.relay_id, saved.secret
    ):
        identity = Identity(api_root, saved.tenant, saved.relay_id, saved.secret)
    else:
        tenant = (await worker.call(plane.tenancy.tenant))["id"]
        pin = (await worker.call(plane.relays.pin))["pin"]
        registration = Registration(tenant, pin, "embedded", __version__, ("127.0.0.1",))
        identity = await register(api_root, registration)
        event(log, "embedded_relay_registered", relay_id=identity.relay_id)
    identity.save(path)
    return identity


async def _run_agent(
    worker: CloudWorker,
    api_root: str,
    settings: AgentSettings,
    identity: Identity,
    download_agent: Callable[[], str],
) -> None:
    """The embedded agent; if it is revoked (a relay deleted in the API) it registers anew.
    Its heartbeat says whether the download agent runs (cloud.md: download agent status)."""
    while True:
        try:
            await Agent(identity, settings, download_agent=download_agent).run()
            return
        except Revoked:
            event(log, "embedded_relay_revoked", logging.WARNING, relay_id=identity.relay_id)
            (settings.data_dir / CREDENTIAL_FILE).unlink(missing_ok=True)
            identity = await _embedded_identity(worker, api_root, settings.data_dir)


def _names(config: Config) -> tuple[list[str], list[str]]:
    """DNS names and addresses the lab certificate must cover."""
    names = [socket.gethostname(), socket.getfqdn(), "localhost", *config.tls_names]
    ips = ["127.0.0.1"]
    for address in (config.host, config.bind):
        if address not in ("", "127.0.0.1", "0.0.0.0", "localhost"):  # noqa: S104
            ips.append(address)
    return sorted(set(n for n in names if n)), sorted(set(ips))


async def run(
    config: Config,
    emit: Callable[[dict[str, Any]], None],
    stopped: Callable[[], Awaitable[None]],
) -> None:
    """Start everything, emit the ready event, run until `stopped()` returns, shut down."""
    data_dir = config.data_dir
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    plane = ControlPlane(
        data_dir / "cloud",
        link=LinkPolicy(
            heartbeat_seconds=config.heartbeat_seconds, monitor_seconds=config.monitor_seconds
        ),
    )
    token = plane.bootstrap()
    token_file = data_dir / "admin-token"
    if token is not None:
        write_secret(token_file, token)
        event(log, "tenant_created", token_file=str(token_file))
    else:
        token = read_secret(token_file)
    prov_user, prov_password = _provisioning_account(plane, data_dir / "provisioning-account")
    names, ips = _names(config)
    identity = ensure_lab_identity(data_dir / "tls", names, ips)
    worker = CloudWorker(plane)
    api_app = build_app(worker, config.max_body_bytes)
    api_app.middlewares.insert(0, access_log)
    phones = PhoneService(worker, trusted_proxies=config.trusted_proxies)
    # No lingering read of an oversized body after its 413: the handler would outlive
    # shutdown still reading it.
    runners = [web.AppRunner(api_app, access_log=None, handle_signals=False, lingering_time=0)]
    # A phone refused mid-upload is not waited for long at shutdown.
    for _ in range(2 if config.prov_http else 1):
        runners.append(
            web.AppRunner(
                build_phone_app(phones),
                access_log=None,
                handle_signals=False,
                lingering_time=1.0,
            )
        )
    demo: asyncio.Task[None] | None = None
    agent: asyncio.Task[None] | None = None
    front: FrontEnd | None = None
    dhcp: DhcpServer | None = None
    ztp_sync: asyncio.Task[None] | None = None
    downloads: asyncio.Task[None] | None = None
    images: CloudImages | None = None
    ztp_feed: ZtpFeed | None = None
    cert_feed: CertFeed | None = None
    cert_tasks: list[asyncio.Task[None]] = []
    try:
        port = await _listen(
            runners[0], config.host, config.port(config.api_port), "control plane API"
        )
        prov_port = await _listen(
            runners[1],
            config.host,
            config.port(config.prov_port),
            "provisioning (HTTPS)",
            server_context(identity),
        )
        api = f"http://{config.host}:{port}/api/v1"
        # Simulated demo phones listen on a free port; real phones on 443 and 5060.
        rest_port, sip_port = config.phone_rest_port, config.phone_sip_port
        if config.demo:
            rest_port = _free_port("127.0.0.1", socket.SOCK_STREAM)
            sip_port = _free_port("127.0.0.1", socket.SOCK_DGRAM)
        agent_settings = AgentSettings(
            data_dir=data_dir / "agent",
            phone_port=rest_port,
            sip_port=sip_port,
            concurrency=config.agent_concurrency,
        )
        relay_id = None
        provisioning = f"https://{config.host}:{prov_port}/"
        relay_facts: dict[str, str] = {}
        if config.agent:
            relay_identity = await _embedded_identity(worker, api, agent_settings.data_dir)
            relay_id = relay_identity.relay_id
            ztp = ZtpDirectory(data_dir / "ztp" / "directory.json")
            ztp.load()
            ztp_feed = ZtpFeed(agent_settings.data_dir / CREDENTIAL_FILE, identity.ca_cert)
            ztp_sync = asyncio.create_task(ztp.run(ztp_feed, config.ztp_sync_seconds))
            # The download agent keeps the relay image set in <data-dir>/images (issue 6).
            images = CloudImages(
                relay_identity,
                client_context(identity.ca_cert),
                agent_settings.data_dir / CREDENTIAL_FILE,
            )
            download_settings = DownloadSettings(
                data_dir=data_dir,
                reserve_bytes=config.image_reserve_bytes,
                rate_limit=config.image_rate_limit,
            )
            downloads = asyncio.create_task(DownloadAgent(images, download_settings).run())
            running = downloads
            agent = asyncio.create_task(
                _run_agent(
                    worker,
                    api,
                    agent_settings,
                    relay_identity,
                    lambda: "stopped" if running.done() else "running",
                )
            )
            upstream = Upstream(
                f"https://{_loopback(config.host)}:{prov_port}/",
                relay_identity.relay_id,
                relay_identity.secret,
                tls=client_context(identity.ca_cert),
            )
            # Issue 7: the relay's HTTPS and FTPS serve the installed certificate, switched
            # without dropping connections (certs.rotation), as the cloud delivers it.
            serving = ServingCertificate(identity, data_dir / "tls" / "relay")
            cert_feed = CertFeed(
                agent_settings.data_dir / CREDENTIAL_FILE,
                serving,
                cloud_ca=identity.ca_cert,
                interval=config.heartbeat_seconds,
            )
            cert_tasks = [asyncio.create_task(t) for t in (serving.watch(), cert_feed.run())]
            front = FrontEnd(
                upstream,
                PublishedImages(data_dir / "images"),
                serving.context,
                FrontEndPorts(
                    config.bind_address,
                    config.port(config.relay_https_port),
                    config.port(config.relay_http_port) if config.relay_http else None,
                    ftp=config.port(config.relay_ftp_port),
                    tftp=config.port(config.relay_tftp_port),
                ),
                routes=tuple(ztp_routes(ztp)),
                spool_dir=data_dir / "spool",
            )
            try:
                relay_facts = await front.start()
            except FrontEndError as exc:
                raise StartupError(str(exc)) from exc
            relay_facts["ztp"] = relay_facts["relay_https"] + "ztp/v1"
        facts: dict[str, Any] = {
            "event": "ready",
            "api": api,
            "openapi": f"{api}/openapi.json",
            "token": token,
            "token_file": str(token_file),
            "tenant": plane.tenancy.tenant()["id"],
            "data_dir": str(data_dir),
            "provisioning": provisioning,
            "prov_user": prov_user,
            "prov_password": prov_password,
            "ca_cert": str(identity.ca_cert),
            "relay_id": relay_id,
            "pin": (await worker.call(plane.relays.pin))["pin"],
            **relay_facts,
        }
        if config.prov_http:
            http_port = await _listen(
                runners[2], config.host, config.port(config.prov_http_port), "provisioning (HTTP)"
            )
            facts["provisioning_http"] = f"http://{config.host}:{http_port}/"
        if config.dhcp_interface:
            boot = relay_facts.get("relay_https", provisioning)
            dhcp = await start_dhcp(config, _with_account(boot, prov_user, prov_password), data_dir)
            facts["dhcp"] = {
                "interface": config.dhcp_interface,
                "mode": config.dhcp_mode,
                "pool": config.dhcp_pool or None,
            }
        event(log, "ready", api=api, provisioning=provisioning, data_dir=str(data_dir))
        emit(facts)
        if config.demo and prov_user and prov_password:
            demo = asyncio.create_task(
                run_demo(
                    config.demo,
                    # Through the relay when there is one, as phones on a site would.
                    relay_facts.get("relay_https", provisioning),
                    prov_user,
                    prov_password,
                    identity.ca_cert,
                    emit,
                    rest_port=rest_port,
                    sip_port=sip_port,
                )
            )
        await stopped()
    finally:
        # The demo phones and the agent go first: their last requests still reach the API.
        for background in (demo, agent, ztp_sync, downloads, *cert_tasks):
            if background is not None:
                background.cancel()
                await asyncio.gather(background, return_exceptions=True)
        if ztp_feed is not None:
            await ztp_feed.aclose()
        if cert_feed is not None:
            await cert_feed.aclose()
        if images is not None:
            await images.aclose()
        if dhcp is not None:
            await dhcp.close()
        if front is not None:
            await front.close()
        event(log, "stopping")
        for runner in reversed(runners):
            await runner.cleanup()
        worker.close()
        # File reads and writes ran on the loop's default executor: stop its threads.
        await asyncio.get_running_loop().shutdown_default_executor()
        event(log, "stopped")
