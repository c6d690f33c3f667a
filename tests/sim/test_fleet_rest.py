"""A fleet, the demo and `relay sim` serving REST and SIP on one port across many addresses."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relay.demo import run_demo
from relay.sim.clock import ScaledClock
from relay.sim.fleet import Fleet, make_specs
from relay.sim.httpauth import auth_scheme_for
from tests.ports import free_port

from .conftest import PASSWORD, USER, ProvServer, lab_ca, master
from .restkit import call, rest_files, wait_for
from .test_fleet import run_cli


def fleet_files(prov: ProvServer) -> None:
    rest_files(prov)
    prov.files["000000000000.cfg"] = master(config_files=("site.cfg",))


async def test_every_phone_of_a_fleet_serves_on_the_same_port(prov: ProvServer) -> None:
    fleet_files(prov)
    rest_port = free_port(host="127.20.3.1")
    sip_port = free_port(socket.SOCK_DGRAM, host="127.20.3.1")
    fleet = Fleet.build(
        4,
        [prov.url],
        user=USER,
        password=PASSWORD,
        first_ip="127.20.3.1",
        seed=7,
        rest_port=rest_port,
        sip_port=sip_port,
        clock=ScaledClock(0.001),
    )
    async with fleet:
        summary = await fleet.boot_all(timeout=20)
        with_rest = [phone for phone in fleet.phones if phone.rest_auth_scheme is not None]
        replies = [await call(phone, "GET", "/api/v1/mgmt/device/info") for phone in with_rest]

    assert summary["provisioned"] == 4, summary["errors"]
    assert with_rest
    for phone, (status, reply) in zip(with_rest, replies, strict=True):
        assert phone.rest_address == (phone.spec.source_ip, rest_port)
        assert phone.sip_address == (phone.spec.source_ip, sip_port)
        assert status == 200
        assert reply["data"]["IPV4Address"] == phone.spec.source_ip
    assert not any(phone.online for phone in fleet.phones)


async def test_demo_phones_keep_serving_rest_until_cancelled(tmp_path: Path) -> None:
    context, cacert = lab_ca(tmp_path)
    prov = ProvServer()
    fleet_files(prov)
    await prov.start(context)
    events: list[dict[str, Any]] = []
    rest_port = free_port(host="127.20.0.1")
    demo = asyncio.create_task(
        run_demo(2, prov.url, USER, PASSWORD, Path(cacert), events.append, rest_port=rest_port)
    )
    try:
        await wait_for(lambda: any(e["event"] == "demo" for e in events), timeout=20)
        # A phone is busy for a moment after boot (4001); either answer shows it serves.
        model = make_specs(1, [prov.url])[0].model  # the demo's first phone, seed 0
        scheme = auth_scheme_for(model)
        assert scheme is not None
        first = Address(("127.20.0.1", rest_port), scheme)
        status, reply = await call(first, "GET", "/api/v1/mgmt/device/info")
    finally:
        demo.cancel()
        await asyncio.gather(demo, return_exceptions=True)
        await prov.close()

    result = next(e for e in events if e["event"] == "demo")
    assert result["provisioned"] == 2, result
    assert result["rest_port"] == rest_port
    assert status == 200
    assert reply["Status"] in ("2000", "4001")


@dataclass(frozen=True, slots=True)
class Address:
    """A demo phone the test cannot hold: its REST address, and the scheme to speak to it."""

    rest_address: tuple[str, int]
    rest_auth_scheme: str


async def test_sim_cli_serves_the_ports_it_was_given(prov: ProvServer) -> None:
    fleet_files(prov)
    code, out, _err = await run_cli(
        "--phones",
        "2",
        "--server",
        prov.url,
        "--user",
        USER,
        "--password",
        PASSWORD,
        "--first-ip",
        "127.20.4.1",
        "--rest-port",
        str(free_port(host="127.20.4.1")),
        "--sip-port",
        str(free_port(socket.SOCK_DGRAM, host="127.20.4.1")),
        "--hold",
        "0.2",
        "--json",
    )

    assert code == 0
    [line] = out.splitlines()
    assert json.loads(line)["provisioned"] == 2


async def test_sim_cli_help_documents_the_port_options() -> None:
    code, out, _err = await run_cli("--help")

    assert code == 0
    assert "--rest-port" in out
    assert "--sip-port" in out
