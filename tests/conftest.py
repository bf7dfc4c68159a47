"""Shared fixtures. Models are provisioned once into .cache/models and reused by every later run."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy import create_engine, text

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from lorag.core import models  # noqa: E402 - after the environment above
from lorag.core.settings import Settings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODELS_CACHE = REPO / ".cache" / "models"
POSTGRES_ADMIN_URL = os.environ.get("LORAG_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# `make test` (so CI) sets LORAG_TEST_REQUIRE_ALL=1: there a service or tool the suite needs (Postgres, Redis,
# vLLM's venv, initdb, a tmpfs) that is missing fails its tests instead of skipping them. Read once, here: every
# test runs with the LORAG_* variables removed.
REQUIRE_ALL = os.environ.get("LORAG_TEST_REQUIRE_ALL") == "1"


def unavailable(message: str) -> NoReturn:
    """A test's dependency is missing: a failure under `make test`, a skip in a partial run elsewhere."""
    if REQUIRE_ALL:
        pytest.fail(f"{message} (`make test` requires it: LORAG_TEST_REQUIRE_ALL=1)")
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's LORAG_* variables or .env."""
    for name in list(os.environ):
        if name.startswith("LORAG_"):
            monkeypatch.delenv(name)
    # An app with models would otherwise train first adapters for the sample tasks in the background.
    monkeypatch.setenv("LORAG_FINETUNE__FIRST_ADAPTERS", "false")
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def models_dir() -> Path:
    models.provision("packaged:smollm2-135m-instruct", MODELS_CACHE)
    return MODELS_CACHE


@pytest.fixture
def make_settings(tmp_path: Path) -> type[Settings]:
    """Settings rooted in this test's tmp dir, models from the shared cache (not provisioned here)."""

    def build(**overrides: object) -> Settings:
        overrides.setdefault("home", tmp_path / "home")
        overrides.setdefault("models", {"cache_dir": MODELS_CACHE})
        return Settings(**overrides)

    return build  # type: ignore[return-value]


def postgres_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A private schema in the local Postgres, dropped afterwards."""
    if not postgres_reachable():
        unavailable("Postgres is not reachable on 127.0.0.1:5432 (set LORAG_TEST_POSTGRES to point elsewhere)")
    schema = f"lorag_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lorag.db'}"
    return request.getfixturevalue("postgres_url")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
