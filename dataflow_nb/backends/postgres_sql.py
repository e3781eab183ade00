"""PostgreSQL's own scanner and parser, through pglast (libpg_query: the server's parser as a library).

pglast reads SQL exactly as the server does (dollar quoting, ``E''`` escapes, nested comments),
so what SQLQueryNode lets through is what PostgreSQL would run, and nothing more.
"""

from __future__ import annotations

import functools
from typing import Any

from dataflow_nb.backends.base import SQLScan, SQLStatements
from dataflow_nb.exceptions import ValidationError

# Tokens whose colons are text: literals, quoted names, comments.
_TEXT_TOKENS = frozenset({"SCONST", "USCONST", "XCONST", "BCONST", "IDENT", "UIDENT", "SQL_COMMENT", "C_COMMENT"})


class PostgresSQLReader:
    """The SQL reader of the PostgreSQL backend."""

    def scan(self, sql: str) -> SQLScan:
        from pglast import parser

        try:
            tokens = parser.scan(sql)
        except parser.ParseError as exc:
            raise ValidationError(f"PostgreSQL cannot read the SQL: {exc}") from None
        colons: list[int] = []
        positional = None
        code = list(sql)
        for token in tokens:
            text = sql[token.start : token.end + 1]
            if token.name in _TEXT_TOKENS:
                code[token.start : token.end + 1] = " " * len(text)
                continue
            colons += [token.start + i for i, ch in enumerate(text) if ch == ":"]
            if positional is None and token.name == "PARAM":
                positional = text
        return SQLScan(tuple(colons), positional, "".join(code))

    def statements(self, sql: str) -> SQLStatements:
        from pglast import ast, parser

        statements = parsed(sql)
        tokens = [t for t in parser.scan(sql) if t.name not in ("SQL_COMMENT", "C_COMMENT")]
        return SQLStatements(
            count=len(statements),
            first_word=sql[tokens[0].start : tokens[0].end + 1].upper() if tokens else "",
            transaction=bool(statements) and isinstance(statements[0].stmt, ast.TransactionStmt),
            returns_rows=None,  # the driver says whether rows came back
            parameters=len({sql[t.start : t.end + 1] for t in tokens if t.name == "PARAM"}),
        )

    def calls(self, sql: str) -> frozenset[str]:
        from pglast import ast
        from pglast.visitors import Visitor

        found: set[str] = set()

        class Calls(Visitor):
            def visit_FuncCall(self, ancestors: Any, node: ast.FuncCall) -> None:
                found.add(str((node.funcname or ())[-1].sval).lower())

            def visit_SQLValueFunction(self, ancestors: Any, node: ast.SQLValueFunction) -> None:
                found.add(str(getattr(node.op, "name", "")).removeprefix("SVFOP_").rsplit("_N", 1)[0].lower())

        Calls()(parsed(sql))
        return frozenset(found)


@functools.lru_cache(maxsize=256)  # a statement is read at build time and again when it runs
def parsed(sql: str) -> Any:
    """The statements' parse trees (not to be changed); ValidationError when the SQL does not parse."""
    from pglast import parser

    try:
        return parser.parse_sql(sql)
    except parser.ParseError as exc:
        raise ValidationError(f"PostgreSQL cannot parse the SQL: {exc}") from None
