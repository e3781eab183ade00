"""The SQL both backends speak: PostgreSQL's, as SQLAlchemy builds it, plus constructs of our own.

DuckDB's dialect is PostgreSQL's with a few compile rules of its own (``backends/duckdb.py``),
so modules outside ``backends/`` build statements from here and never name a database.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, Insert, distinct_on, insert
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

__all__ = ["JSONB", "InArray", "Insert", "RegexMatch", "distinct_on", "insert", "quoted"]


# SQL's functions without parentheses: their answer changes with the time, the role or the settings
# (PostgreSQL: "SQLValueFunction"; DuckDB reads them as column names bound to functions).
SQL_VALUE_FUNCTIONS = frozenset(
    {
        "current_catalog",
        "current_date",
        "current_role",
        "current_schema",
        "current_time",
        "current_timestamp",
        "current_user",
        "localtime",
        "localtimestamp",
        "session_user",
        "user",
    }
)


def quoted(name: str) -> str:
    """An identifier in double quotes, whatever it holds (a file's column names are taken as written)."""
    return '"' + name.replace('"', '""') + '"'


class RegexMatch(FunctionElement[bool]):
    """Whether a pattern is found anywhere in the value, ``.`` matching a newline too.

    PostgreSQL's ``~`` does that; DuckDB's compile rule uses ``regexp_matches(..., 's')``, since
    its own ``~`` needs the whole value to match.
    """

    type = sa.Boolean()
    name = "regex_match"
    inherit_cache = True


@compiles(RegexMatch)
def _regex_default(element: RegexMatch, compiler: Any, **kw: Any) -> str:
    column, pattern = list(element.clauses)
    return f"({compiler.process(column, **kw)} ~ {compiler.process(pattern, **kw)})"


class InArray(FunctionElement[bool]):
    """Whether a value is in an array bound as ONE parameter: ``col = ANY($1::BIGINT[])``.

    ``col IN ($1, $2, ...)`` binds one parameter per value, and PostgreSQL takes at most 65,535
    a statement; one array binds any number. DuckDB reads ``= ANY(array)`` the same way. NULL
    compares as in SQL: a NULL value gives NULL (no match), and the filters add ``IS NULL``.
    """

    type = sa.Boolean()
    name = "in_array"
    inherit_cache = True


@compiles(InArray)
def _in_array_default(element: InArray, compiler: Any, **kw: Any) -> str:
    column, array = list(element.clauses)
    return f"({compiler.process(column, **kw)} = ANY({compiler.process(array, **kw)}))"
