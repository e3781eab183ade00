"""What ``help()`` and a notebook show of the generated nodes: every parameter with its type,
default and meaning, an example per node, and ``db.nodes`` as a table of models x nodes.

The text is generated per model (its own field names in the examples), so a node's docstring
reads like polars' or ibis': a summary, ``Args:``, ``Returns:`` and ``Examples:``.
"""

from __future__ import annotations

import html
import inspect
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dataflow_nb.core.spec import MISSING

if TYPE_CHECKING:
    from dataflow_nb.core.spec import ModelSpec
    from dataflow_nb.nodes.model_node import ModelNode


@dataclass(frozen=True)
class Parameter:
    """One node parameter as the docs describe it."""

    type: str
    default: str
    meaning: str


FILTER = Parameter(
    "dict",
    "None (every row)",
    'which rows: {"field": value} (None matches NULL), or operators {"field": {"$gt": 1}}: '
    "$eq $ne $gt $gte $lt $lte $between $in $nin $like $ilike $regex $exists $not, and "
    '{"$and": [...]}, {"$or": [...]}, {"$not": {...}} (docs/query.md)',
)
PARAMETERS: dict[str, Parameter] = {
    "id": Parameter("int", "required", "the record's id"),
    "filter": FILTER,
    "order_by": Parameter("str | list[str]", "None (by id)", 'fields to sort by; "-field" descends'),
    "limit": Parameter("int", "None (all)", "at most this many rows"),
    "offset": Parameter("int", "0", "skip this many rows first"),
    "fields": Parameter("list[str]", "None (all)", "the columns to return"),
    "group_by": Parameter("str | list[str]", "None", "one row per group of these fields"),
    "aggregate": Parameter(
        "dict", "None", 'named aggregates, {"n": {"$count": "*"}, "mean": {"$avg": "field"}}; also $sum $min $max'
    ),
    "having": Parameter("dict", "None", "a filter on the groups, by aggregate name"),
    "include_deleted": Parameter("bool", "False", "also soft-deleted rows (soft-delete models)"),
    "json": Parameter('"text" | "decode"', "the DataFlow's json", "JSON columns as text or as polars structs/lists"),
    "cache": Parameter("bool", "True", "False reads the database even when the result cache holds the answer"),
    "cache_ttl": Parameter("float", "the cache's default", "seconds this result stays cached"),
    "hard": Parameter("bool", "False", "on a soft-delete model: remove the row instead of setting deleted_at"),
    "version": Parameter("int", "None", "versioned models: update only if the record still has this version"),
    "conflict_on": Parameter(
        "str | list[str]", "the first unique key", "the unique key that decides between insert and update"
    ),
    "update": Parameter("str | list[str]", "None (every given field)", "the fields to change when the key exists"),
    "data": Parameter(
        "polars/pandas frame, Arrow table or batches, list of dicts", "None", "the rows (give data or source)"
    ),
    "source": Parameter("str | Path | list", "None", "CSV or Parquet file(s), a glob or URL (give data or source)"),
    "batch_size": Parameter("int", "50_000", "rows per batch (memory stays bounded)"),
    "on_error": Parameter(
        '"rollback" | "skip" | "quarantine"',
        '"rollback"',
        "a bad row rolls back the load, is skipped, or is kept in report.rejected",
    ),
    "progress": Parameter("bool", "None (a bar in notebooks)", "show a progress bar"),
    "mode": Parameter(
        '"append" | "replace"',
        '"append"',
        "replace: the table's rows (a tenant's: its own) are replaced in the load's transaction; "
        "append warns when the same source was loaded before",
    ),
    "null_values": Parameter("str | list[str]", '"", NA, N/A, NULL', "texts read as null"),
    "true_values": Parameter("str | list[str]", "true, t, yes, y, 1", "texts read as True (any case)"),
    "false_values": Parameter("str | list[str]", "false, f, no, n, 0", "texts read as False (any case)"),
    "date_format": Parameter("str", "None (found)", 'strptime format of dates, e.g. "%d/%m/%Y"'),
    "datetime_format": Parameter("str", "None (found)", "strptime format of datetimes"),
    "time_format": Parameter("str", "None (found)", "strptime format of times"),
    "delimiter": Parameter("str", '","', "the CSV field separator"),
    "quote_char": Parameter("str | None", "'\"'", "the CSV quote character (None: no quoting)"),
    "encoding": Parameter("str", '"utf-8"', "the CSV text encoding"),
    "skip_rows": Parameter("int", "0", "lines to skip before the CSV header"),
    "comment_prefix": Parameter("str", "None", "CSV lines starting with it are skipped"),
    "columns": Parameter("list[str]", "None (all)", "read only these source columns"),
    "rename": Parameter("dict[str, str]", "None", "source column -> field name"),
    "extra": Parameter('"error" | "ignore"', '"error"', "what to do with source columns the model does not have"),
}
RETURNS = {
    "Create": "polars.DataFrame: the stored record, one row, with id and timestamps.",
    "Read": "polars.DataFrame: the record, one row; NotFoundError when there is none.",
    "Update": "polars.DataFrame: the updated record, one row.",
    "Delete": "polars.DataFrame: the record as it was (soft delete: as it is now).",
    "Restore": "polars.DataFrame: the restored record, one row.",
    "List": "polars.DataFrame: the matching rows (one row per group with group_by/aggregate).",
    "Count": "int: how many rows match.",
    "Upsert": "polars.DataFrame: the stored record, one row.",
}
BULK_RETURNS = "BulkReport: rows written, inserted/updated/deleted, rejected rows, batches and seconds."
EXAMPLES = {
    "Create": "{{{fields}}}",
    "Read": '{{"id": 1}}',
    "Update": '{{"id": 1, {first}}}',
    "Delete": '{{"id": 1}}',
    "Restore": '{{"id": 1}}',
    "List": '{{"filter": {{{first}}}, "order_by": ["-id"], "limit": 10}}',
    "Count": '{{"filter": {{"{name}": {{"$ne": None}}}}}}',
    "Upsert": "{{{fields}}}",
    "BulkCreate": '{{"source": "{table}.csv"}}',
    "BulkUpdate": '{{"filter": {{{first}}}, "fields": {{{first}}}}}',
    "BulkDelete": '{{"filter": {{{first}}}}}',
    "BulkUpsert": '{{"source": "{table}.parquet", "on_error": "skip"}}',
}
SAMPLES = {"int": "1", "float": "1.5", "bool": "True", "str": '"text"'}


def operation_of(base: type[ModelNode]) -> str:
    """``ListNode`` -> ``"List"``."""
    return base.__name__.removesuffix("Node")


def record_parameters(model: ModelSpec, *, update: bool = False) -> list[tuple[str, Parameter]]:
    """The model's writable fields as the parameters of Create, Update and Upsert."""
    found = []
    for name in model.writable:
        field = model.fields[name]
        if field.managed:
            default = "set by dataflow_nb"
        elif update:
            default = "unchanged"
        elif field.required:
            default = "required"
        else:
            default = "None" if field.default is MISSING else repr(field.default)
        meaning = "a field of the model" + ("; sensitive: masked wherever shown" if field.sensitive else "")
        found.append((name, Parameter(field.label, default, meaning)))
    return found


def parameters_of(base: type[ModelNode], model: ModelSpec) -> list[tuple[str, Parameter]]:
    """Every parameter a node of ``base`` takes for ``model``, described."""
    operation = operation_of(base)
    if operation in ("Create", "Update", "Upsert"):
        own = [("id", PARAMETERS["id"])] if operation == "Update" else []
        if operation == "Update" and model.versioned:
            own.append(("version", PARAMETERS["version"]))
        extra = [(n, PARAMETERS[n]) for n in getattr(base, "options", ())]
        return [*own, *record_parameters(model, update=operation == "Update"), *extra]
    # A parameter added without a line here still shows (a test asks for its meaning).
    return [(n, PARAMETERS.get(n, Parameter("Any", "None", ""))) for n in base.parameters]


def example_of(node_type: str, base: type[ModelNode], model: ModelSpec) -> str:
    """A workflow line that adds this node, with the model's own field names."""
    writable = [model.fields[n] for n in model.writable]
    values = [f'"{f.name}": {SAMPLES.get(f.type.label, "...")}' for f in writable[:2]]
    first = values[0] if values else '"id": 1'
    params = EXAMPLES.get(operation_of(base), "{{}}").format(
        fields=", ".join(values), first=first, name=writable[0].name if writable else "id", table=model.table_name
    )
    return f'workflow.add_node("{node_type}", "{operation_of(base).lower()}",\n    ...     {params})'


def node_doc(node_type: str, base: type[ModelNode], model: ModelSpec) -> str:
    """The generated node's docstring, Google style: summary, Args, Returns, Examples."""
    summary = inspect.cleandoc(base.__doc__ or "")
    args = []
    for name, described in parameters_of(base, model):
        meaning = f" {described.meaning}." if described.meaning else ""
        line = f"{name} ({described.type}, default {described.default}):{meaning}"
        args.append(textwrap.fill(line, 96, initial_indent="    ", subsequent_indent="        "))
    operation = operation_of(base)
    returns = RETURNS.get(operation, BULK_RETURNS)
    return (
        f"{summary}\n\nModel {model.name}, table {model.table_name}.\n\n"
        f"Args:\n{chr(10).join(args) if args else '    (none)'}\n\n"
        f"Returns:\n    {returns}\n\n"
        f"Examples:\n    >>> {example_of(node_type, base, model)}  # doctest: +SKIP\n"
    )


def model_doc(own: str | None, model: ModelSpec, nodes: list[str]) -> str:
    """A model class's docstring: its own text, then its table, fields and nodes (``help(Flight)``)."""
    fields = [f"    {f.name} ({f.label}){': ' + f.notes if f.notes else ''}" for f in model.fields.values()]
    listed = textwrap.fill(", ".join(nodes), 96, initial_indent="    ", subsequent_indent="    ")
    head = f"{inspect.cleandoc(own)}\n\n" if own else ""
    return (
        f"{head}Model {model.name}, table {model.table_name}.\n\nFields:\n{chr(10).join(fields)}\n\n"
        f"Nodes (help(db.nodes['{nodes[0] if nodes else ''}']) describes one):\n{listed}\n"
    )


INDENT = "    "


class NodeTable(dict[str, "type[ModelNode]"]):
    """``db.nodes``: the node classes by name, shown as a table of models x nodes with their parameters."""

    def by_model(self) -> dict[str, list[type[ModelNode]]]:
        grouped: dict[str, list[type[ModelNode]]] = {}
        for node in self.values():
            grouped.setdefault(node.model.name, []).append(node)
        return grouped

    def __repr__(self) -> str:
        lines = [f"{len(self)} node(s); help(db.nodes['<name>']) describes one"]
        for model, nodes in self.by_model().items():
            lines.append(f"{model}:")
            for node in nodes:
                names = ", ".join(n for n, _ in parameters_of(node.__mro__[1], node.model))
                lines.append(
                    textwrap.fill(f"{node.node_type}({names})", 100, initial_indent="  ", subsequent_indent="    ")
                )
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def _repr_html_(self) -> str:
        rows = []
        for model, nodes in self.by_model().items():
            for i, node in enumerate(nodes):
                head = f"<td rowspan='{len(nodes)}'><b>{html.escape(model)}</b></td>" if i == 0 else ""
                described = parameters_of(node.__mro__[1], node.model)
                params = ", ".join(
                    f"<code title='{html.escape(p.type)}, default {html.escape(p.default)}'>{html.escape(n)}</code>"
                    for n, p in described
                )
                summary = (node.__mro__[1].__doc__ or "").strip().splitlines()[0]
                rows.append(
                    f"<tr>{head}<td><code>{html.escape(node.node_type)}</code></td>"
                    f"<td style='text-align:left'>{params}</td>"
                    f"<td style='text-align:left'>{html.escape(summary)}</td></tr>"
                )
        return (
            f"<b>{len(self)} nodes</b> &middot; <code>help(db.nodes['...'])</code> describes each parameter"
            "<table class='dataflow-nodes'><tr><th>model</th><th>node</th><th>parameters</th><th>does</th></tr>"
            f"{''.join(rows)}</table>"
        )
