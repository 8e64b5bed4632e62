"""PATCH applied to a desired state (`api.scim.patch`), a pure function: properties over generated input.

No service is needed: `patched` does no I/O. The HTTP path of PATCH is covered by tests/api/test_scim.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from scim2_models import SCIMException

from api.scim.errors import ScimError
from api.scim.extension_paths import expanded_names, spelled_out_patch
from api.scim.patch import patched
from api.scim.resources import DIRECTORY_URN, GROUPS, USERS

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

names = st.text(st.characters(categories=("L", "N")), min_size=1, max_size=12)
upns = st.builds(lambda prefix, domain: f"{prefix}@{domain}.example", names, names)
addresses = st.lists(st.builds(lambda upn: f"smtp:{upn}", upns), max_size=4, unique=True)
display_names = st.text(max_size=40).filter(lambda text: "\x00" not in text)


def desired(user_name: str, proxies: list[str], display_name: str | None = "Ann") -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [USER, DIRECTORY_URN], "id": "obj-1", "externalId": "anchor-1"}
    body["userName"] = user_name
    if display_name is not None:
        body["displayName"] = display_name
    if proxies:
        body[DIRECTORY_URN] = {"proxyAddresses": proxies}
    return body


def request(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH], "Operations": list(operations)}


def proxies_of(resource: Any) -> list[str]:
    return list(resource.model_dump().get(DIRECTORY_URN, {}).get("proxyAddresses") or [])


@settings(max_examples=150, deadline=None)
@given(upns, addresses, display_names, st.booleans())
def test_replace_sets_the_value_and_keeps_the_rest(upn: str, proxies: list[str], name: str, with_path: bool) -> None:
    operation = (
        {"op": "replace", "path": "displayName", "value": name}
        if with_path
        else {"op": "replace", "value": {"displayName": name}}
    )
    resource: Any = patched(USERS, desired(upn, proxies), request(operation))
    assert resource.display_name == name
    assert resource.user_name == upn and resource.external_id == "anchor-1" and proxies_of(resource) == proxies


@settings(max_examples=150, deadline=None)
@given(upns, addresses, addresses)
def test_add_then_remove_of_addresses_gives_back_the_original(upn: str, proxies: list[str], more: list[str]) -> None:
    fresh = [address for address in more if address not in proxies]
    path = f"{DIRECTORY_URN}:proxyAddresses"
    added = patched(USERS, desired(upn, proxies), request({"op": "add", "path": path, "value": fresh}))
    assert proxies_of(added) == proxies + fresh
    removals = [{"op": "remove", "path": f'{path}[value eq "{address}"]'} for address in fresh]
    back = patched(USERS, desired(upn, proxies_of(added)), request(*removals)) if removals else added
    assert proxies_of(back) == proxies


@settings(max_examples=150, deadline=None)
@given(upns, addresses, addresses, st.sampled_from(["add", "replace"]), st.sampled_from(["path", "value", "upper"]))
def test_the_bare_extension_urn_means_what_its_attribute_paths_mean(
    upn: str, proxies: list[str], value: list[str], op: str, spelling: str
) -> None:
    """scim2-models cannot parse the bare URN (see api/scim/extension_paths.py): ours must equal the long form."""
    long_form = patched(
        USERS, desired(upn, proxies), request({"op": op, "path": f"{DIRECTORY_URN}:proxyAddresses", "value": value})
    )
    urn = DIRECTORY_URN.upper() if spelling == "upper" else DIRECTORY_URN
    operation = (
        {"op": op, "value": {urn: {"proxyAddresses": value}}}
        if spelling == "value"
        else {"op": op, "path": urn, "value": {"proxyAddresses": value}}
    )
    short_form = patched(USERS, desired(upn, proxies), request(operation))
    assert short_form.model_dump() == long_form.model_dump()


@given(upns, addresses)
def test_removing_the_bare_urn_removes_the_writable_attributes(upn: str, proxies: list[str]) -> None:
    resource: Any = patched(USERS, desired(upn, proxies), request({"op": "remove", "path": DIRECTORY_URN}))
    assert proxies_of(resource) == [] and resource.user_name == upn


@given(upns, names.filter(lambda anchor: anchor != "anchor-1"))
def test_changing_external_id_is_refused_with_mutability(upn: str, anchor: str) -> None:
    with pytest.raises(ScimError) as refused:
        patched(USERS, desired(upn, []), request({"op": "replace", "path": "externalId", "value": anchor}))
    assert refused.value.status == 400 and refused.value.scim_type == "mutability"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)
operations = st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "replace", "remove", "ADD", "move", 3])},
    optional={
        "path": st.sampled_from(
            [DIRECTORY_URN, "displayName", "members", 'emails[type eq "work"].value', "x[", "urn:", ""]
        )
        | st.text(max_size=30),
        "value": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([USERS, GROUPS]), st.lists(operations | json_values, max_size=4))
def test_bad_patch_input_is_a_clear_error_never_a_crash(kind: Any, generated: list[Any]) -> None:
    """Whatever the client sends, `patched` answers a resource or one of the errors the face turns into a 400."""
    state = desired("ann@contoso.example", ["smtp:ann@contoso.example"])
    if kind is GROUPS:
        state = {"schemas": [str(GROUPS.model.__schema__)], "id": "g", "externalId": "anchor-1", "displayName": "G"}
    try:
        patched(kind, state, request(*generated))
    except (ScimError, SCIMException, ValidationError):
        pass


def test_expanded_names_spells_out_only_the_bare_urn() -> None:
    assert expanded_names(["userName", f"{DIRECTORY_URN}:proxyAddresses"]) == [
        "userName",
        f"{DIRECTORY_URN}:proxyAddresses",
    ]
    assert expanded_names([DIRECTORY_URN]) == [
        f"{DIRECTORY_URN}:proxyAddresses",
        f"{DIRECTORY_URN}:onPremisesProvisioningErrors",
    ]
    assert spelled_out_patch([1]) == [1]
