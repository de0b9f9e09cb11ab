"""The `plantwatch` command line: one entry point for the stack, the pipeline's apps and the demo.

One module per command (or group of subcommands), each with its own ``app`` (Typer's "one file per command"),
registered below one way: ``app.add_typer(module.app)``, with a name for a group. This package is the only place
Typer and Rich are imported (an import-linter contract in pyproject.toml): the modules below it return data and raise
errors, the commands here render them and choose the exit code. Heavy libraries (Quix Streams, dbt, Great
Expectations) are imported by the commands that run them, so `plantwatch --help` imports none of them.
"""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError
from typer.core import TyperGroup

from plantwatch.cli import (
    alerts,
    archive,
    baseline,
    check,
    config,
    db,
    demo,
    ingest,
    limits,
    machine,
    produce,
    replay,
    silence,
    stack,
    transform,
)
from plantwatch.producers.plant import PlantConfigError
from plantwatch.producers.replay import ReplayError
from plantwatch.settings import SettingsError, describe

# What a user can cause and fix (a setting, an option, a file): one line on stderr and exit 2, without a traceback
# unless --debug. Anything else is a bug, and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (SettingsError, ReplayError, PlantConfigError, ValidationError, OSError)


def one_line(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return describe(exc)
    if isinstance(exc, typer.BadParameter):
        return exc.format_message()
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror}"
    return " ".join(str(exc).split()) or type(exc).__name__


class OneLineErrors(TyperGroup):
    """The root command: a user error anywhere below it (a setting, an option's value, a file) is one line naming
    it, exit 2; ``plantwatch --debug ...`` shows the traceback instead."""

    def invoke(self, ctx: typer.Context) -> object:
        try:
            return super().invoke(ctx)
        except (*USER_ERRORS, typer.BadParameter) as exc:
            if ctx.params.get("debug"):
                raise
            typer.echo(f"error: {one_line(exc)}", err=True)
            ctx.exit(2)


app = typer.Typer(
    cls=OneLineErrors,
    help="Real-time monitoring and alerting for industrial machines.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error, not only its line.")] = False,
) -> None:
    """Real-time monitoring and alerting for industrial machines."""


COMMANDS = (
    (stack, "stack"), (demo, None), (check, None), (alerts, None), (silence, None), (produce, None),
    (replay, None), (ingest, None), (archive, "archive"), (transform, None), (baseline, "baseline"),
    (machine, "machine"), (limits, "limits"), (db, "db"), (config, None),
)  # fmt: skip
for module, group in COMMANDS:  # a group's subcommands under its name; a command's own name is in its module
    app.add_typer(module.app, name=group)
