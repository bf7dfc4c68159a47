"""The menu-tagging sample's split: enough test items to measure per-value precision, enough validation items to
calibrate the tagger's precision floors on."""

from __future__ import annotations

from pathlib import Path

from lorag.finetune.data import dedupe, load_records, split
from lorag.finetune.tasks import load_task
from lorag.tagging.tagger import MAX_CALIBRATION_ITEMS

MENU_TASK = Path(__file__).resolve().parents[2] / "samples" / "tasks" / "menu-tagging.yaml"


def test_the_menu_sample_holds_out_at_least_150_test_items() -> None:
    task = load_task(MENU_TASK)
    splits = split(dedupe(load_records(task))[0], task.split)
    sizes = {name: len(records) for name, records in splits.items()}
    assert sizes == {"train": 270, "validation": 65, "test": 154}  # stable: the split hashes each item's text
    assert sizes["test"] >= 150 and sizes["validation"] >= MAX_CALIBRATION_ITEMS
