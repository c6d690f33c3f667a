"""The openssl peer that produces the PFX inputs, in the test's own directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.certs.pki import Openssl, openssl_in


@pytest.fixture
def openssl(tmp_path: Path) -> Openssl:
    return openssl_in(tmp_path)
