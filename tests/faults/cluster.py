"""Private PostgreSQL clusters for fault tests: killed, paused, promoted without touching the shared server.

Each cluster is ``initdb``'d into a temporary directory with the binaries under
``/usr/lib/postgresql/*/bin``, runs as the ``postgres`` OS user (PostgreSQL refuses root) on a
free port, and is stopped, resumed first if paused, also when the test fails.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import unavailable


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        unavailable("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Cluster:
    """One PostgreSQL server of this test's own: ``start``, ``pause``, ``resume``, ``stop``."""

    def __init__(self, root: Path, name: str = "primary") -> None:
        self.bin = _bin_dir()
        self.data = root / name
        self.socket_dir = root
        self.log = root / f"{name}.log"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin / command[0]), *command[1:]]
        if os.geteuid() == 0:  # PostgreSQL will not run as root
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=120)

    def init(self) -> None:
        self._as_postgres("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=60 -c shared_buffers=16MB -c wal_level=replica -c hot_standby=on"
        )
        self._as_postgres("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")

    def pids(self) -> list[int]:
        """The postmaster and every process it started (backends, checkpointer, walsender...)."""
        pid_file = self.data / "postmaster.pid"
        if not pid_file.exists():
            return []
        postmaster = int(pid_file.read_text().split()[0])
        children = subprocess.run(
            ["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False
        ).stdout.split()
        return [postmaster, *map(int, children)]

    def pause(self) -> None:
        """SIGSTOP the whole server: it accepts TCP connections (the kernel does) but never answers."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def stop(self) -> None:
        """Immediate shutdown; a server that does not stop is killed."""
        self.resume()
        result = self._as_postgres(
            "pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop", check=False
        )
        if result.returncode != 0:
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def promote(self) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "promote")

    def admin(self) -> Any:
        """An autocommit ADBC connection for the test's own checks (pg_stat_activity, kills)."""
        import adbc_driver_postgresql.dbapi

        return adbc_driver_postgresql.dbapi.connect(self.url, autocommit=True)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with contextlib.closing(self.admin()) as connection, connection.cursor() as cursor:
            cursor.execute(sql)
            return [tuple(row) for row in cursor.fetchall()] if cursor.description else []

    def standby(self, root: Path) -> Cluster:
        """A streaming standby of this server (``pg_basebackup -R``), started on a port of its own."""
        replica = Cluster(root, "standby")
        self._as_postgres(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-D", str(replica.data), "-R",
            "-X", "stream", "--no-sync",
        )  # fmt: skip
        replica.start()
        return replica


@contextmanager
def private_root() -> Iterator[Path]:
    """A temporary directory the ``postgres`` user owns, removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="dataflow-pg-", dir="/tmp"))
    try:
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(root, user.pw_uid, user.pw_gid)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def running_cluster() -> Iterator[Cluster]:
    """A started private server, always stopped afterwards (resumed first if a test paused it)."""
    with private_root() as root:
        cluster = Cluster(root)
        cluster.init()
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()


@contextmanager
def streaming_pair() -> Iterator[tuple[Cluster, Cluster]]:
    """A private primary and its streaming standby (``pg_basebackup -R``), both stopped afterwards."""
    with running_cluster() as primary, private_root() as root:
        standby = primary.standby(root)
        try:
            yield primary, standby
        finally:
            standby.stop()


def wait_until(check: Any, seconds: float = 30.0, what: str = "the condition") -> None:
    """Poll ``check`` until it is true (no timed assertion: the deadline only bounds a hang)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {seconds} s")
        time.sleep(0.05)
