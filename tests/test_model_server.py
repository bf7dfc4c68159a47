"""`lorag serve-model`'s vLLM command line: LoRA on, the active versions loaded, the rank that fits them."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from lorag.core.settings import Settings
from lorag.core.tables import AdapterStatus
from lorag.finetune.registry import AdapterRecord
from lorag.serving.vllm import vllm_command, vllm_environment


def record(tmp_path: Path, name: str, rank: int) -> AdapterRecord:
    path = tmp_path / name
    path.mkdir()
    (path / "adapter_config.json").write_text(json.dumps({"r": rank}))
    return AdapterRecord(name, name.split("@")[0], AdapterStatus.ACTIVE, path, "base", "h", {}, None,
                         datetime.now(UTC), None, None)


def test_the_command_serves_the_active_versions_with_lora(tmp_path: Path,
                                                           make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(vllm={"port": 8123, "max_lora_rank": 8, "extra_args": ["--seed", "1"]},
                             generator={"api_key": "sekret"})
    active = {"support": record(tmp_path, "support@1", 32), "menu": record(tmp_path, "menu@2", 8)}
    command = vllm_command(settings, active)
    assert command[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert "--enable-lora" in command and command[command.index("--port") + 1] == "8123"
    assert command[command.index("--max-lora-rank") + 1] == "32"  # the largest real rank, over the setting
    modules = command[command.index("--lora-modules") + 1:command.index("--lora-modules") + 3]
    assert modules == [f"support@1={tmp_path / 'support@1'}", f"menu@2={tmp_path / 'menu@2'}"]
    assert command[command.index("--api-key") + 1] == "sekret" and command[-2:] == ["--seed", "1"]
    assert command[command.index("--dtype") + 1] == "float32"


def test_without_adapters_lora_stays_on_for_later_promotions(make_settings: Callable[..., Settings]) -> None:
    command = vllm_command(make_settings(), {})
    assert "--enable-lora" in command and "--lora-modules" not in command
    assert vllm_environment(command[0])["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"


def test_without_runtime_loading_vllm_gets_no_runtime_lora_api(make_settings: Callable[..., Settings]) -> None:
    command = vllm_command(make_settings(), {})
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING" not in vllm_environment(command[0], runtime_lora=False)
