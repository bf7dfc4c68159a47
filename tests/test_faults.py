"""Faults on real processes: a nightly run killed mid-training leaves serving untouched and resumes when run again;
an unreachable vector store is a clear error with nothing half-registered."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import db
from tests.conftest import free_port
from tests.finetune.test_nightly import SAVOURY, SWEET, TASK
from tests.test_cli import lorag_env

pytestmark = pytest.mark.slow


def test_a_nightly_run_killed_mid_training_resumes_and_serving_is_untouched(tmp_path: Path, models_dir: Path) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    rows = [{"item": i, "label": "sweet"} for i in SWEET] + [{"item": i, "label": "savoury"} for i in SAVOURY]
    (tasks / "items.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    # Long enough to be killed after its first checkpoint (every 20 steps), short enough for CI.
    (tasks / "taste.yaml").write_text(TASK.replace("max_steps: 4", "max_steps: 24, epochs: 100").replace(
        "gate: {json_validity: 0.0}", "gate: {}"))
    env = lorag_env(tmp_path, LORAG_FINETUNE__TASKS=str(tasks), LORAG_FINETUNE__PARITY_PROMPTS="1")
    command = [sys.executable, "-m", "app", "nightly"]
    checkpoint = tmp_path / "home" / "adapters" / ".staging" / "taste" / "checkpoint" / "state.json"

    killed = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    deadline = time.monotonic() + 300
    while not checkpoint.exists():
        assert killed.poll() is None, killed.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.2)
    killed.send_signal(signal.SIGKILL)
    killed.wait(30)
    listed = subprocess.run([*command[:-1], "adapters", "list"], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert "taste@" not in listed.stdout + listed.stderr  # nothing half-made was registered or promoted
    step = json.loads(checkpoint.read_text())["state"]["step"]

    again = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resuming from step {step} of 24" in again.stderr, again.stderr[-3000:]
    assert "taste: active taste@" in again.stdout
    version = again.stdout.split("taste: active ")[1].split()[0]
    run = json.loads((tmp_path / "home" / "adapters" / version / "run.json").read_text())
    assert run["training"]["steps"] == 24 and not checkpoint.parent.exists()


def test_an_unreachable_vector_store_is_a_clear_error_and_nothing_is_registered(tmp_path: Path,
                                                                                models_dir: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Refunds\n\nRefunds take five days.\n")
    env = lorag_env(tmp_path, LORAG_STORE__BACKEND="qdrant", LORAG_STORE__URL=f"http://127.0.0.1:{free_port()}",
                    LORAG_STORE__TIMEOUT_S="2")
    result = subprocess.run([sys.executable, "-m", "app", "ingest", str(docs), "--kb", "support"], env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "Cannot reach the Qdrant server" in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    engine = db.build_engine(f"sqlite:///{tmp_path / 'home' / 'lorag.db'}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM documents").scalar() == 0
    finally:
        engine.dispose()
