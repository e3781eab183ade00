"""Read replicas of a PostgreSQL primary: where a run that only reads goes.

A run that only reads is sent to a streaming standby (``DataFlow(replicas=[...])``) when one is
up, not lagging more than ``max_replica_lag`` seconds and, by default (read-your-writes), has
replayed this DataFlow's last commit: after a commit its position in the WAL
(``pg_current_wal_lsn()``) is noted, and a replica whose ``pg_last_wal_replay_lsn()`` is behind
it is passed over for the primary. ``consistency="eventual"`` skips that comparison.

A replica that is down is skipped for ``RECHECK_SECONDS`` with a warning; one that is not a
standby, or lags too far, is skipped with a warning too. A run whose replica goes away under it
fails with a retryable error (it only read), so the runtime runs it again, on the primary.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any, Literal

from dataflow_nb.backends.base import Backend, Connection
from dataflow_nb.backends.deadline import DeadlineExceeded, call_with_deadline
from dataflow_nb.backends.postgres_errors import is_disconnect
from dataflow_nb.exceptions import DataflowError

log = logging.getLogger("dataflow_nb")

Consistency = Literal["read_your_writes", "eventual"]
CONSISTENCIES = ("read_your_writes", "eventual")
PRIMARY = "primary"  # how the run history and the monitor name the primary
RECHECK_SECONDS = 5.0  # a replica that was down is tried again after this long
UNKNOWN_POSITION = 1 << 64  # past every WAL position: until the next commit's is known, the primary reads
# Where the standby is: in recovery at all, the WAL position it has replayed, and its lag in
# seconds (0 when it has replayed all it received: an idle primary sends nothing to replay).
_STANDBY_STATE = (
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
    "CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0.0 "
    "ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0.0) END::float8"
)
_COMMIT_POSITION = "SELECT pg_current_wal_lsn()::text"  # at least the position of the commit just made


def lsn_number(text: str) -> int:
    """``'0/3000148'`` as a number that orders like the WAL (two 32-bit halves in hex)."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


@dataclass
class Replica:
    """One standby: its URL (masked for showing), its backend once opened, and why it is skipped."""

    url: str  # may hold a password: never shown
    safe_url: str
    backend: Backend | None = None
    skip_until: float = 0.0  # monotonic time before which it is not tried (it was down)
    problem: str | None = None  # what was last warned about, so a warning is not repeated each run


@dataclass(frozen=True)
class Route:
    """Where a run's connection to one database goes: the primary, or a replica."""

    connection: Connection
    served_by: str  # "primary" or the replica's masked URL
    replica: Replica | None = None


@dataclass(frozen=True)
class StandbyState:
    in_recovery: bool
    replayed: int | None  # WAL position replayed, as lsn_number
    lag_seconds: float


class Replicas:
    """The replicas of one DataFlow's primary, and the WAL position of its last commit.

    Args:
        urls: the standbys' PostgreSQL URLs.
        open_replica: opens a backend for one URL (with the primary's pool and time limits).
        safe_url: masks the password of a URL.
        consistency: ``"read_your_writes"`` (default) or ``"eventual"``.
        max_lag: seconds a replica may lag before it is skipped.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        open_replica: Callable[[str], Backend],
        safe_url: Callable[[str], str],
        consistency: Consistency = "read_your_writes",
        max_lag: float = 30.0,
    ) -> None:
        self.replicas = [Replica(url, safe_url(url)) for url in urls]
        self._open = open_replica
        self.consistency = consistency
        self.max_lag = max_lag
        self.last_commit: int | None = None  # WAL position of this DataFlow's newest commit
        self._next = 0
        self._lock = threading.Lock()

    @property
    def safe_urls(self) -> list[str]:
        return [r.safe_url for r in self.replicas]

    def connect(self, primary: Backend, *, reads_only: bool) -> Route:
        """A connection for a run: a fresh enough replica when the run only reads, else the primary."""
        if reads_only:
            for replica in self._rotation():
                route = self._try(replica)
                if route is not None:
                    return route
        return Route(primary.connect(), PRIMARY)

    def _rotation(self) -> list[Replica]:
        """The replicas not skipped just now, starting one further each run (spreads the reads)."""
        with self._lock:
            start, self._next = self._next, self._next + 1
        now = time.monotonic()
        ordered = self.replicas[start % len(self.replicas) :] + self.replicas[: start % len(self.replicas)]
        return [r for r in ordered if r.skip_until <= now]

    def _try(self, replica: Replica) -> Route | None:
        """A connection to ``replica`` when it can serve the run now; None (and why, logged) if not."""
        try:
            connection = self._backend_of(replica).connect()
        except DataflowError as exc:
            self._skip(replica, "is down", f"({exc})", for_seconds=RECHECK_SECONDS)
            return None
        try:
            state = standby_state(connection)
        except DataflowError as exc:
            connection.close()
            self._skip(replica, "did not answer", f"({exc})", for_seconds=RECHECK_SECONDS)
            return None
        unfit = self._unfit(state)
        if unfit is not None:
            connection.close()
            self._skip(replica, *unfit)
            return None
        if not self._replayed(state):
            connection.close()  # it has not replayed our last commit yet: the primary reads it
            return None
        if replica.problem is not None:
            log.warning("replica %s serves reads again", replica.safe_url)
            replica.problem = None
        return Route(connection, replica.safe_url, replica)

    def _replayed(self, state: StandbyState) -> bool:
        """Read-your-writes: the replica has replayed this DataFlow's last commit (if any)."""
        if self.consistency != "read_your_writes" or self.last_commit is None:
            return True
        return state.replayed is not None and state.replayed >= self.last_commit

    def _unfit(self, state: StandbyState) -> tuple[str, str] | None:
        """Why a replica may not serve reads at all (the kind of trouble, then its detail); None: it may."""
        if not state.in_recovery:
            return "is not a standby", "(pg_is_in_recovery() is false): reads there could miss the primary's writes"
        if state.lag_seconds > self.max_lag:
            return "lags", f"{state.lag_seconds:.1f} s behind the primary (max_replica_lag={self.max_lag:g} s)"
        return None

    def _skip(self, replica: Replica, kind: str, detail: str, *, for_seconds: float = 0.0) -> None:
        """Pass ``replica`` over (for a while, when it is down); warn once per kind of trouble."""
        replica.skip_until = time.monotonic() + for_seconds
        if replica.problem != kind:
            log.warning("replica %s %s %s; reads go to the primary meanwhile", replica.safe_url, kind, detail)
        replica.problem = kind

    def _backend_of(self, replica: Replica) -> Backend:
        """The replica's backend, opened (with its pool) on first use."""
        with self._lock:
            if replica.backend is None:
                replica.backend = self._open(replica.url)
            return replica.backend

    def note_failure(self, route: Route, error: BaseException, run_id: str) -> None:
        """A statement failed on a replica: when the connection is gone, skip the replica for a
        while and make the error retryable (the run only read), so the runtime runs it again on
        the primary."""
        if route.replica is None or not (is_disconnect(error) or is_disconnect(error.__cause__ or error)):
            return
        self._skip(route.replica, f"went away during run {run_id}", f"({error})", for_seconds=RECHECK_SECONDS)
        if isinstance(error, DataflowError):
            error.retryable = True

    def note_commit(self, connection: Connection, primary: Backend) -> None:
        """After a commit on the primary: its WAL position, which replicas must replay before they
        serve this DataFlow's reads again (read-your-writes). Asked on the committing connection,
        else on a fresh one (any later position is as good); never raises: the commit happened."""
        if self.consistency != "read_your_writes":
            return
        try:
            number = _commit_position(connection)
        except DataflowError:
            try:
                with closing(primary.connect()) as fresh:
                    number = _commit_position(fresh)
            except DataflowError as exc:
                log.warning("the primary's WAL position after a commit is unknown (%s); reads stay on it", exc)
                number = UNKNOWN_POSITION  # no replica has replayed it: read-your-writes holds
        with self._lock:
            known = self.last_commit if self.last_commit != UNKNOWN_POSITION else None
            self.last_commit = number if number == UNKNOWN_POSITION else max(number, known or 0)

    def health(self, timeout: float) -> list[dict[str, Any]]:
        """Each replica now: status (healthy, lagging, behind, not a standby, unhealthy), lag in
        seconds, whether it replayed this DataFlow's last commit, and the error; never raises."""
        return [self._health_of(replica, timeout) for replica in self.replicas]

    def _health_of(self, replica: Replica, timeout: float) -> dict[str, Any]:
        report: dict[str, Any] = {"database": replica.safe_url, "lag_seconds": None, "replayed_last_commit": None}
        try:
            state = call_with_deadline(lambda: self._state_of(replica), timeout)
        except DeadlineExceeded:
            return {**report, "status": "unhealthy", "error": f"no answer within {timeout:g} s"}
        except DataflowError as exc:
            return {**report, "status": "unhealthy", "error": f"{type(exc).__name__}: {exc}"}
        replayed = None if self.last_commit is None else self._replayed(state)
        status = "healthy"
        if not state.in_recovery:
            status = "not a standby"
        elif state.lag_seconds > self.max_lag:
            status = "lagging"
        elif replayed is False:
            status = "behind"  # fine for other readers; this DataFlow reads its own writes on the primary
        return {**report, "status": status, "lag_seconds": state.lag_seconds, "replayed_last_commit": replayed,
                "error": None}  # fmt: skip

    def _state_of(self, replica: Replica) -> StandbyState:
        connection = self._backend_of(replica).connect()
        try:
            return standby_state(connection)
        finally:
            connection.close()

    def close(self) -> None:
        for replica in self.replicas:
            if replica.backend is not None:
                replica.backend.close()


def _commit_position(connection: Connection) -> int:
    position = connection.execute_sql(_COMMIT_POSITION)
    assert position is not None
    return lsn_number(str(position.column(0)[0].as_py()))


def standby_state(connection: Connection) -> StandbyState:
    """Ask a server whether it is a standby, what it replayed, and how far behind it is."""
    table = connection.execute_sql(_STANDBY_STATE)
    assert table is not None
    in_recovery, replayed, lag = (table.column(i)[0].as_py() for i in range(3))
    return StandbyState(bool(in_recovery), None if replayed is None else lsn_number(replayed), float(lag or 0.0))
