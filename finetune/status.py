"""What a training run is doing now, for anyone who asks: the API's `/v1/models`, the demo page, `lorag adapters
list`, in this process or another. One small JSON file per task under `runs/status/`, replaced atomically.

A run writes its phase (preparing → training → evaluating → done | failed) and its step. A file that has not
changed for STALE_S while in a live phase belongs to a run that died; readers ignore it.

>>> import tempfile; folder = Path(tempfile.mkdtemp())
>>> write(folder, "support", phase="training", step=3, total_steps=24)
>>> [(s["task"], s["phase"], s["step"]) for s in live(folder)]
[('support', 'training', 3)]
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

LIVE = ("preparing", "training", "evaluating")
STALE_S = 900.0  # no news from a live run for this long: it died (a step takes seconds; evaluation minutes)


def folder_of(runs_dir: Path) -> Path:
    """Where the statuses live: `LORAG_HOME/runs/status`."""
    return runs_dir / "status"


def write(folder: Path, task: str, **fields: Any) -> None:
    """Merge `fields` into the task's status; never raises (progress must not fail a run)."""
    path = folder / f"{task}.json"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        current = _read(path) or {}
        if fields.get("phase") == "preparing":
            current = {}  # a new run starts clean
        status = {**current, **fields, "task": task, "pid": os.getpid(), "updated_at": time.time()}
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_text(json.dumps(status))
        partial.replace(path)
    except OSError:
        pass


def live(folder: Path, now: float | None = None) -> list[dict[str, Any]]:
    """The runs in progress, by task name."""
    now = time.time() if now is None else now
    statuses = [_read(path) for path in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return [status for status in statuses if status and status.get("phase") in LIVE
            and now - float(status.get("updated_at", 0)) < STALE_S]


def describe(status: dict[str, Any]) -> str:
    """One line: `support: training, step 12 of 24`."""
    line = f"{status['task']}: {status['phase']}"
    if status.get("phase") == "training" and status.get("total_steps"):
        line += f", step {status.get('step', 0)} of {status['total_steps']}"
    return line


def _read(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
