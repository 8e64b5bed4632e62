"""The `syncguard` command line (docs/design.md, "Command line": a binding contract).

One module per command group; importing them registers their commands on the root group.
"""

from shared.cli import database, errors, exports, features, maintenance, objects, tenants  # noqa: F401
from shared.cli.root import cli


def main() -> None:
    cli(prog_name="syncguard")


__all__ = ["cli", "main"]
