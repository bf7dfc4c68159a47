"""What every `lorag` command shares: the error edge, settings from the environment, and help in the words a
user types."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from functools import wraps
from pathlib import Path
from types import UnionType
from typing import Any, Literal, ParamSpec, TypeVar, Union, get_args, get_origin

import typer

from lorag.core import models
from lorag.core.faults import as_lorag_error
from lorag.core.logs import configure_logging
from lorag.core.settings import Settings, load_settings

P = ParamSpec("P")
R = TypeVar("R")


def edge(command: Callable[P, R]) -> Callable[P, R]:
    """Translate lorag's errors into one line on stderr and exit code 1."""

    @wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except Exception as exc:  # the edge: a lorag error or a known fault is one line; a bug keeps its traceback
            error = as_lorag_error(exc)
            if error is None:
                raise
            typer.secho(f"error: {error.message}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None

    return run


def cli_settings() -> Settings:
    settings = load_settings()
    configure_logging(settings.log.level)
    models.stay_offline_unless_hub([settings.models.base, settings.models.embedder], settings.models_dir)
    return settings


AudienceOption = typer.Option(help="Who may see these documents.")


def plain_metavars(command: Any) -> None:
    """Help in the words a user types: `QUESTION`, `--kb TEXT`, `--audience [public|internal]`, and no value after
    a flag (typer 0.29 shows `{question}`, `<str>` and `<bool>`)."""
    for param in command.params:
        if param.metavar is None:
            param.metavar = _metavar(param)
        if param.param_type_name == "argument":
            param.display_type_rich = lambda ctx: None  # its name says it: no `<str>` beside QUESTION
    made = command.get_help_option

    def help_option(ctx: Any) -> Any:
        option = made(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = help_option
    for child in getattr(command, "commands", {}).values():
        plain_metavars(child)


def _metavar(param: Any) -> str:
    if param.param_type_name == "argument":
        return (param.name or "value").upper() + ("..." if param.nargs == -1 else "")
    return _type_word(param.type_descriptor.annotation)


def _type_word(annotation: Any) -> str:
    if get_origin(annotation) is Literal:
        return "[" + "|".join(map(str, get_args(annotation))) + "]"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "[" + "|".join(str(member.value) for member in annotation) + "]"
    if get_origin(annotation) in (Union, UnionType):
        return _type_word(next(arg for arg in get_args(annotation) if arg is not type(None)))
    if get_origin(annotation) is list:
        return _type_word(get_args(annotation)[0]) + "..."
    return {bool: "", str: "TEXT", Path: "PATH", int: "INTEGER", float: "NUMBER"}.get(annotation, "VALUE")
