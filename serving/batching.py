"""Request batching for the in-process generator: concurrent greedy requests decoded together in one batch.

The app runs each request's handler in its own thread, so concurrent `/v1/ask` requests call `generate` at the
same time. `TransformersGenerator` alone runs them one after another; on a CPU a batched decoding step costs
little more than one row's, so `BatchingGenerator` queues them and a worker thread hands up to `max_batch` at a
time to `generate_batch`, which routes each row through its own adapter (peft's `adapter_names`, as vLLM does).

>>> generator = BatchingGenerator(TransformersGenerator(model, tokenizer, base_name="smollm2-135m-instruct"),
...                               max_batch=16, max_wait_s=0.01)
>>> generator.generate([{"role": "user", "content": "Hi"}], model=None, max_new_tokens=32).text  # from any thread

What is not batched, and goes straight to the wrapped generator, one at a time:
- `stream`: its tokens are handed out as they are decoded, which a batch of whole generations can't do;
- sampling (`temperature > 0`): `generate_batch` is greedy only.
The batching is static: a request that arrives while a batch is decoding waits for that whole batch to finish
(the longest row), then goes in the next one. Under greedy decoding a batched row gives exactly the text it
gives alone (tests/retrieval/test_batching.py checks that on the real model).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorag.core.errors import BackendUnavailable, ConfigError, InvalidInput, NotFound
from lorag.serving.protocol import Generation, Generator, Messages, check_request

logger = logging.getLogger(__name__)


@dataclass
class _Request:
    messages: Messages
    model: str | None
    max_new_tokens: int
    result: Future[Generation] = field(default_factory=Future)


class BatchingGenerator:
    """A `Generator` that decodes concurrent greedy `generate` calls together, up to `max_batch` at a time.

    Once a request is waiting, the worker waits up to `max_wait_s` for more before it starts a batch (none when
    the batch is already full). A batch holds requests with the same `max_new_tokens` only, so every row stops
    where it would alone; the others wait for the next batch, oldest first.
    """

    def __init__(self, inner: Generator, *, max_batch: int, max_wait_s: float) -> None:
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError(f"max_batch must be >= 1 and max_wait_s >= 0, got {max_batch} and {max_wait_s}")
        if not inner.capabilities.batch:
            raise ConfigError(f"{type(inner).__name__} does not decode batches; only a batching backend is batched")
        self.inner = inner
        self.capabilities = inner.capabilities  # the same model, the same abilities: batching only adds a queue
        self.base_name = inner.base_name  # type: ignore[attr-defined]
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._waiting: list[_Request] = []
        self._changed = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._run, daemon=True, name="lorag-batching")
        self._worker.start()

    def generate(self, messages: Messages, *, model: str | None, max_new_tokens: int,
                 temperature: float = 0.0, avoid: str | None = None) -> Generation:
        if temperature > 0 or self.max_batch == 1 or avoid:  # a batch decodes its rows under one config
            return self.inner.generate(messages, model=model, max_new_tokens=max_new_tokens, temperature=temperature,
                                       avoid=avoid)
        check_request(messages, max_new_tokens, temperature)  # the caller's own mistake fails here, alone
        request = _Request(messages, model, max_new_tokens)
        with self._changed:
            if self._closed:
                raise BackendUnavailable("the generator is shutting down", retry_after=5)
            self._waiting.append(request)
            self._changed.notify()
        return request.result.result()

    def stream(self, messages: Messages, *, model: str | None, max_new_tokens: int,
               temperature: float = 0.0, avoid: str | None = None) -> Iterator[str]:
        """Not batched: one stream at a time, between batches (the wrapped generator's lock)."""
        return self.inner.stream(messages, model=model, max_new_tokens=max_new_tokens, temperature=temperature,
                                 avoid=avoid)

    def generate_batch(self, requests: Sequence[tuple[Messages, str | None]], *, max_new_tokens: int,
                       with_scores: bool = False) -> list[Generation]:
        """A caller's own batch (tagging, evaluation) goes straight through, between this worker's batches."""
        return self.inner.generate_batch(requests, max_new_tokens=max_new_tokens, with_scores=with_scores)

    def models(self) -> list[str]:
        return self.inner.models()

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def healthy(self) -> bool:
        return self.inner.healthy() and self._worker.is_alive()

    def add_adapter(self, name: str, path: Path) -> None:
        self.inner.add_adapter(name, path)

    def network(self, model: str | None) -> AbstractContextManager[Any]:
        """The wrapped model's network, between this worker's batches (see `TransformersGenerator.network`)."""
        return self.inner.network(model)  # type: ignore[attr-defined]

    def remove_adapter(self, name: str) -> None:
        self.inner.remove_adapter(name)

    def close(self) -> None:
        """Serve what is already waiting, then stop the worker."""
        with self._changed:
            self._closed = True
            self._changed.notify()
        self._worker.join()

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._serve(batch)

    def _next_batch(self) -> list[_Request] | None:
        """The oldest request and up to max_batch - 1 more with its max_new_tokens; None once closed and empty."""
        with self._changed:
            while not self._waiting and not self._closed:
                self._changed.wait()
            if not self._waiting:
                return None
            deadline = time.monotonic() + self.max_wait_s
            while len(self._waiting) < self.max_batch and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            limit = self._waiting[0].max_new_tokens
            batch = [request for request in self._waiting if request.max_new_tokens == limit][: self.max_batch]
            taken = {id(request) for request in batch}
            self._waiting = [request for request in self._waiting if id(request) not in taken]
            return batch

    def _serve(self, batch: list[_Request]) -> None:
        try:
            generations = self.inner.generate_batch([(request.messages, request.model) for request in batch],
                                                    max_new_tokens=batch[0].max_new_tokens)
            answered = list(zip(batch, generations, strict=True))
        except (InvalidInput, NotFound) as error:
            if len(batch) == 1:
                batch[0].result.set_exception(error)
                return
            # One request's unknown adapter or too long prompt fails the whole batch before any decoding:
            # serve this batch's requests one by one, so only that caller gets the error.
            for request in batch:
                self._serve([request])
            return
        except Exception as error:  # not swallowed: every caller in the batch raises it
            logger.warning("a batch of %d failed: %s: %s", len(batch), type(error).__name__, error)
            for request in batch:
                request.result.set_exception(error)
            return
        logger.debug("served a batch of %d", len(batch))
        for request, generation in answered:
            request.result.set_result(generation)
