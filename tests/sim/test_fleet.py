"""Many simulated phones at once, and the `relay sim` command."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import AsyncIterator

import pytest

from relay.proto.polycom.master import MasterFile, render_master
from relay.proto.polycom.models import OUIS, PART_NUMBERS
from relay.sim.fleet import Fleet, make_specs, source_addresses

from .conftest import PASSWORD, USER, ProvServer, config


@pytest.fixture
async def shared() -> AsyncIterator[ProvServer]:
    """One master file for every phone, as a site with 000000000000.cfg has."""
    server = ProvServer(
        files={
            "000000000000.cfg": render_master(
                MasterFile(config_files=("[PHONE_MAC_ADDRESS]-profile.cfg", "site.cfg"))
            ),
            "site.cfg": config(voice__volume="5"),
        }
    )
    for spec in make_specs(200, ["http://unused/"]):
        server.files[f"{spec.mac}-profile.cfg"] = config(reg__1__address=spec.mac)
    await server.start()
    yield server
    await server.close()


async def test_200_phones_are_all_provisioned_without_errors(shared: ProvServer) -> None:
    async with Fleet.build(200, [shared.url], user=USER, password=PASSWORD) as fleet:
        summary = await fleet.boot_all(timeout=60)

    assert (summary["provisioned"], summary["failed"], summary["errors"]) == (200, 0, [])
    assert {seen.source_ip for seen in shared.seen} == set(source_addresses(200))
    assert all(p.parameters["reg.1.address"] == p.mac for p in fleet.phones)


def test_specs_have_distinct_macs_and_source_addresses() -> None:
    specs = make_specs(200, ["http://127.0.0.1/"])

    assert len({spec.mac for spec in specs}) == 200
    assert len({spec.source_ip for spec in specs}) == 200
    assert {spec.mac[:6] for spec in specs} == set(OUIS)
    assert {spec.model for spec in specs} <= set(PART_NUMBERS)
    assert "127.0.0.1" not in {spec.source_ip for spec in specs}


def test_the_same_seed_gives_the_same_fleet() -> None:
    assert make_specs(20, ["http://a/"], seed=7) == make_specs(20, ["http://a/"], seed=7)
    assert make_specs(20, ["http://a/"], seed=7) != make_specs(20, ["http://a/"], seed=8)


def test_source_addresses_skip_network_and_broadcast_octets() -> None:
    assert source_addresses(3, "127.20.0.254") == ["127.20.0.254", "127.20.1.1", "127.20.1.2"]


async def test_summary_counts_states_and_names_each_error(shared: ProvServer) -> None:
    async with Fleet.build(3, [shared.url], user=USER, password="wrong") as fleet:
        summary = await fleet.boot_all(timeout=30)

    assert {key: summary[key] for key in ("phones", "provisioned", "failed", "booting")} == {
        "phones": 3,
        "provisioned": 0,
        "failed": 3,
        "booting": 0,
    }
    macs = [phone.mac for phone in fleet.phones]
    assert [error.split(":")[0] for error in summary["errors"]] == macs
    assert summary["boot_seconds"] is None


async def test_summary_of_a_provisioned_fleet_has_timings_and_traffic(shared: ProvServer) -> None:
    async with Fleet.build(4, [shared.url], user=USER, password=PASSWORD) as fleet:
        summary = await fleet.boot_all(timeout=30)

    assert set(summary["boot_seconds"]) == {"min", "median", "max"}
    # 14 requests of a boot, plus <mac>.cfg answered 404 in both stages
    assert summary["requests"] == 4 * 16
    assert summary["bytes_down"] > 0
    assert summary["bytes_up"] > 0


async def test_phones_still_booting_at_the_timeout_count_as_failed() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        async with Fleet.build(2, [url], user=USER, password=PASSWORD) as fleet:
            summary = await fleet.boot_all(timeout=0.3)

    assert summary["failed"] == 2
    assert summary["errors"][0].endswith("boot did not finish within 0.3 s")


async def run_cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay.sim.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_cli_json_prints_exactly_one_summary_line_and_exits_0(shared: ProvServer) -> None:
    code, out, _err = await run_cli(
        "--phones", "5", "--server", shared.url, "--user", USER, "--password", PASSWORD, "--json"
    )

    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["provisioned"] == 5


async def test_cli_exits_non_zero_when_a_phone_fails(shared: ProvServer) -> None:
    code, out, _err = await run_cli(
        "--phones", "2", "--server", shared.url, "--user", USER, "--password", "no", "--json"
    )

    assert code == 1
    assert json.loads(out)["failed"] == 2


async def test_cli_for_a_person_prints_a_summary(shared: ProvServer) -> None:
    code, out, _err = await run_cli(
        "--phones", "2", "--server", shared.url, "--user", USER, "--password", PASSWORD
    )

    assert code == 0
    assert "2/2 provisioned, 0 failed" in out
