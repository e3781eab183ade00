"""DuckDB reads SQL itself: ``duckdb.tokenize`` finds literals and comments, ``extract_statements`` counts."""

from __future__ import annotations

from dataflow_nb.backends.base import SQLScan, SQLStatements
from dataflow_nb.exceptions import ValidationError


def _char_offsets(sql: str) -> list[int]:
    """DuckDB reports byte offsets into the UTF-8 text: the character each byte belongs to."""
    offsets = [i for i, ch in enumerate(sql) for _ in range(len(ch.encode()))]
    return [*offsets, len(sql)]


class DuckDBSQLReader:
    """The SQL reader of the DuckDB backend."""

    def scan(self, sql: str) -> SQLScan:
        import duckdb

        tokens = duckdb.tokenize(sql)
        chars = _char_offsets(sql)
        starts = [chars[start] for start, _ in tokens] + [len(sql)]
        text_kinds = (duckdb.token_type.string_const, duckdb.token_type.comment, duckdb.token_type.identifier)
        colons: list[int] = []
        positional = None
        code = list(sql)
        for (_, kind), start, end in zip(tokens, starts, starts[1:], strict=False):
            piece = sql[start:end].rstrip()
            if kind in text_kinds:
                code[start : start + len(piece)] = " " * len(piece)
                continue  # a literal, quoted name or comment: its colons are text
            colons += [start + i for i, ch in enumerate(piece) if ch == ":"]
            if positional is None and kind == duckdb.token_type.operator:
                if piece == "?":
                    positional = piece
                elif piece == "$" and end == start + 1:  # $1 or $name: the operator, then what follows
                    positional = piece + sql[end:].split(None, 1)[0]
        return SQLScan(tuple(colons), positional, "".join(code))

    def statements(self, sql: str) -> SQLStatements:
        import duckdb

        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error as exc:
            raise ValidationError(f"DuckDB cannot parse the SQL: {exc}") from None
        if not statements:
            return SQLStatements(0, "", transaction=False, returns_rows=False, parameters=0)
        first = statements[0]
        words = first.query.split(None, 1)
        kind = first.type
        text = first.query.encode()  # piece offsets count bytes
        returning = any(
            t == duckdb.token_type.keyword and text[start : start + 9].upper() == b"RETURNING"
            for start, t in duckdb.tokenize(first.query)
        )
        queries = (
            duckdb.StatementType.SELECT,
            duckdb.StatementType.EXPLAIN,
            duckdb.StatementType.PRAGMA,
            duckdb.StatementType.CALL,
        )
        # An INSERT without RETURNING answers with a "Count" row PostgreSQL does not send: only
        # queries and RETURNING give rows.
        return SQLStatements(
            count=len(statements),
            first_word=words[0].upper() if words else "",
            transaction=kind == duckdb.StatementType.TRANSACTION,
            returns_rows=kind in queries or returning,
            parameters=sum(len(s.named_parameters) for s in statements),
        )
