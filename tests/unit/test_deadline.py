"""The client-side time limit: direct without a limit, a late result handed to ``abandon``."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from dataflow_nb.backends.deadline import DeadlineExceeded, call_interruptibly, call_with_deadline


def test_without_a_limit_the_call_runs_on_this_thread() -> None:
    assert call_with_deadline(threading.get_ident, None) == threading.get_ident()


def test_an_error_of_the_call_is_raised_as_is() -> None:
    def fail() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        call_with_deadline(fail, 5)


def test_a_late_result_goes_to_abandon_and_on_timeout_runs_first() -> None:
    release, abandoned = threading.Event(), threading.Event()
    events: list[str] = []

    def slow() -> str:
        release.wait(30)
        return "late"

    def abandon(result: object) -> None:
        events.append(f"abandon {result}")
        abandoned.set()

    with pytest.raises(DeadlineExceeded):
        call_with_deadline(slow, 0.05, on_timeout=lambda: events.append("timeout"), abandon=abandon)
    release.set()
    assert abandoned.wait(30)
    assert events == ["timeout", "abandon late"]


def test_a_call_that_stops_within_the_grace_is_still_too_late() -> None:
    stop = threading.Event()
    results: list[object] = []
    with pytest.raises(DeadlineExceeded):
        call_with_deadline(lambda: stop.wait(30), 0.05, on_timeout=stop.set, grace=30, abandon=results.append)
    assert results == [True]  # handed to abandon on the caller's thread, at once


def test_ctrl_c_while_waiting_cancels_the_call_and_waits_for_it() -> None:
    """SIGINT may land on any thread; the waiting main thread still sees it within its short steps."""
    release, ended = threading.Event(), threading.Event()

    def blocked() -> None:
        release.wait(30)
        ended.set()

    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()  # sent from another thread
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        call_interruptibly(blocked, on_interrupt=release.set)
    assert time.monotonic() - started < 2
    assert ended.is_set()  # cancelled and waited for: nothing still uses the connection
