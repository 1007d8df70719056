"""Wall time and client CPU per PostgreSQL single-event append (W1's shape).

python -m benchmarks.profiling.pg_single_appends N [notify]
"""

import sys
import time
import uuid

import evstore
from evstore import NewEvent

n = int(sys.argv[1])
notify = sys.argv[2] if len(sys.argv) > 2 else "true"
url = f"postgresql://postgres@127.0.0.1:5432/postgres?schema=evstore_profile_w1&notify={notify}"
store = evstore.connect(url)
store.append("warm-" + uuid.uuid4().hex, [NewEvent("T", {"a": 1})])
wall, cpu = time.perf_counter(), time.process_time()
for i in range(n):
    store.append(
        "s-" + uuid.uuid4().hex,
        [NewEvent("Deposited", {"amount": i})],
        expected_version=evstore.NO_STREAM,
    )
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(f"{n} appends: {wall / n * 1e6:.0f} us wall, {cpu / n * 1e6:.0f} us client CPU each")
store.close()
