"""`relay up --dhcp-interface IFACE --dhcp-mode lease --dhcp-pool FIRST-LAST` (issue 5).

`relay up` serves DHCP on the root-side end of a veth pair; ISC dhclient
runs in the namespace at the other end (tests/frontend/test_dhcp_clients.py
has the link and the client) and must be given a pool address and, in
66/160/161, the relay's own provisioning URL, with the tenant's account in
160 and 161.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

from relay.frontend.dhcpsetup import LEASE_FILE
from relay.frontend.leasestore import LeaseStore
from relay.proto.dhcp.leases import LeaseGranted
from tests.e2e.conftest import RelayProcess
from tests.frontend.test_dhcp_clients import (
    POOL_FIRST,
    POOL_LAST,
    VLAN_ID,
    dhclient,
    dhcp_link,
    needs_netns,
)

RelayUp = Callable[..., RelayProcess]
POOL = f"{POOL_FIRST}-{POOL_LAST}"


@needs_netns
async def test_relay_up_gives_dhclient_a_lease_with_its_own_boot_url(
    relay_up: RelayUp, tmp_path: Path
) -> None:
    with dhcp_link() as link:
        relay = relay_up(
            "--dhcp-interface", link.host_if, "--dhcp-mode", "lease", "--dhcp-pool", POOL,
            "--dhcp-vlan", str(VLAN_ID),
        )  # fmt: skip
        env = await dhclient(link, tmp_path)
        assert relay.stop() == 0
    facts = relay.facts
    boot = facts.get("relay_https", facts["provisioning"])
    scheme, _, rest = boot.partition("://")
    with_account = f"{scheme}://{facts['prov_user']}:{facts['prov_password']}@{rest}"
    assert facts["dhcp"] == {"interface": link.host_if, "mode": "lease", "pool": POOL}
    assert POOL_FIRST <= IPv4Address(env["new_ip_address"]) <= POOL_LAST
    assert env["new_tftp_server_name"] == boot
    assert env["new_polycom_160"] == with_account
    assert env["new_polycom_161"] == with_account
    assert env["new_vlan_144"] == f"VLAN-A={VLAN_ID};"
    with LeaseStore(relay.data_dir / LEASE_FILE) as store:
        granted = [e for e in store.load() if isinstance(e, LeaseGranted)]
    assert [str(e.ip) for e in granted] == [env["new_ip_address"]]
    assert facts["prov_password"] not in relay.stderr()


def test_relay_up_on_an_unknown_interface_exits_2_naming_it(
    relay_cli: Callable[..., RelayProcess],
) -> None:
    relay = relay_cli(
        "up", "--json", "--free-ports", "--dhcp-interface", "nosuch0", "--dhcp-pool", POOL
    )

    assert relay.proc.wait(timeout=30) == 2
    assert "no network interface 'nosuch0'" in relay.stderr()
    assert "Traceback" not in relay.stderr()
