"""Worker processes for the multi-process contract tests (run with ``python -m``).

python -m evstore.testing._worker retry-append URL STREAM COUNT
    append COUNT single events to STREAM, each with the version just read as
    expected_version, re-reading and retrying on ConcurrencyError.
python -m evstore.testing._worker bulk-append URL STREAM SIZE
    append batches of SIZE events to STREAM forever (the parent kills it), printing
    "ok" after each acknowledged batch.
python -m evstore.testing._worker projection-member URL NAME I/N
    member I of a consumer group of N projections NAME (``partition=(I, N)``) whose read
    model is the table ``applied(partition, position)`` of the SQLite store itself
    (exactly-once); print "ready", handle everything stored, exit.
python -m evstore.testing._worker group-member URL NAME I/N OUT
    member I of consumer group NAME of N: subscribe(name=NAME, partition=(I, N)), write
    "partition position stream version" per delivered event to OUT (flushed), print
    "ready" once started, and exit when everything stored has been handled.
python -m evstore.testing._worker process-manager URL NAME CATEGORY IDS
    process manager NAME over CATEGORY: for each event, emit one "Emitted" event (data:
    the cause's event id) to stream "emitted-NAME", with random ids or, with IDS =
    "derived", ids derived from the cause; print "ready", then handle slowly for ever
    (the parent kills it).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import evstore


def retry_append(url: str, stream: str, count: int) -> None:
    with evstore.connect(url) as store:
        done = 0
        while done < count:
            version = store.stream_version(stream)
            try:
                store.append(stream, [evstore.NewEvent("Counted", {"n": done})], version)
            except evstore.ConcurrencyError:
                continue
            done += 1


def bulk_append(url: str, stream: str, size: int) -> None:
    payload = {"pad": "x" * 200}
    with evstore.connect(url) as store:
        print("ready", flush=True)
        while True:
            store.append(
                stream, [evstore.NewEvent("Bulk", {**payload, "i": i}) for i in range(size)]
            )
            print("ok", flush=True)


def group_member(url: str, name: str, member: str, out: str) -> None:
    i, n = (int(part) for part in member.split("/"))
    with evstore.connect(url) as store, open(out, "a", buffering=1) as log:

        def handle(event: evstore.RecordedEvent) -> None:
            log.write(f"{event.partition} {event.position} {event.stream_id} {event.version}\n")
            log.flush()
            time.sleep(0.002)  # slow enough to be killed in the middle of a batch

        with store.subscribe(handle, name=name, partition=(i, n), batch_size=10) as sub:
            print("ready", flush=True)
            sub.wait_until(store.head(), timeout=120)


def projection_member(url: str, name: str, member: str) -> None:
    i, n = (int(part) for part in member.split("/"))
    with evstore.connect(url) as store:

        def setup(tx: Any) -> None:
            tx.execute("CREATE TABLE IF NOT EXISTS applied (partition INT, position INT)")

        def handle(event: evstore.RecordedEvent, tx: Any) -> None:
            tx.execute("INSERT INTO applied VALUES (?, ?)", (event.partition, event.position))
            time.sleep(0.002)  # slow enough to be killed in the middle of a batch

        projection = evstore.Projection(
            store, name, handle, setup=setup, partition=(i, n), batch_size=10, exactly_once=True
        )
        print("ready", flush=True)
        projection.catch_up()


def process_manager(url: str, name: str, category: str, ids: str) -> None:
    with evstore.connect(url) as store:

        def handle(event: evstore.RecordedEvent, outbox: evstore.Outbox) -> None:
            emitted = evstore.NewEvent("Emitted", {"cause": str(event.event_id)})
            if ids == "derived":
                emitted = evstore.NewEvent("Emitted", emitted.data, event_id=outbox.event_id(event))
            outbox.append(f"emitted-{name}", [emitted])
            time.sleep(0.003)  # slow enough to be killed in the middle of a batch

        manager = evstore.ProcessManager(store, name, handle, batch_size=10, category=category)
        print("ready", flush=True)
        while True:
            manager.catch_up()
            time.sleep(0.01)


def main(argv: list[str]) -> None:
    command, url, stream, number = argv[:4]
    if command == "process-manager":
        process_manager(url, stream, number, argv[4])
    elif command == "group-member":
        group_member(url, stream, number, argv[4])
    elif command == "projection-member":
        projection_member(url, stream, number)
    elif command == "retry-append":
        retry_append(url, stream, int(number))
    elif command == "bulk-append":
        bulk_append(url, stream, int(number))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])
