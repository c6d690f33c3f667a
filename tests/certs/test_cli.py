"""`relay certs check` and `relay certs lab-ca` as an admin runs them: exit status, the
`--json` contract of issue 7, the password never echoed, and lab files openssl accepts."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.certs.pki import FQDN, PASSWORD, Openssl, chain
from tests.e2e.conftest import clean_env, relay_command

TIMEOUT = 60


def relay(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*relay_command(), *args],
        capture_output=True,
        text=True,
        env={**clean_env(home), **(env or {})},
        timeout=TIMEOUT,
        check=False,
    )


def good_pfx(openssl: Openssl, tmp_path: Path) -> Path:
    c = chain()
    path = tmp_path / "relay.pfx"
    path.write_bytes(openssl.pfx(c.leaf.cert, c.leaf.key, c.cas))
    return path


def check_json(tmp_path: Path, *args: str, **kw: Any) -> tuple[int, dict[str, Any]]:
    done = relay(tmp_path, "certs", "check", *args, "--json", **kw)
    return done.returncode, json.loads(done.stdout)


def test_check_of_a_usable_pfx_exits_0_with_the_json_contract(
    openssl: Openssl, tmp_path: Path
) -> None:
    pfx = good_pfx(openssl, tmp_path)
    code, body = check_json(tmp_path, str(pfx), "--password", PASSWORD, "--fqdn", FQDN)
    assert code == 0
    assert body["ok"] is True
    assert body["errors"] == []
    # The test root is in no system store: a private CA, a warning only.
    assert [w["code"] for w in body["warnings"]] == ["private_ca"]
    assert set(body["warnings"][0]) == {"code", "message"}


def test_check_of_an_unusable_pfx_exits_1_with_each_error(openssl: Openssl, tmp_path: Path) -> None:
    pfx = good_pfx(openssl, tmp_path)
    code, body = check_json(
        tmp_path, str(pfx), "--password", PASSWORD, "--fqdn", FQDN, "--fqdn", "other.example"
    )
    assert code == 1
    assert body["ok"] is False
    assert [e["code"] for e in body["errors"]] == ["fqdn_missing"]


def test_check_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    done = relay(tmp_path, "certs", "check", str(tmp_path / "none.pfx"), "--fqdn", FQDN)
    assert done.returncode == 2
    assert "cannot read" in done.stderr


def test_check_without_fqdn_is_a_usage_error(openssl: Openssl, tmp_path: Path) -> None:
    pfx = good_pfx(openssl, tmp_path)
    assert relay(tmp_path, "certs", "check", str(pfx)).returncode == 2


def test_check_reads_the_password_from_a_file(openssl: Openssl, tmp_path: Path) -> None:
    pfx = good_pfx(openssl, tmp_path)
    secret = tmp_path / "pfx.pass"
    secret.write_text(PASSWORD + "\n")
    code, _ = check_json(tmp_path, str(pfx), "--password-file", str(secret), "--fqdn", FQDN)
    assert code == 0


def test_check_reads_the_password_from_the_environment(openssl: Openssl, tmp_path: Path) -> None:
    pfx = good_pfx(openssl, tmp_path)
    code, _ = check_json(tmp_path, str(pfx), "--fqdn", FQDN, env={"RELAY_PFX_PASSWORD": PASSWORD})
    assert code == 0


def test_check_never_prints_the_password(openssl: Openssl, tmp_path: Path) -> None:
    pfx = good_pfx(openssl, tmp_path)
    wrong = "Wr0ng-Unique-Pw-7781"
    for extra in ([], ["--json"]):
        done = relay(
            tmp_path, "certs", "check", str(pfx), "--password", wrong, "--fqdn", FQDN, *extra
        )
        assert done.returncode == 1
        assert "bad_password" in done.stdout
        assert wrong not in done.stdout + done.stderr


def test_check_prints_one_line_per_finding_then_the_certificate(
    openssl: Openssl, tmp_path: Path
) -> None:
    pfx = good_pfx(openssl, tmp_path)
    done = relay(
        tmp_path, "certs", "check", str(pfx), "--password", PASSWORD, "--fqdn", "x.example"
    )
    lines = done.stdout.splitlines()
    assert lines[0].startswith("error    fqdn_missing: ")
    assert lines[1].startswith("warning  private_ca: ")
    assert f"certificate  CN={FQDN}" in lines
    assert lines[-1].startswith("NOT OK: 1 error")


def lab_ca(tmp_path: Path, *args: str) -> dict[str, Any]:
    done = relay(tmp_path, "certs", "lab-ca", "--dir", str(tmp_path / "lab"), "--json", *args)
    assert done.returncode == 0, done.stderr
    made: dict[str, Any] = json.loads(done.stdout)
    return made


def test_lab_ca_pfx_passes_check_for_its_fqdn(tmp_path: Path) -> None:
    made = lab_ca(tmp_path, "--fqdn", FQDN)
    code, body = check_json(
        tmp_path, made["pfx"], "--password-file", made["pfx_password_file"], "--fqdn", FQDN
    )
    assert code == 0, body
    assert [w["code"] for w in body["warnings"]] == ["private_ca"]


def test_lab_ca_server_certificate_verifies_with_openssl(openssl: Openssl, tmp_path: Path) -> None:
    made = lab_ca(tmp_path, "--fqdn", FQDN)
    done = subprocess.run(
        [openssl.binary, "verify", "-CAfile", made["ca_cert"], made["cert"]],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_lab_ca_keys_and_pfx_are_private_files(tmp_path: Path) -> None:
    made = lab_ca(tmp_path, "--fqdn", FQDN)
    ca_key = Path(made["ca_cert"]).with_name("ca.key")
    for name in (ca_key, made["key"], made["pfx"], made["pfx_password_file"]):
        assert stat.S_IMODE(Path(name).stat().st_mode) == 0o600, name


def test_lab_ca_with_rsa_makes_an_rsa_certificate_that_passes_check(tmp_path: Path) -> None:
    made = lab_ca(tmp_path, "--fqdn", FQDN, "--rsa", "--pfx-password", PASSWORD)
    leaf = x509.load_pem_x509_certificates(Path(made["cert"]).read_bytes())[0]
    key = leaf.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    assert key.key_size == 2048
    assert made["pfx_password_file"] is None
    code, _ = check_json(tmp_path, made["pfx"], "--password", PASSWORD, "--fqdn", FQDN)
    assert code == 0


def test_lab_ca_reuses_the_ca_already_in_the_directory(tmp_path: Path) -> None:
    first = lab_ca(tmp_path, "--fqdn", FQDN)
    ca = Path(first["ca_cert"]).read_bytes()
    second = lab_ca(tmp_path, "--fqdn", "relay2.branch.example")
    assert (first["ca_created"], second["ca_created"]) == (True, False)
    assert Path(second["ca_cert"]).read_bytes() == ca


def test_lab_ca_prints_how_to_trust_the_ca(tmp_path: Path) -> None:
    done = relay(tmp_path, "certs", "lab-ca", "--dir", str(tmp_path / "lab"), "--fqdn", FQDN)
    assert done.returncode == 0, done.stderr
    for hint in ("curl --cacert", "update-ca-certificates", "browser", "customCaCert1"):
        assert hint in done.stdout


def test_lab_ca_with_an_ip_says_check_will_refuse_it(tmp_path: Path) -> None:
    done = relay(
        tmp_path,
        "certs",
        "lab-ca",
        "--dir",
        str(tmp_path / "lab"),
        "--fqdn",
        FQDN,
        "--ip",
        "192.0.2.10",
    )
    assert done.returncode == 0, done.stderr
    assert "ip_in_name" in done.stdout


def test_lab_ca_rejects_a_bad_ip_as_a_usage_error(tmp_path: Path) -> None:
    done = relay(tmp_path, "certs", "lab-ca", "--dir", str(tmp_path / "lab"), "--ip", "nope")
    assert done.returncode == 2
    assert "not an IP address" in done.stderr
