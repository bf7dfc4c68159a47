"""compose.yaml is validated, not started: no Docker engine runs on the development machines."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from lorag.core.settings import Settings

COMPOSE = Path(__file__).resolve().parents[1] / "compose.yaml"
SERVICES = {"api", "worker", "scheduler", "qdrant", "postgres", "redis", "vllm"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _setting_names(model: type[BaseModel], prefix: str = "LORAG_") -> set[str]:
    names = set()
    for name, field in model.model_fields.items():
        env = f"{prefix}{name.upper()}"
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            names |= _setting_names(field.annotation, env + "__")
        else:
            names.add(env)
    return names


def test_the_production_services_are_all_there(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVICES


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_service_has_a_pinned_image_and_a_healthcheck(compose: dict[str, Any], service: str) -> None:
    spec = compose["services"][service]
    image = spec["image"]
    assert re.fullmatch(r"[\w./-]+:[\w.-]+", image), f"{service}: image {image!r} has no tag"
    assert not image.endswith(":latest"), f"{service}: pin a version, not latest"
    assert spec["healthcheck"]["test"], f"{service} has no healthcheck"


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    used = set()
    for spec in compose["services"].values():
        for mount in spec.get("volumes", []):
            source = mount.split(":", 1)[0]
            if not source.startswith((".", "/")):
                used.add(source)
    assert used and used <= set(compose["volumes"])


def test_every_lorag_variable_is_a_real_setting(compose: dict[str, Any]) -> None:
    known = _setting_names(Settings)
    for name, spec in compose["services"].items():
        for variable in spec.get("environment", {}):
            if variable.startswith("LORAG_"):
                assert variable in known, f"{name}: {variable} is not a lorag setting"


def test_secrets_are_required_not_defaulted() -> None:
    text = COMPOSE.read_text()
    for secret in ("POSTGRES_PASSWORD", "QDRANT_API_KEY", "VLLM_API_KEY"):
        uses = re.findall(r"\$\{" + secret + r"([^}]*)\}", text)
        assert uses, f"{secret} is never used"
        assert all(use.startswith(":?") for use in uses), f"{secret} must be ${{{secret}:?...}}"


def test_the_gpu_model_server_serves_the_registry_and_the_api_uses_it(compose: dict[str, Any]) -> None:
    vllm = compose["services"]["vllm"]
    assert vllm["command"] == ["lorag", "serve-model"]  # --enable-lora and the active adapters: test_model_server
    assert vllm["build"]["args"]["EXTRAS"] == "vllm"
    devices = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    adapters = [mount for mount in vllm["volumes"] if mount.startswith("adapters:")]
    assert adapters == [mount for mount in compose["services"]["api"]["volumes"] if mount.startswith("adapters:")]
    api = compose["services"]["api"]["environment"]
    assert api["LORAG_GENERATOR__BACKEND"] == "openai" and api["LORAG_GENERATOR__BASE_URL"] == "http://vllm:8000/v1"


DOCKERFILE = COMPOSE.parent / "Dockerfile"


def test_every_lorag_service_command_is_a_real_command(compose: dict[str, Any]) -> None:
    import typer

    from lorag.app.cli import cli

    commands = typer.main.get_command(cli).commands
    for name, spec in compose["services"].items():
        command = spec.get("command") or []
        if command[:1] == ["lorag"]:
            assert command[1] in commands, f"{name}: `lorag {command[1]}` is not a command"
            known = {opt for param in commands[command[1]].params for opt in getattr(param, "opts", [])}
            flags = [word for word in command[2:] if word.startswith("--")]
            assert set(flags) <= known, f"{name}: unknown options {set(flags) - known}"


def test_the_image_holds_what_the_runtime_reads(compose: dict[str, Any]) -> None:
    """The code folders, the static widget and migrations inside them, and the task files compose points at."""
    copied = {line.split()[1] for line in DOCKERFILE.read_text().splitlines() if line.startswith("COPY ")}
    folders = set(tomllib.loads((COMPOSE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
                  .values())  # every folder the wheel is built from: the code and the sample data
    assert {"core", "ingest", "retrieval", "finetune", "app", "samples"} <= folders
    assert folders <= copied, f"the Dockerfile does not copy {folders - copied}"
    workdir = next(line.split()[1] for line in DOCKERFILE.read_text().splitlines() if line.startswith("WORKDIR "))
    tasks = Path(compose["x-lorag-env"]["LORAG_FINETUNE__TASKS"])
    relative = tasks.relative_to(workdir)
    assert relative.parts[0] in copied and (COMPOSE.parent / relative).is_dir()
    for service in ("api", "scheduler", "worker"):
        environment = compose["services"][service]["environment"]
        assert environment["LORAG_FINETUNE__TASKS"] == str(tasks), service
