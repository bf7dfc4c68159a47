"""Promotions and rollbacks reach the serving generator without a restart; replaced versions drain first."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from lorag.core import db
from lorag.core.errors import BackendUnavailable
from lorag.core.tables import AdapterStatus
from lorag.finetune import registry
from lorag.finetune.tasks import TaskSpec
from lorag.serving.router import AdapterRouter


class RecordingHost:
    """Stands in for the generator's adapter table (a unit-test tool; the nightly test uses the real one)."""

    def __init__(self) -> None:
        self.loaded: dict[str, Path] = {}
        self.removed: list[str] = []

    def models(self) -> list[str]:
        return ["base", *self.loaded]

    def add_adapter(self, name: str, path: Path) -> None:
        assert name not in self.loaded, "a version name is never loaded twice"
        self.loaded[name] = path

    def remove_adapter(self, name: str) -> None:
        self.loaded.pop(name)
        self.removed.append(name)


@pytest.fixture
def sessions(tmp_path: Path):
    engine = db.build_engine(f"sqlite:///{tmp_path / 'lorag.db'}")
    db.migrate(engine)
    yield db.build_sessions(engine)
    engine.dispose()


def version(sessions, adapters_dir: Path, day: int) -> str:
    staged = registry.staging_dir(adapters_dir, "support")
    (staged / "adapter_config.json").write_text("{}")
    name = registry.version_name("support", sessions, adapters_dir, datetime(2026, 11, day, 2, tzinfo=UTC))
    registry.register(sessions, adapters_dir, staged, name=name, task="support", base_model="b", data_hash="d",
                      metrics={}, status=AdapterStatus.CANDIDATE, reason="")
    return name


def test_requests_follow_promotions_and_rollbacks(sessions, tmp_path: Path) -> None:
    task = TaskSpec(name="support", kind="grounded-qa", kb="support")
    host = RecordingHost()
    router = AdapterRouter(host, sessions, [task], poll_s=60, drain_s=0)
    router.sync()
    assert router.resolve(None, "support") is None  # nothing in service: the base model
    assert router.resolve("support@x", None) == "support@x"  # unknown names go on, to be refused by the generator

    first, second = version(sessions, tmp_path, 20), version(sessions, tmp_path, 21)
    registry.promote(sessions, first, "nightly")
    router.sync()
    assert router.resolve(None, "support") == first and router.resolve("support", None) == first
    assert router.resolve(None, "experts") is None and router.resolve("base", "support") == "base"

    registry.promote(sessions, second, "nightly")
    router.sync()  # the new version is served; with drain_s=0 the old one is dropped at once
    assert router.resolve(None, "support") == second
    assert set(host.loaded) == {second} and host.removed == [first]

    registry.rollback(sessions, "support")
    router.sync()
    assert router.resolve("support", None) == first and first in host.loaded


def test_a_replaced_version_stays_loaded_while_it_drains(sessions, tmp_path: Path) -> None:
    task = TaskSpec(name="support", kind="grounded-qa", kb="support")
    host = RecordingHost()
    router = AdapterRouter(host, sessions, [task], poll_s=60, drain_s=3600)
    first, second = version(sessions, tmp_path, 20), version(sessions, tmp_path, 21)
    registry.promote(sessions, first, "nightly")
    router.sync()
    registry.promote(sessions, second, "nightly")
    router.sync()
    router.sync()
    assert set(host.loaded) == {first, second} and host.removed == []


class RestartingServer:
    """A model server that loads adapters only at start (runtime LoRA off): the router may only follow it."""

    def __init__(self) -> None:
        self.listed: list[str] | None = ["base"]  # None: down, restarting

    def models(self) -> list[str]:
        if self.listed is None:
            raise BackendUnavailable("model server unreachable")
        return self.listed

    def add_adapter(self, name: str, path: Path) -> None:
        raise AssertionError("runtime loading is off: the router must not load adapters")

    remove_adapter = add_adapter


def test_without_runtime_loading_requests_go_to_versions_the_server_lists(sessions, tmp_path: Path) -> None:
    server = RestartingServer()
    router = AdapterRouter(server, sessions, [TaskSpec(name="support", kind="grounded-qa", kb="support")],
                           poll_s=60, drain_s=0, loads_adapters=False)
    first, second = version(sessions, tmp_path, 20), version(sessions, tmp_path, 21)
    registry.promote(sessions, first, "nightly")
    server.listed = ["base", first]
    router.sync()
    assert router.resolve(None, "support") == first

    registry.promote(sessions, second, "nightly")
    router.sync()  # the server has not restarted yet: it still only has the old version
    assert router.resolve(None, "support") == first
    server.listed = None  # the supervisor stops it to restart with the new set
    with pytest.raises(BackendUnavailable):
        router.sync()
    assert router.resolve(None, "support") == second  # it comes back with the registry's set
    server.listed = ["base", second]
    router.sync()
    assert router.resolve("support", None) == second
