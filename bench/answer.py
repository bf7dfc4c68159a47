"""End-to-end latency of cited answers on the embedded default: `/v1/ask` and streamed chat completions.

Starts `lorag serve` on loopback over a LORAG_HOME holding the sample `support` knowledge base, asks the
sample questions, and prints JSON: total latency; for streams, the time to the first verified sentence (the
first text a client sees: only verified sentences are streamed) and the server's time to the model's first
token; the split into retrieval, prompt assembly, generation and verification; and the share of retrieval +
prompt in the end-to-end time (target <= 10%).

With `--second-look both`, a second server with the second look off (LORAG_RETRIEVAL__SECOND_LOOK=false) is asked
each question right after the first: what asking again after an abstention costs, under the same load.

    .venv/bin/python bench/answer.py --questions 12 --out bench/results/answer.json
    .venv/bin/python bench/answer.py --questions 20 --second-look both --out bench/results/answer-second-look.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import common  # bench/common.py: the repository on sys.path, packaged models only
import httpx

TARGET_SHARE = 0.10


def start_server(home: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    kb = common.REPO / "samples" / "kb" / "support"
    subprocess.run([sys.executable, "-m", "lorag.app", "ingest", str(kb), "--kb", "support"],
                   env=env, cwd=home, check=True, capture_output=True)
    server = subprocess.Popen([sys.executable, "-m", "lorag.app", "serve", "--port", str(port)], env=env, cwd=home,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    server.kill()
    raise SystemExit("the server did not become ready")


def stream_timings(base: str, question: str) -> tuple[float, float]:
    """(first verified sentence as the client sees it, the model's first token as the server timed it)."""
    body = {"messages": [{"role": "user", "content": question}], "stream": True, "kb": "support"}
    started, first, server = time.perf_counter(), None, None
    with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=300) as response:
        for line in response.iter_lines():  # read to the end: the request is only done at [DONE]
            if not line.startswith("data: {"):
                continue
            if first is None and '"content"' in line:
                first = time.perf_counter() - started
            timings = json.loads(line[len("data: "):]).get("timings")
            if timings:  # the final chunk; an abstention before generation has no first token
                server = timings["first_token_s"] or timings["total_s"]
    whole = time.perf_counter() - started
    return (first if first is not None else whole), (server if server is not None else whole)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def spread(values: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(values), 3), "p95": round(percentile(values, 0.95), 3)}


@dataclass
class Measured:
    """One server's answers: per question its wall time, the server's split, whether it abstained or hit the cap,
    and the stream's first verified sentence and first token."""

    timings: list[dict[str, float]] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)
    sentences: list[float] = field(default_factory=list)
    tokens: list[float] = field(default_factory=list)
    abstained: int = 0
    capped: int = 0

    def ask(self, base: str, question: str) -> None:
        started = time.perf_counter()
        response = httpx.post(f"{base}/v1/ask", json={"question": question, "kb": "support"}, timeout=300)
        if response.status_code != 200:
            raise SystemExit(f"/v1/ask answered {response.status_code}: {response.text}")
        body = response.json()
        self.walls.append(time.perf_counter() - started)
        self.timings.append(body["timings"])
        self.abstained += body["abstained"]
        self.capped += body["finish_reason"] == "length"
        first_sentence, first_token = stream_timings(base, question)
        self.sentences.append(first_sentence)
        self.tokens.append(first_token)

    def summary(self) -> dict[str, object]:
        def mean(key: str) -> float:
            return round(statistics.mean(t[key] for t in self.timings), 4)

        share = (mean("retrieval_s") + mean("prompt_s")) / statistics.mean(self.walls)
        return {
            "questions": len(self.walls), "abstained": self.abstained, "finished_by_length": self.capped,
            "end_to_end_s": spread(self.walls), "mean_end_to_end_s": round(statistics.mean(self.walls), 3),
            "time_to_first_verified_sentence_s": spread(self.sentences), "time_to_first_token_s": spread(self.tokens),
            "mean_split_s": {key: mean(key) for key in ("retrieval_s", "prompt_s", "generation_s", "verification_s")},
            "retrieval_plus_prompt_share": round(share, 4), "target_share": TARGET_SHARE,
            "meets_target": share <= TARGET_SHARE,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=12)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--second-look", choices=["on", "both"], default="on",
                        help="both: a second server with the second look off, asked each question in turn")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    qa = common.REPO / "samples" / "kb" / "support_qa.jsonl"
    rows = [json.loads(line) for line in qa.read_text().splitlines() if line]
    questions = [row["question"] for row in rows if row["doc"]][: args.questions]
    looks = {"on": "true"} if args.second_look == "on" else {"on": "true", "off": "false"}

    with tempfile.TemporaryDirectory(prefix="lorag-bench-answer-") as folder:
        servers: dict[str, tuple[str, subprocess.Popen[bytes]]] = {}
        try:
            for offset, (look, value) in enumerate(looks.items()):
                home = Path(folder) / look
                home.mkdir()
                env = {k: v for k, v in os.environ.items() if not k.startswith("LORAG_")}  # with HF_HUB_OFFLINE
                env.update(LORAG_HOME=str(home / "home"), LORAG_MODELS__CACHE_DIR=str(common.MODELS),
                           PYTHONPATH=str(common.REPO), LORAG_LOG__LEVEL="WARNING",
                           LORAG_RETRIEVAL__SECOND_LOOK=value,
                           LORAG_GENERATOR__TIMEOUT_S="600")  # measure slow answers on a busy machine, don't fail
                port = args.port + offset
                servers[look] = (f"http://127.0.0.1:{port}", start_server(home, port, env))
            measured = {look: Measured() for look in servers}
            for question in questions:  # in turn: both servers see the same load
                for look, (base, _server) in servers.items():
                    measured[look].ask(base, question)
        finally:
            for _base, server in servers.values():
                server.terminate()
                server.wait(30)

    note = "generator: SmolLM2-135M-Instruct in-process on CPU, greedy, max 192 new tokens"
    if args.second_look == "on":
        result = {"benchmark": "answer", **measured["on"].summary(), "note": note}
    else:
        on, off = measured["on"], measured["off"]
        result = {"benchmark": "answer", "second_look": {look: m.summary() for look, m in measured.items()},
                  "mean_end_to_end_ratio_on_to_off": round(statistics.mean(on.walls) / statistics.mean(off.walls), 3),
                  "slower_with_the_look": sum(a > 1.2 * b for a, b in zip(on.walls, off.walls, strict=True)),
                  "note": note + "; a question is counted slower when it took 20% longer with the second look"}
    common.emit({**result, "machine": common.machine()}, args.out)


if __name__ == "__main__":
    main()
