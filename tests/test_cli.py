"""The `lorag` command as a user runs it: a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import MODELS_CACHE, free_port

LORAG = [sys.executable, "-m", "lorag.app"]


def run_lorag(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LORAG, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def lorag_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORAG_")}
    # A server trains first adapters in the background only in the tests about that (they set it to true).
    env.update(LORAG_HOME=str(tmp_path / "home"), LORAG_MODELS__CACHE_DIR=str(MODELS_CACHE),
               **{"LORAG_FINETUNE__FIRST_ADAPTERS": "false", **extra})
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    return env


def test_config_prints_resolved_settings_with_secrets_redacted(tmp_path: Path) -> None:
    env = lorag_env(tmp_path, LORAG_STORE__API_KEY="sk-very-secret")
    result = run_lorag(["config"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["home"] == str(tmp_path / "home")
    assert shown["store"]["api_key"] == "**********"
    assert "sk-very-secret" not in result.stdout


def test_bad_settings_exit_non_zero_listing_every_problem(tmp_path: Path) -> None:
    env = lorag_env(tmp_path, LORAG_SERVER__PORT="0", LORAG_STORE__BACKEND="pinecone")
    result = run_lorag(["config"], env, tmp_path)
    assert result.returncode == 1
    assert "LORAG_SERVER__PORT" in result.stderr and "LORAG_STORE__BACKEND" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_setup_then_serve_is_ready(tmp_path: Path, models_dir: Path) -> None:
    """`make run`'s path: setup ingests the samples and trains a demo adapter, serve answers with it.
    A tiny task stands in for the sample tasks, whose demo training takes minutes (measured in the README)."""
    from tests.finetune.test_nightly import SAVOURY, SWEET, TASK

    tasks = tmp_path / "tasks"
    tasks.mkdir()
    rows = [{"item": i, "label": "sweet"} for i in SWEET] + [{"item": i, "label": "savoury"} for i in SAVOURY]
    (tasks / "items.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    (tasks / "taste.yaml").write_text(TASK.replace("gate: {json_validity: 0.0}", "gate: {}"))
    env = lorag_env(tmp_path, LORAG_FINETUNE__TASKS=str(tasks), LORAG_FINETUNE__PARITY_PROMPTS="1")
    setup = run_lorag(["setup"], env, tmp_path)
    assert setup.returncode == 0, setup.stderr
    assert "model ready: packaged:smollm2-135m-instruct" in setup.stdout
    assert "taste: active taste@" in setup.stdout, setup.stdout
    version = setup.stdout.split("taste: active ")[1].split()[0]
    again = run_lorag(["setup"], env, tmp_path)  # idempotent: nothing is trained twice
    assert again.returncode == 0 and f"adapters in service: {version}" in again.stdout, again.stdout

    port = free_port()
    server = subprocess.Popen([*LORAG, "serve", "--port", str(port)], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        status = _wait_ready(f"http://127.0.0.1:{port}/readyz", server)
        assert status == 200
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10).json()["data"]
        assert version in [model["id"] for model in models]
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    # uvicorn re-raises SIGTERM after a graceful shutdown
    assert server.returncode in (0, -15), output
    assert "Application shutdown complete" in output


def _wait_ready(url: str, server: subprocess.Popen[str], timeout_s: float = 120) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"server exited early: {server.communicate()[0]}")
        try:
            return httpx.get(url, timeout=2).status_code
        except httpx.TransportError:
            time.sleep(0.5)
    raise AssertionError(f"{url} not ready in {timeout_s}s")


@pytest.mark.slow
def test_ingest_and_sync_from_the_command_line(tmp_path: Path) -> None:
    env = lorag_env(tmp_path)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "refunds.md").write_text("# Refunds\n\nRefunds take 5 working days.\n")
    (docs / "hours.txt").write_text("Support is open from 8:00 to 22:00 every day.\n")
    (docs / "broken.csv").write_text("dish,price\nsoup,4,extra\n")

    first = run_lorag(["ingest", str(docs), "--kb", "support"], env, tmp_path)
    assert first.returncode == 1  # one document failed; the others are indexed
    assert "indexed 2 (2 chunks), unchanged 0, deleted 0, failed 1" in first.stdout
    assert "broken.csv" in first.stderr and "row" in first.stderr
    assert "docs/s" in first.stdout

    (docs / "broken.csv").unlink()
    (docs / "hours.txt").unlink()
    (docs / "refunds.md").write_text("# Refunds\n\nRefunds take 3 working days.\n")
    second = run_lorag(["sync", str(docs), "--kb", "support"], env, tmp_path)
    assert second.returncode == 0, second.stderr
    assert "indexed 1 (1 chunks), unchanged 0, deleted 2, failed 0" in second.stdout


def test_ingest_refuses_a_bad_knowledge_base_name_before_storing_anything(tmp_path: Path) -> None:
    result = run_lorag(["ingest", str(tmp_path), "--kb", "bad name!"], lorag_env(tmp_path), tmp_path)
    assert result.returncode == 1
    assert "knowledge base name 'bad name!'" in result.stderr
    assert not (tmp_path / "home" / "lorag.db").exists()


@pytest.mark.parametrize("command", [["ask", "Hello?"], ["ingest", "."], ["sync", "."], ["eval", "retrieval"],
                                     ["eval", "answers"]])
def test_a_misspelt_audience_is_refused_by_every_command_before_anything_is_opened(tmp_path: Path,
                                                                                  command: list[str]) -> None:
    """`--audience publc` once meant public *and* internal documents in `lorag eval retrieval`."""
    args = [*command, "--kb", "support", "--audience", "publc"]
    if command[0] == "eval":
        args += ["--qa", str(tmp_path / "qa.jsonl")]
    result = run_lorag(args, lorag_env(tmp_path), tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "'publc' is not one of 'public', 'internal'" in " ".join(result.stderr.split()).replace("│ ", "")
    assert not (tmp_path / "home").exists()


def test_every_help_screen_shows_plain_metavars_and_choices(capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """No `<bool>` after a flag, no `<str>` for a value, and audiences list their choices."""
    import typer

    from lorag.app.cli import cli, plain_metavars

    monkeypatch.setenv("COLUMNS", "200")
    command = typer.main.get_command(cli)
    plain_metavars(command)
    paths: list[list[str]] = [[]] + [[name] for name in command.commands]
    paths += [[group, name] for group, sub in command.commands.items() for name in getattr(sub, "commands", {})]
    for path in paths:
        with pytest.raises(SystemExit):
            command.main([*path, "--help"], prog_name="lorag")
        shown = capsys.readouterr().out
        assert "Usage: lorag" in shown, (path, shown)
        assert "<bool>" not in shown and "<str>" not in shown, (path, shown)
        if "--audience" in shown:
            assert "[public|internal]" in shown, (path, shown)


def test_config_shows_what_an_empty_setting_means(tmp_path: Path) -> None:
    shown = json.loads(run_lorag(["config"], lorag_env(tmp_path), tmp_path).stdout)
    assert shown["finetune"]["tasks"] is None
    assert shown["finetune"]["tasks_resolved"].endswith("samples/tasks")
    assert shown["database"]["url_resolved"].startswith("sqlite:///")
