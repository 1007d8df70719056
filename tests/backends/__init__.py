"""One module per backend under test: each has ``factory(tmp_path)``, a context manager
yielding a :class:`evstore.testing.StoreFactory` on a fresh, empty database.

``tests/conftest.py`` finds every module here and runs the contract suite against each.
A backend whose server is unreachable fails its tests - it is never silently skipped.
Set ``EVSTORE_TEST_BACKENDS=memory,sqlite`` to run a subset on purpose.
"""
