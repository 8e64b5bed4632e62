"""`syncguard release run` and `syncguard report send`: the code beat runs, on demand."""

from __future__ import annotations

import json
from collections.abc import Callable

from shared.exports.applier import ExportApplier
from shared.store.tables import Tenant
from tests.conftest import export_line
from tests.services import MailCatcher
from tests.shared.test_cli import syncguard
from tests.workers.helpers import object_view


def test_release_run_hands_back_every_free_value_and_says_how_many(
    make_tenant: Callable[..., Tenant], applier: ExportApplier
) -> None:
    tenant = make_tenant()
    applier.apply(export_line(tenant.name, "h", userPrincipalName="free@contoso.com"))
    applier.apply(export_line(tenant.name, "w", userPrincipalName="free@contoso.com"))
    applier.apply(export_line(tenant.name, "h", sequence=2, operation="delete"))

    done = syncguard("release", "run", "--tenant", tenant.name, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["released"] == 1 and summary["releasedByTenant"] == {tenant.name: 1}
    waiter = object_view(tenant.name, "w")
    assert waiter is not None and waiter.upn == "free@contoso.com" and waiter.entries == []

    again = syncguard("release", "run", "--tenant", tenant.name)
    assert again.returncode == 0 and again.stdout.startswith("released 0 value(s)")


def test_release_run_for_an_unknown_tenant_fails_with_its_name() -> None:
    done = syncguard("release", "run", "--tenant", "no-such-tenant")
    assert done.returncode == 1 and "no-such-tenant" in done.stderr


def test_report_send_mails_the_contacts_once_per_quarantine(
    make_tenant: Callable[..., Tenant], applier: ExportApplier
) -> None:
    tenant = make_tenant(technical_contacts=("admins@contoso.test",))
    applier.apply(export_line(tenant.name, "h", displayName="Holder", userPrincipalName="m@contoso.com"))
    applier.apply(export_line(tenant.name, "w", displayName="Waiter", userPrincipalName="m@contoso.com"))
    with MailCatcher() as mail:
        smtp = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(mail.port), "SMTP_FROM": "syncguard@contoso.test"}
        first = syncguard("report", "send", "--tenant", tenant.name, "--json", **smtp)
        second = syncguard("report", "send", "--tenant", tenant.name, **smtp)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == [
        {
            "tenant": tenant.name,
            "conflicts": 1,
            "conflictsWaiting": 0,
            "failures": 0,
            "deliveredTo": f"smtp://127.0.0.1:{mail.port}",
        }
    ]
    assert second.returncode == 0 and "nothing new to report" in second.stdout
    (message,) = mail.for_recipient("admins@contoso.test")
    assert "Waiter" in message.get_body(("plain",)).get_content()
