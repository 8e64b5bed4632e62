"""`syncguard tenant token create|revoke|list`: the secret is shown once and only its hash is stored."""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import select

from shared.store.engine import transaction
from shared.store.tables import ApiToken, Tenant
from shared.tenants.tokens import tenant_of_secret
from tests.shared.test_cli import assert_clean_failure, invoke, syncguard, syncguard_json


def test_create_prints_the_secret_once_and_stores_only_its_hash(tenant: Tenant) -> None:
    created = syncguard_json("tenant", "token", "create", "--tenant", tenant.name, "--name", "producer-1")
    secret = created["secret"]
    assert created["tenant"] == tenant.name and created["name"] == "producer-1" and secret.startswith("sgt_")
    with transaction() as session:
        (row,) = session.scalars(select(ApiToken).where(ApiToken.tenant_id == tenant.id)).all()
        assert row.id == created["tokenId"]
        assert row.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
        assert secret not in {str(value) for value in vars(row).values()}
        owner = tenant_of_secret(session, secret)
        assert owner is not None and owner.name == tenant.name
    listed = syncguard_json("tenant", "token", "list", "--tenant", tenant.name)
    assert [t["tokenId"] for t in listed] == [created["tokenId"]]
    assert secret not in json.dumps(listed), "list never shows a secret"


def test_two_tokens_have_different_secrets(tenant: Tenant) -> None:
    first = syncguard_json("tenant", "token", "create", "--tenant", tenant.name)
    second = syncguard_json("tenant", "token", "create", "--tenant", tenant.name)
    assert first["secret"] != second["secret"]


def test_revoke_ends_the_token_for_good(tenant: Tenant) -> None:
    created = syncguard_json("tenant", "token", "create", "--tenant", tenant.name)
    revoked = syncguard_json(
        "tenant", "token", "revoke", "--tenant", tenant.name, "--token-id", str(created["tokenId"])
    )
    assert revoked["tokenId"] == created["tokenId"] and revoked["revokedAt"].endswith("Z")
    with transaction() as session:
        assert tenant_of_secret(session, created["secret"]) is None
    again = syncguard_json("tenant", "token", "revoke", "--tenant", tenant.name, "--token-id", str(created["tokenId"]))
    assert again["revokedAt"] == revoked["revokedAt"], "revoking twice keeps the first time"


def test_another_tenants_token_cannot_be_revoked(make_tenant: object) -> None:
    mine, theirs = make_tenant(), make_tenant()  # type: ignore[operator]
    created = syncguard_json("tenant", "token", "create", "--tenant", theirs.name)
    done = syncguard("tenant", "token", "revoke", "--tenant", mine.name, "--token-id", str(created["tokenId"]))
    assert_clean_failure(done, 1, f"tenant {mine.name!r} has no API token with id {created['tokenId']}")
    with transaction() as session:
        assert tenant_of_secret(session, created["secret"]) is not None


def test_create_for_an_unknown_tenant_exits_1_naming_it() -> None:
    done = syncguard("tenant", "token", "create", "--tenant", "no-such-tenant")
    assert_clean_failure(done, 1, "tenant 'no-such-tenant' does not exist")


def test_human_output_says_the_secret_is_not_shown_again(tenant: Tenant) -> None:
    result = invoke("tenant", "token", "create", "--tenant", tenant.name)
    assert result.exit_code == 0
    assert "not shown again" in result.output and "sgt_" in result.output
    listed = invoke("tenant", "token", "list", "--tenant", tenant.name)
    assert "TokenId" in listed.output and "sgt_" not in listed.output
