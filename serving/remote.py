"""The remote backend: an OpenAI-compatible chat server such as vLLM, which serves LoRA adapters under their names in
the `model` field, through the `openai` SDK (its streaming, its typed errors).

Errors are told apart by their type and HTTP status, never by the words of a message: unreachable, timed out, a
5xx or an error event in the middle of a stream is `BackendUnavailable` (retry later); 404 is `NotFound` (an
unknown model); any other refusal is `InvalidInput`, with the server's own message. The SDK's retries are off: the
caller (the app, the router) decides when to try again.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openai

from lorag.core.errors import BackendUnavailable, ConfigError, Conflict, InvalidInput, NotFound
from lorag.serving.protocol import (
    Capabilities,
    Generation,
    Messages,
    check_repetition_penalty,
    check_request,
    first_token,
)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

RETRY_AFTER_S = 5
KEYLESS = "EMPTY"  # what vLLM's own examples pass when the server has no --api-key; the SDK requires some key


class OpenAIGenerator:
    """A client of an OpenAI-compatible server; the adapters are the server's, loaded at run time (vLLM's runtime
    LoRA API) or at its start."""

    capabilities = Capabilities(json_schema=True, runtime_adapters=True)

    def __init__(self, base_url: str, api_key: str | None, *, base_name: str, timeout_s: float,
                 tokenizer: PreTrainedTokenizerBase | None = None, repetition_penalty: float = 1.0) -> None:
        check_repetition_penalty(repetition_penalty)
        self.base_url = base_url.rstrip("/")
        self.base_name = base_name
        self.repetition_penalty = repetition_penalty
        self._tokenizer = tokenizer
        self._client = openai.OpenAI(base_url=self.base_url, api_key=api_key or KEYLESS, timeout=timeout_s,
                                     max_retries=0)

    def generate(self, messages: Messages, *, model: str | None, max_new_tokens: int,
                 temperature: float = 0.0, avoid: str | None = None) -> Generation:
        check_request(messages, max_new_tokens, temperature)
        return self._complete(model, messages, max_new_tokens, temperature, **self._avoiding(avoid))

    def generate_json(self, messages: Messages, *, model: str | None, max_new_tokens: int,
                      schema: Mapping[str, Any]) -> Generation:
        """Greedy output constrained to `schema` by the server's guided decoding (vLLM `response_format`)."""
        check_request(messages, max_new_tokens, 0.0)
        response_format = {"type": "json_schema", "json_schema": {"name": "output", "schema": dict(schema),
                                                                   "strict": True}}
        return self._complete(model, messages, max_new_tokens, 0.0, response_format=response_format)

    def stream(self, messages: Messages, *, model: str | None, max_new_tokens: int,
               temperature: float = 0.0, avoid: str | None = None) -> Iterator[str]:
        """Deltas of the answer. The request is made here, so a refusal (an unknown model, an unreachable server)
        is raised before the caller commits a response; the deltas come as the server sends them."""
        check_request(messages, max_new_tokens, temperature)
        with self._translated():
            events = self._client.chat.completions.create(**self._request(model, messages, max_new_tokens,
                                                                          temperature), stream=True,
                                                             **self._avoiding(avoid))
        return self._deltas(events)

    def models(self) -> list[str]:
        with self._translated():
            names = [entry.id for entry in self._client.models.list()]
        return [self.base_name, *(name for name in names if name != self.base_name)]

    def count_tokens(self, text: str) -> int:
        if self._tokenizer is not None:
            return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])
        # No local tokenizer: an estimate (English runs ~1.3 BPE tokens a word) is enough for prompt budgets,
        # which keep a margin; give the server's tokenizer for exact counts.
        return round(len(text.split()) * 1.3)

    def healthy(self) -> bool:
        try:
            self.models()
        except BackendUnavailable:
            return False
        return True

    def add_adapter(self, name: str, path: Path) -> None:
        """Load an adapter version into the running server (vLLM's runtime LoRA API; the server needs
        VLLM_ALLOW_RUNTIME_LORA_UPDATING=True). The path must be readable by the server: a shared volume."""
        if name in self.models():
            raise Conflict(f"a model named {name!r} is already served; adapter versions are never reused",
                           param="model")
        self._post("/load_lora_adapter", {"lora_name": name, "lora_path": str(path)})

    def remove_adapter(self, name: str) -> None:
        """Unload a version; vLLM finishes the requests already running on it."""
        self._post("/unload_lora_adapter", {"lora_name": name})

    def close(self) -> None:
        self._client.close()

    def _request(self, model: str | None, messages: Messages, max_new_tokens: int,
                 temperature: float) -> dict[str, Any]:
        request: dict[str, Any] = {"model": model or self.base_name, "messages": list(messages),
                                   "max_tokens": max_new_tokens, "temperature": temperature}
        if self.repetition_penalty != 1.0:  # vLLM's extension; left out at 1.0 for servers that don't know it
            request["extra_body"] = {"repetition_penalty": self.repetition_penalty}
        return request

    def _avoiding(self, avoid: str | None) -> dict[str, Any]:
        if not avoid:
            return {}
        if self._tokenizer is None:
            raise ConfigError("avoid needs the base model's tokenizer: build the client with tokenizer=")
        return {"logit_bias": {str(first_token(self._tokenizer, avoid)): -100}}

    def _complete(self, model: str | None, messages: Messages, max_new_tokens: int, temperature: float,
                  **extra: Any) -> Generation:
        request = self._request(model, messages, max_new_tokens, temperature)
        with self._translated():
            completion = self._client.chat.completions.create(**request, **extra)
        choice = completion.choices[0]
        text = choice.message.content or ""
        usage = completion.usage
        return Generation(text=text, model=request["model"], prompt_tokens=usage.prompt_tokens if usage else 0,
                          completion_tokens=usage.completion_tokens if usage else self.count_tokens(text),
                          finish_reason=choice.finish_reason or "stop")

    def _deltas(self, events: openai.Stream[Any]) -> Iterator[str]:
        with self._translated(), events:
            for event in events:  # the SDK raises an error event (vLLM's failures after the 200 header) as APIError
                delta = event.choices[0].delta.content if event.choices else None
                if delta:
                    yield delta

    def _post(self, path: str, body: dict[str, str]) -> None:
        with self._translated():
            self._client.post(path, body=body, cast_to=object)

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """The SDK's errors as lorag's, by type and status."""
        try:
            yield
        except openai.APIStatusError as error:
            message = _message(error)
            if error.status_code >= 500:
                raise BackendUnavailable(f"the model server at {self.base_url} is unreachable: HTTP "
                                         f"{error.status_code}: {message}", retry_after=RETRY_AFTER_S) from error
            if error.status_code == 404:
                raise NotFound(message, param="model") from error
            raise InvalidInput(f"the model server refused the request (HTTP {error.status_code}): {message}") \
                from error
        except openai.APIConnectionError as error:  # refused, reset, DNS, every timeout
            raise BackendUnavailable(f"the model server at {self.base_url} is unreachable: "
                                     f"{type(error).__name__}: {error}", retry_after=RETRY_AFTER_S) from error
        except openai.APIError as error:  # an error event in a stream that had started
            raise BackendUnavailable(f"the model server failed mid-stream: {_message(error)}",
                                     retry_after=RETRY_AFTER_S) from error


def _message(error: openai.APIError) -> str:
    """The server's own message: OpenAI and vLLM send {"error": {"message"}}, older vLLM {"message"}, FastAPI
    {"detail"} (the SDK hands over the inside of "error" as `body`)."""
    body = error.body
    if isinstance(body, dict):
        for key in ("message", "detail"):
            if key in body:
                return str(body[key])
    return str(body) if body is not None else error.message
