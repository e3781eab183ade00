"""Re-running a load cell: ``mode="replace"`` replaces the table's rows in the load's transaction;
appending a source a committed run already loaded warns, naming that run and the other modes."""

from __future__ import annotations

import gzip
import os
import warnings
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dataflow_nb import DataFlow, LocalRuntime, ValidationError, WorkflowBuilder, WorkflowError
from tests.backends.tenants import define_models, runner, tenant_database

ROWS = pl.DataFrame({"code": ["a", "b", "c"], "qty": [1, 2, 3]})


@pytest.fixture
def part(db: Any) -> Any:
    @db.model
    class Part:
        code: str
        qty: int

    return Part


def _source(tmp_path: Path, kind: str, frame: pl.DataFrame = ROWS) -> dict[str, Any]:
    """A load's input of each kind: params of the BulkCreate (a reader node's output: 'reader')."""
    if kind == "frame":
        return {"data": frame.clone()}  # another object with the same rows
    if kind == "parquet":
        frame.write_parquet(tmp_path / "parts.parquet")
        return {"source": str(tmp_path / "parts.parquet")}
    if kind == "glob":
        frame.head(1).write_csv(tmp_path / "p1.csv")
        frame.tail(-1).write_csv(tmp_path / "p2.csv")
        return {"source": str(tmp_path / "p*.csv")}
    frame.write_csv(tmp_path / "parts.csv")
    if kind == "csv.gz":
        (tmp_path / "parts.csv.gz").write_bytes(gzip.compress((tmp_path / "parts.csv").read_bytes()))
        return {"source": str(tmp_path / "parts.csv.gz")}
    if kind == "reader":
        return {"reader": str(tmp_path / "parts.csv")}
    return {"source": str(tmp_path / "parts.csv")}


def _load(params: dict[str, Any], **extra: Any) -> tuple[Any, str]:
    workflow = WorkflowBuilder()
    params = {**params, **extra, "progress": False}
    path = params.pop("reader", None)
    if path is not None:
        workflow.add_node("CSVReaderNode", "read", {"path": path})
        workflow.add_connection("read", "data", "load", "data")
    workflow.add_node("PartBulkCreateNode", "load", params)
    results, run_id = LocalRuntime().execute(workflow.build())
    return results["load"], run_id


def _count() -> int:
    workflow = WorkflowBuilder()
    workflow.add_node("PartCountNode", "n", {})
    return int(LocalRuntime().execute(workflow.build())[0]["n"])


KINDS = ["csv", "csv.gz", "parquet", "glob", "frame", "reader"]


@pytest.mark.parametrize("kind", KINDS)
def test_appending_a_source_again_warns_and_replace_does_not_double(part: Any, tmp_path: Path, kind: str) -> None:
    params = _source(tmp_path, kind)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the first load of a source warns about nothing
        _, first = _load(params)
    with pytest.warns(UserWarning) as caught:
        _load(params)
    (message,) = [str(w.message) for w in caught if "already loaded" in str(w.message)]
    assert f"run {first}" in message and "parts" in message
    assert "mode='replace'" in message and "BulkUpsert" in message and "--mode replace|upsert" in message
    assert _count() == 6  # append still appends: the warning says what happened
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report, _ = _load(_source(tmp_path, kind), mode="replace")
    assert (report.deleted, report.inserted) == (6, 3)
    assert _count() == 3


def test_a_replace_that_fails_keeps_the_old_rows(part: Any, tmp_path: Path) -> None:
    _load(_source(tmp_path, "csv"))
    bad = tmp_path / "bad.csv"
    bad.write_text("code,qty\nx,1\ny,two\n")
    with pytest.raises(WorkflowError, match=r"row 2, column 'qty': value 'two'"):
        _load({"source": str(bad)}, mode="replace")
    assert _count() == 3


def test_loads_before_a_replace_and_failed_runs_do_not_warn(part: Any, tmp_path: Path) -> None:
    first = _source(tmp_path, "csv")
    other = tmp_path / "other"
    other.mkdir()
    replacing = _source(other, "parquet")
    _load(first)
    _load(replacing, mode="replace")  # the table now holds only the Parquet file's rows
    bad = tmp_path / "bad.csv"
    bad.write_text("code,qty\nx,one\n")
    with pytest.raises(WorkflowError):
        _load({"source": str(bad)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _load(first)  # loaded before the replace: not in the table
        bad.write_text("code,qty\nx,1\n")
        _load({"source": str(bad)})  # its earlier run failed: nothing of it is in the table
    with pytest.warns(UserWarning, match="already loaded"):
        _load(replacing)  # the replace loaded it


def test_a_changed_file_or_frame_is_another_source(part: Any, tmp_path: Path) -> None:
    params = _source(tmp_path, "csv")
    _load(params)
    _load({"data": ROWS})
    path = Path(params["source"])
    path.write_text(path.read_text() + "d,4\n")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _load(params)
        _load({"data": ROWS.with_columns(qty=pl.col("qty") + 1)})


def test_replace_reloads_a_file_with_its_ids_and_unique_keys(db: Any, tmp_path: Path) -> None:
    path = tmp_path / "keyed.csv"
    path.write_text("id,code,qty\n1,a,1\n2,b,2\n")
    db.model_from(str(path), name="Keyed", unique=[["code"]])
    workflow = WorkflowBuilder()
    workflow.add_node("KeyedBulkCreateNode", "load", {"source": str(path), "progress": False})
    LocalRuntime().execute(workflow.build())
    path.write_text("id,code,qty\n1,a,10\n2,b,20\n3,c,30\n")
    workflow = WorkflowBuilder()
    workflow.add_node("KeyedBulkCreateNode", "load", {"source": str(path), "mode": "replace", "progress": False})
    report = LocalRuntime().execute(workflow.build())[0]["load"]
    assert (report.deleted, report.inserted) == (2, 3)
    workflow = WorkflowBuilder()
    workflow.add_node("KeyedListNode", "all", {"order_by": "id"})
    listed = LocalRuntime().execute(workflow.build())[0]["all"]
    assert listed.select("id", "code", "qty").rows() == [(1, "a", 10), (2, "b", 20), (3, "c", 30)]


def test_replace_replaces_only_the_tenants_rows(backend_url: str | None) -> None:
    # As the owner (run history kept), not as tests/backends/tenants.py's login role (none kept).
    with DataFlow(backend_url, multi_tenant=True) as db:
        define_models(db)
        run = runner(db)
        rows = pl.DataFrame([{"name": "n", "email": f"{i}@x", "secret": "s"} for i in range(3)])
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # another tenant's load of the same rows is not this one's
            for tenant in ("acme", "globex"):
                run(tenant, "CustomerBulkCreateNode", {"data": rows, "progress": False})
        with pytest.warns(UserWarning, match="already loaded"), pytest.raises(WorkflowError, match="unique"):
            run("acme", "CustomerBulkCreateNode", {"data": rows, "progress": False})
        report = run("acme", "CustomerBulkCreateNode", {"data": rows[:2], "mode": "replace", "progress": False})
        assert (report.deleted, report.inserted) == (3, 2)
        assert run("acme", "CustomerCountNode") == 2
        assert run("globex", "CustomerCountNode") == 3


def test_mode_is_checked(part: Any) -> None:
    with pytest.raises(ValidationError, match="mode='overwrite'; choose 'append'"):
        _load({"data": ROWS}, mode="overwrite")


def test_replace_under_row_level_security(backend_url: str | None) -> None:
    with tenant_database(backend_url) as db:  # on PostgreSQL: a login role that row-level security binds
        run = runner(db)
        rows = [{"name": "n", "email": f"{i}@x", "secret": "s"} for i in range(3)]
        for tenant in ("acme", "globex"):
            run(tenant, "CustomerBulkCreateNode", {"data": rows, "progress": False})
        report = run("acme", "CustomerBulkCreateNode", {"data": rows[:2], "mode": "replace", "progress": False})
        assert (report.deleted, report.inserted) == (3, 2)
        assert (run("acme", "CustomerCountNode"), run("globex", "CustomerCountNode")) == (2, 3)
