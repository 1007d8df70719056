"""Worked examples of the domain layer, shipped with the package (``evstore demo`` uses them).

- :mod:`evstore.examples.users`: a ``User`` aggregate, its events and their
  registry, with an upcaster (an older camelCase ``UserRegistered`` v1 -> v2) and an
  alias for a renamed event type.
- :mod:`evstore.examples.projections`: ``UsersBySource``, a read model of how many users
  each registration source brought, exactly-once on SQLite.
- :mod:`evstore.examples.scenario`: the whole story in one function, ``run(store)``.
"""
