"""The running API driven with the real `curl`, as a person at a shell would."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RelayProcess

CURL_TIMEOUT = 15.0
STATUS_MARK = "\n--status--"


@dataclass
class Answer:
    status: int
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


@dataclass
class Curl:
    binary: str
    api: str
    token: str
    workdir: Path

    def __call__(self, method: str, path: str, *args: str, token: str | None = None) -> Answer:
        """`curl -X METHOD API/path args...` with the bearer token; status and body."""
        command = [
            self.binary,
            "--silent",
            "--show-error",
            "--max-time",
            "10",
            "-X",
            method,
            "-H",
            f"Authorization: Bearer {self.token if token is None else token}",
            "--write-out",
            STATUS_MARK + "%{http_code}",
            *args,
            self.api + path,
        ]
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=self.workdir,
            timeout=CURL_TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, f"curl failed: {done.stderr}"
        body, _, status = done.stdout.rpartition(STATUS_MARK)
        return Answer(int(status), body)

    def post_json(self, path: str, body: Any) -> Answer:
        return self(
            "POST", path, "-H", "Content-Type: application/json", "--data", json.dumps(body)
        )


@pytest.fixture
def curl(relay_up: Callable[..., RelayProcess], tmp_path: Path) -> Curl:
    binary = shutil.which("curl")
    if binary is None:
        pytest.skip("curl not installed (apt-get install curl)")
    facts = relay_up().facts
    return Curl(binary, facts["api"], facts["token"], tmp_path)


HQ = {
    "name": "HQ",
    "description": "head office",
    "public_subnets": [{"cidr": "20.1.0.0/16", "private_subnets": ["10.1.0.0/16"]}],
}

DEVICES_CSV = (
    "mac_address,serial_number,endpoint_type,endpoint_name,endpoint_group,device.prov.serverName\n"
    "0004f2aabb01,,,desk-1,lab,prov.example.com\n"
    "0004f2aabb02,,,desk-2,,\n"
)


def _import_devices(curl: Curl) -> Answer:
    assert curl.post_json("/device-groups", {"name": "lab"}).status == 201
    csv_file = curl.workdir / "devices.csv"
    csv_file.write_text(DEVICES_CSV)
    return curl(
        "POST",
        "/devices/import",
        "-H",
        "Content-Type: text/csv",
        "--data-binary",
        f"@{csv_file.name}",
    )


def test_create_a_device_group(curl: Curl) -> None:
    created = curl.post_json("/device-groups", {"name": "lab", "description": "test bench"})
    assert created.status == 201
    assert created.json()["name"] == "lab"
    listed = curl("GET", "/device-groups")
    assert listed.status == 200
    assert "lab" in [g["name"] for g in listed.json()]


def test_create_a_site_with_public_and_private_subnets(curl: Curl) -> None:
    created = curl.post_json("/sites", HQ)
    assert created.status == 201
    assert created.json()["public_subnets"] == HQ["public_subnets"]
    fetched = curl("GET", "/sites/HQ")
    assert fetched.status == 200
    assert fetched.json()["description"] == "head office"


def test_match_gives_the_site_of_an_address_pair(curl: Curl) -> None:
    assert curl.post_json("/sites", HQ).status == 201
    matched = curl(
        "GET",
        "/sites/match",
        "--get",
        "--data-urlencode",
        "public_ip=20.1.2.3",
        "--data-urlencode",
        "private_ip=10.1.2.3",
    )
    assert matched.status == 200
    assert matched.json() == {"site": "HQ"}
    elsewhere = curl("GET", "/sites/match", "--get", "--data", "public_ip=198.51.100.7")
    assert elsewhere.json() == {"site": "Internet"}


def test_import_devices_from_a_csv_file(curl: Curl) -> None:
    report = _import_devices(curl)
    assert report.status == 200
    body = report.json()
    assert (body["created"], body["errors"]) == (2, 0)
    device = curl("GET", "/devices/0004f2aabb01")
    assert device.status == 200
    assert device.json()["name"] == "desk-1"
    assert device.json()["groups"] == ["lab"]


def test_effective_config_shows_the_csv_parameter_and_its_profile(curl: Curl) -> None:
    assert _import_devices(curl).status == 200
    effective = curl("GET", "/devices/0004f2aabb01/effective-config")
    assert effective.status == 200
    parameter = effective.json()["parameters"]["device.prov.serverName"]
    assert parameter["value"] == "prov.example.com"
    assert parameter["container"] == "device"


def test_export_devices_as_csv(curl: Curl) -> None:
    assert _import_devices(curl).status == 200
    exported = curl("GET", "/devices/export", "--dump-header", "headers.txt")
    assert exported.status == 200
    headers = (curl.workdir / "headers.txt").read_text().lower()
    assert "content-type: text/csv" in headers
    lines = exported.text.splitlines()
    assert lines[0].split(",")[:5] == [
        "mac_address",
        "serial_number",
        "endpoint_type",
        "endpoint_name",
        "endpoint_group",
    ]
    assert "0004f2aabb01,,,desk-1,lab,prov.example.com" in lines
    assert "0004f2aabb02,,,desk-2,," in lines


def test_exported_csv_imports_back_without_errors(curl: Curl) -> None:
    assert _import_devices(curl).status == 200
    exported = curl("GET", "/devices/export", "--output", "export.csv")
    assert exported.status == 200
    again = curl(
        "POST",
        "/devices/import?update=overwrite",
        "-H",
        "Content-Type: text/csv",
        "--data-binary",
        "@export.csv",
    )
    assert again.status == 200
    assert (again.json()["updated"], again.json()["errors"]) == (2, 0)


@pytest.mark.parametrize(
    ("method", "path", "args", "token", "status"),
    [
        ("GET", "/sites/nowhere", (), None, 404),
        ("GET", "/sites", (), "rly_not_a_token", 401),
        ("POST", "/sites", ("-H", "Content-Type: application/json", "--data", "{oops"), None, 400),
        ("GET", "/sites/match", (), None, 400),
    ],
)
def test_errors_are_json_with_code_and_message(
    curl: Curl, method: str, path: str, args: tuple[str, ...], token: str | None, status: int
) -> None:
    answer = curl(method, path, *args, token=token)
    assert answer.status == status
    error = answer.json()["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
