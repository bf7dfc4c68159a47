"""A new user's first `make run`, timed: clone, install, serve, and when each demo adapter went into service.

Clones this repository's HEAD into a fresh folder (`git clone --no-local`, so nothing of this checkout's venv,
home or caches comes along), runs `make run` there on a free port, and polls:

- `ready_s`: when `/readyz` first answered 200 (the installs included);
- `page_s`: when the demo page loaded and `/v1/ask` answered the demo's question;
- for each task, when it went into service (`/v1/models` → `tasks[].in_service`), or how its first run ended.

Prints JSON (and writes it with `--out`). pip's own download cache is used, as it would be on a user's machine
that has installed Python packages before; `--no-pip-cache` measures a cold one.

    .venv/bin/python bench/first_run.py --out docs/reports/first-run.json
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import common  # bench/common.py: the repository on sys.path, packaged models only
import httpx

QUESTION = "What is the minimum order value for delivery?"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def poll(url: str, started: float, timeout_s: float, process: subprocess.Popen[bytes]) -> float:
    while time.monotonic() - started < timeout_s:
        if process.poll() is not None:
            raise SystemExit(f"make run exited with {process.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return round(time.monotonic() - started, 1)
        except httpx.TransportError:
            pass
        time.sleep(1)
    raise SystemExit(f"{url} did not answer within {timeout_s:.0f}s")


def first_answer(base: str, started: float) -> float:
    page = httpx.get(f"{base}/", timeout=30)
    answer = httpx.post(f"{base}/v1/ask", json={"question": QUESTION, "kb": "support"}, timeout=300)
    assert page.status_code == 200 and answer.status_code == 200, (page.status_code, answer.text[:300])
    return round(time.monotonic() - started, 1)


def adapters(base: str, started: float, timeout_s: float, process: subprocess.Popen[bytes],
             log: Path) -> dict[str, Any]:
    """When each task's first adapter went into service, or how its run ended (from the server's log)."""
    done: dict[str, Any] = {}
    while time.monotonic() - started < timeout_s and process.poll() is None:
        tasks = httpx.get(f"{base}/v1/models", timeout=30).json().get("tasks", [])
        for task in tasks:
            if task["task"] not in done and task["in_service"]:
                done[task["task"]] = {"in_service": task["in_service"], "at_s": round(time.monotonic() - started, 1)}
        ended = [line for line in log.read_text(errors="replace").splitlines() if "first adapter " in line]
        for line in ended:
            name = line.split("first adapter ", 1)[1].split(":", 1)[0]
            done.setdefault(name, {"in_service": None, "outcome": line.split("first adapter ", 1)[1][:300],
                                   "at_s": round(time.monotonic() - started, 1)})
        if tasks and all(task["task"] in done for task in tasks):
            break
        time.sleep(3)
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=3600, help="Seconds to wait for everything.")
    parser.add_argument("--no-pip-cache", action="store_true", help="Measure a cold pip cache.")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="lorag-first-run-"))
    clone = folder / "lorag"
    subprocess.run(["git", "clone", "--quiet", "--no-local", str(common.REPO), str(clone)], check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True).stdout.strip()
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("LORAG_", "VIRTUAL_ENV"))}
    env.update(LORAG_SERVER__PORT=str(port))
    if args.no_pip_cache:
        env["PIP_NO_CACHE_DIR"] = "1"
    log = folder / "make-run.log"
    load_before = os.getloadavg()  # this machine is shared: a run beside other jobs is slower, and says so
    started = time.monotonic()
    with log.open("wb") as output:
        process = subprocess.Popen(["make", "run"], cwd=clone, env=env, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        ready_s = poll(f"{base}/readyz", started, args.timeout, process)
        page_s = first_answer(base, started)
        served = adapters(base, started, args.timeout, process, log)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
    report = {"bench": "first_run", "commit": commit, "machine": common.machine(),
              "pip_cache": not args.no_pip_cache, "ready_s": ready_s, "page_and_first_answer_s": page_s,
              "adapters": served, "load_average_1_5_15min": {"before": load_before, "after": os.getloadavg()},
              "log": str(log)}
    common.emit(report, args.out)


if __name__ == "__main__":
    main()
