"""What every benchmark shares: the repository on sys.path, the environment, the machine, and the JSON it prints.

Imported before any `lorag` module (bench/ is on sys.path as the script's own folder); isort keeps it there,
as a third-party import above the first-party ones:

    import common

    from lorag.core import models
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / ".cache" / "models"

# Before bench/ itself, where bench/ingest.py would shadow the ingest package.
sys.path.insert(0, str(REPO))
# The Makefile's defaults, set here because the scripts run without make: packaged models only, no model hub,
# no telemetry, no tokenizer threads beside torch's. At import, since huggingface_hub reads them once at its own.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def machine() -> dict[str, Any]:
    """Where the figures were measured; the load average says how busy the (shared) machine was meanwhile."""
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "load_average": os.getloadavg()}


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (ru_maxrss is in KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def code_sha256(paths: Sequence[str]) -> str:
    """Of the code measured (paths relative to the repository), which a commit id misses in a changed work tree."""
    digest = hashlib.sha256()
    for rel in paths:
        digest.update((REPO / rel).read_bytes())
    return digest.hexdigest()[:16]


def emit(report: dict[str, Any], out: Path | None, *, shown: dict[str, Any] | None = None) -> None:
    """Print the report as JSON and write the same text to `out`, if given.

    `shown` is printed instead where the whole report would flood the terminal; `out` still gets all of it.
    Settings may hold paths: anything JSON has no type for is written as its string.
    """
    text = json.dumps(report, indent=2, default=str)
    print(text if shown is None else json.dumps(shown, indent=2, default=str))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
