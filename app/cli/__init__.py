"""The `lorag` command: every job is a subcommand, one Typer app per area (`server`, `documents`, `answers`,
`evaluate`, `tagging`, `finetune`, `keys`). Errors print one clear line and exit non-zero."""

from __future__ import annotations

import logging
import sys

import typer

from lorag.app.cli import answers, documents, evaluate, finetune, keys, server, tagging
from lorag.app.cli.base import plain_metavars

cli = typer.Typer(name="lorag", no_args_is_help=True, add_completion=False,
                  help="Answers from your own documents with checked citations, from nightly LoRA-tuned models.")
logger = logging.getLogger("lorag")

cli.add_typer(server.app)
cli.add_typer(documents.app)
cli.add_typer(answers.app)
cli.add_typer(evaluate.app, name="eval")
cli.add_typer(tagging.app)
cli.add_typer(finetune.app)
cli.add_typer(finetune.adapters, name="adapters")
cli.add_typer(keys.app, name="keys")

__all__ = ["cli", "main", "plain_metavars"]


def main() -> None:
    command = typer.main.get_command(cli)
    plain_metavars(command)
    sys.exit(command())
