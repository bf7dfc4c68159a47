"""The one scripted model of the test suite, behind the `Generator` protocol the real backends implement.

A test says what the model writes (`reply`: a text, or a function of the messages and the model name) and,
where it matters, how it streams (`pieces`), why it stopped (`finish_reason`) and what happens to a batch before
it is answered (`FakeBatchGenerator.on_batch`: hold it, fail it). Every request is recorded in `calls`, every
batch in `batches`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from lorag.core.errors import NotFound
from lorag.serving.protocol import Capabilities, Generation, Messages

Reply = str | Callable[[Messages, str | None], str]
Request = tuple[Messages, str | None]


class Call(NamedTuple):
    messages: list[dict[str, str]]
    model: str | None
    max_new_tokens: int
    temperature: float
    avoid: str | None = None


@dataclass
class FakeGenerator:
    capabilities = Capabilities(runtime_adapters=True)
    reply: Reply = ""
    name: str = "base"  # the base model's name: what `models()` lists first and a request without a model gets
    adapters: dict[str, Path] = field(default_factory=dict)
    pieces: int | Callable[[str], list[str]] = 7  # a stream's deltas: pieces of this many characters, or a split
    finish_reason: str = "stop"
    strict_models: bool = False  # an unknown model name is NotFound, as the real backends say
    avoiding: Reply | None = None  # what it writes when a request bars a text (`avoid=`); None: `reply`
    calls: list[Call] = field(default_factory=list)
    closed: list[bool] = field(default_factory=list)  # one True per stream the caller closed or finished

    @property
    def seen(self) -> list[list[dict[str, str]]]:
        """The messages of every request, in order."""
        return [call.messages for call in self.calls]

    def text(self, messages: Messages, model: str | None, avoid: str | None = None) -> str:
        if self.strict_models and model not in (None, *self.models()):
            raise NotFound(f"unknown model {model!r}", param="model")
        reply = self.avoiding if avoid and self.avoiding is not None else self.reply
        return reply if isinstance(reply, str) else reply(messages, model)

    def generate(self, messages: Messages, *, model: str | None, max_new_tokens: int,
                 temperature: float = 0.0, avoid: str | None = None) -> Generation:
        self.calls.append(Call(list(messages), model, max_new_tokens, temperature, avoid))
        text = self.text(messages, model, avoid)
        return Generation(text, model or self.name, 10, self.count_tokens(text), self.finish_reason)

    def stream(self, messages: Messages, *, model: str | None, max_new_tokens: int,
               temperature: float = 0.0, avoid: str | None = None) -> Iterator[str]:
        self.calls.append(Call(list(messages), model, max_new_tokens, temperature, avoid))
        text = self.text(messages, model, avoid)
        deltas = (self.pieces(text) if callable(self.pieces)
                  else [text[start:start + self.pieces] for start in range(0, len(text), self.pieces)])
        try:
            yield from deltas
        finally:
            self.closed.append(True)

    def models(self) -> list[str]:
        return [self.name, *self.adapters]

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def healthy(self) -> bool:
        return True

    def add_adapter(self, name: str, path: Path) -> None:
        self.adapters[name] = path

    def remove_adapter(self, name: str) -> None:
        del self.adapters[name]


@dataclass
class FakeBatchGenerator(FakeGenerator):
    """The same model with `generate_batch`, as the in-process backend has: callers that batch take that path."""

    capabilities = Capabilities(batch=True, runtime_adapters=True)

    score: float | None = None  # what `generate_batch(with_scores=True)` reports as each output's probability
    on_batch: Callable[[Sequence[Request]], None] | None = None  # runs before a batch is answered; may raise
    batches: list[list[Call]] = field(default_factory=list)

    def generate_batch(self, requests: Sequence[Request], *, max_new_tokens: int,
                       with_scores: bool = False) -> list[Generation]:
        self.batches.append([Call(list(messages), model, max_new_tokens, 0.0) for messages, model in requests])
        if self.on_batch is not None:
            self.on_batch(requests)
        out = []
        for messages, model in requests:
            self.calls.append(Call(list(messages), model, max_new_tokens, 0.0))
            text = self.text(messages, model)
            out.append(Generation(text, model or self.name, 10, self.count_tokens(text), self.finish_reason,
                                  self.score if with_scores else None))
        return out
