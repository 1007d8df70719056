"""The contract suite against every backend in tests/backends (see tests/conftest.py)."""

from evstore.testing import StoreContract


class TestContract(StoreContract):
    """Runs every contract test; ``store_factory`` is parametrized over the backends."""
