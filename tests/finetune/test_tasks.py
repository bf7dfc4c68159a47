"""Task files: every problem reported at once, paths relative to the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from lorag.core.errors import ConfigError
from lorag.finetune.tasks import find_task, load_task, load_tasks

GOOD = """
name: menu
kind: classification
taxonomy:
  labels: [starter, main, dessert]
data:
  sources:
    - {path: data/menu.jsonl, format: records, text_field: item, output_field: course}
gate: {macro_f1: 0.01}
"""


def test_a_task_file_loads_with_paths_relative_to_it(tmp_path: Path) -> None:
    (tmp_path / "menu.yaml").write_text(GOOD)
    task = load_task(tmp_path / "menu.yaml")
    assert task.kind == "classification" and task.taxonomy and task.taxonomy.labels == ["starter", "main", "dessert"]
    assert task.resolve(task.data.sources[0].path) == tmp_path.resolve() / "data" / "menu.jsonl"
    assert task.training.seed == 0 and task.lora.r == 16


def test_every_problem_of_a_task_is_reported(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("name: Bad Name\nkind: grounded-qa\ngate: {macro_f1: -1}\nlora: {r: 0}\n")
    with pytest.raises(ConfigError) as caught:
        load_task(tmp_path / "bad.yaml")
    message = caught.value.message
    assert "lora.r" in message
    (tmp_path / "bad.yaml").write_text("name: Bad Name\nkind: grounded-qa\ngate: {macro_f1: 0.1}\n")
    with pytest.raises(ConfigError) as caught:
        load_task(tmp_path / "bad.yaml")
    message = caught.value.message
    assert "lowercase" in message and "needs kb" in message and "macro_f1" in message


def test_a_misspelt_audience_is_refused_by_name_instead_of_matching_nothing(tmp_path: Path) -> None:
    (tmp_path / "menu.yaml").write_text(GOOD + "audiences: [public, internl]\n")
    with pytest.raises(ConfigError, match=r"audiences\.1: Input should be 'public' or 'internal'"):
        load_task(tmp_path / "menu.yaml")


def test_a_folder_of_tasks_needs_unique_names(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD)
    with pytest.raises(ConfigError, match="declared twice"):
        load_tasks(tmp_path)
    (tmp_path / "b.yaml").unlink()
    assert [task.name for task in load_tasks(tmp_path)] == ["menu"]
    with pytest.raises(ConfigError, match="unknown task 'support'"):
        find_task(load_tasks(tmp_path), "support")


def test_missing_and_malformed_files_say_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no task files"):
        load_tasks(tmp_path)
    (tmp_path / "x.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_tasks(tmp_path)


def test_a_taxonomy_has_labels_or_fields(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text("name: t\nkind: classification\ntaxonomy: {labels: [a, b], fields: {x: "
                                     "{values: [a, b]}}}\n")
    with pytest.raises(ConfigError, match="either labels"):
        load_task(tmp_path / "t.yaml")
