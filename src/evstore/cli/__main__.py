"""``python -m evstore.cli``: the same as the ``evstore`` command."""

from evstore.cli.main import main

main()
