"""Deployment containers and effective configuration over the REST API
(cloud.md "Configuration profiles": Device > Site > Device Model > Device Group > Global)."""

from __future__ import annotations

from tests.api.conftest import Api

MAC = "0004f2a1b2c3"


async def _profile(api: Api, name: str, **params: str) -> None:
    body = {"name": name, "parameters": {k.replace("_", "."): v for k, v in params.items()}}
    assert (await api.post("/profiles", body)).status == 201


async def _world(api: Api) -> None:
    """One device in a site, of a model, in two groups, and a profile in every container."""
    await api.post(
        "/sites",
        {"name": "HQ", "public_subnets": [{"cidr": "198.51.100.0/24", "private_subnets": []}]},
    )
    for g in ("g1", "g2"):
        await api.post("/device-groups", {"name": g})
    await api.post(
        "/devices",
        {"mac": MAC, "model": "VVX 500", "public_ip": "198.51.100.9", "groups": ["g1", "g2"]},
    )
    await _profile(api, "dev", a_dev="device")
    await _profile(api, "site", a_dev="site", a_site="site")
    await _profile(api, "model", a_dev="model", a_site="model", a_model="model")
    await _profile(api, "grp1", a_dev="g1", a_site="g1", a_model="g1", a_g="g1")
    await _profile(api, "grp2", a_g="g2", a_g2="g2")
    await _profile(api, "glob", a_dev="global", a_g2="global", a_glob="global")
    for container, key, names in (
        ("device", MAC, ["dev"]),
        ("site", "HQ", ["site"]),
        ("model", "VVX500", ["model"]),
        ("group", "g1", ["grp1"]),
        ("group", "g2", ["grp2"]),
        ("global", "-", ["glob"]),
    ):
        reply = await api.put(f"/deployment/{container}/{key}", {"profiles": names})
        assert reply.status == 200, reply.body


async def test_each_value_comes_from_the_highest_container_that_sets_it(api: Api) -> None:
    await _world(api)
    params = (await api.get(f"/devices/{MAC}/effective-config")).body["parameters"]
    origin = {name: (p["value"], p["profile"], p["container"]) for name, p in params.items()}
    assert origin["a.dev"] == ("device", "dev", "device")
    assert origin["a.site"] == ("site", "site", "site")
    assert origin["a.model"] == ("model", "model", "model")
    assert origin["a.g"] == ("g1", "grp1", "group")
    assert origin["a.g2"] == ("g2", "grp2", "group")
    assert origin["a.glob"] == ("global", "glob", "global")


async def test_group_priority_order_decides_between_groups(api: Api) -> None:
    await _world(api)
    await api.put(f"/devices/{MAC}/groups", ["g2", "g1"])
    params = (await api.get(f"/devices/{MAC}/effective-config")).body["parameters"]
    assert params["a.g"]["value"] == "g2"


async def test_order_inside_a_container_decides(api: Api) -> None:
    await api.post("/devices", {"mac": MAC})
    await _profile(api, "first", x_y="1")
    await _profile(api, "second", x_y="2")
    await api.put(f"/deployment/device/{MAC}", {"profiles": ["second", "first"]})
    params = (await api.get(f"/devices/{MAC}/effective-config")).body["parameters"]
    assert params["x.y"] == {"value": "2", "profile": "second", "container": "device"}


async def test_effective_config_lists_the_chain_highest_first(api: Api) -> None:
    await _world(api)
    chain = (await api.get(f"/devices/{MAC}/effective-config")).body["chain"]
    assert [(c["container"], c["profile"]) for c in chain] == [
        ("device", "dev"),
        ("site", "site"),
        ("model", "model"),
        ("group", "grp1"),
        ("group", "grp2"),
        ("global", "glob"),
    ]


async def test_software_comes_from_the_highest_profile_that_selects_one(api: Api) -> None:
    await api.post("/devices", {"mac": MAC})
    images = []
    for version in ("6.4.3", "5.9.7"):
        body = {
            "model": "VVX",
            "version": version,
            "filename": "sip.ld",
            "size": 10,
            "sha256": "ab" * 32,
        }
        images.append((await api.post("/images", body)).body["id"])
    await api.post("/profiles", {"name": "new", "software": images[0]})
    await api.post("/profiles", {"name": "old", "software": images[1]})
    await api.put(f"/deployment/device/{MAC}", {"profiles": ["new"]})
    await api.put("/deployment/global/-", {"profiles": ["old"]})
    software = (await api.get(f"/devices/{MAC}/effective-config")).body["software"]
    assert software["image"] == images[0]
    assert software["version"] == "6.4.3"
    assert software["container"] == "device"


async def test_deleted_image_shows_software_image_not_found(api: Api) -> None:
    await api.post("/devices", {"mac": MAC})
    body = {
        "model": "VVX",
        "version": "6.4.3",
        "filename": "sip.ld",
        "size": 10,
        "sha256": "cd" * 32,
    }
    image = (await api.post("/images", body)).body["id"]
    await api.post("/profiles", {"name": "sw", "software": image})
    await api.put(f"/deployment/device/{MAC}", {"profiles": ["sw"]})
    assert (await api.delete(f"/images/{image}")).status == 204
    assert (await api.get("/profiles/sw")).body["software"]["error"] == "software image not found"
    software = (await api.get(f"/devices/{MAC}/effective-config")).body["software"]
    assert software["found"] is False


async def test_registering_an_image_creates_a_software_profile(api: Api) -> None:
    body = {
        "model": "VVX",
        "version": "6.4.3",
        "filename": "sip.ld",
        "size": 10,
        "sha256": "ef" * 32,
    }
    image = (await api.post("/images", body)).body["id"]
    software = (await api.get("/profiles", params={"type": "software"})).body
    assert [(p["name"], p["software"]["image"]) for p in software] == [
        ("Software-VVX-6.4.3", image)
    ]


async def test_template_profiles_cannot_be_bound(api: Api) -> None:
    reply = await api.put("/deployment/global/-", {"profiles": ["SIP-Line-TEMPLATE"]})
    assert reply.status == 422
    assert reply.body["error"]["code"] == "template_not_bindable"
    assert reply.body["error"]["field"] == "profiles[0]"


async def test_binding_to_an_unknown_container_is_not_found(api: Api) -> None:
    reply = await api.put("/deployment/room/x", {"profiles": []})
    assert reply.status == 404


async def test_binding_to_an_unknown_site_is_not_found(api: Api) -> None:
    reply = await api.put("/deployment/site/Nowhere", {"profiles": []})
    assert reply.status == 404


async def test_binding_an_unknown_profile_is_refused(api: Api) -> None:
    reply = await api.put("/deployment/global/-", {"profiles": ["ghost"]})
    assert reply.status == 404
    assert reply.body["error"]["code"] == "unknown_profile"


async def test_global_container_starts_with_rest_api_and_nightly_polling(api: Api) -> None:
    reply = await api.get("/deployment/global/-")
    assert reply.body["profiles"] == ["REST-API-Enable", "Polling-Nightly"]


async def test_a_device_of_a_new_tenant_gets_the_nightly_polling_window(api: Api) -> None:
    await api.post("/devices", {"mac": MAC})
    params = (await api.get(f"/devices/{MAC}/effective-config")).body["parameters"]
    assert params["apps.restapi.enabled"]["value"] == "1"
    assert params["prov.polling.time"]["value"] == "03:00"
    assert params["prov.polling.timeRandomEnd"]["value"] == "05:00"


async def test_model_container_key_is_normalized(api: Api) -> None:
    await _profile(api, "m", a_b="1")
    reply = await api.put("/deployment/model/VVX 500", {"profiles": ["m"]})
    assert reply.body["key"] == "VVX500"
