"""A DataFlow as a notebook shows it: its models, their tables, row counts and columns."""

from __future__ import annotations

import html
from contextlib import closing

import sqlalchemy as sa

from dataflow_nb.backends.base import Database, compile_statement
from dataflow_nb.exceptions import DataflowError


def row_counts(db: Database) -> dict[str, str]:
    """Rows in each model's table, as shown (``?`` when the table cannot be counted now)."""
    counts: dict[str, str] = {}
    try:
        with closing(db.backend.connect()) as connection:
            for spec in db.models.values():
                query = sa.select(sa.func.count()).select_from(sa.table(spec.table_name))
                try:
                    counted = connection.execute(compile_statement(query, db.backend.dialect))
                    counts[spec.name] = f"{counted.column(0)[0].as_py():,}" if counted is not None else "?"
                except DataflowError:
                    counts[spec.name] = "?"
                    connection.rollback()
    except DataflowError:
        pass
    return counts


def dataflow_html(db: Database) -> str:
    """The models, their tables, row counts and columns, as an HTML table."""
    counts = row_counts(db)
    rows = "".join(
        f"<tr><td>{html.escape(m.name)}</td><td>{html.escape(m.table_name)}</td>"
        f"<td>{counts.get(m.name, '?')}</td>"
        f"<td>{html.escape(', '.join(f'{f.name}: {f.label}' for f in m.fields.values()))}</td></tr>"
        for m in db.models.values()
    )
    return (
        f"<b>DataFlow</b> {html.escape(db.name)} &middot; <code>{html.escape(db.backend.safe_url)}</code>"
        f"<table><tr><th>model</th><th>table</th><th>rows</th><th>columns</th></tr>{rows}</table>"
    )


def dataflow_text(db: Database) -> str:
    """The same as plain text, for a notebook without HTML."""
    counts = row_counts(db)
    lines = [f"DataFlow {db.name} on {db.backend.safe_url}: {len(db.models)} model(s)"]
    for m in db.models.values():
        lines.append(f"  {m.name}: table {m.table_name}, {counts.get(m.name, '?')} rows")
        lines.append("    " + ", ".join(f"{f.name}: {f.label}" for f in m.fields.values()))
    return "\n".join(lines)
