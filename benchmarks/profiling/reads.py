"""Reads of a 5,000-event stream and of the whole log, REPEAT times (read path cost).

python -m benchmarks.profiling.reads sqlite|pg REPEAT
"""

import os
import sys
import tempfile

import evstore
from evstore import NewEvent

backend, repeat = sys.argv[1], int(sys.argv[2])
if backend == "sqlite":
    url = f"sqlite:///{os.path.join(tempfile.gettempdir(), 'evstore-profile-reads.db')}"
else:
    url = "postgresql://postgres@127.0.0.1:5432/postgres?schema=evstore_profile_reads"
store = evstore.connect(url)
if store.stream_version("acct-1") == 0:
    for _ in range(5):
        store.append(
            "acct-1",
            [
                NewEvent("Deposited", {"amount": j, "note": "x" * 20, "k": "abc"})
                for j in range(1000)
            ],
        )
for _ in range(repeat):
    store.get_events("acct-1")
    sum(1 for _ in store.iter_all())
store.close()
