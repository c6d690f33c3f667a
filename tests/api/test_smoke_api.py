"""The API answers on loopback with the first admin token."""

from __future__ import annotations

from tests.api.conftest import Api


async def test_new_tenant_has_the_internet_and_intranet_sites(api: Api) -> None:
    reply = await api.get("/sites")
    assert reply.status == 200
    assert [s["name"] for s in reply.body] == ["Internet", "Intranet"]
