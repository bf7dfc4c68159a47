"""`build_*` for generators: settings in, the backend they name out."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from lorag.core import models
from lorag.core.errors import ConfigError
from lorag.core.settings import Settings
from lorag.serving.batching import BatchingGenerator
from lorag.serving.local import TransformersGenerator
from lorag.serving.protocol import Generator
from lorag.serving.remote import OpenAIGenerator

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def build_generator(backend: Literal["transformers", "openai"], *, model: PreTrainedModel | None,
                    tokenizer: PreTrainedTokenizerBase | None, base_name: str, adapters: Mapping[str, Path],
                    base_url: str | None, api_key: str | None, timeout_s: float,
                    repetition_penalty: float = 1.0) -> Generator:
    if backend == "transformers":
        if model is None or tokenizer is None:
            raise ConfigError("generator backend 'transformers' needs the loaded base model and tokenizer")
        return TransformersGenerator(model, tokenizer, base_name=base_name, adapters=adapters, timeout_s=timeout_s,
                                     repetition_penalty=repetition_penalty)
    if backend == "openai":
        if not base_url:
            raise ConfigError("generator backend 'openai' needs LORAG_GENERATOR__BASE_URL, e.g. http://vllm:8000/v1")
        return OpenAIGenerator(base_url, api_key, base_name=base_name, timeout_s=timeout_s, tokenizer=tokenizer,
                               repetition_penalty=repetition_penalty)
    raise ConfigError(f"unknown generator backend {backend!r}: use 'transformers' or 'openai'")

def build_answer_generator(settings: Settings) -> Generator:
    """The in-process model (embedded default) or a client of an OpenAI-compatible server such as vLLM."""
    section = settings.generator
    ref = models.resolve(settings.models.base, settings.models_dir)
    if section.backend == "transformers":
        model, tokenizer = models.load_causal_lm(ref, settings.models.device)
    else:
        from transformers import AutoTokenizer

        model, tokenizer = None, AutoTokenizer.from_pretrained(ref.location, local_files_only=ref.local)
    api_key = section.api_key.get_secret_value() if section.api_key else None
    generator = build_generator(section.backend, model=model, tokenizer=tokenizer,
                                base_name=models.served_name(settings.models.base), adapters={},
                                base_url=section.base_url, api_key=api_key, timeout_s=section.timeout_s,
                                repetition_penalty=section.repetition_penalty)
    if generator.capabilities.batch and section.batch_max > 1:
        # A server (vLLM) batches concurrent requests itself; the in-process model needs this in front of it.
        return BatchingGenerator(generator, max_batch=section.batch_max, max_wait_s=section.batch_wait_s)
    return generator
