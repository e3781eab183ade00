"""The run history's background writer: runs hand their finished ``RunLog`` over and return.

One writer (a daemon thread) per ``RunHistory`` that records runs, started with its first run
and stopped by ``close()``: no statement, commit or thread start on a run's path. It writes what
has queued in one transaction (a batch) at most ``BATCH_DELAY`` after the first run queued
(``ALONE_BATCH_DELAY`` where no other process can open the database), or at once when someone
waits for it (``flush``: every reading method of the history does, so this process reads its
own runs). On a database other processes share, it also shows the runs still
executing here that are older than ``SHOW_AFTER`` as ``running``, refreshed every
``PROGRESS_INTERVAL``, so another kernel sees a long run within a second; a short run costs
nothing of the kind.

A write that fails (the database gone, a role without rights) never reaches a run: it is logged
once, tried again after ``RETRY_DELAY``, and a run whose row failed ``MAX_TRIES`` times is
dropped, said in the log. At interpreter exit the writers still open write what is queued
(before the ``atexit`` hooks), so a script that ends without ``close()`` keeps its history.

The SQL is the history's (``monitor/runs.py``); this module only decides when.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dataflow_nb.monitor.run_log import RunLog

log = logging.getLogger("dataflow_nb")

# Seconds a finished run may wait for others to share its transaction. Each batch takes a
# connection from the pool the runs use, and under load it waits among them for one (~15 us of
# the writer's CPU a run at 0.2 s, its wake-ups as connections come back): 8 threads x 400 runs on a
# pool of 2 + 2, rows written included, cost the runs 2.9-7.5% of their throughput at 0.2 s
# (mean 5.9%) and 2.1-8.4% at 0.5 s (mean 4.3%), three pairs (issue 24).
BATCH_DELAY = 0.5
# The same where no other process can open the database (DuckDB): only this process reads the
# history, and it waits for the writer when it does, so bigger batches cost nothing to see; a
# DuckDB insert costs ~3 ms however few its rows.
ALONE_BATCH_DELAY = 1.0
SHOW_AFTER = 0.5  # seconds a run executes before another kernel sees it as running
PROGRESS_INTERVAL = 1.0  # seconds between refreshes of a running row
PROGRESS_TICK = 0.25  # seconds between looks at the runs executing here, while there are some
SPARE_WAIT = 0.1  # seconds before asking the pool again for a connection to spare
RETRY_DELAY = 1.0  # seconds before a failed batch is tried again
MAX_TRIES = 3  # a run whose row could not be written this many times is dropped
CLOSE_TIMEOUT = 10.0  # seconds close() and the exit hook wait for the queue to be written

_open: set[HistoryWriter] = set()  # writers not closed yet, for the exit hook
# Reentrant, as the history's locks: a DataFlow's finalizer (closing its writer) may run in any
# thread, at any allocation, even one holding the lock.
_open_lock = threading.RLock()


class HistoryWriter:
    """Writes finished runs in batches, and long runs' progress, on a thread of its own.

    Args:
        name: what the thread and the log call the database (its masked URL).
        write: writes a batch of finished runs in one transaction (raises when it could not).
        show: writes ``running`` rows for runs still executing (a courtesy: may raise).
        can_show: a connection can be had without making a run wait (the pool has one spare).
        settled: called with the runs that are written, or given up on (they leave the live view).
        shared: other processes use the database: show them the running runs, and write finished
            ones sooner.
    """

    def __init__(
        self,
        name: str,
        *,
        write: Callable[[list[RunLog]], None],
        show: Callable[[list[RunLog]], None],
        can_show: Callable[[], bool],
        settled: Callable[[list[RunLog]], None],
        shared: bool,
    ) -> None:
        self.name = name
        self._write, self._show, self._can_show, self._shared = write, show, can_show, shared
        self._on_settled = settled
        self._cond = threading.Condition()
        self._queue: list[RunLog] = []
        self._first_queued = 0.0  # monotonic time the oldest queued run was handed over
        self._queued = 0  # runs handed over so far
        self._settled = 0  # of those, written or given up on
        self._urgent = False  # someone waits: write without waiting for the batch to fill
        self._failing = False  # the last write failed (logged once until one succeeds again)
        self._failures = 0
        self._dropped = 0
        self._retry_at = 0.0
        self._tries: dict[str, int] = {}
        self._running: dict[str, RunLog] = {}  # runs executing here that this history records
        self._shown_at: dict[str, float] = {}  # run id -> monotonic time its running row was written
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=f"dataflow_nb history {name}", daemon=True)
        self._thread.start()
        with _open_lock:
            _open.add(self)

    # -- what runs call ------------------------------------------------------------------------

    def started(self, run: RunLog) -> None:
        """``run`` executes here now (shown to other processes if it lasts)."""
        if not self._shared:
            return
        with self._cond:
            idle = not self._running and not self._queue
            self._running[run.run_id] = run
            if idle:  # the thread sleeps without a deadline: give it one
                self._cond.notify()

    def finished(self, run: RunLog) -> None:
        """``run`` ended (its status set): queue its row and return at once."""
        with self._cond:
            self._running.pop(run.run_id, None)
            if not self._queue:
                self._first_queued = time.monotonic()
                self._cond.notify()
            self._queue.append(run)
            self._queued += 1

    # -- waiting for it ------------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        """Runs were handed over that are not written (or given up on) yet."""
        return self._settled < self._queued

    def flush(self, timeout: float) -> bool:
        """Wait until the runs handed over before this call are written; False when that did not
        happen within ``timeout`` seconds, or a write failed meanwhile (the reader goes on)."""
        if threading.current_thread() is self._thread:
            return False  # the writer itself (a finalizer run by its garbage collection)
        deadline = time.monotonic() + timeout
        with self._cond:
            target, failures = self._queued, self._failures
            if self._settled >= target:
                return True
            if self._failing:
                return False  # retried on its own schedule; readers do not wait for a broken database
            self._urgent = True
            self._cond.notify_all()
            while self._settled < target and self._failures == failures and self._thread.is_alive():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return self._settled >= target

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Write what is queued (within ``timeout``), then stop the thread."""
        self.flush(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        with _open_lock:
            _open.discard(self)

    # -- the thread ----------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            batch = self._next()
            if batch is None:
                return
            if batch:
                self._write_batch(batch)
            if self._shared:
                self._show_running()

    def _next(self) -> list[RunLog] | None:
        """Wait for work: a batch to write (maybe empty: only progress is due), or None to stop."""
        with self._cond:
            while True:
                now = time.monotonic()
                due = self._batch_due()
                if due is not None and due <= now:
                    batch, self._queue, self._urgent = self._queue, [], False
                    return batch
                if self._stopping and not self._queue:
                    return None
                shown = self._progress_due()
                if shown is not None and shown <= now:
                    return []
                deadlines = [d for d in (shown, due) if d is not None]
                if self._running:  # a run that started since the deadline was set may be due sooner
                    deadlines.append(now + PROGRESS_TICK)
                self._cond.wait(max(0.0, min(deadlines) - now) if deadlines else None)

    def _batch_due(self) -> float | None:
        if not self._queue:
            return None
        if self._stopping or self._urgent:
            return self._retry_at
        delay = BATCH_DELAY if self._shared else ALONE_BATCH_DELAY
        return max(self._first_queued + delay, self._retry_at)

    def _progress_due(self) -> float | None:
        """When the next running row is due (call with the lock held)."""
        if not self._shared or not self._running:
            return None
        due = []
        for run_id, run in self._running.items():
            shown = self._shown_at.get(run_id)
            if shown is not None:
                due.append(shown + PROGRESS_INTERVAL)
            else:  # the run's clock is perf_counter's: its age, put on the monotonic clock
                due.append(time.monotonic() - (time.perf_counter() - run.clock) + SHOW_AFTER)
        return min(due)

    def _write_batch(self, batch: list[RunLog]) -> None:
        try:
            self._write(batch)
        except Exception as exc:
            self._failed(batch, exc)
            return
        with self._cond:
            for run in batch:
                self._tries.pop(run.run_id, None)
                self._shown_at.pop(run.run_id, None)
            self._settled += len(batch)
            if self._failing:
                self._failing = False
                dropped = f"; {self._dropped} run(s) were dropped meanwhile" if self._dropped else ""
                log.info("run history: writing to %s again%s", self.name, dropped)
                self._dropped = 0
            self._cond.notify_all()
        self._on_settled(batch)

    def _failed(self, batch: list[RunLog], exc: Exception) -> None:
        """Tried again later, up to ``MAX_TRIES`` per run (once when closing); then dropped."""
        with self._cond:
            kept: list[RunLog] = []
            dropped: list[RunLog] = []
            for run in batch:
                tries = self._tries[run.run_id] = self._tries.get(run.run_id, 0) + 1
                (dropped if tries >= MAX_TRIES or self._stopping else kept).append(run)
            if not self._failing:
                log.warning(
                    "run history: could not write %d run(s) to %s (%s); runs go on, their rows are tried "
                    "again %d time(s)",
                    len(batch),
                    self.name,
                    exc,
                    MAX_TRIES - 1,
                )
            elif dropped:
                log.debug("run history: still cannot write to %s: %s", self.name, exc)
            if dropped:
                if not self._dropped:
                    log.warning(
                        "run history: %d run(s) dropped, not written to %s after %d tries: %s",
                        len(dropped),
                        self.name,
                        MAX_TRIES,
                        ", ".join(r.run_id for r in dropped[:5]) + (" ..." if len(dropped) > 5 else ""),
                    )
                self._dropped += len(dropped)
                for run in dropped:
                    self._tries.pop(run.run_id, None)
                    self._shown_at.pop(run.run_id, None)
                self._settled += len(dropped)
            self._failing = True
            self._failures += 1
            self._queue[:0] = kept
            if kept and len(kept) == len(self._queue):
                self._first_queued = time.monotonic()
            self._retry_at = time.monotonic() + RETRY_DELAY
            self._cond.notify_all()
        if dropped:
            self._on_settled(dropped)

    def _show_running(self) -> None:
        """Write the running rows that are due, when the pool has a connection to spare."""
        now = time.monotonic()
        with self._cond:
            due = [
                run
                for run_id, run in self._running.items()
                if run.status == "running"
                and (
                    now >= self._shown_at[run_id] + PROGRESS_INTERVAL
                    if run_id in self._shown_at
                    else time.perf_counter() - run.clock >= SHOW_AFTER
                )
            ]
        if not due:
            return
        if not self._can_show():  # a run never waits for its history: try again shortly
            with self._cond:
                for run in due:
                    self._shown_at[run.run_id] = now - PROGRESS_INTERVAL + SPARE_WAIT
            return
        with self._cond:
            for run in due:  # due again an interval later, whatever this attempt gives
                self._shown_at[run.run_id] = now
        try:
            self._show(due)
        except Exception as exc:  # progress is a courtesy; the run goes on
            log.debug("run history: running runs not shown on %s: %s", self.name, exc)


def _flush_at_exit() -> None:
    """A script that ends without ``close()``: its writers still write what is queued (they are
    daemon threads, stopped with the interpreter)."""
    with _open_lock:
        writers = list(_open)
    for writer in writers:
        writer.flush(CLOSE_TIMEOUT)


# Where the interpreter joins its threads, before any atexit hook: the drivers are still whole (a
# DataFlow's finalizer also writes the queue at exit, but in atexit's order, after hooks that
# drivers registered later; DuckDB's refuses Python scans from then on). The private hook is the
# one concurrent.futures uses; atexit where a Python lacks it.
_register = getattr(threading, "_register_atexit", atexit.register)
_register(_flush_at_exit)
