"""The tenant, its provisioning settings, and administrators' API tokens
(cloud.md "Tenant, relays and PIN", "Administrators").

There is no default provisioning account: provisioning is refused until an
administrator sets one. Tokens are stored as SHA-256 digests only; the
plaintext is shown once, at creation. Roles: `admin` (full) and `readonly`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from relay.cloud.context import Context, not_found
from relay.cloud.rules.errors import RuleError
from relay.cloud.rules.names import check_hostname, check_name
from relay.cloud.sites import check_download_path

ROLES = ("admin", "readonly")
TOKEN_PREFIX = "rly_"  # noqa: S105 (a prefix, not a secret)
MIN_PROV_PASSWORD = 12
# phones.md section 2: the phones' factory FTP account. Weak by design and known to
# everyone; a tenant may still choose it on purpose (phones then provision out of the
# box), and it is never the default.
FACTORY_ACCOUNT = ("PlcmSpIp", "PlcmSpIp")
TOUCH_EVERY = 60.0  # seconds: a token's last use is recorded at most once a minute


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling the API."""

    token_id: str
    name: str
    role: str

    @property
    def can_write(self) -> bool:
        return self.role == "admin"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str, salt: bytes | None = None) -> str:
    """scrypt, so a stolen database does not give away the phones' account."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        _, salt, digest = stored.split("$")
        expected = hash_password(password, bytes.fromhex(salt)).split("$")[2]
    except ValueError:
        return False
    return hmac.compare_digest(expected, digest)


def new_device_password() -> str:
    """A per-tenant phone admin password: 20 letters and digits (phones take up to 32),
    never the factory 456 nor the vendor service's well-known value."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(20))


def _check_hhmm(value: object, field: str) -> str:
    if isinstance(value, str) and len(value) == 5 and value[2] == ":":
        hh, mm = value[:2], value[3:]
        if hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60:
            return value
    raise RuleError("invalid_time", f"{field} must be a time HH:MM like 03:00", field)


class Tenancy:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.store = ctx.store

    def ensure_tenant(self, name: str = "default") -> tuple[dict[str, Any], str | None]:
        """Create the tenant and a first admin token on first start.

        Returns the tenant and, only when it was just created, the admin token.
        """
        row = self.store.tenant()
        if row is not None:
            if not row["device_admin_password"]:
                self.store.update_tenant(
                    row["id"], {"device_admin_password": new_device_password()}
                )
            return row, None
        tenant_id = uuid.uuid4().hex
        with self.store.transaction():
            self.store.insert_tenant(
                {
                    "id": tenant_id,
                    "name": name,
                    "hostname": "relay" + tenant_id[:6],
                    "device_admin_password": new_device_password(),
                    "created": self.ctx.now(),
                }
            )
            token, _ = self.create_token({"name": "admin", "role": "admin"}, "system")
        tenant = self.store.tenant()
        assert tenant is not None
        return tenant, token

    def tenant(self) -> dict[str, Any]:
        row = self.store.tenant()
        assert row is not None
        return row

    def get(self) -> dict[str, Any]:
        row = self.tenant()
        return {
            "id": row["id"],
            "name": row["name"],
            "hostname": row["hostname"],
            "provisioning_account": {
                "user": row["prov_user"],
                "configured": bool(row["prov_user"] and row["prov_password_hash"]),
            },
            "download_paths": {
                "enterprise": row["download_path_enterprise"],
                "internet": row["download_path_internet"],
            },
            "polling_window": {"start": row["polling_start"], "end": row["polling_end"]},
            "auto_add": bool(row["auto_add"]),
        }

    def update(self, body: Mapping[str, Any], actor: str) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        if "hostname" in body:
            value = body["hostname"]
            changes["hostname"] = check_hostname(value if isinstance(value, str) else "")
        if "provisioning_account" in body:
            account = body["provisioning_account"]
            if not isinstance(account, dict):
                raise RuleError(
                    "invalid_type",
                    "provisioning_account must be {user, password}",
                    "provisioning_account",
                )
            user, password = account.get("user"), account.get("password")
            check_name(
                user if isinstance(user, str) else "",
                "provisioning_account.user",
                "provisioning account user",
            )
            factory = (user, password) == FACTORY_ACCOUNT
            if not isinstance(password, str) or (not factory and len(password) < MIN_PROV_PASSWORD):
                raise RuleError(
                    "weak_password",
                    f"the provisioning password needs at least {MIN_PROV_PASSWORD} characters",
                    "provisioning_account.password",
                )
            changes["prov_user"] = user
            changes["prov_password_hash"] = hash_password(password)
        if "download_paths" in body:
            paths = body["download_paths"]
            if not isinstance(paths, dict):
                raise RuleError(
                    "invalid_type",
                    "download_paths must be {enterprise, internet}",
                    "download_paths",
                )
            for key in ("enterprise", "internet"):
                if key in paths:
                    value = paths[key]
                    changes[f"download_path_{key}"] = check_download_path(
                        value if isinstance(value, str) else "\\", f"download_paths.{key}"
                    )
        if "polling_window" in body:
            window = body["polling_window"]
            if not isinstance(window, dict):
                raise RuleError(
                    "invalid_type", "polling_window must be {start, end}", "polling_window"
                )
            changes["polling_start"] = _check_hhmm(window.get("start"), "polling_window.start")
            changes["polling_end"] = _check_hhmm(window.get("end"), "polling_window.end")
        if "auto_add" in body:
            if not isinstance(body["auto_add"], bool):
                raise RuleError("invalid_type", "auto_add must be true or false", "auto_add")
            changes["auto_add"] = int(body["auto_add"])
        if changes:
            self.store.update_tenant(self.tenant()["id"], changes)
            self.ctx.config_changed()
        self.ctx.log(actor, "edit", "tenant", fields=sorted(body))
        return self.get()

    def device_admin_password(self) -> str:
        return str(self.tenant()["device_admin_password"])

    def rotate_device_admin_password(self, actor: str) -> str:
        """A new per-tenant phone admin password; phones get it at their next provisioning."""
        password = new_device_password()
        self.store.update_tenant(self.tenant()["id"], {"device_admin_password": password})
        self.ctx.config_changed()
        self.ctx.log(actor, "rotate", "device-admin-password")
        return password

    def check_provisioning(self, user: str, password: str) -> bool:
        row = self.tenant()
        if not row["prov_user"] or not row["prov_password_hash"]:
            return False
        same_user = hmac.compare_digest(user.encode(), str(row["prov_user"]).encode())
        return verify_password(password, row["prov_password_hash"]) and same_user

    # -- tokens ----------------------------------------------------------

    def create_token(self, body: Mapping[str, Any], actor: str) -> tuple[str, dict[str, Any]]:
        name, role = body.get("name", ""), body.get("role", "readonly")
        check_name(name if isinstance(name, str) else "", "name", "token name")
        if role not in ROLES:
            raise RuleError("invalid_role", f"role must be one of {', '.join(ROLES)}", "role")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = {
            "id": uuid.uuid4().hex[:12],
            "name": name,
            "role": role,
            "hash": token_digest(token),
            "created": self.ctx.now(),
        }
        self.store.insert_token(row)
        self.ctx.log(actor, "add", f"token/{row['id']}", role=role)
        return token, {k: row[k] for k in ("id", "name", "role", "created")}

    def tokens(self) -> list[dict[str, Any]]:
        return [{**t, "revoked": bool(t["revoked"])} for t in self.store.tokens()]

    def revoke_token(self, token_id: str, actor: str) -> None:
        if not self.store.revoke_token(token_id):
            raise not_found("active token", token_id)
        self.ctx.log(actor, "revoke", f"token/{token_id}")

    def authenticate(self, token: str) -> Principal | None:
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            return None
        row = self.store.token_by_hash(token_digest(token))
        if row is None or row["revoked"]:
            return None
        now = self.ctx.now()
        if row["last_used"] is None or now - row["last_used"] >= TOUCH_EVERY:
            self.store.touch_token(row["id"], now)
        return Principal(row["id"], row["name"], row["role"])
