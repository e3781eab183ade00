"""Batches prepared on a background thread while the database takes the previous ones.

A bulk load is a pipeline: read and parse a batch on the client, then the database writes it.
Run one after the other, the database waits while the client parses and the other way round.
``ReadAhead`` runs the client's side on its own thread, a bounded number of batches ahead, so
the two overlap; the parsing (DuckDB, Arrow compute) releases the GIL while it works. Items and
errors come out in order, on the caller's thread, exactly as the plain iterator gives them.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_DONE = object()
_POLL = 0.05  # seconds: how often a blocked producer (or a reader of a closed one) looks again


class ReadAhead(Generic[T]):
    """``items``, produced on a daemon thread up to ``depth`` ahead of the reader.

    The thread starts at once, so the first item is on its way while the reader gets ready to
    take it (a database connection checked out, a COPY begun). An exception raised by ``items``
    is raised by ``__next__``, at the same place in the sequence. ``close()`` (or dropping the
    object) stops the thread after the item it is producing and closes ``items`` on that thread;
    call it when the reader stops early, e.g. on an error while writing. ``interrupt()`` (Ctrl-C,
    from another thread) makes the reader's next item a KeyboardInterrupt and stops the producer,
    ``on_interrupt`` stopping the work it is blocked in (a DuckDB read).
    """

    def __init__(self, items: Iterator[T], depth: int = 2, *, on_interrupt: Callable[[], None] | None = None):
        self._handoff: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=depth)
        self._stop, self._finished = threading.Event(), threading.Event()
        self._interrupted = threading.Event()
        self._on_interrupt = on_interrupt
        self._done = False
        # The thread holds the queue and the events, never this object: dropping it stops the thread.
        work = (items, self._handoff, self._stop, self._finished)
        threading.Thread(target=_produce, args=work, name="dataflow_nb-read-ahead", daemon=True).start()
        weakref.finalize(self, self._stop.set)

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._interrupted.is_set():
            self._done = True
            raise KeyboardInterrupt("the load was interrupted while it read its input")
        if self._done:
            raise StopIteration
        while True:
            try:
                ok, value = self._handoff.get(timeout=_POLL)
                break
            except queue.Empty:
                if self._interrupted.is_set():
                    return self.__next__()
                if self._stop.is_set():  # closed from another thread meanwhile
                    self._done = True
                    raise RuntimeError("the read-ahead was closed while it was being read") from None
        if not ok:
            self.close()
            assert isinstance(value, BaseException)
            raise value
        if value is _DONE:
            self.close()
            raise StopIteration
        return value  # type: ignore[return-value]

    def interrupt(self) -> None:
        """Ctrl-C, from any thread: the reader gets KeyboardInterrupt next, the producer stops."""
        self._interrupted.set()
        self._stop.set()
        if self._on_interrupt is not None:
            with contextlib.suppress(Exception):  # the work may have ended meanwhile
                self._on_interrupt()

    def close(self) -> None:
        """Stop the thread (after the item it is producing) and wait for it to clean up."""
        self._done = True
        self._stop.set()
        # Unblock a producer waiting to put. No Thread.join(): the reader may be a database's own
        # native thread (DuckDB's Arrow scan), where join() would register a dummy Thread for good.
        while not self._finished.is_set():
            try:
                self._handoff.get(timeout=_POLL)
            except queue.Empty:
                continue


def _produce(
    items: Iterator[object], handoff: queue.Queue[tuple[bool, object]], stop: threading.Event, finished: threading.Event
) -> None:
    def put(entry: tuple[bool, object]) -> bool:
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    try:
        for item in items:
            if not put((True, item)):
                return
        put((True, _DONE))
    except BaseException as exc:  # handed to the reader's thread, raised there
        put((False, exc))
    finally:
        close = getattr(items, "close", None)
        try:
            if close is not None:
                close()  # a generator's cleanup (open files, a DuckDB connection) on its own thread
        finally:
            finished.set()
