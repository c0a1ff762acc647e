"""The layout of ``likeopt/`` says what depends on what: runtime on nothing of ours but the stubs, caching on
runtime, and the operator's tools on either; no service imports the operator's tools but their health probe."""

from __future__ import annotations

import pytest

from tests.packaging import imports_of, package_modules

SERVICES = ("gateway", "retrieval_svc", "generation_svc", "cache_svc")
MAY_NOT_IMPORT = {
    "likeopt.runtime": ("likeopt.caching", "likeopt.ops", *SERVICES),
    "likeopt.caching": ("likeopt.ops", *SERVICES),
}


def first_party_imports(module: str, of: tuple[str, ...]) -> list[str]:
    """What module imports from the packages in of."""
    return [name for name in imports_of(module) if any(name == p or name.startswith(p + ".") for p in of)]


@pytest.mark.parametrize("layer", sorted(MAY_NOT_IMPORT))
def test_a_lower_layer_imports_nothing_above_it(layer: str) -> None:
    wrong = {m: found for m in package_modules(layer) if (found := first_party_imports(m, MAY_NOT_IMPORT[layer]))}
    assert not wrong, f"{layer} must not import {MAY_NOT_IMPORT[layer]}: {wrong}"


@pytest.mark.parametrize("service", SERVICES)
def test_services_use_no_operator_tool(service: str) -> None:
    wrong = {m: found for m in package_modules(service) if (found := first_party_imports(m, ("likeopt.ops",)))}
    assert not wrong, f"{service} imports the operator's tools at run time: {wrong}"


def test_every_likeopt_module_sits_in_a_role() -> None:
    roles = {"runtime", "caching", "ops", "v1"}
    loose = [m for m in package_modules("likeopt") if m.count(".") == 1 and m.split(".")[1] not in roles]
    assert not loose, f"put these in likeopt.runtime, likeopt.caching or likeopt.ops: {loose}"
