"""Shared fixtures: every backend test body runs on DuckDB and on a real PostgreSQL.

PostgreSQL comes from ``DATAFLOW_TEST_POSTGRES_URL`` (default: the local server). Each test
gets its own schema, dropped afterwards on a thread of its own (``run_later``). Outside CI an
unreachable server skips with the reason; with ``CI=true`` it fails the run instead.

A fresh DataFlow with a model costs a test ~0.05 s on DuckDB and ~0.1 s on PostgreSQL (most of
it the driver's connect). Tests that only read what a fixture wrote, or that are refused before
anything is written, share one per class and backend instead: ``class_db`` and ``class_run``
(class scope, so the module's other tests still see only their own DataFlow); a class whose
tests write empties its tables after each with ``delete_rows``.

Markers (registered in ``pyproject.toml``; ``--strict-markers`` refuses any other):

- ``slow``: private PostgreSQL clusters and Redis servers, the browser, notebooks and kernels,
  anything over ~3 s.
  ``pytest -m "not slow"`` is the fast loop; plain ``pytest`` (and CI) runs everything.
- ``notimpl(backends, raises=..., match=None, reason=...)``: dataflow_nb does not do this on
  those backends yet; ``notyet(...)``: the database itself cannot. Both become
  ``xfail(strict=True, raises=...)`` on the listed backends' parameters, so a gap that gets
  fixed turns the test red (XPASS(strict)) and the marker must go.
- ``only(backends)``: the test means nothing on the other backends; their parameters are
  deselected (counted as "deselected" in the summary), never a silent pass or skip.
"""

from __future__ import annotations

import os
import queue
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest

POSTGRES_URL = os.environ.get("DATAFLOW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = os.environ.get("DATAFLOW_TEST_BACKENDS", "duckdb,postgres").split(",")
IN_CI = os.environ.get("CI", "").lower() == "true"


# The fixtures whose parameter names the backend a test runs on.
BACKEND_PARAMS = ("backend_url", "class_backend_url", "fault_url", "sample", "backend")
GAP_MARKERS = ("notimpl", "notyet")


def _backend_of(item: pytest.Item) -> str | None:
    params = getattr(getattr(item, "callspec", None), "params", {})
    return next((str(params[name]) for name in BACKEND_PARAMS if name in params), None)


def _backends(mark: pytest.Mark, item: pytest.Item) -> Sequence[str]:
    backends = mark.args[0] if mark.args else None
    if not isinstance(backends, list | tuple) or not set(backends) <= {"duckdb", "postgres"}:
        raise pytest.UsageError(f"{item.nodeid}: @{mark.name} takes a list of 'duckdb'/'postgres'")
    return backends


def _gap_xfail(mark: pytest.Mark, item: pytest.Item) -> pytest.MarkDecorator:
    """``notimpl``/``notyet`` as a strict xfail that only the named exception (and message) satisfies."""
    raises, reason, match = mark.kwargs.get("raises"), mark.kwargs.get("reason"), mark.kwargs.get("match")
    if raises is None or not reason:
        raise pytest.UsageError(f"{item.nodeid}: @{mark.name} needs raises= and reason=")
    expected = pytest.RaisesExc(raises, match=match) if match else raises
    return pytest.mark.xfail(strict=True, raises=expected, reason=f"{mark.name}: {reason}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Turn the backend markers into strict xfails and deselections on the matching parameters."""
    kept, deselected = [], []
    for item in items:
        marks = [m for m in item.iter_markers() if m.name in (*GAP_MARKERS, "only")]
        backend = _backend_of(item)
        if marks and backend is None:
            raise pytest.UsageError(f"{item.nodeid}: @{marks[0].name} needs a test parametrized by backend")
        only = item.get_closest_marker("only")
        if only is not None and backend not in _backends(only, item):
            deselected.append(item)
            continue
        for mark in marks:
            if mark.name in GAP_MARKERS and backend in _backends(mark, item):
                item.add_marker(_gap_xfail(mark, item))
        kept.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def unavailable(reason: str) -> None:
    """Fail under CI, skip elsewhere: a missing server must never pass silently in CI."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a test server that cannot be reached fails the run)")
    pytest.skip(reason)


def _admin_connection(url: str = POSTGRES_URL) -> Any:
    import adbc_driver_postgresql.dbapi

    try:
        connection = adbc_driver_postgresql.dbapi.connect(url, autocommit=True)
    except Exception as exc:
        unavailable(f"PostgreSQL at {url} is not reachable: {exc}")
    return connection


def _run(connection: Any, sql: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql)


class _Later:
    """Administrator SQL run in order on a thread and a connection of its own while the tests go
    on: dropping a test's schema costs it ~10-40 ms of the server's time, ``DROP DATABASE`` waits
    for a checkpoint (~1.5 s). The session waits for the queue at its end and fails if one failed."""

    def __init__(self) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.failures: list[str] = []

    def put(self, sql: str) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="tests-run-later", daemon=True)
            self._thread.start()
        self._queue.put(sql)

    def _work(self) -> None:
        import adbc_driver_postgresql.dbapi

        connection = None
        while (sql := self._queue.get()) is not None:
            try:
                if connection is None:
                    connection = adbc_driver_postgresql.dbapi.connect(POSTGRES_URL, autocommit=True)
                _run(connection, sql)
            except Exception as exc:  # reported at the session's end
                self.failures.append(f"{sql}: {exc!r}")
        if connection is not None:
            connection.close()

    def finish(self) -> list[str]:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        return self.failures


_LATER = _Later()


def run_later(sql: str) -> None:
    """Run administrator SQL on the shared server after the test, without waiting for it."""
    _LATER.put(sql)


def pytest_sessionfinish(session: pytest.Session) -> None:
    failures = _LATER.finish()
    if failures:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        session.config.get_terminal_writer().line("run_later failed:\n" + "\n".join(failures), red=True)


@pytest.fixture(scope="session")
def admin_connection() -> Iterator[Any]:
    """One administrator connection for the session's schemas: connecting costs ~70 ms a test."""
    connection = _admin_connection()
    yield connection
    connection.close()


@contextmanager
def _schema(admin: Any) -> Iterator[str]:
    """A URL whose search_path is a fresh schema of its own, dropped afterwards (``run_later``)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    _run(admin, f"CREATE SCHEMA {schema}")
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        run_later(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def postgres_url(admin_connection: Any) -> Iterator[str]:
    """A URL whose search_path is a fresh schema of its own."""
    with _schema(admin_connection) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """``None`` (in-memory DuckDB) or an isolated PostgreSQL schema."""
    if request.param == "duckdb":
        yield None
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def db(backend_url: str | None) -> Iterator[Any]:
    from dataflow_nb import DataFlow

    flow = DataFlow(backend_url)
    yield flow
    flow.close()


def runner(db: Any) -> Callable[..., Any]:
    """Run one node of ``db`` and return its output: ``run("UserCreateNode", {...})``."""
    from dataflow_nb import LocalRuntime, WorkflowBuilder

    def run_one(node_type: str, params: dict[str, Any] | None = None, **execute: Any) -> Any:
        workflow = WorkflowBuilder()
        workflow.add_node(db.nodes[node_type], "node", params or {})
        results, _ = LocalRuntime().execute(workflow.build(), **execute)
        return results["node"]

    return run_one


@pytest.fixture
def run(db: Any) -> Any:
    """Run one node and return its output: ``run("UserCreateNode", {...})``."""
    return runner(db)


# One DataFlow for a class of tests that only read what a class fixture wrote once: a fresh
# DataFlow with its model and rows costs ~0.1 s a test (connecting, creating tables, seeding).
# Class scope ends it with the class, so the module's other tests still see only their own
# DataFlow (SQLQueryNode without db= needs exactly one open).


@pytest.fixture(scope="class", params=BACKENDS)
def class_backend_url(request: pytest.FixtureRequest, admin_connection: Any) -> Iterator[str | None]:
    """``backend_url`` shared by the tests of one class."""
    if request.param == "duckdb":
        yield None
    else:
        with _schema(admin_connection) as url:
            yield url


@pytest.fixture(scope="class")
def class_db(class_backend_url: str | None) -> Iterator[Any]:
    """``db`` shared by the tests of one class: they must not change what it holds."""
    from dataflow_nb import DataFlow

    flow = DataFlow(class_backend_url)
    yield flow
    flow.close()


@pytest.fixture(scope="class")
def class_run(class_db: Any) -> Any:
    """``run`` on ``class_db``."""
    return runner(class_db)


def model_fixtures(name: str, add: Callable[[Any], Any]) -> tuple[Any, Any]:
    """The fixtures ``name`` (``add`` on the test's own ``db``) and ``class_<name>`` (``add`` on
    the class's ``class_db``), for a module whose tests use the same models both ways:
    ``people, class_people = model_fixtures("people", add_people)``."""

    @pytest.fixture(name=name)
    def per_test(db: Any) -> Any:
        return add(db)

    @pytest.fixture(name=f"class_{name}", scope="class")
    def per_class(class_db: Any) -> Any:
        return add(class_db)

    return per_test, per_class


def shared(name: str, *, empty: tuple[str, ...] = ()) -> Any:
    """In a class of tests, ``things = shared("things")`` hands each test the class fixture
    ``class_things`` as ``things``; ``empty`` names the models whose rows go after each test."""

    @pytest.fixture(name=name)
    def hand_out(self: Any, request: pytest.FixtureRequest, class_db: Any) -> Iterator[Any]:
        yield request.getfixturevalue(f"class_{name}")
        if empty:
            delete_rows(class_db, *empty)

    return hand_out


def delete_rows(db: Any, *models: str) -> None:
    """Empty the models' tables (ids go on counting): what a class's test wrote is gone for the next."""
    connection = db.backend.connect()
    try:
        for model in models:
            connection.execute_sql(f"DELETE FROM {db.models[model].table_name}")
        connection.commit()
    finally:
        connection.close()
