"""The in-process backend: the base model and its LoRA adapters run here with transformers + peft (the embedded
default). torch and transformers are imported where they are used, so modules that merely import this one don't
load them.

>>> generator = TransformersGenerator(model, tokenizer, base_name="smollm2-135m-instruct",
...                                   adapters={"support@3": Path("adapters/support@3")})
>>> generator.generate([{"role": "user", "content": "Hi"}], model="support@3", max_new_tokens=32).finish_reason
'stop'
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from lorag.core.errors import BackendUnavailable, Conflict, InvalidInput, NotFound, shown
from lorag.serving.protocol import (
    Capabilities,
    Generation,
    Messages,
    check_repetition_penalty,
    check_request,
    first_token,
)

if TYPE_CHECKING:
    import torch
    from peft import PeftModel
    from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase, TextIteratorStreamer

logger = logging.getLogger(__name__)

MIN_SHARED_PREFIX = 32  # shorter shared prefixes save less than their own forward pass costs


class _StopWhenSet:
    """A stopping criterion (generate only calls it) that a closed stream uses to end the model's loop."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **_: object) -> torch.BoolTensor:
        import torch

        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class TransformersGenerator:
    """The base model plus LoRA adapters loaded lazily into one `PeftModel`, one generation or batch at a time.

    What peft does to `model`: the first adapter to load wraps `model` in place. Its q_proj/v_proj (or whatever
    the adapter targets) become LoRA layers around the original Linear modules, and peft sets
    `requires_grad=False` on the base weights. Between calls every adapter layer stays *disabled*, so anyone else
    holding `model` still gets the base model's outputs (the tests check this). Don't give the same object to a
    trainer, though: `get_peft_model` on it would stack on top of these layers. When the last loaded adapter is
    removed, `unload()` puts the original modules back.
    """

    capabilities = Capabilities(batch=True, runtime_adapters=True, network=True)

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *, base_name: str,
                 adapters: Mapping[str, Path] = {}, timeout_s: float | None = None,
                 repetition_penalty: float = 1.0) -> None:
        for name, path in adapters.items():
            _check_adapter_dir(name, path)
        check_repetition_penalty(repetition_penalty)
        self.base_name = base_name
        self.timeout_s = timeout_s  # a generation is cut off after this long (transformers' max_time)
        self.repetition_penalty = repetition_penalty  # vLLM's semantics: see check_repetition_penalty
        self._model = model
        self._tokenizer = tokenizer
        # Copied on write, so models() reads a consistent snapshot without waiting for a generation.
        self._adapters: dict[str, Path] = dict(adapters)
        self._peft: PeftModel | None = None
        # One generation (or one batch, `generate_batch`) at a time: the adapter selection is global state of the
        # model. retrieval/batching.py gathers concurrent requests into such batches.
        self._lock = threading.Lock()

    def generate(self, messages: Messages, *, model: str | None, max_new_tokens: int,
                 temperature: float = 0.0, avoid: str | None = None) -> Generation:
        import torch

        name = self._known(model)
        check_request(messages, max_new_tokens, temperature)
        inputs = self._encode(messages, max_new_tokens)
        prompt_tokens = inputs["input_ids"].shape[1]
        config = self._config(max_new_tokens, temperature, avoid)
        with self._lock, self._selected(name) as network, torch.inference_mode():
            started = time.perf_counter()
            output = network.generate(**inputs, generation_config=config)
            elapsed = time.perf_counter() - started
        completion = output[0, prompt_tokens:].tolist()
        self._check_time(elapsed, [completion], max_new_tokens)
        text = self._tokenizer.decode(completion, skip_special_tokens=True)
        return Generation(text=text, model=name, prompt_tokens=prompt_tokens, completion_tokens=len(completion),
                          finish_reason=self._finish_reason(completion, max_new_tokens))

    def stream(self, messages: Messages, *, model: str | None, max_new_tokens: int,
               temperature: float = 0.0, avoid: str | None = None) -> Iterator[str]:
        name = self._known(model)
        check_request(messages, max_new_tokens, temperature)
        inputs = self._encode(messages, max_new_tokens)
        config = self._config(max_new_tokens, temperature, avoid)
        config.max_time = None  # a stream is timed by _deltas, which can tell the caller it was cut off
        deltas = self._deltas(name, inputs, config)
        next(deltas)  # runs up to the lock and the thread start, so close() always releases what it took
        return deltas

    def models(self) -> list[str]:
        return [self.base_name, *self._adapters]

    def generate_batch(self, requests: Sequence[tuple[Messages, str | None]], *, max_new_tokens: int,
                       with_scores: bool = False) -> list[Generation]:
        """Greedy generations for several (messages, model) requests at once, adapters mixed in one batch.

        The prompts are left-padded into one tensor and peft routes each row through its own adapter
        (`adapter_names`), as vLLM and LoRAX do; on a CPU one batched step costs little more than one row's.
        Rows for one model that start with the same tokens (a tagging task's system prompt) share that prefix's
        keys and values, computed once: on a CPU the prompts, not the decoding steps, dominate such a batch.
        `with_scores` also sets each `confidence`: exp of the mean log-probability of the row's tokens up to its
        stop token (the geometric mean of their probabilities); it keeps every step's logits until the end.
        """
        import torch

        names = [self._known(model) for _messages, model in requests]
        for messages, _model in requests:
            check_request(messages, max_new_tokens, 0.0)
        rows = [self._encode(messages, max_new_tokens)["input_ids"][0] for messages, _model in requests]
        prefix = _shared_prefix(rows) if len(set(names)) == 1 else 0
        config = self._config(max_new_tokens, 0.0)
        config.output_scores = config.return_dict_in_generate = with_scores
        # The limit is per row: a batch of 32 does 32 rows' work, so one row's limit would cut every large batch.
        limit = self.timeout_s * len(rows) if self.timeout_s is not None else None
        config.max_time = limit
        with self._lock:
            for name in sorted(set(names) - {self.base_name}):
                # loaded outside inference mode: peft's set_adapter later sets requires_grad, which inference
                # tensors refuse
                self._loaded(name)
            started = time.perf_counter()
            with torch.inference_mode():
                if prefix >= MIN_SHARED_PREFIX:
                    width, output = self._generate_from_prefix(names[0], rows, prefix, config)
                else:
                    input_ids, attention = self._left_padded(rows)
                    width, output = input_ids.shape[1], self._generate_mixed(names, input_ids, attention, config)
                sequences = output.sequences if with_scores else output
                # log p of each chosen token: normalised over the vocabulary, one column per generated step
                logprobs = (self._model.compute_transition_scores(sequences, output.scores, normalize_logits=True)
                            if with_scores else None)
        self._check_time(time.perf_counter() - started,
                         [self._until_stop(row[width:].tolist()) for row in sequences], max_new_tokens, limit)
        results = []
        for index, name in enumerate(names):
            completion = self._until_stop(sequences[index, width:].tolist())
            confidence = (float(logprobs[index, :len(completion)].float().mean().exp())
                          if logprobs is not None and completion else None)
            results.append(Generation(text=self._tokenizer.decode(completion, skip_special_tokens=True), model=name,
                                      prompt_tokens=len(rows[index]), completion_tokens=len(completion),
                                      finish_reason=self._finish_reason(completion, max_new_tokens),
                                      confidence=confidence))
        return results

    def _generate_from_prefix(self, name: str, rows: list[torch.Tensor], prefix: int,
                              config: GenerationConfig) -> tuple[int, torch.Tensor]:
        """Call with the lock held. Rows are laid out [shared prefix][padding][own tokens]: the prefix's cache is
        computed for one row and repeated, and positions follow the attention mask, so every row's tokens get
        the positions they have alone and the outputs match one-at-a-time generation. Returns (width, output)."""
        import torch

        own = max(len(row) for row in rows) - prefix
        pad = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(rows), prefix + own), pad, dtype=torch.long)
        attention = torch.zeros((len(rows), prefix + own), dtype=torch.long)
        input_ids[:, :prefix], attention[:, :prefix] = rows[0][:prefix], 1
        for index, row in enumerate(rows):
            input_ids[index, prefix + own - (len(row) - prefix):] = row[prefix:]
            attention[index, prefix + own - (len(row) - prefix):] = 1
        input_ids, attention = input_ids.to(self._model.device), attention.to(self._model.device)
        with self._selected(name) as network:
            cache = network(input_ids=input_ids[:1, :prefix], use_cache=True, logits_to_keep=1).past_key_values
            cache.batch_repeat_interleave(len(rows))
            output = network.generate(input_ids=input_ids, attention_mask=attention, past_key_values=cache,
                                      generation_config=config)
        return prefix + own, output

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def healthy(self) -> bool:
        return True  # in-process: if this object exists, the model is loaded

    def _left_padded(self, rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        width = max(len(row) for row in rows)
        pad = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for index, row in enumerate(rows):
            input_ids[index, width - len(row):] = row
            attention[index, width - len(row):] = 1
        return input_ids.to(self._model.device), attention.to(self._model.device)

    def _generate_mixed(self, names: list[str], input_ids: torch.Tensor, attention: torch.Tensor,
                        config: GenerationConfig) -> torch.Tensor:
        """Call with the lock held."""
        adapters = [name for name in dict.fromkeys(names) if name != self.base_name]
        if not adapters:
            return self._model.generate(input_ids=input_ids, attention_mask=attention, generation_config=config)
        for name in adapters:
            network = self._loaded(name)
        network.base_model.enable_adapter_layers()
        try:
            routes = [name if name != self.base_name else "__base__" for name in names]
            return network.generate(input_ids=input_ids, attention_mask=attention, generation_config=config,
                                    adapter_names=routes)
        finally:
            network.base_model.disable_adapter_layers()

    def _until_stop(self, completion: list[int]) -> list[int]:
        """A batched row goes on (padded) after its own end; cut it after the first stop token."""
        eos = self._model.generation_config.eos_token_id
        stops = set(eos) if isinstance(eos, list) else {eos}
        for index, token in enumerate(completion):
            if token in stops:
                return completion[: index + 1]
        return completion

    def add_adapter(self, name: str, path: Path) -> None:
        """Make a newly promoted adapter servable; it loads on its first request."""
        _check_adapter_dir(name, path)
        if name == self.base_name or name in self._adapters:
            raise Conflict(f"a model named {name!r} is already served; adapter versions are never reused",
                           param="model")
        self._adapters = {**self._adapters, name: path}

    def remove_adapter(self, name: str) -> None:
        if name not in self._adapters:
            raise NotFound(f"unknown adapter {shown(name)}; available: {', '.join(self._adapters) or 'none'}",
                           param="model")
        with self._lock:  # never pull an adapter out from under a running generation
            if self._peft is not None and name in self._peft.peft_config:
                self._unload(name)
            self._adapters = {key: value for key, value in self._adapters.items() if key != name}

    def _known(self, model: str | None) -> str:
        if model is None or model == self.base_name:
            return self.base_name
        if model not in self._adapters:
            raise NotFound(f"unknown model {shown(model)}; available: {', '.join(self.models())}", param="model")
        return model

    def _encode(self, messages: Messages, max_new_tokens: int) -> dict[str, torch.Tensor]:
        encoded = self._tokenizer.apply_chat_template(list(messages), add_generation_prompt=True,
                                                      return_tensors="pt", return_dict=True)
        inputs = {key: value.to(self._model.device) for key, value in encoded.items()}
        limit = getattr(self._model.config, "max_position_embeddings", None)
        if limit and inputs["input_ids"].shape[1] + max_new_tokens > limit:
            raise InvalidInput(f"the prompt ({inputs['input_ids'].shape[1]} tokens) plus max_tokens "
                               f"({max_new_tokens}) exceeds the model's context of {limit} tokens", param="messages")
        return inputs

    def _config(self, max_new_tokens: int, temperature: float, avoid: str | None = None) -> GenerationConfig:
        from transformers import GenerationConfig

        # Built from scratch so the checkpoint's sampling defaults (top_k, top_p) don't bend OpenAI semantics.
        return GenerationConfig(max_new_tokens=max_new_tokens, do_sample=temperature > 0, max_time=self.timeout_s,
                                suppress_tokens=[first_token(self._tokenizer, avoid)] if avoid else None,
                                temperature=temperature if temperature > 0 else None,
                                repetition_penalty=self.repetition_penalty if self.repetition_penalty != 1.0 else None,
                                eos_token_id=self._model.generation_config.eos_token_id,
                                pad_token_id=self._tokenizer.pad_token_id)

    def _check_time(self, elapsed: float, completions: list[list[int]], max_new_tokens: int,
                    limit: float | None = None) -> None:
        """Raise if `max_time` cut a generation off: a row neither stopped nor reached its token limit.
        `limit` is the batch's own (timeout_s per row); a single generation's is timeout_s."""
        limit = limit if limit is not None else self.timeout_s
        if limit is None or elapsed < limit:
            return
        if any(self._finish_reason(c, max_new_tokens) == "stop" and not self._stopped(c) for c in completions):
            raise BackendUnavailable(f"the generation took longer than LORAG_GENERATOR__TIMEOUT_S={self.timeout_s:g}s"
                                     f" per item ({limit:g}s for {len(completions)}) and was stopped; retry, or raise"
                                     " the limit", code="generation_timeout")

    def _stopped(self, completion: list[int]) -> bool:
        eos = self._model.generation_config.eos_token_id
        return bool(completion) and completion[-1] in (set(eos) if isinstance(eos, list) else {eos})

    def _finish_reason(self, completion: list[int], max_new_tokens: int) -> str:
        eos = self._model.generation_config.eos_token_id
        stops = set(eos) if isinstance(eos, list) else {eos}
        if len(completion) >= max_new_tokens and (not completion or completion[-1] not in stops):
            return "length"
        return "stop"

    def _deltas(self, name: str, inputs: dict[str, torch.Tensor], config: GenerationConfig) -> Iterator[str]:
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True)
        stop, timed_out = threading.Event(), threading.Event()
        failures: list[BaseException] = []
        with self._lock, self._selected(name) as network:
            worker = threading.Thread(target=_generate_into, daemon=True, name="lorag-generate",
                                      args=(network, inputs, config, streamer, stop, failures))
            timer = threading.Timer(self.timeout_s, lambda: (timed_out.set(), stop.set())) \
                if self.timeout_s is not None else None
            worker.start()
            if timer is not None:
                timer.start()
            try:
                yield ""  # the priming step of stream(); never reaches the caller
                yield from (delta for delta in streamer if delta)
            finally:
                if timer is not None:
                    timer.cancel()
                stop.set()  # a consumer that left early stops the model after its current token
                worker.join()
        if failures:
            raise failures[0]
        if timed_out.is_set():  # the text so far went out; the caller learns it is incomplete
            raise BackendUnavailable(f"the generation took longer than LORAG_GENERATOR__TIMEOUT_S={self.timeout_s:g}s"
                                     " and was stopped; retry, or raise the limit", code="generation_timeout")

    @contextmanager
    def network(self, model: str | None) -> Iterator[tuple[PreTrainedModel | PeftModel, PreTrainedTokenizerBase]]:
        """`model`'s network (its adapter on) and the tokenizer, this generator's lock held: for forward passes of
        one's own between generations (tagging's constrained scorer), never with an adapter switched under them."""
        name = self._known(model)
        with self._lock, self._selected(name) as network:
            yield network, self._tokenizer

    @contextmanager
    def _selected(self, name: str) -> Iterator[PreTrainedModel | PeftModel]:
        """The network to call for `name`; call with the lock held. Adapter layers rest disabled."""
        if name == self.base_name:
            yield self._model
            return
        network = self._loaded(name)
        network.set_adapter(name)
        network.base_model.enable_adapter_layers()
        try:
            yield network
        finally:
            network.base_model.disable_adapter_layers()

    def _loaded(self, name: str) -> PeftModel:
        from peft import PeftModel

        if name not in self._adapters:  # removed while this request waited for the lock
            raise NotFound(f"unknown model {shown(name)}; available: {', '.join(self.models())}", param="model")
        path = str(self._adapters[name])
        if self._peft is None:
            logger.info("loading adapter %s from %s", name, path)
            self._peft = PeftModel.from_pretrained(self._model, path, adapter_name=name, is_trainable=False)
        elif name not in self._peft.peft_config:
            logger.info("loading adapter %s from %s", name, path)
            self._peft.load_adapter(path, adapter_name=name, is_trainable=False)
        self._peft.eval()
        self._peft.base_model.disable_adapter_layers()  # freshly injected layers start enabled
        return self._peft

    def _unload(self, name: str) -> None:
        assert self._peft is not None
        if len(self._peft.peft_config) == 1:
            self._peft.unload()  # the last adapter: put the original Linear modules back into the base model
            self._peft = None
        else:
            self._peft.delete_adapter(name)


def _shared_prefix(rows: Sequence[torch.Tensor]) -> int:
    """How many leading tokens all rows share, leaving each row at least one token of its own."""
    import torch

    if len(rows) < 2:
        return 0
    shortest = min(len(row) for row in rows) - 1
    same = (torch.stack([row[:shortest] for row in rows]) == rows[0][:shortest]).all(dim=0)
    return int(same.long().cumprod(dim=0).sum())


def _generate_into(network: PreTrainedModel | PeftModel, inputs: dict[str, torch.Tensor], config: GenerationConfig,
                   streamer: TextIteratorStreamer, stop: threading.Event, failures: list[BaseException]) -> None:
    import torch
    from transformers import StoppingCriteriaList

    try:
        with torch.inference_mode():
            network.generate(**inputs, generation_config=config, streamer=streamer,
                             stopping_criteria=StoppingCriteriaList([_StopWhenSet(stop)]))
    except BaseException as error:  # handed to the consuming thread, which re-raises it
        failures.append(error)
        streamer.end()  # otherwise the consumer waits forever for text that never comes


def _check_adapter_dir(name: str, path: Path) -> None:
    if not (Path(path) / "adapter_config.json").is_file():
        raise InvalidInput(f"adapter {name!r}: no adapter_config.json in {path} (save it with peft's save_pretrained)",
                           param="model")
