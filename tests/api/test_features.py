"""Features over HTTP: enabling is for good; disabling an enabled feature is 409 with the reason."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.api.conftest import TenantAccess

pytestmark = pytest.mark.integration


def put(client: httpx.Client, access: TenantAccess, feature: str, body: object) -> httpx.Response:
    return client.put(f"/v1/tenants/{access.name}/features/{feature}", json=body, headers=access.headers)


def test_enabling_a_legacy_feature_turns_it_on_and_it_stays_on(
    client: httpx.Client, make_access: Callable[..., TenantAccess]
) -> None:
    access = make_access(upn_resiliency=False)
    response = put(client, access, "DuplicateUPNResiliency", {"enabled": True})
    assert response.status_code == 200
    assert response.json() == {"DuplicateUPNResiliency": True, "DuplicateProxyAddressResiliency": True}
    again = put(client, access, "DuplicateUPNResiliency", {"enabled": True})
    assert again.status_code == 200, "enabling twice is harmless"
    refused = put(client, access, "DuplicateUPNResiliency", {"enabled": False})
    assert refused.status_code == 409
    assert "can never be disabled" in refused.json()["detail"]
    features = client.get(f"/v1/tenants/{access.name}/features", headers=access.headers).json()
    assert features["DuplicateUPNResiliency"] is True


def test_disabling_a_feature_that_is_off_changes_nothing(
    client: httpx.Client, make_access: Callable[..., TenantAccess]
) -> None:
    access = make_access(proxy_resiliency=False)
    response = put(client, access, "DuplicateProxyAddressResiliency", {"enabled": False})
    assert response.status_code == 200
    assert response.json()["DuplicateProxyAddressResiliency"] is False


@pytest.mark.parametrize(
    ("feature", "body"),
    [
        ("NoSuchFeature", {"enabled": True}),
        ("DuplicateUPNResiliency", {"enabled": "yes please"}),
        ("DuplicateUPNResiliency", {}),
        ("DuplicateUPNResiliency", {"enabled": True, "extra": 1}),
    ],
)
def test_unknown_features_and_bad_bodies_are_422(
    client: httpx.Client, access: TenantAccess, feature: str, body: object
) -> None:
    assert put(client, access, feature, body).status_code == 422
