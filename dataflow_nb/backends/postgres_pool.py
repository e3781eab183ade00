"""The life of a pooled PostgreSQL connection: how it is opened, checked at checkout, and cleaned
on its way back (``backends/postgres.py`` runs the statements)."""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

CHECK_AFTER_IDLE = 1.0  # seconds in the pool after which a connection is checked at checkout
_RETURNED_AT = "dataflow_nb_returned_at"  # in a pooled connection's record.info
AUTOCOMMIT = "adbc.connection.autocommit"


class Connector:
    """Opens the pool's ADBC connections. The driver reads the server's whole type catalog
    (``pg_type``, ``pg_attribute``) into each ADBC database it opens: ~45 ms a connection here,
    against ~2 ms for a connection cloned from one already open (``adbc_clone``: the same
    database object, its catalog read once). Once every connection of a database is closed (a
    restarted server invalidates them all), the next one opens a new database and reads the
    catalog afresh."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._lock = threading.Lock()
        self._last: Any = None  # the last connection opened: a live one's database is cloned

    def __call__(self) -> Any:
        import adbc_driver_manager
        import adbc_driver_postgresql.dbapi

        with self._lock:
            if self._last is not None:
                with contextlib.suppress(adbc_driver_manager.Error):  # all of its database's closed
                    self._last = self._last.adbc_clone()
                    return self._last
            self._last = adbc_driver_postgresql.dbapi.connect(self._url)
            return self._last


def discard_session(dbapi_connection: Any) -> None:
    """Roll back, then ``DISCARD ALL``: the next run, maybe another tenant's, finds no temporary
    table, setting (``search_path`` included), prepared statement, cursor, lock or ``LISTEN``
    of this one. Settings go back to the session's defaults, which keep what the URL's
    ``options`` set. ``DISCARD ALL`` cannot run inside a transaction and ADBC always has one
    open, so it runs in autocommit mode (``benchmarks/history.py`` measures what it costs).
    """
    dbapi_connection.rollback()
    adbc = dbapi_connection.adbc_connection
    adbc.set_options(**{AUTOCOMMIT: "true"})
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("DISCARD ALL")
    finally:
        adbc.set_options(**{AUTOCOMMIT: "false"})


def roll_back(dbapi_connection: Any) -> None:
    """End the transaction, if one is open (ADBC begins one with the first statement after a
    commit, so after a commit this sends nothing)."""
    dbapi_connection.rollback()


def checkout_check(sql: str, *, always: bool, lost_at: Callable[[], float]) -> Callable[[Any, Any, Any], None]:
    """Pessimistic check at checkout, in one round trip: a dead connection, or one to a server that
    is no longer what ``target_session_attrs`` asks for (a primary that became a standby), is
    discarded and replaced instead of failing a run.

    Without ``target_session_attrs`` (``always`` False), a connection back from a run less than
    ``CHECK_AFTER_IDLE`` seconds ago, and since no connection was found lost, is not checked: that
    round trip would be one of the three or four a small run makes. If it was lost all the same,
    the run's first statement finds out and ``PostgresConnection`` replaces it.
    """

    def check(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        returned = record.info.get(_RETURNED_AT, -math.inf)
        if not always and returned > lost_at() and time.monotonic() - returned < CHECK_AFTER_IDLE:
            return
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute(sql)
                wrong = cursor.fetchall()[0][0]
        except Exception as exc:
            raise sa.exc.DisconnectionError(str(exc)) from exc
        if wrong:
            raise sa.exc.DisconnectionError("the server is not the kind target_session_attrs asks for (a standby?)")

    return check


def note_return(dbapi_connection: Any, record: Any) -> None:
    """When the connection came back to the pool: the check at checkout skips one in use moments ago."""
    record.info[_RETURNED_AT] = time.monotonic()


def return_late(pooled: Any) -> None:
    """A checkout that answered after the caller gave up: straight back to the pool."""
    if pooled is not None:
        with contextlib.suppress(Exception):
            pooled.close()
