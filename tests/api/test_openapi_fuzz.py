"""Property-based requests from the OpenAPI document (schemathesis) against the running service: never a 5xx.

Requests go to one tenant with a valid token (other tenants and tokens are covered by test_auth),
valid ones and invalid ones, a bounded number per operation. Every response also has to match
what the document says about it (status code, content type, body schema).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import given
from schemathesis import GenerationMode
from schemathesis.checks import negative_data_rejection, positive_data_acceptance
from schemathesis.config import SchemathesisConfig
from sqlalchemy import delete

from shared.store.engine import transaction
from shared.store.tables import FailedExport, Tenant
from shared.tenants.registry import TenantSpec, create_tenant
from shared.tenants.tokens import issue_token
from tests.api.conftest import ApiServer, TenantAccess
from tests.api.fuzzing import fuzz_settings

pytestmark = pytest.mark.integration

EXAMPLES = 50  # per operation and mode: about 25 s for the whole document
OPERATIONS = [
    "POST /v1/tenants/{tenant}/exports",
    "GET /v1/tenants/{tenant}/provisioningErrors",
    "GET /v1/tenants/{tenant}/objects/{sourceAnchor}",
    "GET /v1/tenants/{tenant}/failures",
    "GET /v1/tenants/{tenant}/features",
    "PUT /v1/tenants/{tenant}/features/{feature}",
    "GET /healthz",
    "GET /metrics",
]


@pytest.fixture(scope="module")
def fuzzed(api_server: ApiServer, workers: object) -> Iterator[TenantAccess]:
    """A tenant of its own: the posted exports are applied by the workers and then deleted with it."""
    name = f"fuzz-{uuid.uuid4().hex[:8]}"
    with transaction() as session:
        tenant = create_tenant(session, TenantSpec(name=name, initial_domain=f"{name}.onmicrosoft.com"))
        secret = issue_token(session, tenant).secret
    yield TenantAccess(tenant, secret)
    with transaction() as session:
        session.execute(delete(Tenant).where(Tenant.name == name))
        session.execute(delete(FailedExport).where(FailedExport.tenant == name))


@pytest.fixture(scope="module")
def api_schema(api_server: ApiServer, fuzzed: TenantAccess) -> schemathesis.BaseSchema:
    config = SchemathesisConfig.from_dict({"seed": 20261127})
    return schemathesis.openapi.from_url(f"{api_server.url}/openapi.json", config=config)


def test_every_operation_in_the_document_is_fuzzed(api_schema: schemathesis.BaseSchema) -> None:
    labels = [op.ok().label for op in api_schema.get_all_operations()]
    # The faces are fuzzed on their own: Graph (/v1.0) by tests/api/test_graph_fuzz.py, SCIM (/scim/v2)
    # by tests/api/test_scim_fuzz.py, each checking its own error body.
    faces = (" /v1.0/", " /scim/v2/")
    assert sorted(label for label in labels if not any(face in label for face in faces)) == sorted(OPERATIONS)


# Operations with inputs to get wrong besides the (fixed) tenant; a path-only anchor cannot be made invalid.
WITH_INPUTS = [
    label for label in OPERATIONS if label.startswith(("POST", "PUT")) or label.endswith("provisioningErrors")
]
# Checks that contradict the contract on purpose, by operation:
EXCLUDED_CHECKS = {
    # An array with bad items is 202: each bad item is rejected and recorded (docs/design.md §2), never the whole post.
    "POST /v1/tenants/{tenant}/exports": [negative_data_rejection],
    # skipToken is opaque: only tokens this service made are valid, which a schema cannot say.
    "GET /v1/tenants/{tenant}/provisioningErrors": [positive_data_acceptance],
}
CASES = [(label, GenerationMode.POSITIVE) for label in OPERATIONS] + [
    (label, GenerationMode.NEGATIVE) for label in WITH_INPUTS
]


@pytest.mark.parametrize(("label", "mode"), CASES, ids=[f"{label}-{mode.value}" for label, mode in CASES])
def test_no_generated_request_gets_a_server_error(
    api_schema: schemathesis.BaseSchema, fuzzed: TenantAccess, label: str, mode: GenerationMode
) -> None:
    (operation,) = [op.ok() for op in api_schema.get_all_operations() if op.ok().label == label]
    statuses: Counter[int] = Counter()

    tenant = {"tenant": fuzzed.name} if "{tenant}" in label else None
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=tenant, headers=fuzzed.headers)

    @given(case=strategy)
    @fuzz_settings(EXAMPLES)
    def exercise(case: schemathesis.Case) -> None:
        response = case.call_and_validate(headers=fuzzed.headers, excluded_checks=EXCLUDED_CHECKS.get(label))
        statuses[response.status_code] += 1
        assert response.status_code < 500, response.text

    exercise()
    assert statuses, "no request was sent"
    if mode is GenerationMode.POSITIVE and "{sourceAnchor}" not in label:
        assert any(200 <= code < 300 for code in statuses), f"no valid request succeeded: {dict(statuses)}"
