"""The serving seam: chat messages in, text out, with the adapter chosen per request by the OpenAI `model` field.

One `Generator` protocol for every backend (`serving.local`: transformers + peft in this process;
`serving.remote`: an OpenAI-compatible server such as vLLM), and what each declares it can do (`Capabilities`), so
callers ask a generator rather than test its class.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from lorag.core.errors import ConfigError, InvalidInput

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Messages = Sequence[dict[str, str]]


@dataclass(frozen=True)
class Capabilities:
    """What a backend does beyond `generate`, `stream`, `models`, `count_tokens` and `healthy`."""

    batch: bool = False  # `generate_batch`: many greedy requests decoded together, each with its own adapter
    json_schema: bool = False  # `generate_json`: output constrained to a JSON schema by the server
    runtime_adapters: bool = False  # `add_adapter` / `remove_adapter` while serving
    network: bool = False  # `network(model)`: the in-process weights, for constrained scoring


@dataclass(frozen=True)
class Generation:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" | "length"
    confidence: float | None = None  # geometric-mean probability of the generated tokens, when asked for


class Generator(Protocol):
    """`avoid`: a text the output may not begin with. Both backends bar the first token of `avoid` (as the tokenizer
    spells it on its own) from the whole output: vLLM by OpenAI's `logit_bias` of -100, transformers by
    `suppress_tokens`, so the same request decodes the same on either."""

    capabilities: Capabilities

    def generate(self, messages: Messages, *, model: str | None, max_new_tokens: int,
                 temperature: float = 0.0, avoid: str | None = None) -> Generation: ...

    def stream(self, messages: Messages, *, model: str | None, max_new_tokens: int,
               temperature: float = 0.0, avoid: str | None = None) -> Iterator[str]:
        """Text deltas; joined they equal `generate`'s text under greedy decoding. Close it when done early."""
        ...

    def models(self) -> list[str]:
        """The base model's name first, then the adapters'."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def healthy(self) -> bool: ...


def check_request(messages: Messages, max_new_tokens: int, temperature: float) -> None:
    if not messages:
        raise InvalidInput("messages is empty: send at least one {'role': 'user', 'content': ...}", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message.get("role"), str) or not isinstance(message.get("content"), str):
            raise InvalidInput(f"messages[{index}] needs a string 'role' and 'content'", param="messages")
    if max_new_tokens < 1:
        raise InvalidInput(f"max_tokens must be at least 1, got {max_new_tokens}", param="max_tokens")
    if temperature < 0:
        raise InvalidInput(f"temperature must be 0 (greedy) or more, got {temperature}", param="temperature")


def first_token(tokenizer: PreTrainedTokenizerBase, avoid: str) -> int:
    """The token `avoid` begins with: the one a generator bars (see `Generator`)."""
    ids = tokenizer.encode(avoid, add_special_tokens=False)
    if not ids:
        raise InvalidInput(f"avoid={avoid!r} has no tokens", param="avoid")
    return int(ids[0])


def check_repetition_penalty(penalty: float) -> None:
    """Both backends apply it as vLLM does: every token already in the prompt or the output has its logit divided
    by the penalty (multiplied, when negative), so greedy outputs match between them. 1.0 turns it off."""
    if not 1.0 <= penalty <= 2.0:
        raise ConfigError(f"repetition_penalty must be between 1.0 (off) and 2.0, got {penalty}")
