"""`relay sim`'s discovery options: --dhcp, --ztp, --host and --model (relay.sim.cli).

Booting by DHCP needs a namespace and is in tests/frontend/test_sim_dhcp_boot.py.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator

import pytest

from relay.sim.cli import main
from tests.sim.conftest import PASSWORD, USER, ProvServer, config, master


@pytest.fixture
async def site() -> AsyncIterator[ProvServer]:
    """One master file for every phone."""
    server = ProvServer(
        files={"000000000000.cfg": master(config_files=("site.cfg",)), "site.cfg": config()}
    )
    await server.start()
    yield server
    await server.close()


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


def test_without_server_dhcp_or_ztp_the_cli_refuses_to_start(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--phones", "1"]) == 2
    assert "give --server URL, or --dhcp IFACE or --ztp URL" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argument", [["--model", "Trio8800"], ["--host", "prov.lab"], ["--dhcp-retry", "0"]]
)
def test_malformed_discovery_options_are_usage_errors(argument: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--server", "http://127.0.0.1/", *argument])
    assert exited.value.code == 2


def test_more_than_8_addresses_for_a_host_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    addresses = ",".join(f"127.0.0.{n}" for n in range(1, 10))
    assert main(["--server", "http://prov.lab/", "--host", f"prov.lab={addresses}"]) == 2
    assert "1 to 8 addresses" in capsys.readouterr().err


async def test_the_cli_fails_over_across_the_addresses_given_for_a_host(site: ProvServer) -> None:
    port = site.url.rsplit(":", 1)[1].strip("/")
    code, out, err = await run_cli(
        "--phones", "2", "--server", f"http://prov.lab:{port}/", "--user", USER,
        "--password", PASSWORD, "--host", "prov.lab=127.0.0.2,127.0.0.1",
        "--model", "VVX500", "--json",
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["provisioned"], summary["failovers"]) == (2, 2)
    assert summary["boot_sources"] == {"static": 2}
