"""The nightly loop with real processes: `lorag nightly` promotes, a running server switches without a restart,
`lorag adapters rollback` switches it back."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.finetune.test_nightly import SAVOURY, SWEET, TASK
from tests.test_cli import _wait_ready, lorag_env

pytestmark = pytest.mark.slow


def lorag(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lorag.app", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def served(base: str) -> list[str]:
    return [entry["id"] for entry in httpx.get(f"{base}/v1/models", timeout=10).json()["data"]]


def wait_for(condition, timeout_s: float = 30) -> None:  # noqa: ANN001 - any zero-argument predicate
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the server did not pick up the registry's change"
        time.sleep(1.0)  # under the API's 120 requests a minute per caller, however long the server takes


def taste_task(tmp_path: Path) -> Path:
    """A folder with the tiny `taste` task and its data, gated on nothing but parity."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    rows = [{"item": i, "label": "sweet"} for i in SWEET] + [{"item": i, "label": "savoury"} for i in SAVOURY]
    (tasks / "items.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    (tasks / "taste.yaml").write_text(TASK.replace("gate: {json_validity: 0.0}", "gate: {}"))
    return tasks


def test_promotion_and_rollback_reach_a_running_server(tmp_path: Path, models_dir: Path) -> None:
    tasks = taste_task(tmp_path)
    env = lorag_env(tmp_path, LORAG_FINETUNE__TASKS=str(tasks), LORAG_FINETUNE__POLL_S="0.5",
                    LORAG_FINETUNE__DRAIN_S="1", LORAG_FINETUNE__PARITY_PROMPTS="1")

    first = lorag(["nightly"], env, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "taste: active taste@" in first.stdout
    version_one = first.stdout.split("taste: active ")[1].split()[0]

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "lorag.app", "serve", "--port", str(port)], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        assert _wait_ready(f"{base}/readyz", server) == 200
        assert version_one in served(base)

        second = lorag(["nightly", "--task", "taste"], env, tmp_path)  # beside the running server
        assert second.returncode == 0, second.stdout + second.stderr
        version_two = second.stdout.split("taste: active ")[1].split()[0]
        wait_for(lambda: version_two in served(base))
        wait_for(lambda: version_one not in served(base))  # drained, then unloaded

        listed = lorag(["adapters", "list"], env, tmp_path).stdout
        assert f"{version_two}" in listed and "active" in listed and "retired" in listed

        rolled = lorag(["adapters", "rollback", "taste"], env, tmp_path)
        assert rolled.returncode == 0 and version_one in rolled.stdout
        wait_for(lambda: version_one in served(base))
        wait_for(lambda: version_two not in served(base))

        again = lorag(["adapters", "promote", version_one], env, tmp_path)
        assert again.returncode == 1 and "already the active version" in again.stderr
        shown = json.loads(lorag(["adapters", "show", version_one], env, tmp_path).stdout)
        assert shown["status"] == "active" and shown["gate"]["parity"] is True
    finally:
        server.terminate()
        server.communicate(timeout=30)


def test_a_server_serves_first_and_trains_its_first_adapters_after(tmp_path: Path, models_dir: Path) -> None:
    """`make run`'s path: ready with the base model at once, a first adapter trained in the background with its
    progress shown, and put into service without a restart."""
    tasks = taste_task(tmp_path)
    env = lorag_env(tmp_path, LORAG_FINETUNE__TASKS=str(tasks), LORAG_FINETUNE__POLL_S="0.5",
                    LORAG_FINETUNE__PARITY_PROMPTS="1", LORAG_FINETUNE__FIRST_ADAPTERS="true")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "lorag.app", "serve", "--port", str(port)], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        assert _wait_ready(f"{base}/readyz", server) == 200
        phases: set[str] = set()

        def in_service() -> str | None:
            [task] = httpx.get(f"{base}/v1/models", timeout=10).json()["tasks"]
            if task["training"]:
                phases.add(task["training"]["phase"])
            return task["in_service"]

        assert in_service() is None  # ready before any adapter: the base model answers meanwhile
        wait_for(lambda: in_service() is not None, timeout_s=400)
        version = in_service()
        assert version is not None and version.startswith("taste@") and version in served(base)
        assert phases, "the training in progress was never shown"
        listed = lorag(["adapters", "list"], env, tmp_path).stdout
        assert version in listed and "active" in listed
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert "training first adapters in the background: taste" in output
