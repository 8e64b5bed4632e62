"""The files the project ships to run it stay runnable: Compose, Dockerfile, Kustomize base, README, scripts, sample.

No Docker engine or cluster is needed: the files are parsed and each command is checked against the
repository (module paths, console scripts, CLI subcommands, settings names).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from shared.settings import Settings

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
SETTING_NAMES = {name.upper() for name in Settings.model_fields}


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


def one(resources: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name!r}, found {len(found)}"
    return found[0]


def containers(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return resource["spec"]["template"]["spec"]["containers"]


def assert_runnable(command: list[str]) -> None:
    """A command names a Celery app module of this repository, or a real `syncguard` subcommand."""
    assert isinstance(command, list) and all(isinstance(part, str) for part in command), command
    program = command[0]
    if program == "celery":
        assert "-A" in command, command
        module = command[command.index("-A") + 1]
        assert (REPO / (module.replace(".", "/") + ".py")).is_file(), f"{module} is not a module of the repository"
        app = importlib.import_module(module).app
        assert type(app).__name__ == "Celery", f"{module}.app is not a Celery app"
        assert command[command.index("-A") + 2] in {"worker", "beat"}, command
    elif program == "syncguard":
        scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
        assert "syncguard" in scripts, "pyproject.toml installs no `syncguard` console script"
        module, _, function = scripts["syncguard"].partition(":")
        assert (REPO / (module.replace(".", "/") + ".py")).is_file(), f"console script points at missing {module}"
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
    else:
        pytest.fail(f"unexpected program {program!r} in {command}")


# docker-compose.yml ------------------------------------------------------------------------------


def test_compose_has_every_service(compose: dict[str, Any]) -> None:
    assert {"redis", "postgres", "migrate", "worker", "beat", "mailpit"} <= set(compose["services"])


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
    ],
)
def test_compose_commands_start_what_the_repository_has(
    compose: dict[str, Any], service: str, expected: list[str]
) -> None:
    command = compose["services"][service]["command"]
    assert command[: len(expected)] == expected
    assert_runnable(command)


def test_compose_runs_the_migration_before_worker_and_beat(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["restart"] == "no", "a one-shot service must not restart"
    for name in ("worker", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name


def test_compose_worker_scales_and_beat_stays_single(compose: dict[str, Any]) -> None:
    worker, beat = compose["services"]["worker"], compose["services"]["beat"]
    assert "container_name" not in worker and "ports" not in worker, "a fixed name or port stops --scale"
    assert beat.get("deploy", {}).get("replicas", 1) == 1


def test_compose_environment_names_settings_and_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("migrate", "worker", "beat"):
        environment = services[name]["environment"]
        assert {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SMTP_HOST"} <= set(environment), name
        assert set(environment) <= SETTING_NAMES, f"{name} sets variables syncguard does not read"
        for variable in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
            assert urlsplit(environment[variable]).hostname in services, f"{name}.{variable} points at no service"
        assert environment["SMTP_HOST"] in services


def test_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    """The Compose spec's JSON schema, as check-jsonschema ships it (no Docker engine needed)."""
    from importlib.resources import files

    import jsonschema

    schema = json.loads(files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text())
    errors = sorted(jsonschema.validators.validator_for(schema)(schema).iter_errors(compose), key=str)
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


# Dockerfile --------------------------------------------------------------------------------------


def test_dockerfile_installs_the_package_as_a_non_root_user() -> None:
    lines = [
        line.strip()
        for line in (REPO / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "FROM python:3.11-slim"
    assert any("pip install ." in line for line in lines)
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}, "the image must not run as root"
    copied = " ".join(line for line in lines if line.startswith("COPY "))
    for needed in ("pyproject.toml", "README.md", "shared", "workers"):
        assert needed in copied, f"the image build needs {needed}"
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert not ignored & {"shared", "workers", "pyproject.toml", "README.md"}


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
    one(resources, "Job", "syncguard-migrate")
    assert not [r for r in resources if r["kind"] == "Secret"], "the base references secrets, it never holds one"


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
        ("Job", "syncguard-migrate", ["syncguard", "db", "upgrade"]),
    ],
)
def test_manifest_commands_start_what_the_repository_has(
    resources: list[dict[str, Any]], kind: str, name: str, expected: list[str]
) -> None:
    (container,) = containers(one(resources, kind, name))
    assert container["command"][: len(expected)] == expected
    assert_runnable(container["command"])


def test_workloads_take_config_and_secret_by_reference(
    manifests: dict[str, list[dict[str, Any]]], resources: list[dict[str, Any]]
) -> None:
    (kustomization,) = manifests["kustomization.yaml"]
    image_names = {image["name"] for image in kustomization.get("images", [])}
    workloads = [r for r in resources if r["kind"] in {"Deployment", "Job"}]
    assert len(workloads) == 3
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
    from shared.schemas import parse_export

    exports = [parse_export(line) for line in (REPO / "examples" / "sample-exports.jsonl").read_text().splitlines()]
    assert {e.tenant for e in exports} == {"demo"}
    sequences: dict[str, list[int]] = {}
    for export in exports:
        sequences.setdefault(export.source_anchor, []).append(export.sequence)
    assert all(seq == sorted(set(seq)) for seq in sequences.values()), "sequence must increase per object"
    assert {e.operation for e in exports} == {"add", "update", "delete"}
    assert {e.object_class.value for e in exports} == {"User", "Group", "Contact"}
