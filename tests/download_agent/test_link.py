"""The download agent's link to the real cloud (download_agent.link.CloudImages)."""

from __future__ import annotations

from pathlib import Path

import pytest

from download_agent.link import CloudImages
from management_agent.link import Identity, LinkDown
from tests.api.conftest import Api, register_relay, served_plane


async def _identity(api: Api, name: str) -> Identity:
    credential = await register_relay(api, name)
    tenant = (await api.get("/tenant")).body["id"]
    base = api.base.removesuffix("/api/v1")
    return Identity(base, tenant, credential.relay_id, credential.secret)


async def test_a_relay_registered_anew_is_used_after_the_old_credential_is_refused(
    tmp_path: Path,
) -> None:
    async with served_plane(tmp_path) as served:
        api = served.api
        first = await _identity(api, "relay-1")
        credential = tmp_path / "credential.json"
        first.save(credential)
        images = CloudImages(first, credential=credential)
        try:
            assert await images.image_set(None, 0) is not None
            assert (await api.call("DELETE", f"/relays/{first.relay_id}")).status == 204
            second = await _identity(api, "relay-2")
            second.save(credential)  # what the management agent does when revoked

            with pytest.raises(LinkDown, match="401"):
                await images.image_set(None, 0)
            assert await images.image_set(None, 0) is not None
            assert images.identity == second
        finally:
            await images.aclose()
