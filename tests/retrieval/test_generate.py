"""Generators on the real base model: greedy answers, streaming, LoRA adapters per request, and the
OpenAI-compatible client against a real HTTP server on loopback (the transport under test; the model behind
it is the same real one)."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from lorag.core.errors import BackendUnavailable, ConfigError, Conflict, InvalidInput, LoragError, NotFound
from lorag.core.models import load_causal_lm, resolve
from lorag.serving.factory import build_generator
from lorag.serving.local import TransformersGenerator
from lorag.serving.remote import OpenAIGenerator
from tests.conftest import free_port

pytestmark = pytest.mark.slow

BASE = "smollm2-135m-instruct"
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY_TOKENS = 12


@pytest.fixture(scope="module")
def base(models_dir: Path) -> tuple[object, object]:
    return load_causal_lm(resolve("packaged:smollm2-135m-instruct", models_dir), "cpu")


@pytest.fixture(scope="module")
def reference(base: tuple[object, object]) -> str:
    """The plain model's greedy answer, taken before peft has touched it."""
    return _plain_answer(*base)


@pytest.fixture(scope="module")
def adapter_dir(base: tuple[object, object], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter with random (non-zero) weights, built on a copy so the shared base stays pristine."""
    from peft import LoraConfig, get_peft_model

    model, _ = base
    torch.manual_seed(0)
    config = LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM")
    path = tmp_path_factory.mktemp("adapters") / "demo@1"
    get_peft_model(copy.deepcopy(model), config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def spare_model(base: tuple[object, object]) -> object:
    """A copy for the test that unloads peft; taken before `generator` wraps the shared model (a copy taken
    later would carry the adapter layers and peft_config along)."""
    return copy.deepcopy(base[0])


@pytest.fixture(scope="module")
def generator(base: tuple[object, object], reference: str, adapter_dir: Path,
              spare_model: object) -> TransformersGenerator:
    model, tokenizer = base
    return TransformersGenerator(model, tokenizer, base_name=BASE, adapters={"demo@1": adapter_dir})


def _plain_answer(model: object, tokenizer: object) -> str:
    inputs = tokenizer.apply_chat_template(FRANCE, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=GREEDY_TOKENS, do_sample=False)
    return tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


def _ask(generator: TransformersGenerator | OpenAIGenerator, model: str | None = None) -> str:
    return generator.generate(FRANCE, model=model, max_new_tokens=GREEDY_TOKENS).text


def test_base_model_answers_paris(generator: TransformersGenerator) -> None:
    answer = generator.generate(FRANCE, model=None, max_new_tokens=GREEDY_TOKENS)
    assert "Paris" in answer.text
    assert answer.model == BASE
    assert answer.finish_reason == "stop"
    assert answer.prompt_tokens > 10
    assert 0 < answer.completion_tokens <= GREEDY_TOKENS


def test_base_output_is_the_plain_models(generator: TransformersGenerator, reference: str) -> None:
    assert _ask(generator, BASE) == reference


def test_hitting_max_new_tokens_finishes_with_length(generator: TransformersGenerator) -> None:
    answer = generator.generate(FRANCE, model=None, max_new_tokens=3)
    assert (answer.finish_reason, answer.completion_tokens) == ("length", 3)


def test_stream_joins_to_the_generated_text(generator: TransformersGenerator) -> None:
    for model in (None, "demo@1"):
        deltas = list(generator.stream(FRANCE, model=model, max_new_tokens=16))
        assert len(deltas) > 1
        assert "".join(deltas) == generator.generate(FRANCE, model=model, max_new_tokens=16).text


def test_closing_a_stream_early_releases_the_model(generator: TransformersGenerator) -> None:
    stream = generator.stream(FRANCE, model=None, max_new_tokens=16)
    next(stream)
    stream.close()
    assert "Paris" in _finishes_within(lambda: _ask(generator), seconds=120)


def test_an_unread_stream_releases_the_model_when_closed(generator: TransformersGenerator) -> None:
    generator.stream(FRANCE, model="demo@1", max_new_tokens=16).close()
    assert "Paris" in _finishes_within(lambda: _ask(generator), seconds=120)


def _finishes_within(call: object, seconds: float) -> str:
    """Run `call` in a thread so a lock that was never released fails the test instead of hanging it."""
    results: list[str] = []
    worker = threading.Thread(target=lambda: results.append(call()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert results, f"no answer within {seconds}s: the generation lock was not released"
    return results[0]


def test_adapter_changes_the_output_without_leaking_into_the_base(
        generator: TransformersGenerator, base: tuple[object, object], reference: str) -> None:
    tuned = _ask(generator, "demo@1")
    assert tuned != reference
    assert _ask(generator, "demo@1") == tuned  # greedy and deterministic
    assert _ask(generator, None) == reference
    # Other holders of the model object still get the base model between requests.
    assert _plain_answer(*base) == reference


def test_a_batch_mixes_adapters_and_matches_one_at_a_time(generator: TransformersGenerator) -> None:
    questions = [FRANCE, [{"role": "user", "content": "Name a colour of the sky in two words."}],
                 [{"role": "user", "content": "Count from one to five."}]]
    requests = [(questions[0], "demo@1"), (questions[1], None), (questions[2], "demo@1"), (questions[0], None)]
    alone = [generator.generate(messages, model=model, max_new_tokens=GREEDY_TOKENS) for messages, model in requests]
    batched = generator.generate_batch(requests, max_new_tokens=GREEDY_TOKENS)
    assert [g.text for g in batched] == [g.text for g in alone]
    assert [g.model for g in batched] == ["demo@1", BASE, "demo@1", BASE]
    assert [g.completion_tokens for g in batched] == [g.completion_tokens for g in alone]
    assert batched[0].text != batched[3].text  # the adapter row really went through the adapter


def test_models_lists_the_base_first(generator: TransformersGenerator) -> None:
    assert generator.models() == [BASE, "demo@1"]
    assert generator.healthy()


def test_unknown_model_is_not_found(generator: TransformersGenerator) -> None:
    with pytest.raises(NotFound) as error:
        generator.generate(FRANCE, model="demo@9", max_new_tokens=4)
    assert error.value.param == "model"
    assert "demo@9" in error.value.message and "demo@1" in error.value.message
    with pytest.raises(NotFound):
        generator.stream(FRANCE, model="demo@9", max_new_tokens=4)


def test_bad_requests_are_invalid_input(generator: TransformersGenerator) -> None:
    with pytest.raises(InvalidInput):
        generator.generate(FRANCE, model=None, max_new_tokens=0)
    with pytest.raises(InvalidInput):
        generator.generate(FRANCE, model=None, max_new_tokens=4, temperature=-1)
    with pytest.raises(InvalidInput):
        generator.generate([], model=None, max_new_tokens=4)
    with pytest.raises(InvalidInput, match="context"):
        generator.generate([{"role": "user", "content": "word " * 9000}], model=None, max_new_tokens=4)


def test_sampling_with_a_temperature_still_answers(generator: TransformersGenerator) -> None:
    answer = generator.generate(FRANCE, model=None, max_new_tokens=4, temperature=0.7)
    assert answer.completion_tokens > 0 and answer.text


def test_count_tokens_uses_the_models_tokenizer(generator: TransformersGenerator,
                                                base: tuple[object, object]) -> None:
    _, tokenizer = base
    text = "The capital of France is Paris."
    assert generator.count_tokens(text) == len(tokenizer(text, add_special_tokens=False)["input_ids"]) > 3


def test_adapters_are_added_and_removed_at_runtime(spare_model: object, base: tuple[object, object],
                                                   adapter_dir: Path, reference: str) -> None:
    model, tokenizer = spare_model, base[1]  # its own model: this test unloads peft from it
    generator = TransformersGenerator(model, tokenizer, base_name=BASE)
    assert generator.models() == [BASE]

    generator.add_adapter("demo@2", adapter_dir)
    generator.add_adapter("demo@3", adapter_dir)
    assert generator.models() == [BASE, "demo@2", "demo@3"]
    tuned = _ask(generator, "demo@2")
    assert tuned != reference and _ask(generator, "demo@3") == tuned

    generator.remove_adapter("demo@2")
    assert generator.models() == [BASE, "demo@3"]
    with pytest.raises(NotFound):
        _ask(generator, "demo@2")
    assert _ask(generator, "demo@3") == tuned

    generator.remove_adapter("demo@3")  # the last one: peft's layers leave the model
    assert not any("lora" in name for name, _ in model.named_modules())
    assert _ask(generator, None) == reference


def test_adapter_registration_is_checked(generator: TransformersGenerator, tmp_path: Path,
                                         adapter_dir: Path) -> None:
    with pytest.raises(InvalidInput, match="adapter_config.json"):
        generator.add_adapter("demo@4", tmp_path)
    with pytest.raises(Conflict):
        generator.add_adapter("demo@1", adapter_dir)
    with pytest.raises(Conflict):
        generator.add_adapter(BASE, adapter_dir)
    with pytest.raises(NotFound):
        generator.remove_adapter("demo@4")


# --- OpenAI-compatible client against a real server -----------------------------------------------------------


def _openai_app(generator: TransformersGenerator) -> FastAPI:
    """The slice of vLLM's API that OpenAIGenerator uses, served by the in-process generator."""
    app = FastAPI()

    @app.exception_handler(LoragError)
    def _error(request: Request, error: LoragError) -> JSONResponse:
        return JSONResponse(error.envelope(), status_code=error.status_code)

    @app.get("/v1/models")
    def _models() -> dict[str, object]:
        return {"object": "list", "data": [{"id": name, "object": "model"} for name in generator.models()]}

    @app.post("/v1/chat/completions", response_model=None)
    def _chat(body: dict[str, object]) -> dict[str, object] | StreamingResponse:
        messages, model = body["messages"], body["model"]
        max_tokens, temperature = body["max_tokens"], body["temperature"]
        # vLLM's extension, applied by the same rule; set per request on the shared generator (tests run one at a time)
        generator.repetition_penalty = float(body.get("repetition_penalty", 1.0))
        barred = [int(token) for token, bias in dict(body.get("logit_bias") or {}).items() if bias <= -100]
        avoid = generator._tokenizer.decode(barred[:1]) if barred else None  # the text whose first token it is
        if body.get("stream"):
            deltas = generator.stream(messages, model=model, max_new_tokens=max_tokens, temperature=temperature,
                                      avoid=avoid)
            return StreamingResponse(_sse(deltas), media_type="text/event-stream")
        answer = generator.generate(messages, model=model, max_new_tokens=max_tokens, temperature=temperature,
                                    avoid=avoid)
        return {"object": "chat.completion", "model": answer.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                             "finish_reason": answer.finish_reason}],
                "usage": {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens}}

    return app


def _sse(deltas: Iterator[str]) -> Iterator[str]:
    yield ": a comment line, as servers send to keep connections alive\n\n"
    for delta in deltas:
        yield f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'content': delta}}]})}\n\n"
    yield f"data: {json.dumps({'choices': [{'index': 0, 'delta': {}, 'finish_reason': 'stop'}]})}\n\n"
    yield "data: [DONE]\n\n"


@pytest.fixture(scope="module")
def server_url(generator: TransformersGenerator) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(_openai_app(generator), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the test server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def client(server_url: str, base: tuple[object, object]) -> Iterator[OpenAIGenerator]:
    remote = OpenAIGenerator(server_url, "sk-test", base_name=BASE, timeout_s=120, tokenizer=base[1])
    yield remote
    remote.close()


def test_openai_generate_matches_in_process(client: OpenAIGenerator, generator: TransformersGenerator) -> None:
    for model in (None, "demo@1"):
        local = generator.generate(FRANCE, model=model, max_new_tokens=GREEDY_TOKENS)
        remote = client.generate(FRANCE, model=model, max_new_tokens=GREEDY_TOKENS)
        assert remote == local


def test_openai_stream_matches_in_process(client: OpenAIGenerator, generator: TransformersGenerator) -> None:
    deltas = list(client.stream(FRANCE, model="demo@1", max_new_tokens=16))
    assert len(deltas) > 1
    assert "".join(deltas) == generator.generate(FRANCE, model="demo@1", max_new_tokens=16).text


def test_openai_models_and_health(client: OpenAIGenerator) -> None:
    assert client.models() == [BASE, "demo@1"]
    assert client.healthy()


def test_openai_maps_server_errors(client: OpenAIGenerator) -> None:
    with pytest.raises(NotFound, match="demo@9"):
        client.generate(FRANCE, model="demo@9", max_new_tokens=4)
    with pytest.raises(NotFound, match="demo@9"):
        client.stream(FRANCE, model="demo@9", max_new_tokens=4)
    with pytest.raises(InvalidInput, match="exceeds the model's context"):
        client.generate([{"role": "user", "content": "word " * 9000}], model=None, max_new_tokens=4)


def test_openai_timeout_is_backend_unavailable(server_url: str) -> None:
    impatient = OpenAIGenerator(server_url, None, base_name=BASE, timeout_s=0.05)
    with pytest.raises(BackendUnavailable, match="unreachable") as error:
        impatient.generate(FRANCE, model=None, max_new_tokens=16)
    assert error.value.retry_after == 5


def test_openai_closed_port_is_backend_unavailable() -> None:
    closed = OpenAIGenerator("http://127.0.0.1:9/v1", None, base_name=BASE, timeout_s=5)
    with pytest.raises(BackendUnavailable, match="http://127.0.0.1:9/v1 is unreachable"):
        closed.generate(FRANCE, model=None, max_new_tokens=4)
    with pytest.raises(BackendUnavailable):
        closed.stream(FRANCE, model=None, max_new_tokens=4)
    with pytest.raises(BackendUnavailable):
        closed.models()
    assert not closed.healthy()


def test_openai_counts_tokens_without_a_tokenizer_by_estimate() -> None:
    remote = OpenAIGenerator("http://127.0.0.1:9/v1", None, base_name=BASE, timeout_s=5)
    assert remote.count_tokens("one two three four five six seven eight nine ten") == 13


def test_build_generator_picks_the_backend(base: tuple[object, object], adapter_dir: Path) -> None:
    model, tokenizer = base
    common = {"base_name": BASE, "adapters": {"demo@1": adapter_dir}, "api_key": None, "timeout_s": 5.0}
    local = build_generator("transformers", model=model, tokenizer=tokenizer, base_url=None, **common)
    assert isinstance(local, TransformersGenerator) and local.models() == [BASE, "demo@1"]
    remote = build_generator("openai", model=None, tokenizer=tokenizer, base_url="http://vllm:8000/v1", **common)
    assert isinstance(remote, OpenAIGenerator) and remote.count_tokens("Paris") == local.count_tokens("Paris")
    with pytest.raises(ConfigError):
        build_generator("openai", model=None, tokenizer=None, base_url=None, **common)
    with pytest.raises(ConfigError):
        build_generator("transformers", model=None, tokenizer=None, base_url=None, **common)


def test_a_generation_past_the_time_limit_is_stopped_with_a_clear_error(generator: TransformersGenerator) -> None:
    question = [{"role": "user", "content": "Write a long story about a lighthouse keeper and the sea."}]
    generator.timeout_s = 0.2
    try:
        with pytest.raises(BackendUnavailable, match="TIMEOUT_S=0.2s") as raised:
            generator.generate(question, model=None, max_new_tokens=400)
        assert raised.value.code == "generation_timeout" and raised.value.retry_after
        with pytest.raises(BackendUnavailable, match="TIMEOUT_S"):
            generator.generate_batch([(question, None), (question, None)], max_new_tokens=400)
        deltas = generator.stream(question, model=None, max_new_tokens=400)
        received = []
        with pytest.raises(BackendUnavailable, match="TIMEOUT_S"):
            received.extend(deltas)  # the text so far arrives, then the error that says it is incomplete
        assert "".join(received)
    finally:
        generator.timeout_s = None
    assert generator.generate(question, model=None, max_new_tokens=8).finish_reason == "length"  # unhurried


LOOPY = [{"role": "user", "content": "List the fees: service fee, service fee, service fee,"}]


def test_repetition_penalty_is_one_rule_in_both_backends(generator: TransformersGenerator, server_url: str,
                                                         base: tuple[object, object]) -> None:
    """transformers' rule, which is vLLM's: the same greedy text in-process, over HTTP, streamed or not."""
    model, tokenizer = base
    penalised = TransformersGenerator(model, tokenizer, base_name=BASE, repetition_penalty=1.3)
    local = penalised.generate(LOOPY, model=None, max_new_tokens=32).text
    assert local != generator.generate(LOOPY, model=None, max_new_tokens=32).text  # it does change the output
    inputs = tokenizer.apply_chat_template(LOOPY, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=32, do_sample=False, repetition_penalty=1.3)
    assert local == tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    remote = OpenAIGenerator(server_url, None, base_name=BASE, timeout_s=120, tokenizer=tokenizer,
                             repetition_penalty=1.3)
    try:
        assert remote.generate(LOOPY, model=None, max_new_tokens=32).text == local
        assert "".join(remote.stream(LOOPY, model=None, max_new_tokens=32)) == local
    finally:
        remote.close()
        generator.repetition_penalty = 1.0  # the test server set the shared generator's penalty per request
    with pytest.raises(ConfigError, match="repetition_penalty"):
        TransformersGenerator(model, tokenizer, base_name=BASE, repetition_penalty=0.5)


def test_avoid_bars_the_first_token_of_a_text_in_both_backends(generator: TransformersGenerator,
                                                               client: OpenAIGenerator) -> None:
    """The second look's request: the model may not begin (or use) the barred token; over HTTP as in-process."""
    plain = generator.generate(FRANCE, model=None, max_new_tokens=GREEDY_TOKENS).text
    first = plain.split()[0]
    other = generator.generate(FRANCE, model=None, max_new_tokens=GREEDY_TOKENS, avoid=f"{first} anything else")
    assert other.text.split()[0] != first and first not in other.text.split()
    assert client.generate(FRANCE, model=None, max_new_tokens=GREEDY_TOKENS, avoid=first).text == other.text
    assert "".join(client.stream(FRANCE, model=None, max_new_tokens=GREEDY_TOKENS, avoid=first)) == other.text
    assert "".join(generator.stream(FRANCE, model=None, max_new_tokens=GREEDY_TOKENS, avoid=first)) == other.text
