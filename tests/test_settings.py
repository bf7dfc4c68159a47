from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from lorag.core.errors import ConfigError
from lorag.core.settings import Settings, load_settings, redacted


def _fields_without_description(model: type[BaseModel], prefix: str = "LORAG_") -> list[str]:
    missing = []
    for name, field in model.model_fields.items():
        env = f"{prefix}{name.upper()}"
        if not field.description:
            missing.append(env)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            missing += _fields_without_description(annotation, env + "__")
    return missing


def test_every_setting_has_a_description() -> None:
    assert _fields_without_description(Settings) == []


def test_defaults_are_the_embedded_shape() -> None:
    settings = load_settings()
    assert settings.home == Path(".lorag")
    assert settings.store.backend == "edge"
    assert settings.database_url.startswith("sqlite:///")
    assert settings.database_url.endswith("/.lorag/lorag.db")


def test_nested_sections_come_from_prefixed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORAG_STORE__BACKEND", "qdrant")
    monkeypatch.setenv("LORAG_STORE__URL", "http://qdrant:6333")
    monkeypatch.setenv("LORAG_SERVER__PORT", "9000")
    settings = load_settings()
    assert (settings.store.backend, settings.store.url, settings.server.port) == ("qdrant", "http://qdrant:6333", 9000)


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LORAG_LOG__LEVEL=DEBUG\n")
    assert load_settings().log.level == "DEBUG"


def test_every_error_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORAG_SERVER__PORT", "not-a-port")
    monkeypatch.setenv("LORAG_STORE__BACKEND", "pinecone")
    monkeypatch.setenv("LORAG_LOG__LEVEL", "LOUD")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = caught.value.message
    for name in ("LORAG_SERVER__PORT", "LORAG_STORE__BACKEND", "LORAG_LOG__LEVEL"):
        assert name in message


def test_combinations_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORAG_STORE__BACKEND", "qdrant")
    with pytest.raises(ConfigError, match="LORAG_STORE__URL is required"):
        load_settings()


def test_unknown_variable_in_a_section_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORAG_STORE__URLL", "http://typo")
    with pytest.raises(ConfigError, match="LORAG_STORE__URLL"):
        load_settings()


def test_secrets_and_url_passwords_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORAG_STORE__API_KEY", "qdrant-secret")
    monkeypatch.setenv("LORAG_DATABASE__URL", "postgresql+psycopg://lorag:db-secret@db:5432/lorag")
    shown = str(redacted(load_settings()))
    assert "qdrant-secret" not in shown
    assert "db-secret" not in shown
    assert "lorag:***@db" in shown


# Every settings field whose value can carry a secret, and the value that carries one. A new text field must be
# added here or to PLAIN_TEXT, or the test below fails: nothing slips into `lorag config` unclassified.
SECRET_BEARING: dict[str, object] = {
    "database.url": "postgresql+psycopg://lorag:CANARY@db:5432/lorag",
    "store.url": "https://admin:CANARY@qdrant:6333/?api_key=CANARY",
    "store.api_key": "CANARY",
    "server.secret_key": "CANARY",
    "server.rate_limit_url": "redis://:CANARY@redis:6379/1",
    "queue.redis_url": "rediss://default:CANARY@redis:6380/0",
    "generator.base_url": "http://vllm:CANARY@vllm:8000/v1?token=CANARY",
    "generator.api_key": "CANARY",
    "models.base": "https://user:CANARY@models.example/smollm?access_token=CANARY",
    "models.embedder": "https://user:CANARY@models.example/minilm",
    "retrieval.reranker": "https://user:CANARY@models.example/reranker",
    "slack.bot_token": "CANARY",
    "slack.signing_secret": "CANARY",
    "slack.app_token": "CANARY",
    "slack.api_url": "https://bot:CANARY@slack.example/api/",
    "slack.source_url": "https://docs.example/{source}?sig=CANARY",
    "vllm.extra_args": ["--api-key", "CANARY", "--hf-token=CANARY", "--served-model-name", "m"],
}
# Text that names things, never holds a credential (a host, a schedule, a prompt the operator wrote).
PLAIN_TEXT = {"server.host", "store.collection", "finetune.schedule", "finetune.timezone", "vllm.host",
              "vllm.dtype", "slack.kb", "slack.correction_prefix", "slack.handoff_text", "slack.experts",
              "server.trusted_proxies"}


def _text_fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    found = []
    for name, field in model.model_fields.items():
        annotation, path = field.annotation, f"{prefix}{name}"
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += _text_fields(annotation, path + ".")
        elif any(kind in str(annotation) for kind in ("str", "SecretStr")) and "Literal" not in str(annotation):
            found.append(path)
    return found


def test_every_text_setting_is_classified_as_secret_bearing_or_plain() -> None:
    unclassified = sorted(set(_text_fields(Settings)) - set(SECRET_BEARING) - PLAIN_TEXT)
    assert unclassified == [], f"classify these in SECRET_BEARING or PLAIN_TEXT: {unclassified}"


@pytest.mark.parametrize("path", sorted(SECRET_BEARING))
def test_config_never_shows_a_secret(path: str) -> None:
    section, name = path.split(".")
    overrides: dict[str, object] = {section: {name: SECRET_BEARING[path]}}
    if path == "store.url":
        overrides["store"] = {"backend": "qdrant", "url": SECRET_BEARING[path]}
    if path == "queue.redis_url":
        overrides["queue"] = {"backend": "redis", "redis_url": SECRET_BEARING[path]}
    if path == "generator.base_url":
        overrides["generator"] = {"backend": "openai", "base_url": SECRET_BEARING[path]}
    shown = json.dumps(redacted(load_settings(**overrides)))
    assert "CANARY" not in shown
    assert "--served-model-name" in shown or path != "vllm.extra_args"  # only the secret values are masked
