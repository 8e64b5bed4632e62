"""The syncguard demo (run it with ./scripts/demo): the whole job on one machine, then the result as tables.

SQLite in a temporary folder is the database. Redis is the one at REDIS_URL (default
redis://127.0.0.1:6379/0). When no Redis answers and `redis-server` is installed, a private one runs on a free
loopback port for the length of the demo. A real Celery worker applies the bundled sample exports,
posted through the `syncguard` command line; the worker and any private Redis are stopped however
the demo ends (error, Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from redis import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout: `harness` is not installed

from harness.local_services import ServiceFailed, Workers, private_redis, redis_answers
from shared.cli.text_tables import render_table
from shared.messaging import RELEASES_QUEUE
from shared.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "examples" / "sample-exports.jsonl"
DEFAULT_REDIS_URL = Settings.model_fields["redis_url"].default
SYNCGUARD = str(Path(sys.executable).with_name("syncguard"))
TENANT = "demo"
INITIAL_DOMAIN = "demo.onmicrosoft.com"
STEPS = 6


class DemoFailed(Exception):
    """A step failed; the message says which and why."""


def say(text: str = "") -> None:
    print(text, flush=True)


def step(number: int, text: str) -> None:
    say(f"\n[{number}/{STEPS}] {text}")


def indent(text: str, prefix: str = "      ") -> str:
    return "\n".join(prefix + line if line else line for line in text.rstrip().splitlines())


def choose_redis(stack: ExitStack, workdir: Path) -> tuple[str, str]:
    """The Redis URL to use and a sentence saying which one it is."""
    given = os.environ.get("REDIS_URL")
    url = given or DEFAULT_REDIS_URL
    if redis_answers(url):
        return url, f"{url} (from REDIS_URL)" if given else f"{url} (the local server)"
    if shutil.which("redis-server") is None:
        raise DemoFailed(
            f"no Redis answers at {url} and redis-server is not installed: install Redis "
            "(e.g. apt-get install redis-server) or point REDIS_URL at one"
        )
    try:
        private = stack.enter_context(private_redis(workdir))
    except ServiceFailed as exc:
        raise DemoFailed(str(exc)) from None
    return private, f"{private} (a private redis-server: none answered at {url}; stopped afterwards)"


def other_consumers(url: str) -> int:
    """Clients blocked on a queue in this Redis database: another worker would take the demo's exports."""
    client = Redis.from_url(url)
    db = client.connection_pool.connection_kwargs.get("db", 0)
    try:
        clients = client.client_list()
    except Exception:
        return 0
    return sum(1 for c in clients if int(c.get("db", -1)) == db and c.get("cmd") in {"brpop", "blpop", "blmove"})


def run_cli(env: dict[str, str], *args: str, show: bool = True) -> str:
    """Run `syncguard ARGS`; its output is echoed (indented) and returned; failure stops the demo."""
    command = [SYNCGUARD, *args]
    if show:
        say(f"      $ syncguard {' '.join(args)}")
    result = subprocess.run(
        command, check=False, env=env, cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip() or "no output"
        raise DemoFailed(f"`syncguard {' '.join(args)}` exited with {result.returncode}: {detail}")
    if show and result.stdout.strip():
        say(indent(result.stdout))
    return result.stdout


def cli_json(env: dict[str, str], *args: str) -> Any:
    output = run_cli(env, *args, "--json", show=False)
    try:
        return json.loads(output)
    except ValueError as exc:
        raise DemoFailed(f"`syncguard {' '.join(args)} --json` printed something that is not JSON: {exc}") from None


def release_sweep(env: dict[str, str], redis_url: str) -> None:
    """`syncguard release run`, so the tables do not depend on when the fast-path release ran."""
    probe = subprocess.run([SYNCGUARD, "release", "run", "--help"], check=False, env=env, cwd=REPO, capture_output=True)
    if probe.returncode == 0:
        run_cli(env, "release", "run", "--tenant", TENANT)
        return
    say("      (this syncguard has no `release run` command: waiting for the fast-path releases instead)")
    redis = Redis.from_url(redis_url)
    deadline, quiet = time.monotonic() + 30, 0
    while quiet < 5 and time.monotonic() < deadline:
        quiet = quiet + 1 if redis.llen(RELEASES_QUEUE) == 0 else 0
        time.sleep(0.2)


def other_proxies(addresses: Sequence[str]) -> str:
    """Proxy types other than SMTP (X500, SIP, ...), counted: they are never checked for uniqueness."""
    counts: dict[str, int] = {}
    for address in addresses:
        kind = address.split(":", 1)[0].upper()
        if kind != "SMTP":
            counts[kind] = counts.get(kind, 0) + 1
    return ", ".join(f"{count} {kind}" for kind, count in sorted(counts.items()))


def object_rows(objects: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """One row per object, then one more line per further SMTP address, so the table stays narrow."""
    rows: list[list[Any]] = []
    for o in objects:
        smtp = [a for a in o["proxyAddresses"] if a.lower().startswith("smtp:")] or [""]
        rows.append(
            [
                o["objectType"],
                o["displayName"],
                o["userPrincipalName"] or "",
                smtp[0],
                other_proxies(o["proxyAddresses"]),
                o["provisioningErrorCount"] or "",
            ]
        )
        rows.extend(["", "", "", address, "", ""] for address in smtp[1:])
    return rows


def shared_unchecked_values(objects: Sequence[dict[str, Any]]) -> list[list[str]]:
    """Non-SMTP proxy addresses that several objects carry: allowed, never a conflict."""
    holders: dict[str, tuple[str, list[str]]] = {}
    for o in objects:
        for address in o["proxyAddresses"]:
            if not address.lower().startswith("smtp:"):
                holders.setdefault(address.lower(), (address, []))[1].append(o["displayName"])
    return [[shorten(shown), ", ".join(names)] for shown, names in sorted(holders.values()) if len(names) > 1]


def shorten(text: str, width: int = 48) -> str:
    """Keep both ends of a long value (an X500 address), which is where it differs."""
    if len(text) <= width:
        return text
    half = (width - 1) // 2
    return text[:half] + "…" + text[-half:]


def print_results(env: dict[str, str]) -> tuple[int, int, int]:
    objects = cli_json(env, "object", "list", "--tenant", TENANT)
    errors = cli_json(env, "errors", "list", "--tenant", TENANT, "--error-category", "PropertyConflict", "--all")
    failures = cli_json(env, "failures", "list", "--tenant", TENANT)
    names = {o["objectId"]: o["displayName"] for o in objects}

    say(f"\nObjects in tenant {TENANT!r}: {len(objects)}   (syncguard object list --tenant {TENANT})")
    say(
        render_table(
            ["Type", "Display name", "UserPrincipalName", "SMTP proxy addresses", "Other proxies", "Errors"],
            object_rows(objects),
        )
    )

    say(
        f"\nProvisioning errors: {len(errors)}   "
        f"(syncguard errors list --tenant {TENANT} --error-category PropertyConflict)"
    )
    if errors:
        say(
            render_table(
                ["Object", "Property", "Value asked for", "Held by", "Meanwhile"],
                [
                    [
                        e["displayName"],
                        e["propertyName"],
                        e["propertyValue"],
                        names.get(e["conflictingObjectId"], e["conflictingObjectId"]),
                        "placeholder UPN" if e["propertyName"] == "UserPrincipalName" else "left out",
                    ]
                    for e in errors
                ],
            )
        )
    else:
        say("none")
    shared = shared_unchecked_values(objects)
    if shared:
        say("\nShared values that are not conflicts (only UPNs and SMTP addresses must be unique):")
        say(indent(render_table(["Proxy address", "Carried by"], shared), "  "))

    say(f"\nFailed exports: {len(failures)}   (syncguard failures list --tenant {TENANT})")
    if failures:
        say(
            render_table(
                ["Source anchor", "Type", "Error", "Message", "Attempts"],
                [[f["sourceAnchor"], f["objectType"], f["errorCode"], f["message"], f["attempts"]] for f in failures],
                max_width=80,
            )
        )
    else:
        say("none: every conflict was quarantined and the export succeeded; nothing needs a retry")
    return len(objects), len(errors), len(failures)


def run_demo(keep: bool) -> None:
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="syncguard-demo-"))
        if keep:
            stack.callback(lambda: say(f"\nkept {workdir} (database, worker log)"))
        else:
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        database = f"sqlite:///{workdir / 'demo.sqlite3'}"
        redis_url, redis_note = choose_redis(stack, workdir)
        env = dict(os.environ)
        env.update(DATABASE_URL=database, REDIS_URL=redis_url, PYTHONUNBUFFERED="1")
        if not os.environ.get("CELERY_BROKER_URL") or redis_url != os.environ.get("REDIS_URL"):
            env["CELERY_BROKER_URL"] = redis_url
        env.pop("SMTP_HOST", None)  # the demo sends no mail
        broker = env["CELERY_BROKER_URL"]
        if broker.startswith(("redis://", "rediss://")) and not redis_answers(broker):
            raise DemoFailed(f"the Celery broker at CELERY_BROKER_URL={broker} does not answer")

        say("syncguard demo")
        say(f"  database  {database}{'' if keep else ' (removed afterwards)'}")
        say(f"  redis     {redis_note}")
        say(f"  broker    {env['CELERY_BROKER_URL']}")
        say(f"  sample    {SAMPLE.relative_to(REPO)} ({sum(1 for line in SAMPLE.open() if line.strip())} exports)")

        busy = other_consumers(broker) if broker.startswith(("redis://", "rediss://")) else 0
        if busy:
            raise DemoFailed(
                f"{busy} other client(s), probably Celery workers, already wait on queues in {broker}; they would "
                "take the demo's exports. Stop them, or point REDIS_URL at a Redis database nobody else uses"
            )

        step(1, "create the schema")
        run_cli(env, "db", "upgrade")

        step(2, "start a Celery worker: celery -A workers.app worker --concurrency 2")
        started = time.monotonic()
        try:
            workers = stack.enter_context(Workers(env, workdir, nodes=1, concurrency=2))
        except ServiceFailed as exc:
            raise DemoFailed(str(exc)) from None
        say(f"      worker ready in {time.monotonic() - started:.1f} s (log: {workers.logs[0]})")

        step(3, "create the demo tenant (both resiliency features on)")
        run_cli(env, "tenant", "create", TENANT, "--initial-domain", INITIAL_DOMAIN, "--contact", "admin@demo.example")

        step(4, "post the sample exports and wait until every one is applied")
        started = time.monotonic()
        run_cli(env, "post", "--wait", "--timeout", "120", str(SAMPLE.relative_to(REPO)))
        say(f"      done in {time.monotonic() - started:.1f} s")

        step(5, "run the release sweep once (beat runs it hourly; the fast path has usually done it already)")
        release_sweep(env, redis_url)

        step(6, "the result")
        objects, errors, failures = print_results(env)
        say(f"\n{objects} objects, {errors} quarantined values, {failures} failed exports. Stopping the worker...")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (SQLite database, logs)")
    args = parser.parse_args(argv)

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)
    try:
        run_demo(args.keep)
    except DemoFailed as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("\ndemo interrupted; the worker and any private Redis have been stopped", file=sys.stderr, flush=True)
        return 130
    say("done.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
