"""Bytes written per event for 100-event batches on SQLite (W2's shape), from /proc.

python -m benchmarks.profiling.batch_bytes FULL|NORMAL
"""

import sys
import tempfile
import time

import evstore
from evstore import NewEvent


def written() -> int:
    with open("/proc/self/io") as f:
        fields = dict(line.split(": ") for line in f.read().splitlines())
    return int(fields["wchar"])


store = evstore.connect(f"sqlite:///{tempfile.mkdtemp()}/w2.db?synchronous={sys.argv[1]}")
batch = [NewEvent("Deposited", {"amount": i, "note": "x" * 20, "k": "abc"}) for i in range(100)]
before, started = written(), time.perf_counter()
for version in range(0, 10_000, 100):
    store.append("acct-1", [NewEvent(e.type, e.data) for e in batch], expected_version=version)
elapsed = time.perf_counter() - started
print(f"{10_000 / elapsed:,.0f} events/s, {(written() - before) / 10_000:,.0f} bytes per event")
store.close()
