"""`relay certs ...`: check a relay certificate offline; make a lab CA and certificate.

relay certs check FILE.pfx --fqdn NAME [--fqdn NAME2] [--password P | --password-file F]
                  [--json]
relay certs lab-ca --dir DIR [--fqdn NAME ...] [--ip ADDR ...] [--rsa [--rsa-bits N]]
                   [--days N] [--pfx-password P] [--json]
relay certs status [--data-dir DIR] [--json]
relay certs install FILE.pfx [--password P | --password-file F] [--fqdn NAME ...]
                    [--data-dir DIR] [--json]
relay certs rollback [--data-dir DIR] [--json]

`status`, `install` and `rollback` work on `<data-dir>/tls/relay` (certs.rotation);
a running relay notices the change within seconds and serves it to new connections.

`check` takes the PFX password from --password, --password-file or the environment
variable RELAY_PFX_PASSWORD (so it need not show in `ps`), and never prints it. Exit
status: 0 when the certificate is usable (warnings allowed), 1 when it is not, 2 for a
usage error such as an unreadable file. The rules are in certs/validate.py.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from certs.lab import (
    RSA_SIZES,
    SERVER_CERT,
    CertError,
    LabCertificates,
    create_lab_certificates,
)
from certs.rotation import CertificateStore, InstallRefused, Served, prepare
from certs.validate import CUSTOM_CA_PARAMETER, MAX_PFX_BYTES, Report, validate_pfx

PFX_ENV = "RELAY_PFX_PASSWORD"
MAX_PASSWORD_FILE = 4096
OK, NOT_OK, USAGE = 0, 1, 2


def add_parser(subparsers: Any) -> None:
    certs = subparsers.add_parser("certs", help="check a relay certificate (PFX), make a lab CA")
    sub = certs.add_subparsers(dest="action", required=True)
    check = sub.add_parser("check", help="validate a PFX for use as a relay's certificate")
    _pfx_arguments(check, fqdn_required=True)
    lab = sub.add_parser("lab-ca", help="create a private lab CA and a server certificate")
    lab.add_argument("--dir", type=Path, required=True, help="where to write the files")
    lab.add_argument(
        "--fqdn", action="append", default=[], help="a DNS name to cover (default: this host's)"
    )
    lab.add_argument("--ip", action="append", default=[], help="an IP address to cover")
    lab.add_argument("--rsa", action="store_true", help="RSA keys instead of ECDSA P-256")
    lab.add_argument(
        "--rsa-bits", type=int, choices=RSA_SIZES, help="RSA key size with --rsa (default 2048)"
    )
    lab.add_argument("--days", type=int, default=397, help="server certificate validity")
    lab.add_argument(
        "--pfx-password",
        help="password of server.pfx (default: a random one in server.pfx.password)",
    )
    lab.add_argument("--json", action="store_true", help="machine-readable output")
    status = sub.add_parser("status", help="what the relay's TLS listeners serve")
    _data_dir_arguments(status)
    install = sub.add_parser(
        "install", help="validate a PFX and make it the certificate the relay serves"
    )
    _pfx_arguments(install, fqdn_required=False)
    _data_dir_arguments(install, json_flag=False)
    rollback = sub.add_parser("rollback", help="serve the previous certificate again")
    _data_dir_arguments(rollback)


def _pfx_arguments(parser: Any, *, fqdn_required: bool) -> None:
    parser.add_argument("pfx", type=Path, metavar="FILE.pfx", help="the PFX (PKCS#12) file")
    parser.add_argument(
        "--fqdn",
        action="append",
        required=fqdn_required,
        default=None if fqdn_required else [],
        help="an FQDN phones use to reach the relay (repeatable: all must be covered)",
    )
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--password", help=f"the PFX password (or set {PFX_ENV})")
    secret.add_argument(
        "--password-file", type=Path, help="a file whose first line is the PFX password"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _data_dir_arguments(parser: Any, *, json_flag: bool = True) -> None:
    parser.add_argument("--data-dir", type=Path, help="state directory (default ~/.relay)")
    if json_flag:
        parser.add_argument("--json", action="store_true", help="machine-readable output")


def main(args: argparse.Namespace) -> int:
    actions = {
        "check": _check,
        "lab-ca": _lab_ca,
        "status": _status,
        "install": _install,
        "rollback": _rollback,
    }
    return actions[str(args.action)](args)


def _usage(message: str) -> int:
    print(f"relay certs: {message}", file=sys.stderr)
    return USAGE


def _password(args: argparse.Namespace) -> str | None:
    """The password from the flag, the file's first line, or the environment, if any."""
    if args.password is not None:
        return str(args.password)
    if args.password_file is not None:
        with args.password_file.open("rb") as stream:
            text = stream.read(MAX_PASSWORD_FILE).decode("utf-8", "replace")
        return text.splitlines()[0] if text else ""
    return os.environ.get(PFX_ENV)


def _read_pfx(args: argparse.Namespace) -> tuple[bytes, str | None] | str:
    """The PFX bytes and password, or why they cannot be read."""
    try:
        password = _password(args)
    except OSError as exc:
        return f"{args.password_file}: cannot read ({exc.strerror})"
    try:
        with args.pfx.open("rb") as stream:
            # One byte past the cap lets the validator report the file as too large.
            return stream.read(MAX_PFX_BYTES + 1), password
    except OSError as exc:
        return f"{args.pfx}: cannot read ({exc.strerror})"


def _check(args: argparse.Namespace) -> int:
    read = _read_pfx(args)
    if isinstance(read, str):
        return _usage(read)
    data, password = read
    report = validate_pfx(data, password, args.fqdn, datetime.now(UTC))
    if args.json:
        print(json.dumps(report.as_json()))
    else:
        print("\n".join(render(report, args.fqdn)))
    return OK if report.ok else NOT_OK


def render(report: Report, fqdns: list[str]) -> list[str]:
    """One line per finding with its fix, then what the certificate is, then the verdict."""
    lines = [f"error    {f.code}: {f.message}" for f in report.errors]
    lines += [f"warning  {f.code}: {f.message}" for f in report.warnings]
    facts = report.certificate
    if facts is not None:
        root = " (private CA)" if facts.private_ca else ""
        lines += [
            "",
            f"certificate  {facts.subject}",
            f"  names      {', '.join(facts.dns_names + facts.ip_addresses) or '-'}",
            f"  issuer     {facts.issuer}",
            f"  valid      {facts.not_before:%Y-%m-%d %H:%M} to "
            f"{facts.not_after:%Y-%m-%d %H:%M} UTC",
            f"  key        {facts.key}",
            f"  sha256     {facts.sha256}",
            f"  chain      {' < '.join(facts.chain)}{root}",
        ]
    names = ", ".join(fqdns)
    if report.ok:
        lines.append(f"OK: usable as the relay certificate for {names}")
    else:
        count = len(report.errors)
        lines.append(f"NOT OK: {count} error{'s' if count != 1 else ''}; nothing was installed")
    return lines


def _lab_ca(args: argparse.Namespace) -> int:
    if args.rsa_bits is not None and not args.rsa:
        return _usage("--rsa-bits needs --rsa")
    bits = (args.rsa_bits or RSA_SIZES[0]) if args.rsa else None
    try:
        made = create_lab_certificates(
            args.dir,
            args.fqdn or [socket.getfqdn()],
            args.ip,
            rsa_bits=bits,
            days=args.days,
            pfx_password=args.pfx_password,
        )
    except CertError as exc:
        return _usage(exc.message)
    trust = trust_steps(made)
    if args.json:
        print(json.dumps(_lab_json(made, trust)))
    else:
        print("\n".join(_lab_lines(made, trust)))
    return OK


def trust_steps(made: LabCertificates) -> dict[str, str]:
    """How each kind of client comes to trust the lab CA."""
    ca = made.ca_cert
    return {
        "curl": f"curl --cacert {ca} https://{made.dns_names[0]}:9443/",
        "debian": (
            f"cp {ca} /usr/local/share/ca-certificates/relay-lab-ca.crt && update-ca-certificates"
        ),
        "browser": (
            f"import {ca} as a certificate authority (Firefox: Settings > Privacy & Security > "
            "Certificates > View Certificates > Authorities > Import; Chrome: Settings > "
            "Privacy and security > Security > Manage certificates)"
        ),
        "phones": (
            f"set {CUSTOM_CA_PARAMETER} to the PEM text of {ca} in a configuration profile; "
            "the cloud pushes it to the phones"
        ),
    }


def _check_command(made: LabCertificates) -> str:
    secret = (
        f"--password-file {made.pfx_password_file}"
        if made.pfx_password_file
        else f"(with {PFX_ENV} set)"
    )
    names = " ".join(f"--fqdn {n}" for n in made.dns_names)
    return f"relay certs check {made.pfx} {secret} {names}"


def _lab_json(made: LabCertificates, trust: dict[str, str]) -> dict[str, Any]:
    return {
        "ca_cert": str(made.ca_cert),
        "ca_created": made.ca_created,
        "cert": str(made.cert),
        "key": str(made.key),
        "pfx": str(made.pfx),
        "pfx_password_file": made.pfx_password_file and str(made.pfx_password_file),
        "dns_names": list(made.dns_names),
        "ip_addresses": list(made.ip_addresses),
        "key_type": made.key_type,
        "not_after": made.not_after.isoformat(),
        "check": _check_command(made),
        "trust": trust,
    }


def _lab_lines(made: LabCertificates, trust: dict[str, str]) -> list[str]:
    password = f", password in {made.pfx_password_file} (0600)" if made.pfx_password_file else ""
    lines = [
        f"lab CA       {made.ca_cert} ({'created' if made.ca_created else 'reused'})",
        f"server cert  {made.cert} ({made.key_type}; "
        f"{', '.join(made.dns_names + made.ip_addresses)}; "
        f"valid until {made.not_after:%Y-%m-%d})",
        f"server key   {made.key} (0600)",
        f"server PFX   {made.pfx} (0600){password}",
        f"check it     {_check_command(made)}",
    ]
    if made.ip_addresses:
        lines.append(
            "note         IP addresses in a relay certificate fail `relay certs check` "
            "(ip_in_name): phones must reach the relay by its FQDN"
        )
    lines += ["", "Trust the lab CA:"]
    lines += [f"  {name + ':':<9}{step}" for name, step in trust.items()]
    return lines


def _tls_dir(args: argparse.Namespace) -> Path:
    return (args.data_dir or Path.home() / ".relay").expanduser() / "tls"


def _served(tls_dir: Path) -> Served:
    if not (tls_dir / SERVER_CERT).is_file():
        raise CertError(
            f"{tls_dir / SERVER_CERT} does not exist; start the relay once (relay up) so it "
            "makes its lab certificate, or pass the relay's --data-dir"
        )
    return CertificateStore(tls_dir / "relay").served(tls_dir / SERVER_CERT)


def _print_served(served: Served, as_json: bool) -> None:
    if as_json:
        print(json.dumps(served.as_json()))
        return
    names = ", ".join(served.dns_names + served.ip_addresses) or "-"
    print(
        "\n".join(
            [
                f"serving      {served.subject} ({served.source})",
                f"  names      {names}",
                f"  not after  {served.not_after:%Y-%m-%d %H:%M} UTC",
                f"  sha256     {served.fingerprint}",
                f"  previous   {served.previous or 'the lab certificate'}",
            ]
        )
    )


def _status(args: argparse.Namespace) -> int:
    try:
        served = _served(_tls_dir(args))
    except CertError as exc:
        return _usage(exc.message)
    _print_served(served, args.json)
    return OK


def _install(args: argparse.Namespace) -> int:
    """Validate like `check` (every rule), then install what the PFX holds."""
    read = _read_pfx(args)
    if isinstance(read, str):
        return _usage(read)
    data, password = read
    now = datetime.now(UTC)
    report = validate_pfx(data, password, args.fqdn, now)
    if not report.ok:
        if args.json:
            print(json.dumps(report.as_json()))
        else:
            print("\n".join(render(report, args.fqdn or ["the relay"])))
        return NOT_OK
    loaded = pkcs12.load_pkcs12(data, None if password is None else password.encode())
    assert loaded.key is not None and loaded.cert is not None  # the report is ok
    chain = [loaded.cert.certificate, *(c.certificate for c in loaded.additional_certs)]
    tls_dir = _tls_dir(args)
    store = CertificateStore(tls_dir / "relay")
    try:
        prepared = prepare(
            b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain),
            loaded.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            now,
            args.fqdn,
        )
        with store.locked():
            store.install(prepared)
        served = _served(tls_dir) if (tls_dir / SERVER_CERT).is_file() else None
    except InstallRefused as exc:
        print(f"relay certs: {exc.message}", file=sys.stderr)
        return NOT_OK
    except CertError as exc:
        return _usage(exc.message)
    if args.json:
        out = report.as_json()
        out["installed"] = True
        print(json.dumps(out))
        return OK
    print("\n".join(render(report, args.fqdn or ["the relay"])[:-1]))
    print(f"installed in {store.directory / 'current'}; a running relay serves it within seconds")
    if served is not None:
        _print_served(served, False)
    return OK


def _rollback(args: argparse.Namespace) -> int:
    tls_dir = _tls_dir(args)
    store = CertificateStore(tls_dir / "relay")
    try:
        with store.locked():
            store.rollback()
        served = _served(tls_dir)
    except CertError as exc:
        return _usage(exc.message)
    _print_served(served, args.json)
    return OK
