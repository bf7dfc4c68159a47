"""BatchingGenerator: concurrent greedy requests are decoded together, each caller gets its own generation.

The unit tests drive the queue with a fake inner generator (no model) that records each batch it is given;
the last test runs the real packaged model with an adapter and checks that 8 concurrent callers get exactly
what one-at-a-time generation gives them.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from lorag.core.errors import InvalidInput, NotFound
from lorag.serving import factory
from lorag.serving.batching import BatchingGenerator
from lorag.serving.local import TransformersGenerator
from lorag.serving.protocol import Capabilities, Generation, Messages

BASE = "base"


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


class FakeGenerator:
    """Answers "<model>:<question>"; records every batch; the first batch can be held until `release` is set."""

    capabilities = Capabilities(batch=True, runtime_adapters=True)

    def __init__(self, *, hold_first: bool = False, failure: Exception | None = None) -> None:
        self.base_name = BASE
        self.batches: list[list[tuple[str, str | None, int]]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        self.failure = failure
        self.adapters: dict[str, Path] = {"a@1": Path("a")}
        self.calls: list[str] = []

    def generate_batch(self, requests: Sequence[tuple[Messages, str | None]], *, max_new_tokens: int,
                       with_scores: bool = False) -> list[Generation]:
        self.batches.append([(messages[-1]["content"], model, max_new_tokens) for messages, model in requests])
        self.started.set()
        assert self.release.wait(10)
        if self.failure is not None:
            raise self.failure
        for _messages, model in requests:
            if model not in (None, BASE, *self.adapters):
                raise NotFound(f"unknown model {model!r}", param="model")
        return [Generation(text=f"{model or BASE}:{messages[-1]['content']}", model=model or BASE, prompt_tokens=3,
                           completion_tokens=max_new_tokens, finish_reason="length") for messages, model in requests]

    def generate(self, messages: Messages, *, model: str | None, max_new_tokens: int,
                 temperature: float = 0.0, avoid: str | None = None) -> Generation:
        self.calls.append(f"generate t={temperature}")
        return Generation(text="sampled", model=model or BASE, prompt_tokens=3, completion_tokens=1,
                          finish_reason="stop")

    def stream(self, messages: Messages, *, model: str | None, max_new_tokens: int,
               temperature: float = 0.0, avoid: str | None = None) -> Iterator[str]:
        self.calls.append("stream")
        return iter(["str", "eamed"])

    def models(self) -> list[str]:
        return [BASE, *self.adapters]

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def healthy(self) -> bool:
        return True

    def add_adapter(self, name: str, path: Path) -> None:
        self.adapters[name] = path

    def remove_adapter(self, name: str) -> None:
        del self.adapters[name]


def concurrently(generator: BatchingGenerator, requests: Sequence[tuple[str, str | None, int]]) -> list[object]:
    """Each request from its own thread, all at once; per request its Generation or the exception it raised."""

    def one(request: tuple[str, str | None, int]) -> object:
        text, model, limit = request
        try:
            return generator.generate(ask(text), model=model, max_new_tokens=limit)
        except Exception as error:  # the test inspects it
            return error

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(one, requests))


def queued(pool: ThreadPoolExecutor, generator: BatchingGenerator, text: str, limit: int) -> Future[Generation]:
    """Submit one request and return once it waits in the queue, so requests queue in the order submitted."""
    before = len(generator._waiting)
    future = pool.submit(generator.generate, ask(text), model=None, max_new_tokens=limit)
    deadline = time.monotonic() + 10
    while len(generator._waiting) == before:
        assert time.monotonic() < deadline, "the request never reached the queue"
        time.sleep(0.002)
    return future


def test_requests_arriving_together_share_one_batch_and_each_gets_its_own_answer() -> None:
    inner = FakeGenerator()
    generator = BatchingGenerator(inner, max_batch=4, max_wait_s=10)  # a full batch starts without waiting
    requests = [("q0", None, 8), ("q1", "a@1", 8), ("q2", None, 8), ("q3", "a@1", 8)]
    results = concurrently(generator, requests)
    assert [len(batch) for batch in inner.batches] == [4]
    assert sorted(inner.batches[0]) == sorted(requests)
    assert [result.text for result in results] == ["base:q0", "a@1:q1", "base:q2", "a@1:q3"]
    assert [result.model for result in results] == [BASE, "a@1", BASE, "a@1"]
    generator.close()


def test_batch_max_is_respected_and_the_oldest_go_first() -> None:
    inner = FakeGenerator(hold_first=True)
    generator = BatchingGenerator(inner, max_batch=3, max_wait_s=0.02)
    with ThreadPoolExecutor(max_workers=8) as pool:
        first = pool.submit(generator.generate, ask("first"), model=None, max_new_tokens=8)
        assert inner.started.wait(10)  # the worker is busy with a batch of one
        later = [queued(pool, generator, f"q{index}", 8) for index in range(5)]
        inner.release.set()
        assert first.result(10).text == "base:first"
        assert [future.result(10).text for future in later] == [f"base:q{index}" for index in range(5)]
    assert [len(batch) for batch in inner.batches] == [1, 3, 2]
    assert [text for text, _model, _limit in inner.batches[1]] == ["q0", "q1", "q2"]
    generator.close()


def test_a_batch_holds_one_max_new_tokens_so_every_row_stops_where_it_would_alone() -> None:
    inner = FakeGenerator(hold_first=True)
    generator = BatchingGenerator(inner, max_batch=8, max_wait_s=0.02)
    with ThreadPoolExecutor(max_workers=8) as pool:
        first = pool.submit(generator.generate, ask("first"), model=None, max_new_tokens=8)
        assert inner.started.wait(10)
        later = [queued(pool, generator, f"q{index}", limit) for index, limit in enumerate([16, 8, 16, 8])]
        inner.release.set()
        first.result(10)
        assert [future.result(10).completion_tokens for future in later] == [16, 8, 16, 8]
    assert [{limit for _text, _model, limit in batch} for batch in inner.batches] == [{8}, {16}, {8}]
    assert [len(batch) for batch in inner.batches] == [1, 2, 2]
    generator.close()


def test_a_failing_batch_raises_in_every_caller() -> None:
    inner = FakeGenerator(failure=RuntimeError("out of memory"))
    generator = BatchingGenerator(inner, max_batch=3, max_wait_s=10)
    results = concurrently(generator, [("q0", None, 8), ("q1", None, 8), ("q2", "a@1", 8)])
    assert [len(batch) for batch in inner.batches] == [3]
    assert all(isinstance(result, RuntimeError) and str(result) == "out of memory" for result in results)
    generator.close()


def test_one_bad_request_fails_only_its_caller() -> None:
    inner = FakeGenerator()
    generator = BatchingGenerator(inner, max_batch=3, max_wait_s=10)
    results = concurrently(generator, [("q0", None, 8), ("q1", "gone@1", 8), ("q2", "a@1", 8)])
    assert isinstance(results[1], NotFound)
    assert [results[0].text, results[2].text] == ["base:q0", "a@1:q2"]
    assert len(inner.batches[0]) == 3  # tried together first, then one by one
    with pytest.raises(InvalidInput):  # checked in the caller's thread, before it is queued
        generator.generate([], model=None, max_new_tokens=8)
    generator.close()


def test_sampling_and_streaming_go_straight_to_the_wrapped_generator() -> None:
    inner = FakeGenerator()
    generator = BatchingGenerator(inner, max_batch=4, max_wait_s=0.01)
    assert generator.generate(ask("q"), model=None, max_new_tokens=8, temperature=0.7).text == "sampled"
    assert "".join(generator.stream(ask("q"), model=None, max_new_tokens=8)) == "streamed"
    assert inner.calls == ["generate t=0.7", "stream"] and inner.batches == []
    generator.close()


def test_the_rest_of_the_generator_is_the_wrapped_one() -> None:
    inner = FakeGenerator()
    generator = BatchingGenerator(inner, max_batch=4, max_wait_s=0.01)
    generator.add_adapter("b@1", Path("b"))
    assert generator.models() == [BASE, "a@1", "b@1"]
    generator.remove_adapter("a@1")
    assert generator.models() == [BASE, "b@1"] and generator.base_name == BASE
    assert generator.count_tokens("two words") == 2 and generator.healthy()
    assert generator.capabilities.batch  # tagging and evaluation still batch their own rows
    assert [g.text for g in generator.generate_batch([(ask("x"), "b@1")], max_new_tokens=4)] == ["b@1:x"]
    generator.close()
    assert not generator.healthy()


def test_the_factory_batches_the_in_process_backend_unless_batch_max_is_1(
        make_settings: Callable[..., object], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory.models, "load_causal_lm", lambda ref, device: (object(), object()))
    batched = factory.build_answer_generator(make_settings(generator={"batch_max": 8, "batch_wait_s": 0.005}))
    assert isinstance(batched, BatchingGenerator)
    assert (batched.max_batch, batched.max_wait_s) == (8, 0.005)
    assert isinstance(batched.inner, TransformersGenerator)
    batched.close()
    alone = factory.build_answer_generator(make_settings(generator={"batch_max": 1}))
    assert isinstance(alone, TransformersGenerator)


@pytest.mark.slow
def test_concurrent_callers_get_exactly_the_one_at_a_time_outputs(models_dir: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    from lorag.core.models import load_causal_lm, resolve

    model, tokenizer = load_causal_lm(resolve("packaged:smollm2-135m-instruct", models_dir), "cpu")
    torch.manual_seed(0)
    config = LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM")
    get_peft_model(copy.deepcopy(model), config).save_pretrained(tmp_path / "demo@1")
    inner = TransformersGenerator(model, tokenizer, base_name=BASE, adapters={"demo@1": tmp_path / "demo@1"})
    questions = ["What is the capital of France?", "Name three fruits.", "What is 2+2? Answer with the number only.",
                 "Say hello in Spanish, please, and then explain briefly where Spanish is spoken."]
    requests = [(question, model_name, 12) for question in questions for model_name in (None, "demo@1")]
    alone = [inner.generate(ask(text), model=name, max_new_tokens=limit) for text, name, limit in requests]
    sizes: list[int] = []
    batch = inner.generate_batch

    def recorded(rows: Sequence[tuple[Messages, str | None]], *, max_new_tokens: int,
                 with_scores: bool = False) -> list[Generation]:
        sizes.append(len(rows))
        return batch(rows, max_new_tokens=max_new_tokens, with_scores=with_scores)

    monkeypatch.setattr(inner, "generate_batch", recorded)
    generator = BatchingGenerator(inner, max_batch=8, max_wait_s=10)  # starts when all 8 are in
    together = concurrently(generator, requests)
    generator.close()
    assert sizes == [8]
    assert [g.text for g in together] == [g.text for g in alone]
    assert [(g.model, g.completion_tokens, g.finish_reason, g.prompt_tokens) for g in together] == [
        (g.model, g.completion_tokens, g.finish_reason, g.prompt_tokens) for g in alone]
    assert together[0].text != together[1].text  # the adapter rows really went through the adapter
    assert {g.finish_reason for g in alone} == {"stop", "length"}  # rows that end early are cut where they end
