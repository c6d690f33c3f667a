"""The import rules of architecture.md, checked on the source so they cannot drift.

- `relay/proto` imports nothing else of the project;
- the cloud imports only `relay.sync`, `relay.proto` and shared infrastructure
  (`relay.logs`, `relay.webfiles`, the version, and `certs.validate`, the one
  check of a relay certificate that the cloud and `relay certs check` share);
- the agents import `relay`, never the cloud; `relay` imports the agents only
  in its composition root (`relay/app.py`) and command (`relay/cli.py`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("relay", "management_agent", "download_agent", "certs")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] in PROJECT}


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _allowed(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("path", _files("relay/proto"), ids=str)
def test_protocol_cores_import_nothing_else_of_the_project(path: Path) -> None:
    bad = {m for m in _imports(path) if not _allowed(m, ("relay.proto",))}
    assert not bad, f"{path} imports {bad}"


@pytest.mark.parametrize("path", _files("relay/cloud"), ids=str)
def test_the_cloud_imports_only_sync_proto_and_infrastructure(path: Path) -> None:
    allowed = (
        "relay.cloud",
        "relay.sync",
        "relay.proto",
        "relay.logs",
        "relay.webfiles",
        "certs.validate",
    )
    bad = {m for m in _imports(path) if m != "relay" and not _allowed(m, allowed)}
    assert not bad, f"{path} imports {bad}"


@pytest.mark.parametrize("path", _files("management_agent"), ids=str)
def test_the_agent_never_imports_the_cloud(path: Path) -> None:
    bad = {m for m in _imports(path) if _allowed(m, ("relay.cloud",))}
    assert not bad, f"{path} imports {bad}"


@pytest.mark.parametrize("path", _files("relay"), ids=str)
def test_relay_imports_the_agents_only_in_its_composition_root(path: Path) -> None:
    if path.relative_to(ROOT).as_posix() in ("relay/app.py", "relay/cli.py"):
        return
    bad = {m for m in _imports(path) if _allowed(m, ("management_agent", "download_agent"))}
    assert not bad, f"{path} imports {bad}"
