"""A client-side time limit for blocking driver calls, used only when ``statement_timeout`` is set.

A server that is paused or cut off never answers, so its own ``statement_timeout`` never fires
and the call blocks the caller's thread forever. Here the call runs on a short-lived daemon
thread instead; the caller waits up to the limit, then gives up on it. Nothing of this runs
when no limit is set: the call is made directly, at no cost.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class DeadlineExceeded(TimeoutError):
    """The call did not return in time; it may still be running on its thread."""


def call_with_deadline(
    call: Callable[[], T],
    seconds: float | None,
    *,
    on_timeout: Callable[[], None] = lambda: None,
    grace: float = 0.0,
    abandon: Callable[[Any], None] = lambda result: None,
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

    Raises:
        DeadlineExceeded: the call took longer; whatever it raised instead is raised as is.
    """
    if seconds is None:
        return call()
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
        answered = done.wait(seconds)
    except BaseException:  # Ctrl-C while waiting: the call must not go on using the connection unseen
        give_up(0.0)
        raise
    if not answered:
        give_up(grace)
        raise DeadlineExceeded(f"no answer within {seconds:g} s")
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[no-any-return]
    raise value
