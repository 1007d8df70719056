"""The domain layer over the store: aggregates, the event registry, repositories with
snapshots and caches, and projections (read models).

Each ``x_async.py`` is the source; ``x.py`` beside it is its generated sync twin.
"""
