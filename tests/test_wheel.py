"""An installed lorag works outside its repository: build the wheel, install it into a clean virtualenv and run it
from an empty folder, as a user of the package would.

The clean virtualenv borrows third-party packages (torch, transformers, ...) from this one through a `.pth` line,
which adds that folder to `sys.path` without running its `.pth` files: the checkout's editable install (a path
finder installed by such a file) stays invisible, so every `lorag` module comes from the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import MODELS_CACHE, REPO, free_port
from tests.test_cli import _wait_ready

pytestmark = pytest.mark.slow

# What the runtime reads besides code: the widget, the migrations, the sample tasks and knowledge bases.
PACKAGE_DATA = ["lorag/app/http/static/widget.js", "lorag/core/migrations/env.py",
                "lorag/core/migrations/script.py.mako",
                "lorag/samples/tasks/support.yaml", "lorag/samples/tasks/menu-tagging.yaml",
                "lorag/samples/tasks/data/menu.jsonl", "lorag/samples/kb/support_qa.jsonl",
                "lorag/samples/kb/support/refund_policy.pdf", "lorag/samples/kb/experts/oncall_rota_rules.md",
                "lorag/samples/menu/menu.csv", "lorag/samples/menu/taxonomy.yaml"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the tracked sources (no build outputs or local state)."""
    source = tmp_path_factory.mktemp("source")
    tracked = subprocess.run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard"], capture_output=True,
                             text=True, check=True).stdout.split()
    for name in tracked:
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(out), str(source)], check=True, timeout=600)
    (built,) = out.glob("lorag-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A clean virtualenv with only the wheel installed; returns its `lorag` script."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], capture_output=True, text=True, check=True).stdout.strip())
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
                    "--target", str(site), str(wheel)], check=True, timeout=600)
    (site / "_borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    script = venv / "bin" / "lorag"
    script.write_text(f"#!{venv / 'bin' / 'python'}\nimport sys\nfrom lorag.app.cli import main\nsys.exit(main())\n")
    script.chmod(0o755)
    yield script


def test_the_wheel_installs_one_namespace_with_its_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert sorted(tops) == ["lorag", "lorag-0.1.0.dist-info"], f"top-level names in the wheel: {sorted(tops)}"
    missing = [path for path in PACKAGE_DATA if path not in names]
    assert not missing, f"the wheel lacks {missing}"
    assert "lorag/__init__.py" not in names  # an implicit namespace: other distributions may add to it


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LORAG_", "PYTHON"))}
    env.update(LORAG_HOME=str(home / "home"), LORAG_MODELS__CACHE_DIR=str(MODELS_CACHE),
               LORAG_FINETUNE__FIRST_ADAPTERS="false", HF_HUB_OFFLINE="1")
    return env


def _run(script: Path, args: list[str], env: dict[str, str], cwd: Path, timeout: int) -> str:
    result = subprocess.run([str(script), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"lorag {' '.join(args)}: {result.stdout}\n{result.stderr}"
    return result.stdout


def test_an_installed_lorag_sets_up_serves_answers_and_trains_from_an_empty_folder(
        installed: Path, tmp_path: Path, models_dir: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    env = _env(tmp_path)
    where = _run(installed, ["config"], env, empty, 120)
    assert str(REPO) not in where.replace(str(MODELS_CACHE), "")  # tasks resolve inside the installed package
    assert "site-packages" in where or "lib/python" in where
    setup = _run(installed, ["setup", "--no-adapters"], env, empty, 900)
    assert "knowledge base support (public)" in setup
    port = free_port()
    server = subprocess.Popen([str(installed), "serve", "--port", str(port)], env=env, cwd=empty,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert _wait_ready(f"http://127.0.0.1:{port}/readyz", server, timeout_s=300) == 200
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/ask", json={"question": "How long do refunds take?",
                                                                      "kb": "support"}, timeout=300)
        assert answer.status_code == 200, answer.text
        assert "answer" in answer.json() and "citations" in answer.json()
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=30).status_code == 200  # the widget's demo page
    finally:
        server.terminate()
        server.communicate(timeout=60)
    nightly = _run(installed, ["nightly", "--task", "menu-tagging", "--time-budget", "30", "--max-eval", "8"], env,
                   empty, 1500)
    outcome = next((line for line in nightly.splitlines() if line.startswith("menu-tagging: ")), nightly)
    assert outcome.startswith(("menu-tagging: active", "menu-tagging: rejected")), nightly  # not "failed"
    assert list((tmp_path / "home").rglob("adapter_config.json")), "no adapter was written"
    assert sorted(p.name for p in empty.iterdir()) == [], "lorag wrote into the working folder"
