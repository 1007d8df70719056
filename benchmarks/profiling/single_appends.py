"""N single-event appends to new streams on a fresh SQLite file (W1's shape).

python -m benchmarks.profiling.single_appends N [group_commit]
"""

import sys
import tempfile

import evstore
from evstore import NewEvent

n = int(sys.argv[1])
group_commit = sys.argv[2] if len(sys.argv) > 2 else None
folder = tempfile.mkdtemp()
url = f"sqlite:///{folder}/w1.db?synchronous=OFF"
if group_commit:
    url += f"&group_commit={group_commit}"
store = evstore.connect(url)
for i in range(n):
    store.append(
        f"s-{i}", [NewEvent("Deposited", {"amount": i})], expected_version=evstore.NO_STREAM
    )
store.close()
