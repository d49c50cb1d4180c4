"""The ``drum`` console script (``drum = "drum.cli.main:app"``); the app is built in
``drum.cli.app``, its commands in one module per group."""

from __future__ import annotations

from drum.cli.app import app

__all__ = ["app"]

if __name__ == "__main__":  # pragma: no cover
    app()
