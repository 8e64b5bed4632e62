"""The producer (shared.exports.producer) as `syncguard post` and `failures retry` use it: bound posts,
and a summary of rejections whose size does not grow with their number."""

from __future__ import annotations

import json

from click.testing import CliRunner

from shared.cli import cli
from shared.exports.producer import REJECTIONS_LISTED
from shared.store.tables import Tenant
from tests.conftest import export_line
from tests.workers.helpers import failures


def test_post_lists_the_first_rejections_of_each_code_and_counts_them_all(tenant: Tenant) -> None:
    groups = [export_line(tenant.name, f"g{n}", "Group", userPrincipalName=f"g{n}@contoso.com") for n in range(3)]
    lines = groups + [json.dumps({"tenant": tenant.name})] * (REJECTIONS_LISTED + 5)
    posted = CliRunner().invoke(cli, ["post", "--json"], input="\n".join(lines), prog_name="syncguard")
    assert posted.exit_code == 0, posted.output
    payload = json.loads(posted.stdout)
    assert (payload["enqueued"], payload["rejectedCount"]) == (0, REJECTIONS_LISTED + 8)
    assert payload["rejectedByCode"] == {"DataValidationFailed": REJECTIONS_LISTED + 8}
    assert len(payload["rejected"]) == REJECTIONS_LISTED, "the first of each code are listed, the rest counted"
    assert [r["line"] for r in payload["rejected"][:4]] == [1, 2, 3, 4]
    assert set(payload["rejected"][0]) == {"line", "errorCode", "error"}
    assert len(failures(tenant.name)) == 3 + REJECTIONS_LISTED + 5, "every rejected line is kept, listed or not"

    text = CliRunner().invoke(cli, ["post"], input="\n".join(lines), prog_name="syncguard")
    assert text.exit_code == 0, text.output
    assert f"... and 8 more rejected line(s) not listed ({REJECTIONS_LISTED + 8} in all" in text.stdout
