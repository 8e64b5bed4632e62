"""The files the project ships to run it stay runnable: Compose, Dockerfile, Kustomize base, README, scripts, sample.

No Docker engine or cluster is needed: the files are parsed, validated against the Compose specification,
the Kubernetes schemas (kubernetes-validate, offline) and our strict KEDA schemas (tests/deploy_schemas),
and each command is checked against the repository (module paths, console scripts, CLI subcommands,
settings names). tests/scale/test_probes.py runs the health checks against real processes.
"""

from __future__ import annotations

import ast
import copy
import importlib
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml

from shared.messaging import EXPORTS_QUEUE
from shared.settings import Settings

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
SCHEMAS = Path(__file__).resolve().parent / "deploy_schemas"
SETTING_NAMES = {name.upper() for name in Settings.model_fields}
IMAGE = "syncguard:local"
# The oldest and a recent Kubernetes minor the base must apply to unchanged.
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0")
KEDA_KINDS = {
    "ScaledObject": "keda-scaledobject.schema.json",
    "TriggerAuthentication": "keda-triggerauthentication.schema.json",
}
# What KEDA's redis trigger takes from a TriggerAuthentication (keda.sh/docs/scalers/redis-lists).
REDIS_AUTH_PARAMETERS = {"address", "host", "port", "username", "password", "tls", "ca", "cert", "key", "keyPassword"}


def load_yaml(path: Path) -> list[dict[str, Any]]:
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert documents, f"{path} holds no YAML document"
    return documents


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    (document,) = load_yaml(REPO / "docker-compose.yml")
    return document


@pytest.fixture(scope="module")
def manifests() -> dict[str, list[dict[str, Any]]]:
    """Every deploy/*.yaml by file name, Kustomization included."""
    return {path.name: load_yaml(path) for path in sorted(DEPLOY.glob("*.yaml"))}


@pytest.fixture(scope="module")
def resources(manifests: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [doc for docs in manifests.values() for doc in docs if doc.get("kind") != "Kustomization"]


@pytest.fixture(scope="module")
def example_secret() -> dict[str, str]:
    """deploy/secrets.example.env: the keys an overlay's Secret `syncguard-secrets` must hold."""
    pairs = [line.split("=", 1) for line in (DEPLOY / "secrets.example.env").read_text().splitlines()]
    return {key: value for key, value in (p for p in pairs if len(p) == 2 and not p[0].startswith("#"))}


def one(resources: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name!r}, found {len(found)}"
    return found[0]


def containers(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return resource["spec"]["template"]["spec"]["containers"]


def image_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The Compose services that run syncguard's own image."""
    return {name: s for name, s in compose["services"].items() if s.get("image") == IMAGE}


def health_command(service: dict[str, Any]) -> list[str]:
    """A Compose health check's test as an argv; `$$` is Compose's escape for a literal `$`."""
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    if test[0] == "CMD-SHELL":
        return ["sh", "-c", test[1].replace("$$", "$")]
    assert test[0] == "CMD", test
    return test[1:]


def duration_s(value: str | int) -> float:
    """A Compose duration (`1m30s`, `150s`) in seconds."""
    if isinstance(value, int):
        return float(value)
    units = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)", value)
    assert parts and "".join(n + u for n, u in parts) == value, f"not a Compose duration: {value!r}"
    return sum(float(n) * units[u] for n, u in parts)


def _is_repository_module(module: str) -> bool:
    """A module file or a package of this checkout (not something installed elsewhere)."""
    path = REPO / module.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def assert_runnable(command: list[str]) -> None:
    """A command starts something this repository has: a Celery app module, a real `syncguard` subcommand,
    an ASGI app, Python code whose imports resolve, or a shell line made of those."""
    assert isinstance(command, list) and all(isinstance(part, str) for part in command), command
    program = command[0]
    if program == "sh":
        assert command[1] == "-c", command
        words = shlex.split(command[2])
        words = words[1:] if words[0] == "exec" else words
        cut = next((i for i, w in enumerate(words) if w[:1] in {">", "|", "&", ";"} or w.startswith("2>")), None)
        assert_runnable(words[:cut])
    elif program == "celery":
        assert "-A" in command, command
        module = command[command.index("-A") + 1]
        assert _is_repository_module(module), f"{module} is not a module of the repository"
        app = importlib.import_module(module).app
        assert type(app).__name__ == "Celery", f"{module}.app is not a Celery app"
        assert command[command.index("-A") + 2] in {"worker", "beat", "inspect"}, command
    elif program == "syncguard":
        scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
        assert "syncguard" in scripts, "pyproject.toml installs no `syncguard` console script"
        module, _, function = scripts["syncguard"].partition(":")
        assert _is_repository_module(module), f"console script points at missing {module}"
        subcommand = [part for part in command[1:] if not part.startswith("-")]
        run = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import sys; from {module} import {function}; sys.argv[0] = 'syncguard'; sys.exit({function}())",
                *subcommand,
                "--help",
            ],
            check=False,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, f"`syncguard {' '.join(subcommand)} --help` failed: {run.stderr}"
    elif program == "uvicorn":
        module, _, attribute = command[1].partition(":")
        assert _is_repository_module(module), f"{module} is not a module of the repository"
        app = getattr(importlib.import_module(module), attribute)
        assert type(app).__name__ == "FastAPI", f"{command[1]} is not the FastAPI app"
    elif program == "python":
        assert command[1] == "-c", command
        for node in ast.walk(ast.parse(command[2])):
            if isinstance(node, ast.ImportFrom):
                imported = importlib.import_module(node.module or "")
                for alias in node.names:
                    assert hasattr(imported, alias.name), f"{node.module} has no {alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    importlib.import_module(alias.name)
    else:
        pytest.fail(f"unexpected program {program!r} in {command}")


def schema_errors(schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def compose_schema() -> dict[str, Any]:
    from importlib.resources import files

    return json.loads(files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text())


def keda_schema(kind: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / KEDA_KINDS[kind]).read_text())


def kubernetes_errors(resource: dict[str, Any], version: str) -> str | None:
    try:
        kubernetes_validate.validate(resource, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
    return None


# docker-compose.yml ------------------------------------------------------------------------------


def test_compose_has_every_service(compose: dict[str, Any]) -> None:
    expected = {"redis", "postgres", "migrate", "worker", "beat", "mailpit"}
    if (REPO / "api" / "app.py").is_file():
        expected.add("api")
    assert expected <= set(compose["services"])


def test_compose_redis_persists_with_aof_and_never_evicts(compose: dict[str, Any]) -> None:
    command = compose["services"]["redis"]["command"]
    command = command.split() if isinstance(command, str) else command
    assert command[0] == "redis-server"
    options = dict(zip(command[1::2], command[2::2], strict=False))
    assert options.get("--appendonly") == "yes"
    assert options.get("--appendfsync") == "everysec"
    assert options.get("--maxmemory-policy") == "noeviction"
    assert any(volume.endswith(":/data") for volume in compose["services"]["redis"]["volumes"]), "AOF needs a volume"


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ("migrate", ["syncguard", "db", "upgrade"]),
        ("worker", ["celery", "-A", "workers.app", "worker"]),
        ("beat", ["celery", "-A", "workers.app", "beat"]),
        ("api", ["uvicorn", "api.app:app"]),
    ],
)
def test_compose_commands_start_what_the_repository_has(
    compose: dict[str, Any], service: str, expected: list[str]
) -> None:
    command = compose["services"][service]["command"]
    assert command[: len(expected)] == expected
    assert_runnable(command)


def test_compose_long_running_services_have_health_checks(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if service.get("restart") == "no":
            assert "healthcheck" not in service, f"{name} is one-shot: it has nothing to be healthy for"
            continue
        check = service.get("healthcheck")
        assert check and not check.get("disable") and check["test"], f"{name} has no health check"
        assert duration_s(check["timeout"]) < duration_s(check["interval"]), name


def test_compose_health_checks_run_what_the_image_has(compose: dict[str, Any]) -> None:
    checked = 0
    for service in image_services(compose).values():
        if "healthcheck" in service:
            assert_runnable(health_command(service))
            checked += 1
    assert checked == len(image_services(compose)) - 1, "every syncguard service but migrate has a health check"


def test_compose_worker_health_check_pings_this_node(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    command = worker["command"]
    assert command[command.index("--hostname") + 1] == "celery@%h", "%h is the container's $HOSTNAME"
    assert "celery@$HOSTNAME" in health_command(worker)[2], "ping this worker, not any worker"


def test_compose_dependencies_wait_for_health_or_completion(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: use the long form of depends_on, with a condition"
        for target, rule in depends_on.items():
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target} to be healthy; it has no check"
            elif condition == "service_completed_successfully":
                assert services[target]["restart"] == "no", f"{name} waits for {target} to complete; it restarts"
            else:
                pytest.fail(f"{name} waits for {target} to be merely started")


def test_compose_runs_the_migration_before_syncguard_starts(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["restart"] == "no", "a one-shot service must not restart"
    for name in set(image_services(compose)) - {"migrate"}:
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy", name


def test_compose_worker_scales_and_beat_stays_single(compose: dict[str, Any]) -> None:
    worker, beat = compose["services"]["worker"], compose["services"]["beat"]
    assert "container_name" not in worker and "ports" not in worker, "a fixed name or port stops --scale"
    assert beat.get("deploy", {}).get("replicas", 1) == 1


def test_compose_worker_stop_grace_outlasts_a_task(compose: dict[str, Any]) -> None:
    """SIGTERM starts the warm shutdown; the SIGKILL must not come before the running exports end."""
    worker = compose["services"]["worker"]
    settings = Settings(**{key.lower(): value for key, value in worker["environment"].items()})
    assert duration_s(worker["stop_grace_period"]) > settings.task_time_limit_s


def test_compose_environment_names_settings_and_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in image_services(compose).items():
        environment = service["environment"]
        assert {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SMTP_HOST"} <= set(environment), name
        assert set(environment) <= SETTING_NAMES, f"{name} sets variables syncguard does not read"
        for variable in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
            assert urlsplit(environment[variable]).hostname in services, f"{name}.{variable} points at no service"
        assert environment["SMTP_HOST"] in services


def test_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    """The Compose spec's JSON schema, as check-jsonschema ships it (no Docker engine needed)."""
    errors = schema_errors(compose_schema(), compose)
    assert not errors, "\n".join(errors)


def test_compose_schema_refuses_a_misspelt_field(compose: dict[str, Any]) -> None:
    """The check above can fail: a typo that Compose would reject is caught here too."""
    broken = copy.deepcopy(compose)
    broken["services"]["worker"]["stop_grace_periods"] = broken["services"]["worker"].pop("stop_grace_period")
    assert schema_errors(compose_schema(), broken)


# Dockerfile --------------------------------------------------------------------------------------


def dockerfile_lines() -> list[str]:
    lines, continued = [], ""
    for raw in (REPO / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        continued += line.removesuffix("\\").strip() + " "
        if not line.endswith("\\"):
            lines.append(continued.strip())
            continued = ""
    return lines


def test_dockerfile_installs_every_package_as_a_non_root_user() -> None:
    lines = dockerfile_lines()
    assert lines[0] == "FROM python:3.11-slim"
    installs = [line for line in lines if "pip install" in line]
    assert installs and all("pip install ." in line and "[test]" not in line for line in installs), installs
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}, "the image must not run as root"
    copied = " ".join(line for line in lines if line.startswith("COPY "))
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = [pattern.rstrip("*") for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]
    needed = ["pyproject.toml", "README.md", *packages]
    for path in needed:
        assert re.search(rf"\b{re.escape(path)}\b", copied), f"the image build needs {path}"
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert not ignored & set(needed), f".dockerignore hides {ignored & set(needed)} from the build"


def test_dockerfile_default_command_starts_a_worker(compose: dict[str, Any]) -> None:
    (cmd,) = [line for line in dockerfile_lines() if line.startswith("CMD ")]
    command = json.loads(cmd.removeprefix("CMD "))  # exec form: Celery itself gets the SIGTERM
    assert command[:4] == ["celery", "-A", "workers.app", "worker"]
    assert_runnable(command)


# deploy/ (Kustomize base) ------------------------------------------------------------------------


def test_kustomization_lists_every_manifest(manifests: dict[str, list[dict[str, Any]]]) -> None:
    (kustomization,) = manifests["kustomization.yaml"]
    assert kustomization["kind"] == "Kustomization"
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    assert set(listed) == set(manifests) - {"kustomization.yaml"}


def test_base_has_the_expected_resources(resources: list[dict[str, Any]]) -> None:
    one(resources, "ConfigMap", "syncguard-config")
    one(resources, "Deployment", "syncguard-worker")
    one(resources, "Deployment", "syncguard-beat")
    one(resources, "Deployment", "syncguard-api")
    one(resources, "Service", "syncguard-api")
    one(resources, "Job", "syncguard-migrate")
    one(resources, "ScaledObject", "syncguard-worker")
    one(resources, "TriggerAuthentication", "syncguard-broker")
    one(resources, "PodDisruptionBudget", "syncguard-worker")
    assert not [r for r in resources if r["kind"] == "Secret"], "the base references secrets, it never holds one"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_builtin_resources_follow_the_kubernetes_schemas(resources: list[dict[str, Any]], version: str) -> None:
    """Strict: an unknown field fails, as `kubectl apply --validate=strict` would."""
    builtin = [r for r in resources if r["kind"] not in KEDA_KINDS]
    assert len(builtin) >= 7
    errors = {f"{r['kind']}/{r['metadata']['name']}": kubernetes_errors(r, version) for r in builtin}
    assert not {name: error for name, error in errors.items() if error}


@pytest.mark.parametrize(
    "break_it",
    [
        lambda d: d["spec"]["template"]["spec"].update(terminationGracePeriod=150),
        lambda d: d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"].update(periodSecond=5),
        lambda d: d["spec"].update(replicas="2"),
    ],
    ids=["misspelt-pod-field", "misspelt-probe-field", "string-replicas"],
)
def test_kubernetes_schemas_refuse_a_broken_deployment(resources: list[dict[str, Any]], break_it: Any) -> None:
    broken = copy.deepcopy(one(resources, "Deployment", "syncguard-worker"))
    break_it(broken)
    assert kubernetes_errors(broken, KUBERNETES_VERSIONS[-1])


@pytest.mark.parametrize("kind", sorted(KEDA_KINDS))
def test_keda_resources_follow_their_schemas(resources: list[dict[str, Any]], kind: str) -> None:
    found = [r for r in resources if r["kind"] == kind]
    assert found
    for resource in found:
        errors = schema_errors(keda_schema(kind), resource)
        assert not errors, "\n".join(errors)


@pytest.mark.parametrize(
    ("kind", "break_it"),
    [
        ("ScaledObject", lambda d: d["spec"].update(minReplicas=1)),
        ("ScaledObject", lambda d: d["spec"]["triggers"][0]["metadata"].update(listname="exports")),
        ("ScaledObject", lambda d: d["spec"]["triggers"][0]["metadata"].update(listLength=100)),
        ("ScaledObject", lambda d: d["spec"]["triggers"][0]["metadata"].pop("listName")),
        ("TriggerAuthentication", lambda d: d["spec"]["secretTargetRef"][0].pop("key")),
        ("TriggerAuthentication", lambda d: d["spec"].update(secretRef=[])),
    ],
    ids=["misspelt-spec-field", "misspelt-metadata-key", "number-not-string", "no-list", "no-key", "unknown-source"],
)
def test_keda_schemas_refuse_broken_resources(resources: list[dict[str, Any]], kind: str, break_it: Any) -> None:
    broken = copy.deepcopy(next(r for r in resources if r["kind"] == kind))
    break_it(broken)
    assert schema_errors(keda_schema(kind), broken)


def test_worker_is_autoscaled_on_the_exports_queue(resources: list[dict[str, Any]]) -> None:
    from workers.app import app

    scaled = one(resources, "ScaledObject", "syncguard-worker")["spec"]
    worker = one(resources, "Deployment", "syncguard-worker")
    assert scaled["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    assert scaled["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
    assert "replicas" not in worker["spec"], "the autoscaler owns the replica count; a fixed one fights it"
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"], "min 1: releases and sweeps need a worker"
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == EXPORTS_QUEUE == app.conf.task_default_queue
    assert EXPORTS_QUEUE in {queue.name for queue in app.conf.task_queues}
    one(resources, "TriggerAuthentication", trigger["authenticationRef"]["name"])


def test_trigger_authentication_reads_keys_the_secret_documents(
    resources: list[dict[str, Any]], example_secret: dict[str, str]
) -> None:
    references = [
        ref for r in resources if r["kind"] == "TriggerAuthentication" for ref in r["spec"]["secretTargetRef"]
    ]
    assert {ref["parameter"] for ref in references} >= {"address"}
    for ref in references:
        assert ref["parameter"] in REDIS_AUTH_PARAMETERS, ref
        assert ref["name"] == "syncguard-secrets", "one Secret for everything: the one the workloads read"
        assert ref["key"] in example_secret, f"secrets.example.env does not document {ref['key']}"


def test_example_secret_names_the_broker_the_same_way_twice(
    resources: list[dict[str, Any]], example_secret: dict[str, str]
) -> None:
    """KEDA reads host:port and a database index; syncguard reads the URL: they must name one list."""
    broker = urlsplit(example_secret["CELERY_BROKER_URL"])
    assert example_secret["BROKER_REDIS_ADDRESS"] == f"{broker.hostname}:{broker.port or 6379}"
    assert example_secret["BROKER_REDIS_PASSWORD"] == (broker.password or "")
    (trigger,) = one(resources, "ScaledObject", "syncguard-worker")["spec"]["triggers"]
    assert trigger["metadata"]["databaseIndex"] == (broker.path.strip("/") or "0")
    extra = set(example_secret) - SETTING_NAMES
    assert extra == {"BROKER_REDIS_ADDRESS", "BROKER_REDIS_PASSWORD"}, f"keys nothing reads: {extra}"


def test_exactly_one_beat_replaced_by_recreate(resources: list[dict[str, Any]]) -> None:
    beat = one(resources, "Deployment", "syncguard-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    scaled = [r["spec"]["scaleTargetRef"]["name"] for r in resources if "scaleTargetRef" in r.get("spec", {})]
    assert "syncguard-beat" not in scaled, "beat must never be autoscaled"


@pytest.mark.parametrize(
    ("kind", "name", "expected"),
    [
        ("Deployment", "syncguard-worker", ["celery", "-A", "workers.app", "worker"]),
        ("Deployment", "syncguard-beat", ["celery", "-A", "workers.app", "beat"]),
        ("Deployment", "syncguard-api", ["uvicorn", "api.app:app"]),
        ("Job", "syncguard-migrate", ["syncguard", "db", "upgrade"]),
    ],
)
def test_manifest_commands_start_what_the_repository_has(
    resources: list[dict[str, Any]], kind: str, name: str, expected: list[str]
) -> None:
    (container,) = containers(one(resources, kind, name))
    assert container["command"][: len(expected)] == expected
    assert_runnable(container["command"])


@pytest.mark.parametrize(
    ("name", "probes"),
    [
        ("syncguard-worker", {"readinessProbe", "livenessProbe"}),
        ("syncguard-beat", {"livenessProbe"}),  # beat serves nothing, so it is never "ready" for traffic
        ("syncguard-api", {"readinessProbe", "livenessProbe"}),
    ],
)
def test_deployments_probe_what_the_image_runs(resources: list[dict[str, Any]], name: str, probes: set[str]) -> None:
    (container,) = containers(one(resources, "Deployment", name))
    assert probes <= set(container), f"{name} misses {probes - set(container)}"
    for probe in (container[p] for p in probes):
        if "exec" in probe:
            assert_runnable(probe["exec"]["command"])
        elif "httpGet" in probe:
            assert probe["httpGet"]["port"] in {port["name"] for port in container["ports"]}
        assert probe["timeoutSeconds"] < probe["periodSeconds"]


def test_worker_probes_ping_the_node_the_worker_starts_as(resources: list[dict[str, Any]]) -> None:
    (container,) = containers(one(resources, "Deployment", "syncguard-worker"))
    command = container["command"]
    assert command[command.index("--hostname") + 1] == "celery@%h", "%h is the pod's $HOSTNAME"
    for probe in ("readinessProbe", "livenessProbe"):
        assert 'celery@$HOSTNAME"' in container[probe]["exec"]["command"][2], probe
    # A Redis blip must not restart every worker: liveness gives up only after minutes.
    liveness = container["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 180


def test_every_container_requests_resources_and_limits_memory(resources: list[dict[str, Any]]) -> None:
    workloads = [r for r in resources if r["kind"] in {"Deployment", "Job"}]
    for workload in workloads:
        for container in containers(workload):
            resources_ = container["resources"]
            assert {"cpu", "memory"} <= set(resources_["requests"]), workload["metadata"]["name"]
            assert "memory" in resources_["limits"], workload["metadata"]["name"]


def test_disruption_budgets_select_their_deployment_only(resources: list[dict[str, Any]]) -> None:
    deployments = [r for r in resources if r["kind"] == "Deployment"]
    budgets = [r for r in resources if r["kind"] == "PodDisruptionBudget"]
    assert budgets
    for budget in budgets:
        selector = budget["spec"]["selector"]["matchLabels"].items()
        selected = [
            d["metadata"]["name"]
            for d in deployments
            if selector <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert selected == [budget["metadata"]["name"]], f"{budget['metadata']['name']} selects {selected}"
    worker_budget = one(resources, "PodDisruptionBudget", "syncguard-worker")["spec"]
    assert "maxUnavailable" in worker_budget, "minAvailable would block every drain at one replica"


def test_api_service_reaches_the_api_pods(resources: list[dict[str, Any]]) -> None:
    service, api = one(resources, "Service", "syncguard-api"), one(resources, "Deployment", "syncguard-api")
    assert service["spec"]["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()
    (container,) = containers(api)
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= {port["name"] for port in container["ports"]}


def test_workloads_take_config_and_secret_by_reference(
    manifests: dict[str, list[dict[str, Any]]], resources: list[dict[str, Any]]
) -> None:
    (kustomization,) = manifests["kustomization.yaml"]
    image_names = {image["name"] for image in kustomization.get("images", [])}
    workloads = [r for r in resources if r["kind"] in {"Deployment", "Job"}]
    assert len(workloads) == 4
    for workload in workloads:
        pod = workload["spec"]["template"]
        if workload["kind"] == "Deployment":
            assert workload["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        for container in pod["spec"]["containers"]:
            assert container["image"] in image_names, "the overlay sets the image through `images:`"
            refs = {next(iter(ref)): ref[next(iter(ref))]["name"] for ref in container["envFrom"]}
            assert refs == {"configMapRef": "syncguard-config", "secretRef": "syncguard-secrets"}
            assert "env" not in container or not any(
                "value" in item for item in container["env"] if item["name"].endswith("_URL")
            ), "no URLs in plain text"


def test_configmap_sets_only_settings_syncguard_reads(resources: list[dict[str, Any]]) -> None:
    data = one(resources, "ConfigMap", "syncguard-config")["data"]
    assert set(data) <= SETTING_NAMES, set(data) - SETTING_NAMES
    assert all(isinstance(value, str) for value in data.values()), "ConfigMap values must be strings"
    assert not {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"} & set(data), "connection strings belong in the Secret"
    settings = Settings(**{key.lower(): value for key, value in data.items()})
    assert settings.task_time_limit_s == int(data["TASK_TIME_LIMIT_S"])


def test_worker_grace_period_outlasts_a_task(resources: list[dict[str, Any]]) -> None:
    data = one(resources, "ConfigMap", "syncguard-config")["data"]
    worker = one(resources, "Deployment", "syncguard-worker")
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > int(data["TASK_TIME_LIMIT_S"])


# README, set-up scripts and the bundled sample -------------------------------------------------


def test_readme_documents_every_setting() -> None:
    readme = (REPO / "README.md").read_text()
    undocumented = sorted(name for name in SETTING_NAMES if f"| `{name}` |" not in readme)
    assert not undocumented, f"README's configuration table misses {undocumented}"


def test_readme_explains_running_at_scale() -> None:
    readme = (REPO / "README.md").read_text()
    assert "\n## Running at scale\n" in readme
    section = readme.split("\n## Running at scale\n", 1)[1].split("\n## ", 1)[0]
    for needed in ("docker compose", "--scale worker=", "deploy/", "ScaledObject", "secrets.example.env"):
        assert needed in section, f"'Running at scale' does not mention {needed}"


def test_readme_gives_exactly_the_two_setup_commands() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Getting started", 1)[1].split("\n## ", 1)[0]
    first_block = section.split("```", 2)[1]
    assert first_block.split() == ["./scripts/demo", "./scripts/test"]
    for script in ("scripts/demo", "scripts/test", ".ci/run"):
        path = REPO / script
        assert path.is_file() and os.access(path, os.X_OK), f"{script} must be an executable file"
        assert path.read_text().startswith("#!/usr/bin/env bash\n")
    assert "./scripts/test" in (REPO / ".ci" / "run").read_text()


def test_sample_exports_are_valid_and_ordered_per_object() -> None:
    from shared.core.export import parse_export

    exports = [parse_export(line) for line in (REPO / "examples" / "sample-exports.jsonl").read_text().splitlines()]
    assert {e.tenant for e in exports} == {"demo"}
    sequences: dict[str, list[int]] = {}
    for export in exports:
        sequences.setdefault(export.source_anchor, []).append(export.sequence)
    assert all(seq == sorted(set(seq)) for seq in sequences.values()), "sequence must increase per object"
    assert {e.operation for e in exports} == {"add", "update", "delete"}
    assert {e.object_class.value for e in exports} == {"User", "Group", "Contact"}
