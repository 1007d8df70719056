"""Adapters that let other libraries keep their API and store their events in evstore.

- :mod:`evstore.integrations.eventsourcing`: a persistence module for the ``eventsourcing``
  library (``pip install 'evstore[eventsourcing]'``; ``PERSISTENCE_MODULE`` selects it).
"""
