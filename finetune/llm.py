"""lorag's Generator behind llama-index's LLM interface, so llama-index components run on the served model.

    llm = GeneratorLLM(generator, max_new_tokens=48)
    llm.complete("Write one question ...").text
"""

from __future__ import annotations

from typing import Any

from llama_index.core.llms import CompletionResponse, CompletionResponseGen, CustomLLM, LLMMetadata
from pydantic import PrivateAttr

from lorag.serving.protocol import Generator

CONTEXT_WINDOW = 8192  # SmolLM2's


class GeneratorLLM(CustomLLM):
    """A completion is one user turn through the chat template, greedy, as the serving path generates."""

    max_new_tokens: int = 48
    model_name: str = "lorag"
    _generator: Generator = PrivateAttr()

    def __init__(self, generator: Generator, max_new_tokens: int = 48) -> None:
        super().__init__(max_new_tokens=max_new_tokens)
        self._generator = generator

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=CONTEXT_WINDOW, num_output=self.max_new_tokens, model_name=self.model_name)

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        # **kwargs: llama-index's interface passes its own options; none of them applies to this generator.
        generation = self._generator.generate([{"role": "user", "content": prompt}], model=None,
                                              max_new_tokens=self.max_new_tokens)
        return CompletionResponse(text=generation.text)

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        def one() -> CompletionResponseGen:
            yield self.complete(prompt)

        return one()
