"""A client-side time limit for blocking driver calls, used only when ``statement_timeout`` is set.

A server that is paused or cut off never answers, so its own ``statement_timeout`` never fires
and the call blocks the caller's thread forever. Here the call runs on a short-lived daemon
thread instead; the caller waits up to the limit, then gives up on it. Nothing of this runs
when no limit is set: the call is made directly, at no cost, and the driver's own Ctrl-C
handling stops it (DuckDB checks for signals, ADBC cancels on SIGINT; ``backends/*_errors.py``
turn what they raise into KeyboardInterrupt).

Ctrl-C while the caller waits is the user's word: the call is cancelled (``on_interrupt``) and
waited for, so the connection is idle again when the KeyboardInterrupt reaches the run's rollback.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
_STEP = 0.05  # seconds between looks for a Ctrl-C while waiting


class DeadlineExceeded(TimeoutError):
    """The call did not return in time; it may still be running on its thread."""


def call_with_deadline(
    call: Callable[[], T],
    seconds: float | None,
    *,
    on_timeout: Callable[[], None] = lambda: None,
    grace: float = 0.0,
    abandon: Callable[[Any], None] = lambda result: None,
    on_interrupt: Callable[[], None] | None = None,
    interrupt_grace: float = 5.0,
) -> T:
    """Run ``call`` and return its result, or raise DeadlineExceeded after ``seconds``.

    Args:
        call: the blocking call.
        seconds: the limit; None calls directly, without a thread.
        on_timeout: runs when the limit passes, e.g. to interrupt the call (DuckDB) or to take
            the connection out of its pool (PostgreSQL). It must not use the busy connection.
        grace: how long to wait for the call to end after ``on_timeout`` (it interrupted it).
        abandon: runs once, with the call's result (None after an error), when the caller gave
            up: on the call's thread when it ends at last, or at once if it ended during
            ``grace``. The place to close what the call opened.
        on_interrupt: on Ctrl-C while waiting, cancels the call (``cursor.interrupt()``,
            ``adbc_cancel()``); the caller then waits up to ``interrupt_grace`` for it to end before
            giving up on it (``on_timeout``, ``abandon``). None gives up at once.
        interrupt_grace: how long a cancelled call gets to end.

    Raises:
        DeadlineExceeded: the call took longer; whatever it raised instead is raised as is.
        KeyboardInterrupt: Ctrl-C while waiting, once the call ended or was given up.
    """
    if seconds is None:
        return call()
    return _call_on_thread(call, seconds, on_timeout, grace, abandon, on_interrupt, interrupt_grace)


def call_interruptibly(call: Callable[[], T], *, on_interrupt: Callable[[], None], grace: float = 5.0) -> T:
    """Run ``call`` on a thread while this one waits for it, so that Ctrl-C stops it at once.

    For a long call that a driver would not stop on SIGINT by itself, such as an ingest that
    goes on reading its stream after the statement was cancelled. Ctrl-C runs ``on_interrupt``
    (stop the stream, cancel the statement) and waits up to ``grace`` for the call to end, then
    raises KeyboardInterrupt. Off the main thread, which never receives signals, it calls directly.
    """
    if threading.current_thread() is not threading.main_thread():
        return call()
    return _call_on_thread(call, None, lambda: None, 0.0, lambda result: None, on_interrupt, grace)


def _call_on_thread(
    call: Callable[[], T],
    seconds: float | None,
    on_timeout: Callable[[], None],
    grace: float,
    abandon: Callable[[Any], None],
    on_interrupt: Callable[[], None] | None,
    interrupt_grace: float,
) -> T:
    """``call`` on a daemon thread, waited for up to ``seconds`` (None: as long as it takes)."""
    lock = threading.Lock()
    done = threading.Event()
    outcome: list[tuple[bool, Any]] = []
    given_up = False

    def target() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:  # handed to the caller's thread
            outcome.append((False, exc))
        with lock:
            done.set()
            late = given_up
        if late:
            ok, value = outcome[0]
            abandon(value if ok else None)

    def give_up(wait: float) -> None:
        nonlocal given_up
        on_timeout()
        done.wait(wait)
        with lock:
            given_up = not done.is_set()
        if not given_up:  # it ended meanwhile: too late all the same
            ok, value = outcome[0]
            abandon(value if ok else None)

    threading.Thread(target=target, name="dataflow_nb-deadline", daemon=True).start()
    try:
        answered = _wait(done, seconds)
    except BaseException:  # Ctrl-C while waiting: the call must not go on using the connection unseen
        if on_interrupt is None or not _cancelled(on_interrupt, done, interrupt_grace):
            give_up(0.0)
        raise
    if not answered:
        give_up(grace)
        raise DeadlineExceeded(f"no answer within {seconds or 0:g} s")
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[no-any-return]
    raise value


def _wait(done: threading.Event, seconds: float | None) -> bool:
    """``done.wait(seconds)`` in short steps. The kernel may hand SIGINT to any thread (a driver's
    own); Python then runs its handler on the main thread only once that thread wakes up."""
    deadline = None if seconds is None else time.monotonic() + seconds
    while True:
        step = _STEP if deadline is None else min(_STEP, deadline - time.monotonic())
        if step <= 0:
            return done.is_set()
        if done.wait(step):
            return True


def _cancelled(cancel: Callable[[], None], done: threading.Event, grace: float) -> bool:
    """Cancel the call and wait for it to end: True when it did within ``grace``."""
    try:
        cancel()
    except Exception:  # a cancel that fails leaves the call to be given up
        return False
    return done.wait(grace)
