"""The benchmarks still start: each answers --help from a foreign folder, and their shared JSON output is sound.

The benchmarks themselves take minutes; what can break unnoticed is an import or an argument, which --help
catches (every script imports what it measures at the top).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
SCRIPTS = sorted(path for path in BENCH.glob("*.py") if path.name != "common.py")


@pytest.mark.slow
def test_every_script_answers_help(tmp_path: Path) -> None:
    """All at once (each loads torch and lorag at the top, seconds of import): the suite waits for the slowest."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    started = {script.stem: subprocess.Popen([sys.executable, str(script), "--help"], cwd=tmp_path, env=env,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for script in SCRIPTS}
    assert len(started) == 13
    for name, process in started.items():
        stdout, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, (name, stderr[-2000:])
        assert "usage" in stdout, name


def test_emit_writes_what_it_prints(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    import common

    report = {"benchmark": "demo", "seconds": 1.5, "settings": {"out": tmp_path / "x"}, "load": (0.5, 0.25)}
    out = tmp_path / "results" / "demo.json"  # a folder that does not exist yet
    common.emit(report, out)
    printed = capsys.readouterr().out
    assert out.read_text() == printed
    assert json.loads(printed) == {"benchmark": "demo", "seconds": 1.5, "settings": {"out": str(tmp_path / "x")},
                                   "load": [0.5, 0.25]}


def test_emit_shows_the_brief_and_writes_the_whole(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    import common

    report = {"benchmark": "demo", "items": ["a long", "list"]}
    common.emit(report, tmp_path / "demo.json", shown={"benchmark": "demo"})
    assert json.loads(capsys.readouterr().out) == {"benchmark": "demo"}
    assert json.loads((tmp_path / "demo.json").read_text()) == report
