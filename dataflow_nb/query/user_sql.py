"""SQL of the user's own, with named parameters, made safe to run: one statement, values bound.

The database's own scanner says which colons are code (not inside a literal, quoted name or
comment); of those, the ones ``sqlalchemy.text`` reads as ``:name`` are the parameters, and
every other colon is escaped so ``text`` leaves it alone. After compiling, the database's own
parser counts the statements: a second one is refused before anything runs.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from dataflow_nb.backends.base import CompiledSQL, SQLReader
from dataflow_nb.backends.row_security import BEGIN_TENANT_FUNCTION
from dataflow_nb.core.types import field_type_of
from dataflow_nb.exceptions import ValidationError

NODE = "SQLQueryNode"
# The very pattern ``sqlalchemy.text`` finds binds with, so the two always agree. It is private:
# SQLAlchemy has no public way to ask where ``text()`` sees a ``:name`` (only which names), and
# a copy of the pattern could drift from the one ``text()`` then applies. Read here and nowhere else.
_TEXT_BIND = sa.TextClause._bind_params_regex
# A read-only query starts like one and has no keyword that writes or locks (the scanner blanks
# names, so functions are read by the parser: nodes/sql.py). Any other statement counts as a
# write of anything: the run's commit invalidates the whole database.
_QUERY_START = {"select", "with", "values", "table"}
_WRITES = re.compile(r"\b(insert|update|delete|merge|truncate|into|copy|call|do|lock|for)\b", re.I)


@dataclasses.dataclass(frozen=True)
class Prepared:
    """User SQL made ready for ``sqlalchemy.text``: colons that are not parameters escaped."""

    text: str
    names: tuple[str, ...]
    read_only: bool


def prepare(sql: Any, reader: SQLReader) -> Prepared:
    """Find the named parameters of ``sql`` (one statement is checked after compiling)."""
    if not isinstance(sql, str) or not sql.strip():
        raise ValidationError(f"{NODE}: sql takes the text of one SQL statement, got {sql!r}")
    try:
        scan = reader.scan(sql)
    except ValidationError as exc:
        raise ValidationError(f"{NODE}: {exc}") from None
    if scan.positional:
        raise ValidationError(
            f"{NODE}: positional parameter {scan.positional} is not supported; "
            "name it, like 'WHERE x > :min' with params={'min': 3}"
        )
    code = set(scan.code_colons)
    pieces, names, last = [], [], 0
    for at, char in enumerate(sql):
        if char != ":":
            continue
        match = _TEXT_BIND.match(sql, at) if at in code else None
        if match is not None:
            names.append(match.group(1))
        else:
            pieces += [sql[last:at], "\\"]  # sqlalchemy.text reads \: as a plain colon
            last = at
    pieces.append(sql[last:])
    words = scan.code.replace("(", " ").split(None, 1)
    read_only = bool(words) and words[0].lower() in _QUERY_START and _WRITES.search(scan.code) is None
    return Prepared("".join(pieces), tuple(dict.fromkeys(names)), read_only)


def check_statement(compiled: CompiledSQL, reader: SQLReader, *, binds_tenants: bool) -> bool | None:
    """Refuse anything but one statement that leaves the transaction alone (nor, where the database
    binds runs to tenants, rebinds it); whether it gives rows."""
    try:
        found = reader.statements(compiled.sql)
    except ValidationError as exc:
        raise ValidationError(f"{NODE}: {exc}") from None
    if found.count != 1:
        raise ValidationError(
            f"{NODE}: runs one statement, found {found.count}; "
            "use one SQLQueryNode per statement (they share the run's transaction)"
        )
    if found.transaction:
        raise ValidationError(f"{NODE}: {found.first_word} is refused: the run owns the transaction")
    if binds_tenants and BEGIN_TENANT_FUNCTION in reader.calls(compiled.sql):
        raise ValidationError(
            f"{NODE}: the SQL calls {BEGIN_TENANT_FUNCTION}(), which binds a run to its tenant: dataflow_nb "
            "calls it once, before any statement of a tenant's run; SQL may not call it"
        )
    if found.parameters != len(compiled.names):
        raise ValidationError(f"{NODE}: the SQL uses a positional parameter (? or $n); name it, like :min")
    return found.returns_rows


def bound_text(prepared: Prepared, values: Mapping[str, Any]) -> sa.TextClause:
    """The statement with every parameter bound (values never go into the SQL text)."""
    return sa.text(prepared.text).bindparams(*(_bindparam(n, values.get(n)) for n in prepared.names))


def _bind_type(name: str, value: Any) -> tuple[Any, sa.types.TypeEngine[Any]]:
    """A parameter value as drivers bind it, checked and typed as a model field of its Python type."""
    found = field_type_of(value)
    if found is None or found.label in ("dict", "list"):
        raise ValidationError(
            f"{NODE}: parameter {name!r} has type {type(value).__name__}; give None, bool, int, float, str, "
            "bytes, Decimal, date, datetime, time, UUID or a list of those (pass JSON as a json.dumps string)"
        )
    try:
        return found.to_wire(value), found.sa_type()
    except ValueError as exc:  # range, scale: the value is of the right type
        raise ValidationError(f"{NODE}: parameter {name!r}: {value!r} {exc}") from None


def _bindparam(name: str, value: Any) -> sa.BindParameter[Any]:
    if isinstance(value, list | tuple):  # ``x IN :ids``: one parameter per item
        if not value:
            raise ValidationError(f"{NODE}: parameter {name!r} is an empty list; IN () is not valid SQL")
        typed = [_bind_type(name, v) for v in value if v is not None]
        sa_type = typed[0][1] if typed else sa.types.NullType()
        items = [None if v is None else _bind_type(name, v)[0] for v in value]
        return sa.bindparam(name, items, type_=sa_type, expanding=True)
    if value is None:
        return sa.bindparam(name, None, type_=sa.types.NullType())
    wired, sa_type = _bind_type(name, value)
    return sa.bindparam(name, wired, type_=sa_type)


def check_values(prepared: Prepared, values: Any) -> None:
    """Every named parameter has a value of a type we bind, and no value goes unused."""
    if not isinstance(values, Mapping) or not all(isinstance(k, str) for k in values):
        raise ValidationError(f"{NODE}: params takes a dict of named values like {{'min': 3}}, got {values!r}")
    problems = []
    missing = [n for n in prepared.names if n not in values]
    if missing:
        problems.append(f"missing {missing}")
    unused = [n for n in values if n not in prepared.names]
    if unused:
        problems.append(f"not in the SQL {unused}")
    if problems:
        raise ValidationError(
            f"{NODE}: the SQL names parameters {list(prepared.names)} (as :name); " + "; ".join(problems)
        )
    for name in prepared.names:
        _bindparam(name, values[name])
