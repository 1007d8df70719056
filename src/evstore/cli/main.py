"""The ``evstore`` command: a demo and tools for operators.

    evstore demo                 the worked example on ./evstore-demo.db
    evstore read STREAM          print a stream
    evstore tail                 follow the global log
    evstore streams              list streams
    evstore stats                counts
    evstore migrate              create or upgrade the schema explicitly
    evstore ui                   a read-only web viewer (the ui extra)
    evstore export|import|copy|verify|subscriptions|rebuild   operators (evstore.cli.ops)
    evstore retention|scavenge   retention metadata, removing expired events (evstore.cli.ops)

Every command but ``demo`` takes ``--url`` (default ``$EVSTORE_URL``, else ./evstore.db).

A command is a ``click.Command`` named ``NAME`` in a module of this package; add the module
to :data:`COMMANDS` and it is registered (``read``, ``tail`` ... are written that way).
"""

from __future__ import annotations

import importlib

import click

import evstore

# module -> the names of the click commands it defines, in the order `--help` lists them
COMMANDS: dict[str, tuple[str, ...]] = {
    "evstore.cli.demo": ("demo",),
    "evstore.cli.read": ("read",),
    "evstore.cli.tail": ("tail",),
    "evstore.cli.streams": ("streams", "stats"),
    "evstore.cli.migrate": ("migrate",),
    "evstore.cli.ui": ("ui",),
    "evstore.cli.ops": (
        "export_command",
        "import_command",
        "copy_command",
        "verify_command",
        "subscriptions_command",
        "rebuild_command",
        "forget_command",
        "retention_command",
        "scavenge_command",
    ),
}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(evstore.__version__, prog_name="evstore")
def main() -> None:
    """evstore - an event store for Python.

    Store commands take --url URL, else $EVSTORE_URL, else sqlite:///evstore.db. Results
    go to stdout (tables on a terminal; one line per item through a pipe; NDJSON with
    --json), messages and errors to stderr.
    """


def _register() -> None:
    for module_name, names in COMMANDS.items():
        module = importlib.import_module(module_name)
        for name in names:
            command = getattr(module, name)
            assert isinstance(command, click.Command), f"{module_name}.{name}"
            main.add_command(command)


_register()
