"""What a person finds out about the generated nodes without reading the source: ``help()`` on a
node (every parameter with its type, default and meaning, and an example), ``db.nodes`` as a
table of models x nodes, and ``help()`` on a model class (its fields and nodes)."""

from __future__ import annotations

import ast
import pydoc
import re
from typing import Any, Optional

from IPython.lib.pretty import pretty

from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder


def flights(db: DataFlow) -> type:
    @db.model
    class Flight:
        """A flight out of New York."""

        carrier: str
        dep_delay: Optional[int]  # noqa: UP045  (the notebooks' spelling)
        seats: int = 150

        __dataflow__ = {"unique": [["carrier"]], "soft_delete": True}

    return Flight


def shown(node: Any) -> str:
    """What ``help(node)`` prints, without pydoc's " |  " margin."""
    return re.sub(r"^ \|  ?", "", pydoc.render_doc(node, renderer=pydoc.plaintext), flags=re.MULTILINE)


def arguments(text: str) -> dict[str, str]:
    """The ``Args:`` entries of a help text: name -> its (joined) line."""
    block = text.split("Args:\n", 1)[1].split("\n\n", 1)[0]
    entries: dict[str, str] = {}
    for line in block.splitlines():
        found = re.match(r" {4}(\w+) \((.+?), default (.+?)\):", line)
        if found:
            name = found.group(1)
            entries[name] = line
        elif entries:
            entries[name] += " " + line.strip()
    return entries


def test_help_on_a_node_lists_every_parameter_with_type_default_meaning_and_an_example(db: DataFlow) -> None:
    flights(db)
    text = shown(db.nodes["FlightListNode"])
    listed = arguments(text)
    assert list(listed) == list(db.nodes["FlightListNode"].parameters)
    assert "order_by (str | list[str], default None (by id)): fields to sort by" in listed["order_by"]
    for operator in ("$gt", "$in", "$between", "$like", "$regex", "$exists", "$or", "$not"):
        assert operator in listed["filter"]  # what a filter accepts
    assert "Returns:\n" in text and "Examples:\n" in text and '"filter": {"carrier": "text"}' in text
    assert "..." not in text.split("Method resolution order")[1]  # nothing cut, e.g. 'grou...
    for internal in ("compiled", "plan(", "statement(", "sql_for", "build(", "check_params", "first_or_missing"):
        assert internal not in text, internal


def test_every_node_describes_every_parameter_and_its_example_is_accepted(db: DataFlow) -> None:
    flights(db)
    assert len(db.nodes) == 12  # eleven nodes and Restore (a soft-delete model)
    for name, node in db.nodes.items():
        text = shown(node)
        listed = arguments(text)
        assert set(node.parameters) <= set(listed), name
        assert all(re.search(r"\): \S", line) for line in listed.values()), name  # a meaning for each
        example = re.search(r'>>> workflow.add_node\("(\w+)", "(\w+)",\n\s*\.\.\.\s+(.+?)\)  #', text)
        assert example and example.group(1) == name, text
        params = ast.literal_eval(example.group(3))
        node.check_params(params, complete=False)  # the example's parameters are valid for the node
    create = arguments(shown(db.nodes["FlightCreateNode"]))
    assert "carrier (str, default required)" in create["carrier"]
    assert "seats (int, default 150)" in create["seats"]
    assert "dep_delay (Optional[int], default None)" in create["dep_delay"]
    assert "conflict_on" in arguments(shown(db.nodes["FlightUpsertNode"]))


def test_the_nodes_still_run_and_internals_stay_reachable(db: DataFlow) -> None:
    flights(db)
    workflow = WorkflowBuilder()
    workflow.add_node("FlightCreateNode", "add", {"carrier": "AA", "dep_delay": 5})
    workflow.add_node("FlightListNode", "list", {"filter": {"dep_delay": {"$gt": 1}}})
    results, _ = LocalRuntime().execute(workflow.build())
    assert results["list"]["carrier"].to_list() == ["AA"]
    assert "node_type" in dir(db.nodes["FlightListNode"]) and "compiled" not in dir(db.nodes["FlightListNode"])
    assert callable(db.nodes["FlightListNode"].plan)  # hidden from help, not removed


def test_db_nodes_is_a_table_of_models_and_nodes_with_their_parameters(db: DataFlow) -> None:
    flights(db)
    db.model(type("Airline", (), {"__annotations__": {"carrier": str, "name": str}}))
    page = db.nodes._repr_html_()
    assert page.count("<tr>") == 1 + 12 + 11  # the header, Flight's nodes (Restore too), Airline's
    assert "<td rowspan='12'><b>Flight</b></td>" in page and "<td rowspan='11'><b>Airline</b></td>" in page
    assert "<code title='str, default required'>carrier</code>" in page
    text = pretty(db.nodes)
    assert "Flight:\n  FlightCreateNode(carrier, dep_delay, seats, created_at, updated_at)" in text
    assert "  AirlineCountNode(filter, include_deleted, cache, cache_ttl)" in text
    assert repr(db.nodes) == text and max(len(line) for line in text.splitlines()) <= 100
    assert dict(db.nodes)["AirlineListNode"] is db.nodes["AirlineListNode"]  # still a dict of classes


def test_help_on_a_model_class_shows_its_fields_and_nodes(db: DataFlow) -> None:
    cls = flights(db)
    text = shown(cls)
    assert "A flight out of New York." in text and "Model Flight, table flights." in text
    assert "carrier (str)" in text and "dep_delay (Optional[int])" in text and "seats (int): default 150" in text
    assert "FlightListNode" in text and "FlightRestoreNode" in text
    db.model(cls)  # a re-run cell: the text does not grow
    assert shown(cls) == text
