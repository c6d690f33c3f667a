"""Many simulated phones in one process: a lab and load tool for the provisioning service.

Each phone has its own MAC (phones.md section 1 OUIs), model, part number,
firmware and loopback source address, so the server sees N distinct devices.
With a DHCP link (relay.sim.dhcpnet) the phones get their addresses, and
their servers, by DHCP instead, inside the namespace the fleet runs in.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from relay.proto.polycom.models import OUIS, PART_NUMBERS
from relay.sim.clock import Clock, ScaledClock
from relay.sim.dhcpnet import DhcpNet
from relay.sim.phone import DHCP_ADDRESS, STATES, PhoneSpec, SimPhone

FIRST_IP = "127.20.0.1"
FIRMWARE_VERSIONS = ("5.9.7.4477", "6.3.1.8427", "6.4.3.1234")
DEFAULT_CONCURRENCY = 50
_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")


def source_addresses(count: int, first: str = FIRST_IP) -> list[str]:
    """`count` distinct 127.x.y.z addresses from `first` up, skipping .0, .255 and 127.0.0.1."""
    addresses: list[str] = []
    address = ipaddress.IPv4Address(first)
    while len(addresses) < count:
        if address not in _LOOPBACK:
            raise ValueError(f"{count} source addresses from {first} do not fit in 127.0.0.0/8")
        last = int(address) & 0xFF
        if last not in (0, 255) and address != ipaddress.IPv4Address("127.0.0.1"):
            addresses.append(str(address))
        address += 1
    return addresses


def make_specs(
    count: int,
    servers: Sequence[str],
    *,
    user: str = "",
    password: str = "",
    cacert: str | None = None,
    seed: int = 0,
    first_ip: str = FIRST_IP,
    rest_port: int | None = None,
    sip_port: int | None = None,
    dhcp: bool = False,
    ztp_url: str | None = None,
    hosts: Mapping[str, tuple[str, ...]] | None = None,
    models: Mapping[str, str] | None = None,
) -> list[PhoneSpec]:
    """`count` phones drawn from `seed`: the same seed always gives the same fleet.

    Every phone serves REST on `rest_port` and SIP on `sip_port` of its own
    address, so one port number reaches the whole fleet. With `dhcp` the
    phones have no address until DHCP gives one (source_ip 0.0.0.0).
    `models` maps the models to draw from to their part numbers ("" for the
    known one); by default every model relay.proto.polycom.models knows.
    """
    rng = random.Random(seed)
    parts = models if models is not None else {model: "" for model in sorted(PART_NUMBERS)}
    if not parts:
        raise ValueError("a fleet needs at least one model")
    names = list(parts)
    addresses = [DHCP_ADDRESS] * count if dhcp else source_addresses(count, first_ip)
    macs: set[str] = set()
    specs: list[PhoneSpec] = []
    for source_ip in addresses:
        mac = f"{rng.choice(OUIS)}{rng.getrandbits(24):06x}"
        while mac in macs:
            mac = f"{rng.choice(OUIS)}{rng.getrandbits(24):06x}"
        macs.add(mac)
        model = rng.choice(names)
        specs.append(
            PhoneSpec(
                mac=mac,
                model=model,
                firmware=rng.choice(FIRMWARE_VERSIONS),
                source_ip=source_ip,
                servers=tuple(servers),
                user=user,
                password=password,
                part_number=parts[model],
                cacert=cacert,
                rest_port=rest_port,
                sip_port=sip_port,
                ztp_url=ztp_url,
                hosts=hosts or {},
            )
        )
    return specs


class Fleet:
    """Phones booted concurrently, at most `concurrency` at a time; close with `aclose()`.

    The fleet owns `dhcp`, the link its DHCP phones get their leases on, and
    closes it last (releasing every lease).
    """

    def __init__(
        self,
        specs: Sequence[PhoneSpec],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        time_scale: float = 1.0,
        clock: Clock | None = None,
        seed: int = 0,
        dhcp: DhcpNet | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.concurrency = concurrency
        self.clock: Clock = clock if clock is not None else ScaledClock(time_scale)
        self.dhcp = dhcp
        self.phones: tuple[SimPhone, ...] = tuple(
            SimPhone(spec, clock=self.clock, rng=random.Random(f"{seed}/{spec.mac}"), dhcp=dhcp)
            for spec in specs
        )

    @classmethod
    def build(
        cls,
        count: int,
        servers: Sequence[str],
        *,
        user: str = "",
        password: str = "",
        cacert: str | None = None,
        seed: int = 0,
        first_ip: str = FIRST_IP,
        concurrency: int = DEFAULT_CONCURRENCY,
        time_scale: float = 1.0,
        clock: Clock | None = None,
        rest_port: int | None = None,
        sip_port: int | None = None,
        dhcp: DhcpNet | None = None,
        ztp_url: str | None = None,
        hosts: Mapping[str, tuple[str, ...]] | None = None,
        models: Mapping[str, str] | None = None,
    ) -> Fleet:
        """A fleet of `count` phones drawn from `seed` (see make_specs); DHCP phones with `dhcp`."""
        specs = make_specs(
            count,
            servers,
            user=user,
            password=password,
            cacert=cacert,
            seed=seed,
            first_ip=first_ip,
            rest_port=rest_port,
            sip_port=sip_port,
            dhcp=dhcp is not None,
            ztp_url=ztp_url,
            hosts=hosts,
            models=models,
        )
        return cls(
            specs,
            concurrency=concurrency,
            time_scale=time_scale,
            clock=clock,
            seed=seed,
            dhcp=dhcp,
        )

    async def boot_all(self, timeout: float | None = None) -> dict[str, Any]:  # noqa: ASYNC109
        """Boot every phone once; phones not settled after `timeout` seconds count as failed.

        A timeout parameter rather than asyncio.timeout(): the phones still
        booting must be marked failed, not the whole call cancelled.
        """
        gate = asyncio.Semaphore(self.concurrency)

        async def boot(phone: SimPhone) -> None:
            async with gate:
                await phone.boot()

        tasks = {
            asyncio.create_task(boot(phone), name=f"boot-{phone.mac}"): phone
            for phone in self.phones
        }
        try:
            _done, pending = await asyncio.wait(tasks, timeout=timeout)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task, phone in tasks.items():
            if task in pending:
                phone.abandon(f"boot did not finish within {timeout} s")
            elif not task.cancelled() and task.exception() is not None:
                phone.abandon(f"simulator error: {task.exception()!r}")
        return self.summary()

    def counts(self) -> dict[str, int]:
        """How many phones are in each state."""
        counts = dict.fromkeys(STATES, 0)
        for phone in self.phones:
            counts[phone.state] += 1
        return counts

    def summary(self) -> dict[str, Any]:
        """Totals for the whole fleet; `errors` are "<mac>: <error>" strings.

        `boot_sources` counts where the phones found their servers: dhcp,
        inform, static (flash) or ztp.
        """
        reports = [phone.report() for phone in self.phones]
        times = [r.boot_seconds for r in reports if r.boot_seconds is not None]
        return {
            "phones": len(reports),
            **self.counts(),
            "reboots": sum(r.reboots for r in reports),
            "polls": sum(r.polls for r in reports),
            "failovers": sum(r.failovers for r in reports),
            "boot_sources": dict(
                sorted(Counter(r.boot_source for r in reports if r.boot_source).items())
            ),
            "requests": sum(len(r.requests) for r in reports),
            "bytes_down": sum(r.bytes_down for r in reports),
            "bytes_up": sum(r.bytes_up for r in reports),
            "boot_seconds": {
                "min": min(times),
                "median": statistics.median(times),
                "max": max(times),
            }
            if times
            else None,
            "errors": [f"{r.mac}: {error}" for r in reports for error in r.errors],
        }

    async def aclose(self) -> None:
        """Stop every phone: polling, reboots, listeners and HTTP sessions; then the DHCP link."""
        await asyncio.gather(*(phone.aclose() for phone in self.phones))
        if self.dhcp is not None:
            await self.dhcp.aclose()

    async def __aenter__(self) -> Fleet:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()
