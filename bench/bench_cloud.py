"""Control plane at fleet scale (issue 2, "Measure").

Builds a tenant of N devices, sites, groups and profiles bound across all five
deployment containers in a temporary directory, then measures, through the
real service code:

* effective-config resolution per device (`Deployment.effective` and
  `Deployment.effective_out`, which is what the REST API returns),
* site matching per IP (`Context.site_index().match` and `Sites.match`),
* device CSV import (fresh rows, then update=overwrite and update=merge),
* device CSV export of the whole fleet,
* memory (peak RSS of this process and of `relay up`, SQLite file size),
* GET effective-config over loopback HTTP against `relay up` (a subprocess on the
  same data), side by side with real peers serving a static JSON body of the
  same size (`python -m http.server` as shipped and with `-p HTTP/1.1`, and a
  bare aiohttp app), printing the ratios.

Setup builds sites, groups, images, profiles and bindings through the services,
and devices through the store's own row methods in one transaction (the
service path for devices is measured on a sample instead).

This is a benchmark, not a test: it asserts nothing about timings, it prints
numbers (and, with --json, writes them) for bench/RESULTS.md.

    .venv/bin/python bench/bench_cloud.py            # 50,000 devices, about a minute
    .venv/bin/python bench/bench_cloud.py --quick    # 5,000 devices, under a minute
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import math
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from report import Report, finish, machine, mib

from relay.cloud.controlplane import ControlPlane
from relay.cloud.rules.profiles import csv_profile_name
from relay.cloud.rules.sites import INTERNET
from relay.cloud.rules.standard_profiles import NEW_TENANT_GLOBAL
from relay.proto.csv.table import write_table
from relay.secretfile import write_secret

T = TypeVar("T")
ACTOR = "bench"
HOST = "127.0.0.1"
DEFAULT_SITES = 2  # Internet and Intranet, counted in the tenant's 2,000-site limit

# (model, endpoint type, software family, weight)
MODELS: tuple[tuple[str, str, str, int], ...] = (
    ("VVX250", "VVX", "VVX", 14),
    ("VVX350", "VVX", "VVX", 14),
    ("VVX450", "VVX", "VVX", 14),
    ("VVX501", "VVX", "VVX", 10),
    ("VVX601", "VVX", "VVX", 8),
    ("Trio8500", "Polycom Trio", "Trio", 8),
    ("Trio8800", "Polycom Trio", "Trio", 6),
    ("CCX500", "CX", "CCX", 10),
    ("SoundStationIP6000", "SoundStation", "SoundStation", 8),
    ("StudioX30", "Polycom Studio", "Studio", 8),
)
IMAGES: tuple[tuple[str, str], ...] = (
    ("VVX", "6.4.3"),
    ("VVX", "6.4.5"),
    ("Trio", "7.2.2"),
    ("Trio", "8.1.0"),
    ("CCX", "8.1.3"),
    ("SoundStation", "4.0.15"),
    ("Studio", "4.1.0"),
)
PARAM_TEMPLATES: tuple[str, ...] = (
    "reg.{n}.address",
    "reg.{n}.label",
    "reg.{n}.displayName",
    "reg.{n}.auth.userId",
    "reg.{n}.server.1.address",
    "reg.{n}.server.1.port",
    "reg.{n}.lineKeys",
    "voIpProt.server.{n}.address",
    "voIpProt.server.{n}.port",
    "feature.{n}.enabled",
    "attendant.resourceList.{n}.address",
    "attendant.resourceList.{n}.label",
    "efk.efklist.{n}.action.string",
    "efk.efklist.{n}.label",
    "softkey.{n}.label",
    "softkey.{n}.action",
    "key.{n}.function.prim",
    "lineKey.{n}.category",
    "dialplan.routing.server.{n}.address",
    "sec.TLS.profile.{n}.cipherSuite",
    "msg.mwi.{n}.subscribe",
    "log.level.change.module{n}",
)
PARAM_FIXED: tuple[str, ...] = (
    "tcpIpApp.sntp.address",
    "tcpIpApp.sntp.gmtOffset",
    "lcl.datetime.date.format",
    "lcl.ml.lang",
    "dialplan.digitmap",
    "dialplan.impossibleMatchHandling",
    "up.backlight.idleIntensity",
    "up.screenSaver.enabled",
    "voice.codecPref.G711_Mu",
    "voice.codecPref.G722",
    "voice.codecPref.Opus",
    "device.prov.serverName",
    "device.prov.serverType",
    "device.sntp.serverName",
    "bg.color.selection",
    "video.enable",
    "apps.push.messageType",
    "httpd.cfg.enabled",
)
CSV_PARAMETERS: tuple[str, ...] = (
    "reg.1.address",
    "reg.1.auth.userId",
    "reg.1.auth.password",
    "reg.1.label",
    "reg.1.displayName",
    "lcl.ml.lang",
)
PROFILE_PURPOSES = ("Lines", "Dialplan", "Security", "Features", "Branding", "Codecs", "Region")


@dataclass(frozen=True, slots=True)
class Scale:
    devices: int
    sites: int
    groups: int
    profiles: int
    effective_samples: int
    match_ips: int
    import_rows: int
    create_samples: int
    http_requests: int
    http_budget_s: float


FULL = Scale(50_000, 2_000, 500, 2_000, 5_000, 100_000, 9_999, 300, 2_000, 60.0)
QUICK = Scale(5_000, 200, 50, 200, 1_000, 20_000, 2_000, 100, 300, 15.0)


@dataclass(frozen=True, slots=True)
class Stats:
    """Latency summary in microseconds (nearest-rank percentiles)."""

    n: int
    mean_us: float
    p50_us: float
    p95_us: float
    p99_us: float
    max_us: float

    @classmethod
    def of(cls, samples_ns: Sequence[int]) -> Stats:
        ordered = sorted(samples_ns)
        n = len(ordered)

        def rank(q: float) -> float:
            return ordered[max(0, math.ceil(q * n) - 1)] / 1000

        return cls(
            n, sum(ordered) / n / 1000, rank(0.5), rank(0.95), rank(0.99), ordered[-1] / 1000
        )


def us(value: float) -> str:
    return f"{value:,.1f} µs" if value < 1000 else f"{value / 1000:,.2f} ms"


def latency(stats: Stats) -> str:
    return f"p50 {us(stats.p50_us)} / p99 {us(stats.p99_us)}"


def rss_kib(pid: int | str = "self") -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB, from /proc."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0])
    return out


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


# -- the population ------------------------------------------------------------


def _mask(prefix: int) -> int:
    return (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF


def _net(base: int, prefix: int) -> IPv4Network:
    return IPv4Network((base & _mask(prefix), prefix))


def _host(rng: random.Random, net: IPv4Network) -> str:
    return str(IPv4Address(int(net.network_address) + rng.randrange(net.num_addresses)))


@dataclass(frozen=True, slots=True)
class SitePlan:
    name: str
    public: tuple[tuple[IPv4Network, tuple[IPv4Network, ...]], ...]


def plan_sites(rng: random.Random, count: int) -> list[SitePlan]:
    """Regional NATs (/16, no private subnets), campuses sharing one public /22 told apart by
    private /20s, and branches with their own /24-/29 (some inside a regional /16).

    Public subnets come from 20.0.0.0-60.255.255.255 and private ones from 10.0.0.0/8: this
    is data only, nothing is ever contacted.
    """
    used: set[IPv4Network] = set()

    def public(prefix: int, inside: IPv4Network | None = None) -> IPv4Network:
        while True:
            if inside is None:
                base = rng.randrange(20 << 24, 61 << 24)
            else:
                base = int(inside.network_address) + rng.randrange(inside.num_addresses)
            net = _net(base, prefix)
            if net not in used:
                used.add(net)
                return net

    def private(prefix: int) -> IPv4Network:
        return _net((10 << 24) | rng.randrange(1 << 24), prefix)

    regional_n = max(1, count // 20)
    campus_n = count // 5
    plans: list[SitePlan] = []
    regions = [public(16) for _ in range(regional_n)]
    plans.extend(SitePlan(f"region-{i:04d}", ((net, ()),)) for i, net in enumerate(regions))
    shared: IPv4Network | None = None
    for i in range(campus_n):
        if i % 8 == 0:
            shared = public(22)
        assert shared is not None
        campus = tuple({private(rng.choice((20, 22))) for _ in range(rng.randint(1, 2))})
        plans.append(SitePlan(f"campus-{i:04d}", ((shared, campus),)))
    for i in range(count - regional_n - campus_n):
        nets = []
        for _ in range(rng.randint(1, 2)):
            inside = rng.choice(regions) if rng.random() < 0.3 else None
            net = public(rng.randint(24, 29), inside)
            privs: tuple[IPv4Network, ...] = ()
            if rng.random() < 0.4:
                privs = tuple({private(rng.randint(16, 24)) for _ in range(rng.randint(1, 3))})
            nets.append((net, privs))
        plans.append(SitePlan(f"branch-{i:04d}", tuple(nets)))
    return plans


def site_body(plan: SitePlan, rng: random.Random) -> dict[str, Any]:
    return {
        "name": plan.name,
        "description": f"{plan.name.split('-')[0]} site",
        "location": f"Building {rng.randint(1, 40)}",
        "public_subnets": [
            {"cidr": str(net), "private_subnets": [str(p) for p in privs]}
            for net, privs in plan.public
        ],
    }


def device_address(rng: random.Random, plans: Sequence[SitePlan]) -> tuple[str, str]:
    """A public/private address pair inside a random site (85%) or outside every site."""
    if rng.random() < 0.15:
        outside = IPv4Network((rng.randrange(61 << 24, 100 << 24) & _mask(8), 8))
        return _host(rng, outside), _host(rng, IPv4Network("10.0.0.0/8"))
    net, privs = rng.choice(rng.choice(plans).public)
    private = rng.choice(privs) if privs else IPv4Network("10.0.0.0/8")
    return _host(rng, net), _host(rng, private)


def parameter_pool() -> list[str]:
    names = [t.format(n=n) for t in PARAM_TEMPLATES for n in range(1, 25)]
    return names + list(PARAM_FIXED)


def parameter_value(rng: random.Random, name: str) -> str:
    if name.endswith(("address", "serverName")):
        return f"sip{rng.randint(1, 99)}.voice.example.net"
    if name.endswith(("label", "displayName", "string")):
        return rng.choice(("Reception", "Lobby ${mac_address}", "Ops desk", "Line $FK1$"))
    if name.endswith(("enabled", "enable", "subscribe")):
        return rng.choice(("0", "1"))
    return str(rng.randint(0, 9999))


def mac_of(i: int) -> str:
    return f"0004f2{i:06x}"


def serial_of(i: int) -> str:
    return f"8218{i:010x}"


@dataclass(slots=True)
class Population:
    ids: list[str]
    plans: list[SitePlan]
    models: list[str]
    groups: list[str]
    profiles: list[str]
    setup_s: dict[str, float]


def build(plane: ControlPlane, scale: Scale, rng: random.Random) -> Population:
    """Sites, groups, images, profiles and bindings go through the services. Devices, their
    groups and csv profiles skip the services (validation, activity log, read-back) and go
    straight to the store's own row methods, in one transaction: Devices.create one by one
    is measured separately (see measure_create)."""
    setup: dict[str, float] = {}
    plans = plan_sites(rng, scale.sites - DEFAULT_SITES)

    def sites() -> None:
        for plan in plans:
            plane.sites.create(site_body(plan, rng), ACTOR)

    setup["sites (Sites.create)"] = timed(sites)[1]

    groups = [f"grp-{i:04d}" for i in range(scale.groups)]

    def make_groups() -> None:
        for name in groups:
            plane.groups.create({"name": name, "description": "bench group"}, ACTOR)

    setup["groups (Groups.create)"] = timed(make_groups)[1]

    image_ids: dict[str, list[str]] = {}

    def images() -> None:
        for family, version in IMAGES:
            row = plane.images.register(
                {
                    "model": family,
                    "version": version,
                    "filename": f"{family}-{version}.ld",
                    "size": 50_000_000,
                    "sha256": hashlib.sha256(f"{family}{version}".encode()).hexdigest(),
                },
                ACTOR,
            )
            image_ids.setdefault(family, []).append(row["id"])

    setup["images (Images.register)"] = timed(images)[1]

    pool = parameter_pool()
    all_images = [i for ids in image_ids.values() for i in ids]
    profiles = [
        f"{PROFILE_PURPOSES[i % len(PROFILE_PURPOSES)]}-{i:04d}" for i in range(scale.profiles)
    ]

    def make_profiles() -> None:
        for name in profiles:
            params = {p: parameter_value(rng, p) for p in rng.sample(pool, rng.randint(10, 40))}
            body: dict[str, Any] = {"name": name, "parameters": params}
            if rng.random() < 0.05:
                body["software"] = rng.choice(all_images)
            plane.profiles.create(body, ACTOR)

    setup["profiles (Profiles.create)"] = timed(make_profiles)[1]

    weights = [m[3] for m in MODELS]
    now = time.time()
    ids: list[str] = []

    def devices() -> None:
        store = plane.store
        rows: list[dict[str, Any]] = []
        memberships: list[tuple[str, list[str]]] = []
        csv_profiles: list[tuple[str, dict[str, str]]] = []
        for i in range(scale.devices):
            model, etype, family, _ = rng.choices(MODELS, weights)[0]
            phone = etype != "Polycom Studio"
            key = mac_of(i) if phone else serial_of(i)
            public_ip, private_ip = (None, None)
            if rng.random() > 0.01:
                public_ip, private_ip = device_address(rng, plans)
            rows.append(
                {
                    "id": key,
                    "mac": key if phone else None,
                    "serial": None if phone else key,
                    "type": etype,
                    "model": model,
                    "name": f"desk-{i:06d}",
                    "description": "",
                    "private_ip": private_ip,
                    "public_ip": public_ip,
                    "site": plane.ctx.match_site(public_ip, private_ip),
                    "firmware": IMAGES[0][1] if family == "VVX" else "",
                    "source": "manual",
                    "created": now,
                    "last_seen": now,
                }
            )
            memberships.append((key, rng.sample(groups, rng.randint(1, 3))))
            if rng.random() < 0.05:
                names = rng.sample(CSV_PARAMETERS, rng.randint(2, 5))
                csv_profiles.append((key, {n: parameter_value(rng, n) for n in names}))
            ids.append(key)
        with store.transaction():
            for row in rows:
                store.insert_device(row)
            for key, names in memberships:
                store.set_device_groups(key, names)
            for key, params in csv_profiles:
                store.insert_profile(
                    {
                        "name": csv_profile_name(key),
                        "kind": "imported",
                        "description": f"Parameters of {key} from a CSV import",
                        "owner_device": key,
                        "modified": now,
                        "modified_by": "csv",
                    }
                )
                store.set_parameters(csv_profile_name(key), params)
            plane.ctx.config_changed()

    setup["devices (Store.insert_device etc., one transaction)"] = timed(devices)[1]

    models = [m[0] for m in MODELS]

    def bind() -> None:
        deploy = plane.deployment
        deploy.set("global", "-", [*NEW_TENANT_GLOBAL, *rng.sample(profiles, 3)], ACTOR)
        for plan in plans:
            deploy.set("site", plan.name, rng.sample(profiles, rng.randint(1, 2)), ACTOR)
        for model, _, family, _ in MODELS:
            names = rng.sample(profiles, rng.randint(1, 3))
            if rng.random() < 0.5:
                version = next(v for f, v in IMAGES if f == family)
                names.append(f"Software-{family}-{version}")
            deploy.set("model", model, names, ACTOR)
        for group in groups:
            deploy.set("group", group, rng.sample(profiles, rng.randint(1, 3)), ACTOR)
        for key in rng.sample(ids, max(1, scale.devices * 6 // 100)):
            deploy.set("device", key, rng.sample(profiles, rng.randint(1, 2)), ACTOR)

    setup["bindings (Deployment.set, 5 containers)"] = timed(bind)[1]
    return Population(ids, plans, models, groups, profiles, setup)


# -- in-process measurements -----------------------------------------------------


def measure_effective(
    plane: ControlPlane, pop: Population, scale: Scale, rng: random.Random, report: Report
) -> None:
    deploy = plane.deployment
    rebuilds = []
    for _ in range(3):
        plane.ctx.config_changed()
        rebuilds.append(timed(lambda: deploy.effective(pop.ids[0]))[1])
    tracemalloc.start()
    plane.ctx.config_changed()
    before = tracemalloc.get_traced_memory()[0]
    plane.ctx.config()
    snapshot_bytes = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    sample = [rng.choice(pop.ids) for _ in range(scale.effective_samples)]
    deploy.effective(sample[0])
    samples: list[int] = []
    params = links = 0
    for device in sample:
        started = time.perf_counter_ns()
        result = deploy.effective(device)
        samples.append(time.perf_counter_ns() - started)
        params += len(result.parameters)
        links += len(result.chain)
    eff = Stats.of(samples)
    samples = []
    sizes: list[int] = []
    for device in sample:
        started = time.perf_counter_ns()
        out = deploy.effective_out(device)
        samples.append(time.perf_counter_ns() - started)
        sizes.append(len(json.dumps(out)))
    eff_out = Stats.of(samples)
    n = len(sample)
    report.facts["effective_body_median_bytes"] = sorted(sizes)[n // 2]
    print(f"\n-- effective configuration ({n:,} random devices)")
    report.add(
        "effective",
        "per device: profiles in chain / parameters (mean)",
        f"{links / n:.1f} / {params / n:.0f}",
    )
    report.add("effective", "effective() p50 / p95", f"{us(eff.p50_us)} / {us(eff.p95_us)}")
    report.add(
        "effective",
        "effective() p99 / max",
        f"{us(eff.p99_us)} / {us(eff.max_us)}",
        "p99 <= 2 ms",
        eff.p99_us <= 2000,
    )
    report.add(
        "effective", "effective_out() p50 / p95", f"{us(eff_out.p50_us)} / {us(eff_out.p95_us)}"
    )
    report.add(
        "effective",
        "effective_out() p99 / max",
        f"{us(eff_out.p99_us)} / {us(eff_out.max_us)}",
        "p99 <= 2 ms",
        eff_out.p99_us <= 2000,
    )
    report.add(
        "effective",
        "first call after a write (snapshot rebuild), worst of 3",
        f"{max(rebuilds) * 1000:,.0f} ms",
    )
    report.add("effective", "config snapshot size (tracemalloc)", mib(snapshot_bytes))
    report.add("effective", "effective_out JSON body, median", f"{sorted(sizes)[n // 2]:,} B")
    report.facts["effective"] = asdict(eff)
    report.facts["effective_out"] = asdict(eff_out)


def match_inputs(rng: random.Random, pop: Population, count: int) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for _ in range(count):
        public, private = device_address(rng, pop.plans)
        out.append((public, private if rng.random() < 0.9 else None))
    return out


def measure_match(
    plane: ControlPlane, pop: Population, scale: Scale, rng: random.Random, report: Report
) -> None:
    inputs = match_inputs(rng, pop, scale.match_ips)
    parsed = [(IPv4Address(p), IPv4Address(q) if q else None) for p, q in inputs]
    index_build = []
    for _ in range(3):
        plane.ctx.sites_changed()
        index_build.append(timed(plane.ctx.site_index)[1])
    index = plane.ctx.site_index()
    match = index.match
    clock = time.perf_counter_ns
    ticks: list[int] = []
    for _ in range(10_000):
        before = clock()
        ticks.append(clock() - before)
    overhead = Stats.of(ticks)
    samples: list[int] = []
    for public, private in parsed:
        started = clock()
        match(public, private)
        samples.append(clock() - started)
    raw = Stats.of(samples)
    bulk_started = clock()
    for public, private in parsed:
        match(public, private)
    raw_bulk = (clock() - bulk_started) / len(parsed) / 1000
    sites_match = plane.sites.match
    samples = []
    found: list[str] = []
    for public_text, private_text in inputs:
        started = clock()
        site = sites_match(public_text, private_text)
        samples.append(clock() - started)
        found.append(site)
    svc = Stats.of(samples)
    agree = all(
        (index.match(p, q) or INTERNET) == s for (p, q), s in zip(parsed, found, strict=True)
    )
    internet = sum(1 for s in found if s == INTERNET) / len(found)
    print(f"\n-- site match ({len(inputs):,} random IPs, {scale.sites:,} sites)")
    report.add("site match", "IPs that match no site (Internet)", f"{internet:.0%}")
    report.add(
        "site match",
        "timer overhead per sample (not subtracted)",
        f"{overhead.p50_us * 1000:.0f} ns",
    )
    report.add(
        "site match",
        "SiteIndex.match(IPv4Address) mean (bulk loop)",
        us(raw_bulk),
        "<= 50 µs",
        raw_bulk <= 50,
    )
    report.add(
        "site match",
        "SiteIndex.match(IPv4Address) p99 / max",
        f"{us(raw.p99_us)} / {us(raw.max_us)}",
        "<= 50 µs",
        raw.p99_us <= 50,
    )
    report.add(
        "site match",
        "Sites.match(str, str) mean / p50",
        f"{us(svc.mean_us)} / {us(svc.p50_us)}",
        "<= 50 µs",
        svc.mean_us <= 50,
    )
    report.add(
        "site match",
        "Sites.match(str, str) p99 / max",
        f"{us(svc.p99_us)} / {us(svc.max_us)}",
        "<= 50 µs",
        svc.p99_us <= 50,
    )
    report.add(
        "site match",
        "SiteIndex rebuild after a site change, worst of 3",
        f"{max(index_build) * 1000:,.1f} ms",
    )
    report.add("site match", "index and Sites.match agree on every IP", "yes" if agree else "NO")
    report.facts["site_index_match"] = asdict(raw)
    report.facts["sites_match"] = asdict(svc)


def measure_site_edit(plane: ControlPlane, pop: Population, report: Report) -> None:
    """Edits re-home only the devices inside the changed public subnets; a site CSV import
    re-homes every device (Sites.rehome() without subnets)."""
    region = pop.plans[0]
    body = site_body(region, random.Random(0))
    update = plane.sites.update
    described = [
        timed(partial(update, region.name, {"description": f"edit {i}"}, ACTOR))[1]
        for i in range(3)
    ]
    resubnet = [timed(partial(update, region.name, body, ACTOR))[1] for _ in range(3)]
    inside = plane.sites.get(region.name)["device_count"]
    got = timed(lambda: plane.sites.get(region.name))[1]
    moved, full = timed(plane.sites.rehome)
    print("\n-- site edit")
    report.add(
        "site edit", "Sites.update description, worst of 3", f"{max(described) * 1e3:,.1f} ms"
    )
    report.add(
        "site edit",
        f"Sites.update subnets of a /16 site ({inside:,} devices), worst of 3",
        f"{max(resubnet) * 1e3:,.1f} ms",
    )
    report.add("site edit", "Sites.get (counts its devices)", f"{got * 1e3:,.1f} ms")
    report.add(
        "site edit",
        f"Sites.rehome() of all {plane.store.device_count():,} devices (site CSV import)",
        f"{full * 1e3:,.0f} ms ({moved} moved)",
    )


def measure_export(plane: ControlPlane, pop: Population, report: Report) -> None:
    text, seconds = timed(lambda: plane.devices.export_csv(","))
    size = len(text.encode())
    rows = text.count("\n") - 1
    print("\n-- export")
    report.add("export", f"Devices.export_csv, {rows:,} devices", f"{seconds:,.2f} s, {mib(size)}")
    report.facts["export"] = {"seconds": seconds, "bytes": size, "rows": rows}


def measure_create(
    plane: ControlPlane, pop: Population, scale: Scale, rng: random.Random, report: Report
) -> None:
    samples: list[int] = []
    base = len(pop.ids) + 1_000_000
    for i in range(scale.create_samples):
        public, private = device_address(rng, pop.plans)
        body = {
            "mac": mac_of(base + i),
            "type": "VVX",
            "model": "VVX450",
            "name": f"new-{i:05d}",
            "public_ip": public,
            "private_ip": private,
            "groups": rng.sample(pop.groups, rng.randint(1, 3)),
        }
        started = time.perf_counter_ns()
        plane.devices.create(body, ACTOR)
        samples.append(time.perf_counter_ns() - started)
    stats = Stats.of(samples)
    print(f"\n-- device create through the service ({stats.n} devices)")
    report.add("create", "Devices.create p50 / p99", f"{us(stats.p50_us)} / {us(stats.p99_us)}")
    report.add(
        "create",
        f"=> {len(pop.ids):,} devices one by one would take",
        f"{stats.mean_us * len(pop.ids) / 1e6:,.0f} s",
    )


def import_csv_bytes(
    rng: random.Random,
    keys: Sequence[str],
    groups: Sequence[str],
    columns: Sequence[str],
    with_names: bool,
) -> bytes:
    headers = ["mac_address", "endpoint_type"]
    if with_names:
        headers.append("endpoint_name")
    headers += ["endpoint_group", *columns]
    rows = []
    for i, key in enumerate(keys):
        row = [key, "VVX"]
        if with_names:
            row.append(f"imp-{i:05d}")
        row.append("|".join(rng.sample(groups, rng.randint(1, 2))))
        row += [parameter_value(rng, c) for c in columns]
        rows.append(row)
    return write_table(headers, rows, ",").encode()


def measure_import(
    plane: ControlPlane, pop: Population, scale: Scale, rng: random.Random, report: Report
) -> None:
    keys = [mac_of(2_000_000 + i) for i in range(scale.import_rows)]
    fresh = import_csv_bytes(rng, keys, pop.groups, CSV_PARAMETERS, with_names=True)
    again = import_csv_bytes(rng, keys, pop.groups, CSV_PARAMETERS[:4], with_names=True)
    merge = import_csv_bytes(
        rng, keys, pop.groups, ("reg.1.label", "up.backlight.idleIntensity"), with_names=False
    )
    n = scale.import_rows
    goal = "<= 5 s per 10k rows"
    print(f"\n-- device CSV import ({n:,} rows into {plane.store.device_count():,} devices)")
    for label, data, mode, expect in (
        ("new devices, update=skip", fresh, "skip", "created"),
        ("same devices, update=overwrite", again, "overwrite", "updated"),
        ("same devices, update=merge", merge, "merge", "updated"),
    ):
        result, seconds = timed(partial(plane.devices.import_csv, data, mode, ACTOR))
        totals = result.totals()
        ok = totals[expect] == n and totals["errors"] == 0
        report.add(
            "import",
            f"{label} ({mib(len(data))}){'' if ok else ' UNEXPECTED ' + str(totals)}",
            f"{seconds:,.2f} s ({n / seconds:,.0f} rows/s)",
            goal,
            seconds <= 5 * n / 10_000,
        )
        report.facts[f"import_{mode}"] = {"seconds": seconds, "rows": n, **totals}
    rebuild = timed(lambda: plane.deployment.effective(keys[0]))[1]
    report.add(
        "import",
        "first effective() after the import (snapshot rebuild)",
        f"{rebuild * 1000:,.0f} ms",
    )


# -- loopback HTTP --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpResult:
    first_ms: float
    stats: Stats
    throughput: float
    body_bytes: int


@contextlib.contextmanager
def server(
    cmd: Sequence[str], workdir: Path, name: str, ready: re.Pattern[str], timeout: float = 60
) -> Iterator[tuple[subprocess.Popen[bytes], re.Match[str]]]:
    """Run a loopback server as a subprocess until its stdout shows `ready`; SIGTERM it after."""
    out_path, err_path = workdir / f"{name}.out", workdir / f"{name}.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=workdir)
    try:
        deadline = time.monotonic() + timeout
        while True:
            found = ready.search(out_path.read_text(errors="replace"))
            if found:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = err_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} did not become ready (exit {proc.returncode}):\n{tail}")
            time.sleep(0.05)
        yield proc, found
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        print(f"  ({name} stopped with SIGTERM, exit code {proc.returncode})", flush=True)


async def http_run(
    base: str, paths: Sequence[str], headers: dict[str, str], budget_s: float
) -> HttpResult:
    """One keep-alive connection, sequential GETs; the first is timed on its own."""
    connector = aiohttp.TCPConnector(limit=1)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=headers
    ) as session:

        async def get(path: str) -> int:
            async with session.get(base + path) as response:
                body = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"GET {path}: {response.status} {body[:300]!r}")
                return len(body)

        started = time.perf_counter_ns()
        await get(paths[0])
        first_ms = (time.perf_counter_ns() - started) / 1e6
        for path in paths[1:21]:
            await get(path)
        samples: list[int] = []
        body_bytes = 0
        begin = time.perf_counter()
        for path in paths:
            started = time.perf_counter_ns()
            body_bytes += await get(path)
            samples.append(time.perf_counter_ns() - started)
            if time.perf_counter() - begin > budget_s:
                break
        elapsed = time.perf_counter() - begin
    return HttpResult(
        first_ms, Stats.of(samples), len(samples) / elapsed, body_bytes // len(samples)
    )


AIOHTTP_PEER = """
import sys
from aiohttp import web
body = open(sys.argv[1], "rb").read()
async def handler(request):
    return web.Response(body=body, content_type="application/json")
app = web.Application()
app.router.add_get("/effective.json", handler)
web.run_app(app, host="127.0.0.1", port=0, print=lambda s: print(s, flush=True), access_log=None)
"""


def relay_command(data_dir: Path) -> list[str]:
    script = Path(sys.executable).with_name("relay")
    prefix = [str(script)] if script.exists() else [sys.executable, "-m", "relay.cli"]
    return [*prefix, "up", "--data-dir", str(data_dir), "--json", "--free-ports"]


@dataclass(frozen=True, slots=True)
class Peer:
    """A server answering GET <path> with a static JSON body of the same size as ours."""

    name: str
    cmd: list[str]
    ready: re.Pattern[str]
    max_requests: int
    note: str


def peers(static: Path, body: Path, requests: int) -> list[Peer]:
    http_server = [sys.executable, "-u", "-m", "http.server", "0", "--bind", HOST, "-d"]
    port_line = re.compile(r"port (\d+)")
    return [
        Peer(
            "http.server",
            [*http_server, str(static)],
            port_line,
            requests,
            "python -m http.server as shipped (HTTP/1.0: one connection per request)",
        ),
        Peer(
            "http.server HTTP/1.1",
            [*http_server, str(static), "-p", "HTTP/1.1"],
            port_line,
            min(requests, 100),
            "keep-alive; header and body go out in two send()s without TCP_NODELAY, so every "
            "response waits for the client's delayed ACK (~40 ms)",
        ),
        Peer(
            "aiohttp static",
            [sys.executable, "-u", "-c", AIOHTTP_PEER, str(body)],
            re.compile(r"http://127\.0\.0\.1:(\d+)"),
            requests,
            "bare aiohttp app returning the bytes: the framework's floor",
        ),
    ]


def measure_http(
    data_dir: Path,
    token: str,
    pop: Population,
    scale: Scale,
    rng: random.Random,
    report: Report,
    body_bytes: int,
) -> None:
    workdir = data_dir.parent / "http"
    workdir.mkdir()
    sample = [rng.choice(pop.ids) for _ in range(scale.http_requests)]
    paths = [f"/devices/{d}/effective-config" for d in sample]
    results: dict[str, HttpResult] = {}
    print(f"\n-- GET effective-config over loopback HTTP ({len(paths):,} sequential requests)")
    ready_line = re.compile(r"^\{.*\}$", re.MULTILINE)
    with server(relay_command(data_dir), workdir, "relay-up", ready_line) as (proc, line):
        facts = json.loads(line.group(0))
        auth = {"Authorization": f"Bearer {facts['token'] or token}"}
        results["relay up"] = asyncio.run(http_run(facts["api"], paths, auth, scale.http_budget_s))
        server_mem = rss_kib(proc.pid)
    static = workdir / "static"
    static.mkdir()
    body = static / "effective.json"
    body.write_bytes(json.dumps({"pad": "x" * max(0, body_bytes - 11)}).encode())
    notes: dict[str, str] = {}
    for peer in peers(static, body, len(paths)):
        with server(peer.cmd, workdir, re.sub(r"\W+", "-", peer.name), peer.ready) as (_, found):
            base = f"http://{HOST}:{found.group(1)}"
            peer_paths = ["/effective.json"] * peer.max_requests
            results[peer.name] = asyncio.run(http_run(base, peer_paths, {}, scale.http_budget_s))
            notes[peer.name] = peer.note
    ours = results["relay up"]
    for name, result in results.items():
        report.add(
            "http",
            f"{name}: {result.stats.n:,} req, body {result.body_bytes:,} B",
            f"{result.throughput:,.0f} req/s, {latency(result.stats)}",
        )
    report.add("http", "relay up: first request (snapshot build)", f"{ours.first_ms:,.0f} ms")
    report.add("http", "relay up: p99 / max", f"{us(ours.stats.p99_us)} / {us(ours.stats.max_us)}")
    for name in notes:
        peer_result = results[name]
        report.add(
            "http",
            f"ratio relay up / {name}",
            f"throughput x{ours.throughput / peer_result.throughput:.2f}, "
            f"p50 x{ours.stats.p50_us / peer_result.stats.p50_us:.2f}",
        )
    report.add(
        "memory",
        "relay up RSS / peak RSS after the HTTP run",
        f"{server_mem.get('VmRSS', 0) / 1024:,.0f} / {server_mem.get('VmHWM', 0) / 1024:,.0f} MiB",
    )
    report.facts["http"] = {k: {**asdict(v), "stats": asdict(v.stats)} for k, v in results.items()}
    report.facts["http_peer_notes"] = notes
    report.facts["relay_up_rss_kib"] = server_mem


def measure_request_parts(
    plane: ControlPlane, token: str, pop: Population, rng: random.Random, report: Report
) -> None:
    """What one GET effective-config does besides resolving, timed in-process."""
    sample = [rng.choice(pop.ids) for _ in range(1000)]
    auth: list[int] = []
    dumps: list[int] = []
    for device in sample:
        started = time.perf_counter_ns()
        plane.tenancy.authenticate(token)
        auth.append(time.perf_counter_ns() - started)
        out = plane.deployment.effective_out(device)
        started = time.perf_counter_ns()
        json.dumps(out)
        dumps.append(time.perf_counter_ns() - started)

    async def hops(n: int) -> list[int]:
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=1) as pool:
            out: list[int] = []
            for _ in range(n):
                started = time.perf_counter_ns()
                await loop.run_in_executor(pool, int)
                out.append(time.perf_counter_ns() - started)
            return out

    hop = Stats.of(asyncio.run(hops(1000)))
    print("\n-- parts of one API request, in-process (1,000 samples)")
    report.add(
        "request parts", "Tenancy.authenticate (SHA-256, SELECT, UPDATE)", latency(Stats.of(auth))
    )
    report.add("request parts", "json.dumps(effective_out(...))", latency(Stats.of(dumps)))
    report.add(
        "request parts", "one hop to the worker thread and back (x2 per request)", latency(hop)
    )


# -- main ---------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> tuple[Scale, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="5,000 devices, 200 sites: under a minute"
    )
    for name in ("devices", "sites", "groups", "profiles", "import_rows", "http_requests"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument(
        "--keep", type=Path, help="build the data here and keep it (default: temp dir)"
    )
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else FULL
    overrides = {
        name: getattr(args, name)
        for name in ("devices", "sites", "groups", "profiles", "import_rows", "http_requests")
        if getattr(args, name) is not None
    }
    scale = Scale(**{**asdict(scale), **overrides})
    if not DEFAULT_SITES < scale.sites <= 2000:
        parser.error("--sites must be 3-2000 (the tenant limit, Internet and Intranet included)")
    if not 0 < scale.import_rows <= 9_999:
        parser.error(
            "--import-rows must be 1-9999 (the device import takes fewer than 10,000 rows)"
        )
    return scale, args


def run(scale: Scale, args: argparse.Namespace) -> Report:
    rng = random.Random(args.seed)
    report = Report()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-cloud-"))
    data_dir = root / "relay"
    started = time.perf_counter()
    try:
        plane = ControlPlane(data_dir / "cloud")
        token = plane.bootstrap()
        assert token is not None, "the data directory must be new"
        write_secret(data_dir / "admin-token", token)
        print(
            f"building in {data_dir}: {scale.devices:,} devices, {scale.sites:,} sites "
            f"(2 default), {scale.groups:,} groups, {scale.profiles:,} profiles",
            flush=True,
        )
        pop = build(plane, scale, rng)
        for what, seconds in pop.setup_s.items():
            print(f"  setup {what:<50} {seconds:8.1f} s", flush=True)
        report.facts["setup_s"] = pop.setup_s
        report.facts["rss_after_setup_kib"] = rss_kib()
        measure_effective(plane, pop, scale, rng, report)
        measure_match(plane, pop, scale, rng, report)
        measure_export(plane, pop, report)
        measure_http(
            data_dir, token, pop, scale, rng, report, report.facts["effective_body_median_bytes"]
        )
        measure_request_parts(plane, token, pop, rng, report)
        measure_site_edit(plane, pop, report)
        measure_create(plane, pop, scale, rng, report)
        measure_import(plane, pop, scale, rng, report)
        plane.close()
        db = data_dir / "cloud" / "cloud.db"
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print("\n-- memory and storage")
        report.add(
            "memory",
            "bench process peak RSS (ru_maxrss; includes the generator)",
            f"{peak / 1024:,.0f} MiB",
        )
        report.add(
            "memory",
            "bench process RSS after setup",
            f"{report.facts['rss_after_setup_kib'].get('VmRSS', 0) / 1024:,.0f} MiB",
        )
        report.add(
            "storage", "SQLite cloud.db after close (WAL checkpointed)", mib(db.stat().st_size)
        )
        report.facts["db_bytes"] = db.stat().st_size
        report.facts["peak_rss_kib"] = peak
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    report.facts["total_s"] = time.perf_counter() - started
    return report


def main(argv: Sequence[str] | None = None) -> int:
    scale, args = parse_args(argv)
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"bench_cloud {' '.join(sys.argv[1:])}\n{when}; {machine()}\n{scale}", flush=True)
    report = run(scale, args)
    finish(report, when, scale, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
