"""The store layer: the facade (``EventStore``/``AsyncEventStore``), subscriptions, the one
log reader, store options and partitioning strategies, and ``connect`` by URL.

Each ``x_async.py`` is the source; ``x.py`` beside it is its generated sync twin.
"""
