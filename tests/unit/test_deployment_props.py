"""resolve(profile_chain(...)) agrees with a brute-force scan of the five containers."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.cloud.rules.deployment import (
    DeviceContext,
    EffectiveSoftware,
    EffectiveValue,
    ProfileData,
    profile_chain,
    resolve,
)

PROFILE_NAMES = [f"p{i}" for i in range(8)]
PARAMETERS = ["a", "b", "c", "d"]
GROUPS = ["g1", "g2", "g3"]

profile_lists = st.lists(st.sampled_from(PROFILE_NAMES), max_size=4)

contexts = st.builds(
    DeviceContext,
    device=st.just("0004f2000001"),
    site=st.none() | st.just("HQ"),
    model=st.none() | st.just("VVX450"),
    groups=st.lists(st.sampled_from(GROUPS), unique=True).map(tuple),
)

# Profiles may be missing from the store (deleted while the chain was built).
profile_stores = st.fixed_dictionaries(
    {},
    optional={
        name: st.builds(
            ProfileData,
            name=st.just(name),
            parameters=st.dictionaries(st.sampled_from(PARAMETERS), st.sampled_from("xyz")),
            software=st.none() | st.sampled_from(["img1", "img2"]),
        )
        for name in PROFILE_NAMES
    },
)

binding_tables = st.dictionaries(
    st.sampled_from(
        [("device", "0004f2000001"), ("site", "HQ"), ("model", "VVX450"), ("global", "-")]
        + [("group", g) for g in GROUPS]
    ),
    profile_lists,
)


def places(ctx: DeviceContext) -> list[tuple[str, str]]:
    """cloud.md: Device, Site, Device Model, Device Group, Global."""
    out = [("device", ctx.device)]
    if ctx.site is not None:
        out.append(("site", ctx.site))
    if ctx.model is not None:
        out.append(("model", ctx.model))
    out += [("group", g) for g in ctx.groups]
    return [*out, ("global", "-")]


@settings(max_examples=300, deadline=None)
@given(contexts, binding_tables, profile_stores)
def test_resolve_matches_brute_force(
    ctx: DeviceContext,
    table: dict[tuple[str, str], list[str]],
    store: dict[str, ProfileData],
) -> None:
    def bindings(container: str, key: str) -> Sequence[str]:
        return table.get((container, key), [])

    config = resolve(profile_chain(ctx, bindings), store)

    expected: dict[str, EffectiveValue] = {}
    for parameter in PARAMETERS:
        hit = next(
            (
                EffectiveValue(store[p].parameters[parameter], p, container, key)
                for container, key in places(ctx)
                for p in bindings(container, key)
                if p in store and parameter in store[p].parameters
            ),
            None,
        )
        if hit is not None:
            expected[parameter] = hit
    assert dict(config.parameters) == expected

    software = next(
        (
            EffectiveSoftware(image, p, container, key)
            for container, key in places(ctx)
            for p in bindings(container, key)
            if p in store and (image := store[p].software)
        ),
        None,
    )
    assert config.software == software

    applied = [p for container, key in places(ctx) for p in bindings(container, key)]
    assert [link.profile for link in config.chain] == [
        p for i, p in enumerate(applied) if p in store and p not in applied[:i]
    ]
