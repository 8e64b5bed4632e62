"""Property-based requests from the OpenAPI document (schemathesis) against the SCIM face: never a 5xx.

Every /scim/v2 operation gets bodies, query options and ids generated from what the document declares
(the request bodies are scim2-models' own schemas, api/scim/openapi.py): valid-by-schema ones and
invalid ones, with one tenant's token. Whatever the input, the answer is below 500 and every refusal
is a SCIM error (RFC 7644 §3.12): the Error schema and the status, never FastAPI's body.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import given
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from sqlalchemy import delete

from shared.store.engine import transaction
from shared.store.tables import Tenant
from shared.tenants.registry import TenantSpec, create_tenant
from shared.tenants.tokens import issue_token
from tests.api.conftest import ApiServer, TenantAccess
from tests.api.fuzzing import fuzz_settings

pytestmark = pytest.mark.integration

EXAMPLES = 15  # per operation and mode
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


@pytest.fixture(scope="module")
def fuzzed(api_server: ApiServer, workers: object) -> Iterator[tuple[TenantAccess, dict[str, str]]]:
    """A tenant with one user, group and contact, whose ids half of the generated requests aim at."""
    name = f"sfuzz-{uuid.uuid4().hex[:8]}"
    with transaction() as session:
        tenant = create_tenant(session, TenantSpec(name=name, initial_domain=f"{name}.onmicrosoft.com"))
        secret = issue_token(session, tenant).secret
    access = TenantAccess(tenant, secret)
    bodies = {
        "Users": {"userName": f"fuzz@{name}.onmicrosoft.com", "displayName": "Fuzz"},
        "Groups": {"displayName": "Fuzzers"},
        "Contacts": {"displayName": "Fuzz Contact"},
    }
    ids = {}
    with httpx.Client(base_url=f"{api_server.url}/scim/v2", headers=access.headers, timeout=60) as http:
        for endpoint, body in bodies.items():
            created = http.post(f"/{endpoint}", json=body)
            assert created.status_code == 201, created.text
            ids[endpoint] = created.json()["id"]
    yield access, ids
    with transaction() as session:
        session.execute(delete(Tenant).where(Tenant.name == name))


@pytest.fixture(scope="module")
def api_schema(api_server: ApiServer) -> schemathesis.BaseSchema:
    config = SchemathesisConfig.from_dict({"seed": 20261201})
    return schemathesis.openapi.from_url(f"{api_server.url}/openapi.json", config=config)


def scim_operations(api_schema: schemathesis.BaseSchema) -> list[str]:
    return sorted(op.ok().label for op in api_schema.get_all_operations() if " /scim/v2" in op.ok().label)


def test_every_scim_write_declares_its_body(api_schema: schemathesis.BaseSchema) -> None:
    """Without a declared body the fuzzer would send none, and the write paths would go untested."""
    writes = [op.ok() for op in api_schema.get_all_operations() if op.ok().method.upper() in {"POST", "PUT", "PATCH"}]
    scim_writes = [op for op in writes if "/scim/v2" in op.path and not op.path.endswith("/.search")]
    assert len(scim_writes) == 3 * 3 + 1  # POST, PUT, PATCH per resource type, and /Bulk
    assert all(op.body for op in scim_writes), [op.label for op in scim_writes if not op.body]


LABELS = [
    f"{method} /scim/v2{path}"
    for endpoint in ("Users", "Groups", "Contacts")
    for method, path in (
        ("GET", f"/{endpoint}"),
        ("POST", f"/{endpoint}"),
        ("POST", f"/{endpoint}/.search"),
        ("GET", f"/{endpoint}/{{id}}"),
        ("PUT", f"/{endpoint}/{{id}}"),
        ("PATCH", f"/{endpoint}/{{id}}"),
        ("DELETE", f"/{endpoint}/{{id}}"),
    )
] + ["POST /scim/v2/Bulk"]
"""Every operation that takes input. Discovery takes none, and the root `.search` always answers 501
(RFC 7644 §3.12: an operation the service does not support), as test_scim checks."""
# A DELETE takes nothing but an id, and any string is one: it has no invalid input to generate.
CASES = [
    (label, mode)
    for label in LABELS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or not label.startswith("DELETE")
]


def test_the_cases_cover_the_scim_resource_operations(api_schema: schemathesis.BaseSchema) -> None:
    assert set(LABELS) <= set(scim_operations(api_schema))


@pytest.mark.parametrize(("label", "mode"), CASES, ids=[f"{label}-{mode.value}" for label, mode in CASES])
def test_no_generated_scim_request_gets_a_server_error(
    api_schema: schemathesis.BaseSchema,
    fuzzed: tuple[TenantAccess, dict[str, str]],
    label: str,
    mode: GenerationMode,
) -> None:
    access, ids = fuzzed
    (operation,) = [op.ok() for op in api_schema.get_all_operations() if op.ok().label == label]
    endpoint = label.split("/")[3]
    # Half the runs aim at a real object (the write paths past the look-up), half at generated ids.
    aimed = {"id": ids[endpoint]} if "{id}" in label and mode is GenerationMode.POSITIVE else None
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=aimed, headers=access.headers)
    statuses: Counter[int] = Counter()

    @given(case=strategy)
    @fuzz_settings(EXAMPLES)
    def exercise(case: schemathesis.Case) -> None:
        response = case.call(headers=access.headers)
        statuses[response.status_code] += 1
        assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"
        if response.status_code >= 400:
            error = response.json()
            assert error.get("schemas") == [ERROR], response.text
            assert error.get("status") == str(response.status_code), response.text

    exercise()
    assert statuses, "no request was sent"
    print(label, mode.value, dict(statuses))
