"""Redis for tests: the shared server (own key prefix per test) and private servers to kill.

The shared Redis at ``DATAFLOW_TEST_REDIS_URL`` is never stopped or reconfigured. Tests that
kill, pause or restart Redis start their own ``redis-server --port N --save ''`` and always
stop it, also when the test fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.conftest import unavailable

REDIS_URL = os.environ.get("DATAFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis() -> str:
    """The shared Redis URL; skips (fails under CI) when it does not answer."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        unavailable(f"Redis at {REDIS_URL} is not reachable: {exc}")
    finally:
        client.close()
    return REDIS_URL


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedis:
    """A redis-server of this test's own, on a free port, without persistence."""

    def __init__(self, *extra: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server is not installed (apt-get install redis-server)")
        self.binary = str(binary)
        self.extra = extra
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *self.extra]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as connection:
                    connection.sendall(b"PING\r\n")
                    if connection.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)  # a paused server cannot die of SIGKILL's wait
            self.kill()


@contextmanager
def private_redis(*extra: str) -> Iterator[PrivateRedis]:
    """A started private Redis, stopped whatever happens."""
    server = PrivateRedis(*extra)
    try:
        server.start()
        yield server
    finally:
        server.stop()
