from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from core.errors import ConfigError
from core.settings import Settings, load_settings, redacted


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
