"""Fixtures for fault tests: a private PostgreSQL per session (one database per test), or per test
for tests that pause, kill or promote the server; and DuckDB files."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BACKENDS
from tests.faults.cluster import Cluster, running_cluster


@pytest.fixture(scope="session")
def shared_private_cluster() -> Iterator[Cluster]:
    """One private server for the tests that only need a server no other engineer uses."""
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A private server of this test alone: it may be paused, killed or promoted."""
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def private_url(shared_private_cluster: Cluster) -> Iterator[str]:
    """A fresh database on the session's private server."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    shared_private_cluster.query(f"CREATE DATABASE {name}")
    try:
        yield shared_private_cluster.url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        shared_private_cluster.query(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        shared_private_cluster.query(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(params=BACKENDS)
def fault_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A DuckDB file or a database on the private PostgreSQL server."""
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'faults.duckdb'}"
    return str(request.getfixturevalue("private_url"))
