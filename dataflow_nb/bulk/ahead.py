"""Batches prepared on a background thread while the database takes the previous ones.

A bulk load is a pipeline: read and parse a batch on the client, then the database writes it.
Run one after the other, the database waits while the client parses and the other way round.
``read_ahead`` runs the client's side on its own thread, a bounded number of batches ahead, so
the two overlap; the parsing (DuckDB, Arrow compute) releases the GIL while it works. Items and
errors come out in order, on the caller's thread, exactly as the plain iterator gives them.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()
_POLL = 0.05  # seconds: how often a blocked producer looks whether the consumer left


def read_ahead(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """``items``, produced on a daemon thread up to ``depth`` ahead of the caller.

    An exception raised by ``items`` is raised here, at the same place in the sequence. When the
    caller stops early (an error while writing, ``close()``), the thread stops after the item it
    is producing and ``items`` is closed on that thread; nothing runs on after this returns.
    """
    handoff: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=depth)
    stop, finished = threading.Event(), threading.Event()

    def put(entry: tuple[bool, object]) -> bool:
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((True, _DONE))
        except BaseException as exc:  # handed to the caller's thread, raised there
            put((False, exc))
        finally:
            close = getattr(items, "close", None)
            try:
                if close is not None:
                    close()  # a generator's cleanup (open files, a DuckDB connection) on its own thread
            finally:
                finished.set()

    thread = threading.Thread(target=produce, name="dataflow_nb-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            ok, value = handoff.get()
            if not ok:
                assert isinstance(value, BaseException)
                raise value
            if value is _DONE:
                return
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        # Unblock a producer waiting to put, then let it finish its item. No Thread.join(): the
        # caller may be a database's own native thread (DuckDB's Arrow scan), where join() would
        # leave a dummy Thread object registered for good.
        while not finished.is_set():
            try:
                handoff.get(timeout=_POLL)
            except queue.Empty:
                continue
