"""What SQL of a read-only or tenant session may run on DuckDB: allow-lists, checked on DuckDB's own plan.

DuckDB has neither read-only transactions on a writable database nor row-level security, so
what PostgreSQL enforces itself is named here, and everything not named is refused:

- statement kinds: a read-only session runs queries only (``extract_statements``); ``EXPLAIN
  ANALYZE`` runs the statement it explains, so EXPLAIN is not a query here;
- table functions: the few that compute rows from their arguments. ``pragma_storage_info`` shows
  a column's min and max, ``duckdb_*`` the catalog, ``read_*`` and ``glob`` files, ``query`` any
  SQL. They are found in the bound plan (``EXPLAIN``), so a view or a subquery hides none;
- functions that write (a sequence's ``nextval``), found by DuckDB's parser.

Files and other databases are closed by DuckDB itself: a session that may not read files opens
its database with ``enable_external_access = false`` (``backends/duckdb.py``).
"""

from __future__ import annotations

from collections.abc import Iterable

from dataflow_nb.backends.duckdb_sql import called_functions, query_tree

# Table functions that compute rows from their arguments alone (https://duckdb.org/docs/stable/sql/functions/list).
ROW_FUNCTIONS = frozenset({"range", "generate_series", "unnest", "json_each", "json_tree"})
# Readers of files, for a session that may read them (DataFlow(allow_files=True)).
FILE_FUNCTIONS = frozenset(
    {
        "glob",
        "parquet_metadata",
        "parquet_schema",
        "parquet_scan",
        "read_blob",
        "read_csv",
        "read_csv_auto",
        "read_json",
        "read_json_auto",
        "read_json_objects",
        "read_ndjson",
        "read_ndjson_auto",
        "read_ndjson_objects",
        "read_parquet",
        "read_text",
        "sniff_csv",
    }
)
# Scalar functions that change the database (https://duckdb.org/docs/stable/sql/statements/create_sequence).
WRITING_FUNCTIONS = frozenset({"nextval", "setval", "setseed"})


def refused_table_functions(operators: Iterable[str], table_functions: frozenset[str], *, files: bool) -> list[str]:
    """The table functions in a plan's operators (upper case, as EXPLAIN names them) that are not allowed."""
    allowed = ROW_FUNCTIONS | (FILE_FUNCTIONS if files else frozenset())
    return sorted({op.lower() for op in operators if op.lower() in table_functions and op.lower() not in allowed})


def refused_functions(sql: str) -> list[str]:
    """The functions that write which a query calls (read-only SQL is a query: the parser reads it)."""
    tree = query_tree(sql)
    return [] if tree is None else sorted(called_functions(tree)[0] & WRITING_FUNCTIONS)


def allowed_table_functions(*, files: bool) -> str:
    """The allow-list as an error message shows it."""
    return ", ".join(f"{name}()" for name in sorted(ROW_FUNCTIONS | (FILE_FUNCTIONS if files else frozenset())))
