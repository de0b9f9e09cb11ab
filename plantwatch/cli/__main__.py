"""`python -m plantwatch.cli`: the `plantwatch` command."""

from plantwatch.cli import app

app()
