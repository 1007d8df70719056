"""MongoDB: SecantusDB (a MongoDB wire-protocol server on WiredTiger) started once per test
session on a free loopback port, or the real replica set named by ``EVSTORE_MONGODB_URL``.

Each test gets its own database, dropped afterwards. A server that cannot start fails the
tests; it never skips them.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pymongo import MongoClient

from evstore.testing import StoreFactory
from tests._nats_servers import _die_with_parent

ENV_URL = "EVSTORE_MONGODB_URL"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SecantusServer:
    """One ``secantusd-py`` process; ``storage`` is ``:memory:`` or a directory."""

    def __init__(self, storage: str = ":memory:", *, sync_on_commit: bool = False) -> None:
        self.storage = storage
        self.sync_on_commit = sync_on_commit
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._log_dir = tempfile.mkdtemp(prefix="secantus-log-")

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self, timeout: float = 90.0) -> None:
        exe = shutil.which("secantusd-py", path=os.path.dirname(sys.executable)) or shutil.which(
            "secantusd-py"
        )
        if exe is None:
            raise RuntimeError(
                "secantusd-py not found: pip install --pre 'SecantusDB==0.7.0b3' (dev extra)"
            )
        args = [exe, "--host", "127.0.0.1", "--port", str(self.port)]
        args += ["--storage-path", self.storage, "--log-level", "WARNING"]
        if self.sync_on_commit:
            args.append("--sync-on-commit")
        log = open(os.path.join(self._log_dir, "server.log"), "ab")  # noqa: SIM115
        # pytest-xdist workers end without running atexit handlers: the server dies with
        # the process that started it instead (seen: six servers outliving two runs).
        self.process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
        log.close()
        deadline = time.monotonic() + timeout
        client: MongoClient[dict[str, object]] = MongoClient(
            self.url, serverSelectionTimeoutMS=1000
        )
        try:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"secantusd-py exited at start:\n{self.log()}")
                try:
                    client.admin.command("ping")
                    return
                except Exception:
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"secantusd-py did not answer within {timeout}s:\n{self.log()}"
                        ) from None
                    time.sleep(0.1)
        finally:
            client.close()

    def log(self) -> str:
        try:
            return Path(self._log_dir, "server.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to flush or clean up."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None


_server: SecantusServer | None = None


def server_url() -> str:
    """The server all MongoDB tests share: $EVSTORE_MONGODB_URL, or one SecantusDB."""
    global _server
    url = os.environ.get(ENV_URL)
    if url:
        return url
    if _server is None:
        server = SecantusServer()
        server.start()
        atexit.register(server.stop)
        _server = server
    return _server.url


def with_database(url: str, database: str) -> str:
    """``url`` with its path set to ``/database`` (options kept)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


@contextmanager
def fresh_database(url: str | None = None) -> Iterator[str]:
    """A URL naming an unused database on the shared server.

    On a real server the database is dropped afterwards. The in-memory SecantusDB goes away
    with the test session instead: its ``dropDatabase`` hung (>2 min) behind a transaction
    left open by a SIGKILLed client (the kill-mid-append contract test), which would wedge
    every later test on the shared server.
    """
    base = url or server_url()
    name = f"evt_{uuid.uuid4().hex[:20]}"
    try:
        yield with_database(base, name)
    finally:
        if os.environ.get(ENV_URL):
            _drop(base, name)


def _drop(base: str, name: str) -> None:
    client: MongoClient[dict[str, object]] = MongoClient(base, serverSelectionTimeoutMS=5000)
    try:
        client.drop_database(name)
    finally:
        client.close()


@contextmanager
def factory(tmp_path: Path) -> Iterator[StoreFactory]:
    with fresh_database() as url:
        yield StoreFactory(url, across_processes=True)
