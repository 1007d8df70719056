"""``toy://NAME``: a third-party backend, registered under the ``evstore.backends`` group.

Its storage is evstore's in-process one; what it proves is the way in: a distribution
that is not evstore registers a URL scheme, and ``evstore.connect("toy://...")`` opens it.
"""

from __future__ import annotations

from evstore.backends.memory import MemoryBackend
from evstore.errors import InvalidInput

OPENED: list[str] = []  # the URLs this module opened, so tests can see it was used


def open_backend(url: str, **options: object) -> MemoryBackend:
    """Open ``toy://NAME`` (one store per name in this process); no options."""
    if options:
        raise InvalidInput(f"toy:// takes no options, got {sorted(options)}")
    OPENED.append(url)
    return MemoryBackend("toy:" + url.removeprefix("toy://").strip("/"))
