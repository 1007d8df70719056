"""The ``evstore`` command line: ``main`` is the entry point (``evstore.cli.main``)."""

from evstore.cli.main import main

__all__ = ["main"]
