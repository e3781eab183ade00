"""DataFlow's options: one frozen, checked DataFlowOptions, the same keywords as DataFlow(...)."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from dataflow_nb import DataFlow, DataflowError, DataFlowOptions, ValidationError


def test_dataflow_takes_exactly_the_options_with_the_same_defaults() -> None:
    parameters = inspect.signature(DataFlow.__init__).parameters
    keywords = {n: p.default for n, p in parameters.items() if n not in ("self", "url", "database_url", "planned")}
    assert keywords == {f.name: f.default for f in dataclasses.fields(DataFlowOptions)}


def test_db_options_is_the_frozen_object_of_its_keywords() -> None:
    with DataFlow(frame="pandas", monitoring=True, keep_runs=5, replicas=None) as db:
        assert db.options == DataFlowOptions(frame="pandas", monitoring=True, keep_runs=5)
        assert (db.frame, db.json, db.read_only, db.health_timeout) == ("pandas", "text", False, 2.0)
        with pytest.raises(dataclasses.FrozenInstanceError):
            db.options.read_only = True  # type: ignore[misc]
        assert repr(db.options) == "DataFlowOptions(frame='pandas', monitoring=True, keep_runs=5)"


def test_the_repr_masks_passwords_and_a_list_of_replicas_becomes_a_tuple() -> None:
    options = DataFlowOptions(
        replicas=["postgresql://u:pw@standby/db"], cache_enabled=True, cache_url="redis://:pw@h/0"
    )  # type: ignore[arg-type]
    assert options.replicas == ("postgresql://u:pw@standby/db",)
    assert "pw" not in repr(options) and "***" in repr(options)


@pytest.mark.parametrize(
    ("keywords", "error", "message"),
    [
        ({"frame": "arrow"}, DataflowError, "frame='arrow': choose 'polars' or 'pandas'"),
        ({"json": "bson"}, ValidationError, "DataFlow: json='bson'; choose 'text'"),
        ({"metrics_export": "prometheus"}, DataflowError, "metrics_export='prometheus' needs monitoring=True"),
        ({"allow_files": True, "multi_tenant": True}, DataflowError, "open a separate DataFlow without multi_tenant"),
        ({"cache_url": "redis://:pw@h/0"}, DataflowError, r"cache_url='redis://:\*\*\*@h/0' needs cache_enabled=True"),
        ({"statement_timeout": 0}, DataflowError, r"statement_timeout=0: give a number of seconds > 0"),
        ({"health_timeout": True}, DataflowError, r"health_timeout=True: give a number of seconds > 0"),
        ({"keep_runs": 0}, DataflowError, r"keep_runs=0: give a whole number >= 1"),
        ({"colour": "blue"}, TypeError, r"unknown option\(s\) \['colour'\]"),
    ],
)
def test_each_wrong_option_is_named_with_its_fix(keywords: dict[str, object], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        DataFlowOptions.from_keywords(**keywords)
    with pytest.raises(error, match=message):
        DataFlow(**keywords)  # type: ignore[arg-type]


def test_the_url_is_given_once() -> None:
    with pytest.raises(DataflowError, match="give the database URL once"):
        DataFlow("duckdb://", database_url="duckdb:///other.duckdb")
