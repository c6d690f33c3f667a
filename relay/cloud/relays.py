"""Relays: the registration PIN, registration, heartbeats and link status
(cloud.md "Tenant, relays and PIN"; docs/agent-link.md).

A relay registers with the tenant ID and the PIN and gets an ID and a secret,
shown once and stored as a SHA-256 digest (a 256-bit random secret needs no
slow hash). Wrong PINs are throttled per source with a growing delay, and
every attempt, good or bad, is audited without the PIN or the secret.
A relay's status and its site are computed when read, so they follow the
clock and site edits without a background job.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import string
import uuid
from collections.abc import Callable
from typing import Any

from relay.cloud.context import Context, not_found
from relay.cloud.rules.assignment import RelayPlace
from relay.cloud.rules.errors import RuleError
from relay.cloud.rules.pin import PIN_DIGITS, PinState, next_reset_allowed, pin_matches, reset
from relay.cloud.rules.relays import LinkPolicy, agent_status, download_agent_status
from relay.cloud.rules.throttle import LoginThrottle
from relay.cloud.store.store import Row, dumps
from relay.cloud.tenancy import Tenancy
from relay.logs import event
from relay.sync.messages import (
    Credential,
    DeviceStatus,
    Heartbeat,
    JobResult,
    LinkSettings,
    Registration,
    ReportBatch,
)

log = logging.getLogger("cloud.relays")

REFUSED = "the tenant ID or the PIN is wrong"


class RegistrationThrottled(RuleError):
    """Too many wrong PINs from one source: 429, retry after `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(
            "too_many_attempts",
            f"too many failed registrations from this address; retry in {int(retry_after) + 1} s",
            status=429,
        )
        self.retry_after = retry_after


def iso(when: float | None) -> str | None:
    if when is None:
        return None
    return dt.datetime.fromtimestamp(when, dt.UTC).isoformat(timespec="seconds")


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_pin() -> str:
    return "".join(secrets.choice(string.digits) for _ in range(PIN_DIGITS))


class Relays:
    def __init__(self, ctx: Context, tenancy: Tenancy, policy: LinkPolicy) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.tenancy = tenancy
        self.policy = policy
        self.throttle = LoginThrottle()

    # -- PIN -------------------------------------------------------------------

    def _pin_state(self) -> PinState:
        """The tenant's PIN, made now if the data directory predates PINs."""
        tenant_id = self.tenancy.tenant()["id"]
        row = self.store.pin_state(tenant_id)
        if row is None:
            state = PinState(new_pin())
            self._put_pin(tenant_id, state)
            return state
        return PinState(
            row["pin"], row["previous_pin"], row["previous_valid_until"], row["last_reset"]
        )

    def _put_pin(self, tenant_id: str, state: PinState) -> None:
        self.store.put_pin_state(
            {
                "tenant_id": tenant_id,
                "pin": state.pin,
                "previous_pin": state.previous,
                "previous_valid_until": state.previous_valid_until,
                "last_reset": state.last_reset,
            }
        )

    def ensure_pin(self) -> None:
        self._pin_state()

    def _pin_out(self, state: PinState) -> dict[str, Any]:
        now = self.ctx.now()
        until = state.previous_valid_until
        allowed = next_reset_allowed(state)
        return {
            "pin": state.pin,
            "previous_pin_valid_until": iso(until) if until is not None and now < until else None,
            "next_reset_allowed": iso(allowed) if allowed is not None and now < allowed else None,
        }

    def pin(self) -> dict[str, Any]:
        return self._pin_out(self._pin_state())

    def reset_pin(self, actor: str) -> dict[str, Any]:
        state = reset(self._pin_state(), new_pin(), self.ctx.now())
        self._put_pin(self.tenancy.tenant()["id"], state)
        self.ctx.log(actor, "reset", "tenant/pin")
        return self._pin_out(state)

    # -- registration and credentials -----------------------------------------

    def _audit(self, outcome: str, source: str, reg: Registration, **detail: object) -> None:
        level = logging.INFO if outcome == "registered" else logging.WARNING
        event(
            log,
            "relay_register",
            level,
            outcome=outcome,
            source=source,
            relay_name=reg.name,
            **detail,
        )
        self.ctx.log(
            "relay-agent",
            "register",
            "relays",
            outcome=outcome,
            source=source,
            name=reg.name,
            **detail,
        )

    def register(self, reg: Registration, source: str) -> Credential:
        """docs/agent-link.md "Authentication": one 401 for a wrong tenant or PIN (no
        oracle), 429 while the source is throttled; the secret is shown once."""
        now = self.ctx.now()
        wait = self.throttle.retry_after(source, now)
        if wait > 0:
            self._audit("throttled", source, reg, retry_after=wait)
            raise RegistrationThrottled(wait)
        tenant_id = str(self.tenancy.tenant()["id"])
        tenant_ok = hmac.compare_digest(reg.tenant.encode(), tenant_id.encode())
        if not (pin_matches(self._pin_state(), reg.pin, now) and tenant_ok):
            delay = self.throttle.failure(source, now)
            self._audit("refused", source, reg, throttled_for=delay)
            raise RuleError("registration_refused", REFUSED, status=401)
        self.throttle.success(source)
        relay_id = "r" + uuid.uuid4().hex[:12]
        secret = secrets.token_urlsafe(32)
        self.store.insert_relay(
            {
                "id": relay_id,
                "name": reg.name,
                "secret_hash": secret_digest(secret),
                "source": source,
                "addresses": dumps(list(reg.addresses)),
                "version": reg.version,
                "registered": now,
            }
        )
        self._audit("registered", source, reg, relay=relay_id)
        return Credential(relay_id, secret, self.policy.heartbeat_seconds)

    def authenticate(self, relay_id: str, secret: str) -> bool:
        """Constant-time; an unknown (or revoked) relay costs the same comparison."""
        row = self.store.relay(relay_id) if len(relay_id) <= 64 else None
        expected = row["secret_hash"] if row is not None else secret_digest("-")
        same = hmac.compare_digest(expected, secret_digest(secret))
        return row is not None and same

    def delete(self, relay_id: str, actor: str) -> None:
        """Revoke: the relay's credential stops working at once (401 on its next call)."""
        if not self.store.delete_relay(relay_id):
            raise not_found("relay", relay_id)
        self.ctx.log(actor, "delete", f"relay/{relay_id}")

    # -- heartbeat and status -------------------------------------------------

    def _row(self, relay_id: str) -> Row:
        row = self.store.relay(relay_id)
        if row is None:
            raise not_found("relay", relay_id)
        return row

    def site_of(self, row: Row) -> str:
        """docs/agent-link.md: the site its address matches, by the heartbeat's source
        address, else the first address it reports."""
        addresses: list[str] = json.loads(row["addresses"])
        first = addresses[0] if addresses else None
        return self.ctx.match_site(row["source"] or first, first)

    def heartbeat(self, relay_id: str, beat: Heartbeat, source: str | None) -> LinkSettings:
        now = self.ctx.now()
        row = self._row(relay_id)
        changes: dict[str, Any] = {
            "version": beat.version,
            "addresses": dumps(list(beat.addresses)),
            "uptime": beat.uptime,
            "last_heartbeat": now,
            "source": source,
            "download_agent": beat.download_agent,
            "download_agent_version": beat.download_agent_version,
        }
        if beat.download_agent == "running":
            changes["download_agent_running"] = now
        self.store.update_relay(relay_id, changes)
        return LinkSettings(
            relay_id,
            self.site_of({**row, **changes}),
            self.policy.heartbeat_seconds,
            self.policy.monitor_seconds,
        )

    def _out(self, row: Row, now: float) -> dict[str, Any]:
        return {
            "id": row["id"],
            "name": row["name"],
            "site": self.site_of(row),
            "status": agent_status(row["last_heartbeat"], now, self.policy),
            "download_agent_status": download_agent_status(
                row["download_agent_running"], row["download_agent"], now, self.policy
            ),
            "download_agent_version": row["download_agent_version"],
            "last_heartbeat": iso(row["last_heartbeat"]),
            "version": row["version"],
            "addresses": json.loads(row["addresses"]),
            "uptime": row["uptime"],
            "registered": iso(row["registered"]),
        }

    def listing(self) -> list[dict[str, Any]]:
        now = self.ctx.now()
        return [self._out(row, now) for row in self.store.relays()]

    def get(self, relay_id: str) -> dict[str, Any]:
        return self._out(self._row(relay_id), self.ctx.now())

    def places(self, now: float) -> list[RelayPlace]:
        """Every relay for relay.cloud.rules.assignment, active as of `now`."""
        return [
            RelayPlace(
                row["id"],
                self.site_of(row),
                agent_status(row["last_heartbeat"], now, self.policy) == "active",
            )
            for row in self.store.relays()
        ]

    # -- reports ---------------------------------------------------------------

    def receive_reports(
        self,
        relay_id: str,
        batch: ReportBatch,
        on_result: Callable[[str, JobResult], object],
        on_status: Callable[[str, DeviceStatus], object],
    ) -> int:
        """docs/agent-link.md "Reports": store each report numbered above what this relay
        already delivered, all in one transaction, and return the highest number held.
        A report the cloud refuses (a RuleError) is logged and counted as held, so one
        bad report cannot block the relay's outbox for ever."""
        with self.store.transaction():
            held = int(self._row(relay_id)["last_report_seq"])
            for report in batch.reports:
                if report.seq <= held:
                    continue
                try:
                    with self.store.transaction():
                        if report.result is not None:
                            on_result(relay_id, report.result)
                        if report.status is not None:
                            on_status(relay_id, report.status)
                except RuleError as exc:
                    event(
                        log,
                        "report_refused",
                        logging.WARNING,
                        relay=relay_id,
                        seq=report.seq,
                        reason=exc.message,
                    )
                held = report.seq
            self.store.update_relay(relay_id, {"last_report_seq": held})
        return held
