"""``evstore ui``: a read-only web viewer of a store (the ``ui`` extra: Starlette, uvicorn).

:func:`create_app` builds the ASGI app over an open :class:`~evstore.AsyncEventStore`; the
command ``evstore ui --url URL`` serves it on 127.0.0.1. See docs/ui.md.
"""

from evstore.ui.app import create_app, event_json, server

__all__ = ["create_app", "event_json", "server"]
