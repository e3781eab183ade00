"""Shared fixtures: every backend test body runs on DuckDB and on a real PostgreSQL.

PostgreSQL comes from ``DATAFLOW_TEST_POSTGRES_URL`` (default: the local server). Each test
gets its own schema, dropped afterwards. Outside CI an unreachable server skips with the
reason; with ``CI=true`` it fails the run instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

POSTGRES_URL = os.environ.get("DATAFLOW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = os.environ.get("DATAFLOW_TEST_BACKENDS", "duckdb,postgres").split(",")
IN_CI = os.environ.get("CI", "").lower() == "true"


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


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose search_path is a fresh schema of its own."""
    connection = _admin_connection()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    _run(connection, f"CREATE SCHEMA {schema}")
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        _run(connection, f"DROP SCHEMA {schema} CASCADE")
        connection.close()


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


@pytest.fixture
def run(db: Any) -> Any:
    """Run one node and return its output: ``run("UserCreateNode", {...})``."""
    from dataflow_nb import LocalRuntime, WorkflowBuilder

    def run_one(node_type: str, params: dict[str, Any] | None = None, **execute: Any) -> Any:
        workflow = WorkflowBuilder()
        workflow.add_node(db.nodes[node_type], "node", params or {})
        results, _ = LocalRuntime().execute(workflow.build(), **execute)
        return results["node"]

    return run_one
