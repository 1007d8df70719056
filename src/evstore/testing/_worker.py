"""Worker processes for the multi-process contract tests (run with ``python -m``).

python -m evstore.testing._worker retry-append URL STREAM COUNT
    append COUNT single events to STREAM, each with the version just read as
    expected_version, re-reading and retrying on ConcurrencyError.
python -m evstore.testing._worker bulk-append URL STREAM SIZE
    append batches of SIZE events to STREAM forever (the parent kills it), printing
    "ok" after each acknowledged batch.
"""

from __future__ import annotations

import sys

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


def main(argv: list[str]) -> None:
    command, url, stream, number = argv
    if command == "retry-append":
        retry_append(url, stream, int(number))
    elif command == "bulk-append":
        bulk_append(url, stream, int(number))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])
