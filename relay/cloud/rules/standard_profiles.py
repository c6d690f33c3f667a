"""The read-only standard profiles shipped with every tenant (cloud.md "Configuration profiles").

Profiles whose name ends in `-TEMPLATE` need an administrator's values and
cannot be bound until copied. A new tenant's Global container starts with
`NEW_TENANT_GLOBAL`, so that every provisioned phone has its REST API on and
polls in the nightly window (03:00-05:00, random inside it).
"""

from __future__ import annotations

from dataclasses import dataclass

TEMPLATE_SUFFIX = "-TEMPLATE"


@dataclass(frozen=True, slots=True)
class StandardProfile:
    name: str
    description: str
    parameters: tuple[tuple[str, str], ...]


STANDARD_PROFILES: tuple[StandardProfile, ...] = (
    StandardProfile(
        "REST-API-Enable",
        "Turns on the phone's REST API, needed for tasks and monitoring through a relay",
        (("apps.restapi.enabled", "1"),),
    ),
    StandardProfile(
        "Polling-Nightly",
        "Polls for provisioning changes once a day at a random time between 03:00 and 05:00",
        (
            ("prov.polling.enabled", "1"),
            ("prov.polling.mode", "random"),
            ("prov.polling.period", "86400"),
            ("prov.polling.time", "03:00"),
            ("prov.polling.timeRandomEnd", "05:00"),
        ),
    ),
    StandardProfile(
        "TimeZone-UTC",
        "Coordinated Universal Time, no daylight saving",
        (
            ("tcpIpApp.sntp.gmtOffset", "0"),
            ("tcpIpApp.sntp.daylightSavings.enable", "0"),
        ),
    ),
    StandardProfile(
        "TimeZone-US-Eastern",
        "US Eastern time (UTC-5) with US daylight saving rules",
        (
            ("tcpIpApp.sntp.gmtOffset", "-18000"),
            ("tcpIpApp.sntp.daylightSavings.enable", "1"),
        ),
    ),
    StandardProfile(
        "TimeZone-Central-Europe",
        "Central European time (UTC+1) with EU daylight saving rules",
        (
            ("tcpIpApp.sntp.gmtOffset", "3600"),
            ("tcpIpApp.sntp.daylightSavings.enable", "1"),
            ("tcpIpApp.sntp.daylightSavings.fixedDayEnable", "0"),
        ),
    ),
    StandardProfile(
        "NTP-TEMPLATE",
        "Time server: copy, then set the NTP server your phones can reach",
        (
            ("tcpIpApp.sntp.address", ""),
            ("tcpIpApp.sntp.address.overrideDHCP", "1"),
            ("tcpIpApp.sntp.resyncPeriod", "86400"),
        ),
    ),
    StandardProfile(
        "Syslog-TEMPLATE",
        "Remote syslog: copy, then set the syslog server",
        (
            ("device.syslog.serverName", ""),
            ("device.syslog.transport", "UDP"),
            ("device.syslog.facility", "16"),
            ("device.syslog.renderLevel", "3"),
        ),
    ),
    StandardProfile(
        "AdminPassword-Change-TEMPLATE",
        "Device admin password: copy, then choose a password (the factory 456 is refused)",
        (("device.auth.localAdminPassword", ""),),
    ),
    StandardProfile(
        "SIP-Line-TEMPLATE",
        "One SIP line: copy, then fill in the account and the call server",
        (
            ("reg.1.address", ""),
            ("reg.1.displayName", ""),
            ("reg.1.label", ""),
            ("reg.1.auth.userId", ""),
            ("reg.1.auth.password", ""),
            ("reg.1.server.1.address", ""),
            ("reg.1.server.1.port", "5060"),
            ("reg.1.server.1.transport", "DNSnaptr"),
        ),
    ),
    StandardProfile(
        "Provisioning-Server-TEMPLATE",
        "Points phones at a provisioning server: copy, then fill in its address and account",
        (
            ("device.prov.serverName", ""),
            ("device.prov.serverType", "HTTPS"),
            ("device.prov.user", ""),
            ("device.prov.password", ""),
        ),
    ),
    StandardProfile(
        "Custom-CA-Certificate-TEMPLATE",
        "Trust a private CA (e.g. a relay's): copy, then paste the PEM certificate",
        (("device.sec.TLS.customCaCert1", ""),),
    ),
    StandardProfile(
        "ScreenCapture-Enable",
        "Allows the capture-screen task",
        (("up.screenCapture.enabled", "1"),),
    ),
    StandardProfile(
        "PacketCapture-Enable",
        "Allows the capture-packets task",
        (("diags.pcap.enabled", "1"),),
    ),
    StandardProfile(
        "CheckSync-NoReboot",
        "check-sync re-reads configuration without rebooting unless needed",
        (("voIpProt.SIP.specialEvent.checkSync.alwaysReboot", "0"),),
    ),
)

NEW_TENANT_GLOBAL: tuple[str, ...] = ("REST-API-Enable", "Polling-Nightly")


def is_template(name: str) -> bool:
    """Templates cannot be bound until copied (cloud.md "Configuration profiles")."""
    return name.endswith(TEMPLATE_SUFFIX)
