"""Deployment rules: the container chain and the effective configuration (cloud.md)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pytest

from relay.cloud.rules.deployment import (
    CONTAINERS,
    ChainLink,
    DeviceContext,
    EffectiveSoftware,
    EffectiveValue,
    ProfileData,
    profile_chain,
    resolve,
)

DEVICE = "0004f2aabbcc"
CTX = DeviceContext(DEVICE, "HQ", "VVX450", ("Sales", "Everyone"))


def binder(table: Mapping[tuple[str, str], Sequence[str]]) -> Callable[[str, str], Sequence[str]]:
    return lambda container, key: table.get((container, key), ())


def profile(profile_name: str, software: str | None = None, /, **parameters: str) -> ProfileData:
    return ProfileData(profile_name, parameters, software)


def names(chain: Sequence[ChainLink]) -> list[str]:
    return [link.profile for link in chain]


# --- profile_chain ---


def test_containers_are_listed_highest_priority_first() -> None:
    assert CONTAINERS == ("device", "site", "model", "group", "global")


def test_chain_follows_container_priority() -> None:
    chain = profile_chain(
        CTX,
        binder(
            {
                ("global", "-"): ["g"],
                ("group", "Sales"): ["grp"],
                ("model", "VVX450"): ["m"],
                ("site", "HQ"): ["s"],
                ("device", DEVICE): ["d"],
            }
        ),
    )
    assert chain == (
        ChainLink("device", DEVICE, "d"),
        ChainLink("site", "HQ", "s"),
        ChainLink("model", "VVX450", "m"),
        ChainLink("group", "Sales", "grp"),
        ChainLink("global", "-", "g"),
    )


def test_groups_follow_the_devices_group_priority() -> None:
    table = {("group", "Sales"): ["sales"], ("group", "Everyone"): ["everyone"]}
    assert names(profile_chain(CTX, binder(table))) == ["sales", "everyone"]
    reordered = DeviceContext(DEVICE, "HQ", "VVX450", ("Everyone", "Sales"))
    assert names(profile_chain(reordered, binder(table))) == ["everyone", "sales"]


def test_profiles_keep_their_order_inside_a_container() -> None:
    chain = profile_chain(CTX, binder({("site", "HQ"): ["first", "second", "third"]}))
    assert names(chain) == ["first", "second", "third"]


def test_duplicate_profile_keeps_only_its_highest_position() -> None:
    chain = profile_chain(
        CTX,
        binder(
            {
                ("site", "HQ"): ["shared", "site-only"],
                ("group", "Sales"): ["shared"],
                ("global", "-"): ["shared", "g"],
            }
        ),
    )
    assert chain == (
        ChainLink("site", "HQ", "shared"),
        ChainLink("site", "HQ", "site-only"),
        ChainLink("global", "-", "g"),
    )


def test_missing_site_and_model_are_not_queried() -> None:
    asked: list[tuple[str, str]] = []

    def bindings(container: str, key: str) -> Sequence[str]:
        asked.append((container, key))
        return ()

    profile_chain(DeviceContext(DEVICE, None, None, ()), bindings)
    assert asked == [("device", DEVICE), ("global", "-")]


# --- resolve ---


def test_parameter_comes_from_highest_priority_profile_setting_it() -> None:
    chain = (ChainLink("device", DEVICE, "d"), ChainLink("global", "-", "g"))
    config = resolve(chain, {"d": profile("d", x="device"), "g": profile("g", x="global")})
    assert config.parameters["x"] == EffectiveValue("device", "d", "device", DEVICE)


def test_parameter_from_lower_container_reports_its_own_origin() -> None:
    chain = (ChainLink("site", "HQ", "s"), ChainLink("group", "Sales", "grp"))
    config = resolve(chain, {"s": profile("s", a="1"), "grp": profile("grp", a="2", b="3")})
    assert config.parameters["a"] == EffectiveValue("1", "s", "site", "HQ")
    assert config.parameters["b"] == EffectiveValue("3", "grp", "group", "Sales")


def test_earlier_profile_in_same_container_wins() -> None:
    chain = (ChainLink("site", "HQ", "first"), ChainLink("site", "HQ", "second"))
    config = resolve(chain, {"first": profile("first", x="1"), "second": profile("second", x="2")})
    assert config.parameters["x"].profile == "first"


def test_empty_value_still_overrides_lower_profiles() -> None:
    chain = (ChainLink("device", DEVICE, "d"), ChainLink("global", "-", "g"))
    config = resolve(chain, {"d": profile("d", x=""), "g": profile("g", x="set")})
    assert config.parameters["x"].value == ""


def test_software_comes_from_highest_profile_that_sets_it() -> None:
    chain = (
        ChainLink("device", DEVICE, "none"),
        ChainLink("model", "VVX450", "m"),
        ChainLink("global", "-", "g"),
    )
    config = resolve(
        chain,
        {"none": profile("none"), "m": profile("m", "img-6.4"), "g": profile("g", "img-5.9")},
    )
    assert config.software == EffectiveSoftware("img-6.4", "m", "model", "VVX450")


def test_empty_software_id_counts_as_unset() -> None:
    chain = (ChainLink("device", DEVICE, "d"), ChainLink("global", "-", "g"))
    config = resolve(chain, {"d": profile("d", ""), "g": profile("g", "img-5.9")})
    assert config.software is not None
    assert config.software.profile == "g"


def test_no_software_anywhere_gives_none() -> None:
    config = resolve((ChainLink("global", "-", "g"),), {"g": profile("g", x="1")})
    assert config.software is None


def test_missing_profile_is_skipped_and_left_out_of_chain() -> None:
    chain = (ChainLink("device", DEVICE, "gone"), ChainLink("global", "-", "g"))
    config = resolve(chain, {"g": profile("g", "img", x="global")})
    assert config.chain == (ChainLink("global", "-", "g"),)
    assert config.parameters["x"].profile == "g"
    assert config.software is not None
    assert config.software.profile == "g"


def test_empty_chain_gives_empty_config() -> None:
    config = resolve((), {})
    assert config.chain == ()
    assert dict(config.parameters) == {}
    assert config.software is None


def test_effective_parameters_are_read_only() -> None:
    config = resolve((ChainLink("global", "-", "g"),), {"g": profile("g", x="1")})
    with pytest.raises(TypeError):
        config.parameters["x"] = EffectiveValue("2", "g", "global", "-")  # type: ignore[index]


def test_chain_feeds_resolve_end_to_end() -> None:
    table = {("device", DEVICE): ["csv"], ("group", "Everyone"): ["base"]}
    profiles = {"csv": profile("csv", name="Desk 1"), "base": profile("base", name="x", tz="UTC")}
    config = resolve(profile_chain(CTX, binder(table)), profiles)
    assert {k: (v.value, v.container) for k, v in config.parameters.items()} == {
        "name": ("Desk 1", "device"),
        "tz": ("UTC", "group"),
    }
