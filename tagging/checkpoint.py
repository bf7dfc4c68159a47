"""A resumable tagging run: a file of items in, a file of tags out.

    lorag tag menu.csv --taxonomy samples/menu/taxonomy.yaml --output tags.jsonl

Input and output are CSV, JSONL or Parquet, by extension. Each finished batch is appended to
`OUTPUT.partial.jsonl` (flushed and fsynced), so a run that is killed loses at most one batch; running the same
command again skips every id already there and tags the rest. When all items are done, OUTPUT is written whole
(a temporary file renamed over it) in the input's order and the partial file is removed.

An item that could not be tagged is written with `valid: false` and its `error`. It is not retried on resume:
decoding is greedy, so the same model would write the same reply; `--retry-failed` tags those items again
(after a new adapter, say), and the newer row replaces the older one, so no item appears twice.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from lorag.core.errors import InvalidInput
from lorag.finetune.types import stable_hash
from lorag.tagging.tables import write_table
from lorag.tagging.tagger import Item, Tagger, TagResult

logger = logging.getLogger(__name__)

PROBE_ITEMS = 2  # tagged first to measure the speed that sets an automatic batch size
BATCH_SECONDS = 20.0  # an automatic batch takes about this long, so the first rows are on disk within a minute
MAX_AUTO_BATCH = 32


class Checkpoint:
    """`OUTPUT.partial.jsonl`: a header naming the taxonomy and model, then one result row a line."""

    def __init__(self, output: Path, header: Mapping[str, Any]) -> None:
        self.path = output.with_name(output.name + ".partial.jsonl")
        self.header = dict(header)

    def load(self) -> dict[str, dict[str, Any]]:
        """id → its latest row; a last line cut short by a kill is dropped (its batch is tagged again)."""
        if not self.path.exists():
            return {}
        data = self.path.read_bytes()
        whole = data[: data.rfind(b"\n") + 1]
        if len(whole) != len(data):
            with self.path.open("r+b") as handle:
                handle.truncate(len(whole))
        try:
            lines = [json.loads(line) for line in whole.decode("utf-8").splitlines() if line.strip()]
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InvalidInput(f"{self.path} is damaged (not JSON lines); delete it to start over") from None
        header = lines[0].get("_run", {}) if lines else {}
        if header and header.get("taxonomy") != self.header["taxonomy"]:
            raise InvalidInput(f"{self.path} holds tags of another taxonomy; use the same --taxonomy to resume, "
                               "or delete it to start over")
        if header and header.get("model") != self.header["model"]:
            logger.warning("resuming %s with %s; its earlier rows were tagged with %s (each row names its model)",
                           self.path, self.header["model"] or "the base model", header.get("model") or "the base model")
        return {row["id"]: row for row in lines[1:]}

    def append(self, rows: Sequence[Mapping[str, Any]]) -> None:
        new = not self.path.exists() or self.path.stat().st_size == 0
        with self.path.open("a", encoding="utf-8") as handle:
            if new:
                handle.write(json.dumps({"_run": self.header}) + "\n")
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
            handle.flush()
            os.fsync(handle.fileno())


def run_resumable(tagger: Tagger, items: Sequence[Item], output: Path, *, retry_failed: bool = False,
                  show_progress: bool = True, auto_batch: bool = False) -> dict[str, int]:
    """Tag what the checkpoint lacks, then write OUTPUT whole. Returns counts: total, valid, failed, resumed,
    needs_review. `auto_batch`: the batch size is set from the speed of the first PROBE_ITEMS items."""
    header = {"taxonomy": stable_hash(tagger.taxonomy.model_dump()), "model": tagger.model}
    checkpoint = Checkpoint(output, header)
    done = checkpoint.load()
    keep = {key: row for key, row in done.items() if row["valid"] or not retry_failed}
    todo = [item for item in items if item.id not in keep]
    resumed = len(items) - len(todo)

    def save(batch: list[TagResult]) -> None:
        rows = [result.as_row() for result in batch]
        checkpoint.append(rows)
        keep.update((row["id"], row) for row in rows)
        advance(len(rows))

    with progress_bar(len(items), len(items) - len(todo), show_progress) as advance:
        if auto_batch and todo:
            started = time.perf_counter()
            save(tagger.tag_batch(todo[:PROBE_ITEMS]))
            tagger.batch_size = auto_batch_size((time.perf_counter() - started) / len(todo[:PROBE_ITEMS]))
            logger.info("%.1fs per item: batches of %d", (time.perf_counter() - started) / PROBE_ITEMS,
                        tagger.batch_size)
            todo = todo[PROBE_ITEMS:]
        for batch in tagger.batches(todo):
            save(batch)
    rows = [keep[item.id] for item in items]
    write_table(output, rows)
    checkpoint.path.unlink()
    valid = sum(row["valid"] for row in rows)
    return {"total": len(rows), "valid": valid, "failed": len(rows) - valid, "resumed": resumed,
            "needs_review": sum(bool(row.get("needs_review")) for row in rows)}


def auto_batch_size(seconds_per_item: float) -> int:
    """As many items as take about BATCH_SECONDS at the measured speed, 1 to MAX_AUTO_BATCH.

    >>> auto_batch_size(2.0), auto_batch_size(0.1), auto_batch_size(60.0)
    (10, 32, 1)
    """
    return max(1, min(MAX_AUTO_BATCH, int(BATCH_SECONDS / max(seconds_per_item, 1e-9))))


@contextmanager
def progress_bar(total: int, already: int, show: bool) -> Iterator[Callable[[int], None]]:
    """A bar of items with the rate of this run (items/s) and the time left at it, skipped items counted as done."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[rate]}"), TextColumn("left"), TimeRemainingColumn())
    started, tagged = time.perf_counter(), 0
    with Progress(*columns, disable=not show) as progress:
        bar = progress.add_task("tagging", total=total, completed=already, rate="")

        def advance(count: int) -> None:
            nonlocal tagged
            tagged += count
            rate = f"{tagged / max(time.perf_counter() - started, 1e-9):.2f} items/s"
            progress.update(bar, advance=count, rate=rate)

        yield advance


