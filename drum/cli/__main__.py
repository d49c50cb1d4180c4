"""``python -m drum.cli``: the ``drum`` command."""

from drum.cli.app import app

app()
