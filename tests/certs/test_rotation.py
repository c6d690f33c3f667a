"""Installing, rolling back and reloading the relay's served certificate (certs.rotation),
on files only: what the listeners see is in test_rotation_tls.py."""

from __future__ import annotations

import stat
import subprocess
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from certs.lab import CertError, ServerIdentity, ensure_lab_identity
from certs.rotation import (
    CHAIN,
    CURRENT,
    KEY,
    NEXT,
    PREVIOUS,
    InstallRefused,
    ServingCertificate,
    fingerprint,
    prepare,
)
from tests.certs.pki import NOW, PASSWORD, Chain, Openssl, chain, key_pem, pem, rsa_key
from tests.e2e.conftest import clean_env, relay_command


@pytest.fixture
def lab(tmp_path: Path) -> ServerIdentity:
    return ensure_lab_identity(tmp_path / "tls", ["localhost"], ["127.0.0.1"])


@pytest.fixture
def serving(lab: ServerIdentity, tmp_path: Path) -> ServingCertificate:
    return ServingCertificate(lab, tmp_path / "tls" / "relay")


def pems(c: Chain) -> tuple[bytes, bytes]:
    return pem(c.leaf.cert, c.intermediate.cert, c.root.cert), key_pem(c.leaf.key)


def without_root(c: Chain) -> tuple[bytes, bytes]:
    return pem(c.leaf.cert, c.intermediate.cert), key_pem(c.leaf.key)


def files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*.pem"))}


def test_a_relay_without_an_installed_certificate_serves_its_lab_one(
    serving: ServingCertificate, lab: ServerIdentity
) -> None:
    served = serving.serving()
    assert served.source == "lab"
    assert served.subject == "CN=localhost"
    assert served.previous == ""


def test_an_installed_certificate_is_served_and_written_with_a_private_key(
    serving: ServingCertificate,
) -> None:
    c = chain()
    served = serving.install(*pems(c))
    slot = serving.store.directory / CURRENT
    assert (served.source, served.fingerprint) == ("installed", fingerprint(c.leaf.cert))
    assert stat.S_IMODE((slot / KEY).stat().st_mode) == 0o600
    assert (slot / CHAIN).read_bytes() == pem(c.leaf.cert, c.intermediate.cert, c.root.cert)


def test_a_chain_out_of_order_is_written_leaf_first(serving: ServingCertificate) -> None:
    c = chain()
    serving.install(pem(c.root.cert, c.leaf.cert, c.intermediate.cert), key_pem(c.leaf.key))
    written = (serving.store.directory / CURRENT / CHAIN).read_bytes()
    assert written == pem(c.leaf.cert, c.intermediate.cert, c.root.cert)


def test_installing_keeps_the_one_before_as_previous(serving: ServingCertificate) -> None:
    first, second = chain(), chain()
    serving.install(*pems(first))
    served = serving.install(*pems(second))
    assert served.previous == fingerprint(first.leaf.cert)


def test_rollback_serves_the_previous_certificate_and_keeps_the_current_as_previous(
    serving: ServingCertificate,
) -> None:
    first, second = chain(), chain()
    serving.install(*pems(first))
    serving.install(*pems(second))
    served = serving.rollback()
    assert (served.fingerprint, served.previous) == (
        fingerprint(first.leaf.cert),
        fingerprint(second.leaf.cert),
    )


def test_rollback_after_the_first_install_returns_to_the_lab_certificate(
    serving: ServingCertificate,
) -> None:
    serving.install(*pems(chain()))
    assert serving.rollback().source == "lab"


def test_rollback_with_nothing_installed_ever_is_refused(serving: ServingCertificate) -> None:
    with pytest.raises(CertError, match="nothing to roll back to"):
        serving.rollback()


def test_use_lab_serves_the_lab_certificate_and_keeps_the_installed_one_as_previous(
    serving: ServingCertificate,
) -> None:
    c = chain()
    serving.install(*pems(c))
    served = serving.use_lab()
    assert (served.source, served.previous) == ("lab", fingerprint(c.leaf.cert))


REFUSALS: dict[str, Callable[[], tuple[bytes, bytes]]] = {
    "key_mismatch": lambda: (pems(chain())[0], key_pem(chain().leaf.key)),
    "expired": lambda: pems(chain(leaf_dates=(NOW - timedelta(days=400), NOW - timedelta(days=1)))),
    "weak_key": lambda: pems(chain(leaf_key=rsa_key(1024))),
    "chain_incomplete": lambda: without_root(chain()),
    "unreadable": lambda: (b"garbage\n", b"more garbage\n"),
}


@pytest.mark.parametrize("code", sorted(REFUSALS))
def test_a_refused_certificate_changes_nothing_and_says_why(
    serving: ServingCertificate, code: str
) -> None:
    serving.install(*pems(chain()))
    before, on_disk = serving.serving(), files(serving.store.directory)
    with pytest.raises(InstallRefused) as refused:
        serving.install(*REFUSALS[code]())
    assert code in {f.code for f in refused.value.findings}
    assert code in refused.value.message
    assert serving.serving() == before
    assert files(serving.store.directory) == on_disk


def test_an_encrypted_key_is_refused_with_the_reason() -> None:
    c = chain()
    encrypted = c.leaf.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(InstallRefused, match="encrypted"):
        prepare(pems(c)[0], encrypted, NOW)


def test_an_fqdn_the_certificate_does_not_name_is_refused() -> None:
    with pytest.raises(InstallRefused, match="fqdn_missing"):
        prepare(*pems(chain()), NOW, ["other.branch.example"])


def test_reload_picks_up_what_another_process_installed(
    serving: ServingCertificate, lab: ServerIdentity
) -> None:
    other = ServingCertificate(lab, serving.store.directory)
    c = chain()
    other.install(*pems(c))
    assert serving.reload() is True
    assert serving.serving().fingerprint == fingerprint(c.leaf.cert)


def test_reload_without_a_change_does_nothing(serving: ServingCertificate) -> None:
    serving.install(*pems(chain()))
    assert serving.reload() is False


def test_a_damaged_installed_certificate_leaves_the_lab_one_served(
    lab: ServerIdentity, tmp_path: Path
) -> None:
    directory = tmp_path / "tls" / "relay"
    ServingCertificate(lab, directory).install(*pems(chain()))
    (directory / CURRENT / KEY).write_bytes(key_pem(chain().leaf.key))
    assert ServingCertificate(lab, directory).serving().source == "lab"


def test_a_switch_cut_off_by_a_crash_is_finished_at_the_next_start(
    lab: ServerIdentity, tmp_path: Path
) -> None:
    directory = tmp_path / "tls" / "relay"
    first, second = chain(), chain()
    ServingCertificate(lab, directory).install(*pems(first))
    # The state between renaming the new slot to .next and making it current.
    (directory / NEXT).mkdir()
    (directory / NEXT / CHAIN).write_bytes(pems(second)[0])
    (directory / NEXT / KEY).write_bytes(pems(second)[1])
    served = ServingCertificate(lab, directory).serving()
    assert (served.fingerprint, served.previous) == (
        fingerprint(second.leaf.cert),
        fingerprint(first.leaf.cert),
    )
    assert not (directory / NEXT).exists()


def _relay_certs(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*relay_command(), "certs", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=clean_env(data_dir),
        timeout=60,
        check=False,
    )


def test_cli_install_status_and_rollback_change_what_a_running_relay_serves(
    serving: ServingCertificate, openssl: Openssl, tmp_path: Path
) -> None:
    c = chain()
    pfx = tmp_path / "relay.pfx"
    pfx.write_bytes(openssl.pfx(c.leaf.cert, c.leaf.key, c.cas))
    installed = _relay_certs(
        "install",
        str(pfx),
        "--password",
        PASSWORD,
        "--fqdn",
        "relay.branch.example",
        data_dir=tmp_path,
    )
    assert installed.returncode == 0, installed.stderr
    assert serving.reload() is True
    assert serving.serving().fingerprint == fingerprint(c.leaf.cert)
    status = _relay_certs("status", "--json", data_dir=tmp_path)
    assert '"source": "installed"' in status.stdout
    assert _relay_certs("rollback", data_dir=tmp_path).returncode == 0
    assert serving.reload() is True
    assert serving.serving().source == "lab"


def test_cli_install_of_a_bad_pfx_exits_1_and_installs_nothing(
    serving: ServingCertificate, openssl: Openssl, tmp_path: Path
) -> None:
    c = chain(leaf_key=rsa_key(1024))
    pfx = tmp_path / "weak.pfx"
    pfx.write_bytes(openssl.pfx(c.leaf.cert, c.leaf.key, c.cas))
    refused = _relay_certs("install", str(pfx), "--password", PASSWORD, data_dir=tmp_path)
    assert refused.returncode == 1
    assert "weak_key" in refused.stdout
    assert not (serving.store.directory / CURRENT).exists()
    assert not (serving.store.directory / PREVIOUS).exists()
