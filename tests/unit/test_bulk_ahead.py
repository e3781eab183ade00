"""The bulk stream's helpers: batches read ahead on a thread, and keys checked for repeats."""

from __future__ import annotations

import _thread
import datetime as dt
import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import pyarrow as pa
import pytest

from dataflow_nb.backends.load_keys import KeyHashes
from dataflow_nb.backends.read_ahead import ReadAhead
from dataflow_nb.core.spec import spec_from_class


def test_items_and_errors_come_out_in_order_on_the_callers_thread() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("third")

    seen: list[tuple[int, str]] = []
    with pytest.raises(ValueError, match="third"):
        seen.extend((item, threading.current_thread().name) for item in ReadAhead(items()))
    assert seen == [(1, "MainThread"), (2, "MainThread")]


def test_stopping_early_stops_the_thread_and_closes_the_items() -> None:
    produced, closed = [], threading.Event()

    def items() -> Iterator[int]:
        try:
            for i in range(1_000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    before = set(threading.enumerate())
    ahead = ReadAhead(items(), depth=2)
    assert next(ahead) == 0
    ahead.close()  # what a bulk load does when the write fails
    assert closed.is_set()
    assert len(produced) <= 4  # the one handed out, two queued, one in the making
    assert gone(before)
    with pytest.raises(StopIteration):
        next(ahead)


def gone(before: set[threading.Thread]) -> bool:
    """Whether the threads started since ``before`` have ended (a read-ahead's ends right after its cleanup)."""
    deadline = time.monotonic() + 2
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.01)
    return not set(threading.enumerate()) - before


def test_a_native_consumer_thread_leaves_no_thread_object_behind() -> None:
    # DuckDB pulls a stream on its own threads, which the threading module never started.
    before = set(threading.enumerate())
    done = threading.Event()
    out: list[int] = []

    def consume() -> None:
        out.extend(ReadAhead(iter(range(5))))
        done.set()

    _thread.start_new_thread(consume, ())
    assert done.wait(5)
    assert out == [0, 1, 2, 3, 4]
    assert gone(before)  # no dummy Thread registered for the native thread either


class Keyed:
    code: str
    day: dt.date
    score: float
    amount: Decimal


def batch(codes: list[str]) -> pa.RecordBatch:
    days = pa.array([dt.date(2024, 1, 1)] * len(codes), pa.date32())
    return pa.record_batch({"code": pa.array(codes), "day": days})


def test_repeated_keys_are_found_across_batches() -> None:
    model = spec_from_class(Keyed)
    hashes = KeyHashes(model, ["code", "day"])
    hashes.add(batch(["a", "b"]))
    hashes.add(batch(["c"]))
    assert hashes.unique()
    hashes.add(batch(["b"]))
    assert not hashes.unique()


@pytest.mark.parametrize("key", ["score", "amount"])
def test_keys_that_may_compare_otherwise_in_the_database_are_never_called_unique(key: str) -> None:
    # 0.0 and -0.0, or 1.0 and 1.00, are one key to the database: such loads always deduplicate in SQL.
    hashes = KeyHashes(spec_from_class(Keyed), [key])
    hashes.add(pa.record_batch({key: pa.array([1.0])}))
    assert not hashes.unique()


def test_an_input_too_large_to_track_is_never_called_unique(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(KeyHashes, "MAX_ROWS", 3)
    hashes = KeyHashes(spec_from_class(Keyed), ["code"])
    hashes.add(batch(["a", "b"]))
    hashes.add(batch(["c", "d"]))
    assert not hashes.unique()
    assert hashes.hashes == []


def test_an_iterator_dropped_unused_stops_its_thread() -> None:
    # The thread starts at once; a load that fails before reading (no connection) drops it unused.
    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            yield from range(1_000)
        finally:
            closed.set()

    before = set(threading.enumerate())
    ahead = ReadAhead(items())
    del ahead
    assert closed.wait(2)
    assert gone(before)


def test_interrupt_from_another_thread_stops_the_reader_and_the_producer() -> None:
    blocked, stopped = threading.Event(), threading.Event()

    def items() -> Iterator[int]:
        yield 1
        blocked.set()
        stopped.wait(30)  # a read the interrupt must stop (DuckDB's, in a load)
        yield 2

    ahead = ReadAhead(items(), on_interrupt=stopped.set)
    assert next(ahead) == 1
    assert blocked.wait(30)
    threading.Timer(0.1, ahead.interrupt).start()
    with pytest.raises(KeyboardInterrupt):
        next(ahead)
    assert stopped.is_set()
    ahead.close()
