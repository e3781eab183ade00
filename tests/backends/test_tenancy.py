"""Strict multi-tenancy: every statement on a tenant model is scoped to the run's tenant."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dataflow_nb import DataFlow, LocalRuntime, TenantError, ValidationError, WorkflowBuilder, WorkflowError


@pytest.fixture
def tenant_db(backend_url: str | None) -> Iterator[Any]:
    with DataFlow(backend_url, multi_tenant=True) as db:

        @db.model
        class Customer:
            name: str
            email: str

            __dataflow__ = {"multi_tenant": True, "tenant_isolation": "strict", "unique": [["email"]]}

        yield db


def run_as(tenant: str | None, node: str, params: dict[str, Any] | None = None) -> Any:
    workflow = WorkflowBuilder()
    workflow.add_node(node, "n", params or {})
    results, _ = LocalRuntime().execute(workflow.build(), tenant_id=tenant)
    return results["n"]


def test_each_tenant_sees_only_its_own_rows(tenant_db: Any) -> None:
    acme = run_as("acme", "CustomerCreateNode", {"name": "A", "email": "a@x.io"})
    run_as("globex", "CustomerCreateNode", {"name": "G", "email": "g@x.io"})
    assert acme["tenant_id"].to_list() == ["acme"]
    assert run_as("acme", "CustomerListNode")["name"].to_list() == ["A"]
    assert run_as("globex", "CustomerCountNode") == 1
    acme_id = acme["id"][0]
    for node, params in [
        ("CustomerReadNode", {"id": acme_id}),
        ("CustomerUpdateNode", {"id": acme_id, "name": "stolen"}),
        ("CustomerDeleteNode", {"id": acme_id}),
    ]:
        with pytest.raises(WorkflowError, match=f"no Customer with id {acme_id}"):
            run_as("globex", node, params)
    assert run_as("acme", "CustomerReadNode", {"id": acme_id})["name"].to_list() == ["A"]


def test_a_run_without_a_tenant_is_refused(tenant_db: Any) -> None:
    with pytest.raises(WorkflowError) as info:
        run_as(None, "CustomerListNode")
    assert isinstance(info.value.__cause__, TenantError)
    assert "tenant_id='...'" in str(info.value)


def test_unique_keys_and_upserts_hold_within_a_tenant(tenant_db: Any) -> None:
    run_as("acme", "CustomerUpsertNode", {"name": "A", "email": "same@x.io"})
    run_as("globex", "CustomerUpsertNode", {"name": "G", "email": "same@x.io"})
    run_as("acme", "CustomerUpsertNode", {"name": "A2", "email": "same@x.io"})
    assert run_as("acme", "CustomerListNode")["name"].to_list() == ["A2"]
    assert run_as("globex", "CustomerListNode")["name"].to_list() == ["G"]


def test_tenant_id_cannot_be_set_by_parameters(tenant_db: Any) -> None:
    workflow = WorkflowBuilder()
    workflow.add_node("CustomerCreateNode", "n", {"name": "x", "email": "x@x.io", "tenant_id": "globex"})
    with pytest.raises(ValidationError, match="unknown field 'tenant_id'"):
        workflow.build()


def _seed_two_tenants() -> tuple[int, int]:
    a = run_as("acme", "CustomerCreateNode", {"name": "A", "email": "a@x.io"})["id"][0]
    b = run_as("globex", "CustomerCreateNode", {"name": "B", "email": "b@x.io"})["id"][0]
    return int(a), int(b)


def _globex_rows() -> list[tuple[int, str, str]]:
    frame = run_as("globex", "CustomerListNode", {"include_deleted": False})
    return sorted(zip(frame["id"].to_list(), frame["name"].to_list(), frame["email"].to_list(), strict=True))


@pytest.mark.parametrize(
    ("node", "row"),
    [("CustomerBulkUpdateNode", {"name": "stolen"}), ("CustomerBulkDeleteNode", {})],
)
def test_bulk_by_ids_acts_on_the_runs_tenant_only(tenant_db: Any, node: str, row: dict[str, Any]) -> None:
    mine, theirs = _seed_two_tenants()
    before = _globex_rows()
    data = [{"id": mine, **row}, {"id": theirs, **row}]
    with pytest.raises(WorkflowError, match=f"name an id with no Customer \\(first: {theirs}\\)"):
        run_as("acme", node, {"data": data})
    report = run_as("acme", node, {"data": data, "on_error": "quarantine"})
    assert report.rows_written == 1 and report.rows_rejected == 1
    assert report.rejected["value"].to_list() == [str(theirs)]
    assert "no Customer with id" in report.rejected["reason"][0]
    assert _globex_rows() == before


def test_bulk_upsert_on_id_keys_ids_within_the_run_tenant(tenant_db: Any) -> None:
    """The key is (tenant_id, id): an id another tenant holds becomes this tenant's own new row."""
    mine, theirs = _seed_two_tenants()
    free = theirs + 100
    data = [
        {"id": mine, "name": "A2", "email": "a@x.io"},
        {"id": free, "name": "N", "email": "n@x.io"},
        {"id": theirs, "name": "T", "email": "b@x.io"},
    ]
    report = run_as("acme", "CustomerBulkUpsertNode", {"data": data, "conflict_on": ["id"]})
    assert (report.inserted, report.updated, report.rows_rejected) == (2, 1, 0)
    acme = run_as("acme", "CustomerListNode", {"order_by": ["id"]})
    assert acme.select("id", "name", "tenant_id").rows() == [
        (mine, "A2", "acme"),
        (theirs, "T", "acme"),
        (free, "N", "acme"),
    ]
    assert _globex_rows() == [(theirs, "B", "b@x.io")]
    created = run_as("acme", "CustomerCreateNode", {"name": "later", "email": "l@x.io"})
    assert created["id"][0] > free  # the sequence moved past the explicit id
    # Update and Delete by id still act on the run's own record only.
    run_as("acme", "CustomerUpdateNode", {"id": theirs, "name": "T2"})
    run_as("acme", "CustomerDeleteNode", {"id": theirs})
    assert _globex_rows() == [(theirs, "B", "b@x.io")]


def test_a_tenant_cannot_learn_which_ids_another_tenant_holds(tenant_db: Any) -> None:
    """Upserting an id another tenant holds looks exactly like upserting a free id."""
    _, theirs = _seed_two_tenants()
    free = theirs + 100
    seen = []
    for id_ in (theirs, free):
        row = {"id": id_, "name": "probe", "email": f"{id_}@x.io"}
        for node in ("CustomerBulkUpsertNode", "CustomerBulkUpdateNode"):
            extra = {"conflict_on": ["id"]} if "Upsert" in node else {}
            report = run_as("acme", node, {"data": [row], "on_error": "quarantine", **extra})
            seen.append((node, report.inserted, report.updated, report.rows_written, report.rows_rejected))
        found = run_as("acme", "CustomerReadNode", {"id": id_})
        seen.append(("read", found.select("name", "tenant_id").rows()))
    assert seen[:3] == seen[3:]  # same answers for the held id and the free one
    assert seen[:3] == [
        ("CustomerBulkUpsertNode", 1, 0, 1, 0),
        ("CustomerBulkUpdateNode", 0, 1, 1, 0),
        ("read", [("probe", "acme")]),
    ]
    assert _globex_rows() == [(theirs, "B", "b@x.io")]  # the other tenant's row untouched
