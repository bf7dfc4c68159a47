"""A bounded load on `/v1/ask` against the embedded default: throughput, latency, errors, and that every request
got an answer or a clear 429/503.

Starts `lorag serve` on loopback over a LORAG_HOME holding the sample `support` knowledge base, with keys
required. `--clients` threads ask the sample questions in a loop for `--seconds`, each with its own key; one
extra "greedy" client has a key limited to `--greedy-rate` requests a minute and asks as fast as it can, so the
rate limit is exercised beside the real load. Prints JSON:

- requests/s sustained (answers, and all responses), p50/p95 latency of answers;
- every status seen; `unclear` counts responses that were neither 200 nor a 429/503 carrying `Retry-After` and
  the OpenAI error envelope, plus transport errors (target: 0);
- the greedy client's 429s.

    .venv/bin/python bench/load.py --clients 4 --seconds 120 --out bench/results/load.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import common  # bench/common.py: the repository on sys.path, packaged models only
import httpx
from answer import percentile, start_server  # bench/answer.py, beside this script


def questions() -> list[str]:
    qa = common.REPO / "samples" / "kb" / "support_qa.jsonl"
    rows = [json.loads(line) for line in qa.read_text().splitlines() if line]
    return [row["question"] for row in rows]


def make_key(home: Path, env: dict[str, str], name: str, rate: int | None) -> str:
    command = [sys.executable, "-m", "lorag.app", "keys", "create", "--name", name, "--scope", "chat:public"]
    command += ["--rate", str(rate)] if rate else []
    return subprocess.run(command, env=env, cwd=home, check=True, capture_output=True, text=True).stdout.strip()


def classify(response: httpx.Response) -> str:
    if response.status_code == 200:
        return "answer"
    clear = response.status_code in (429, 503) and response.headers.get("retry-after") and \
        response.json().get("error", {}).get("message")
    return f"clear {response.status_code}" if clear else f"unclear {response.status_code}"


def client(base: str, key: str, asks: list[str], stop: threading.Event, offset: int, log: list[tuple]) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    index = offset
    with httpx.Client(base_url=base, headers=headers, timeout=300) as http:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                outcome = classify(http.post("/v1/ask", json={"question": asks[index % len(asks)], "kb": "support"}))
            except httpx.HTTPError as error:
                outcome = f"unclear {type(error).__name__}"
            log.append((key, outcome, time.perf_counter() - started, time.perf_counter()))
            index += 1
            if outcome != "answer":
                time.sleep(0.5)  # a refused client tries again soon, not in a tight loop that starves the 2 cores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--greedy-rate", type=int, default=1, help="requests a minute for the greedy client's key")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        env = {**os.environ, "LORAG_HOME": str(home / "home"),  # with common's HF_HUB_OFFLINE
               "LORAG_MODELS__CACHE_DIR": str(common.MODELS), "LORAG_SERVER__REQUIRE_KEYS": "true",
               "LORAG_FINETUNE__IN_PROCESS": "false", "PYTHONPATH": str(common.REPO)}
        keys = [make_key(home, env, f"client-{i}", None) for i in range(args.clients)]
        greedy = make_key(home, env, "greedy", args.greedy_rate)
        server = start_server(home, args.port, env)
        base = f"http://127.0.0.1:{args.port}"
        log: list[tuple] = []
        stop = threading.Event()
        asks = questions()
        threads = [threading.Thread(target=client, args=(base, key, asks, stop, i * 7, log))
                   for i, key in enumerate([*keys, greedy])]
        started = time.perf_counter()
        try:
            for thread in threads:
                thread.start()
            time.sleep(args.seconds)
            stop.set()
            for thread in threads:
                thread.join()
        finally:
            server.terminate()
            server.wait(60)
        elapsed = time.perf_counter() - started
    common.emit(report(args, log, greedy, elapsed), args.out)


def report(args: argparse.Namespace, log: list[tuple], greedy: str, elapsed: float) -> dict[str, Any]:
    answers = [latency for _key, outcome, latency, _at in log if outcome == "answer"]
    statuses = Counter(outcome for _key, outcome, _latency, _at in log)
    greedy_statuses = Counter(outcome for key, outcome, _latency, _at in log if key == greedy)
    result = {
        "benchmark": "load", "clients": args.clients, "seconds": round(elapsed, 1), "requests": len(log),
        "answers_per_s": round(len(answers) / elapsed, 3), "responses_per_s": round(len(log) / elapsed, 3),
        "latency_s": {"p50": round(percentile(answers, 0.5), 2), "p95": round(percentile(answers, 0.95), 2)}
        if answers else None,
        "statuses": dict(statuses), "greedy_client": {"rate_per_minute": args.greedy_rate, **greedy_statuses},
        "error_rate": round(sum(n for s, n in statuses.items() if s != "answer") / max(len(log), 1), 4),
        "unclear": sum(n for s, n in statuses.items() if s.startswith("unclear")),
        "target": "every request answered or refused with a clear 429/503 (unclear == 0)",
        "machine": common.machine(),
    }
    result["meets_target"] = result["unclear"] == 0
    return result


if __name__ == "__main__":
    main()
