"""`relay certs ...`: check a relay certificate offline; make a lab CA and certificate.

relay certs check FILE.pfx --fqdn NAME [--fqdn NAME2] [--password P | --password-file F]
                  [--json]
relay certs lab-ca --dir DIR [--fqdn NAME ...] [--ip ADDR ...] [--rsa [--rsa-bits N]]
                   [--days N] [--pfx-password P] [--json]

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

from certs.lab import RSA_SIZES, CertError, LabCertificates, create_lab_certificates
from certs.validate import CUSTOM_CA_PARAMETER, MAX_PFX_BYTES, Report, validate_pfx

PFX_ENV = "RELAY_PFX_PASSWORD"
MAX_PASSWORD_FILE = 4096
OK, NOT_OK, USAGE = 0, 1, 2


def add_parser(subparsers: Any) -> None:
    certs = subparsers.add_parser("certs", help="check a relay certificate (PFX), make a lab CA")
    sub = certs.add_subparsers(dest="action", required=True)
    check = sub.add_parser("check", help="validate a PFX for use as a relay's certificate")
    check.add_argument("pfx", type=Path, metavar="FILE.pfx", help="the PFX (PKCS#12) file")
    check.add_argument(
        "--fqdn",
        action="append",
        required=True,
        help="an FQDN phones use to reach the relay (repeatable: all must be covered)",
    )
    secret = check.add_mutually_exclusive_group()
    secret.add_argument("--password", help=f"the PFX password (or set {PFX_ENV})")
    secret.add_argument(
        "--password-file", type=Path, help="a file whose first line is the PFX password"
    )
    check.add_argument("--json", action="store_true", help="machine-readable output")
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


def main(args: argparse.Namespace) -> int:
    if args.action == "check":
        return _check(args)
    return _lab_ca(args)


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


def _check(args: argparse.Namespace) -> int:
    try:
        password = _password(args)
    except OSError as exc:
        return _usage(f"{args.password_file}: cannot read ({exc.strerror})")
    try:
        with args.pfx.open("rb") as stream:
            # One byte past the cap lets the validator report the file as too large.
            data = stream.read(MAX_PFX_BYTES + 1)
    except OSError as exc:
        return _usage(f"{args.pfx}: cannot read ({exc.strerror})")
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
