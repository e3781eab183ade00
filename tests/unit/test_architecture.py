"""Every DuckDB/PostgreSQL difference lives in ``dataflow_nb/backends/``; every type mapping in one registry.

Outside ``backends/`` no module imports a database driver or SQLAlchemy's per-database dialects
(but the type table's JSONB, the JSON column type both backends store: DuckDB compiles it as JSON),
and none names a backend to branch on it (``if backend == "duckdb"``): what differs is a
capability, a backend method or a compile rule. A new backend is new modules under ``backends/``,
nothing else.

Outside ``core/types.py`` no module pairs a Python type (``int``, ``dt.datetime``, or its label
``"int"``) with a SQLAlchemy, Arrow, polars or pandas type: they ask the registry instead.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "dataflow_nb"
BACKENDS = PACKAGE / "backends"
DRIVERS = ("duckdb", "adbc_driver_manager", "adbc_driver_postgresql", "pglast", "psycopg", "psycopg2", "asyncpg")
DIALECTS = "sqlalchemy.dialects"
BACKEND_NAMES = {"duckdb", "postgres", "postgresql"}
SHARED = ("base.py", "errors.py", "reflect.py", "results.py")  # what both backends share
# The type table (core/, below backends/) names the one dialect type every backend stores JSON as.
TYPE_TABLE_DIALECT = ("dataflow_nb/core/types.py", "sqlalchemy.dialects.postgresql", "JSONB")


@functools.cache
def _parse(source: str, where: str) -> ast.Module:
    """Each module parsed once for the three checks that walk the package (~0.4 s a parse of it)."""
    return ast.parse(source, where)


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the string constants that are docstrings (they may name databases: they explain)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def violations(source: str, where: str) -> list[str]:
    tree = _parse(source, where)
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = tuple(alias.name for alias in node.names)
            modules = [] if (where, node.module, *names) == TYPE_TABLE_DIALECT else [node.module]
        found += [
            f"{where}:{node.lineno} imports {module}"
            for module in modules
            if module.split(".")[0] in DRIVERS or module.startswith(DIALECTS)
        ]
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.lower() in BACKEND_NAMES
            and id(node) not in docstrings
        ):
            found.append(f"{where}:{node.lineno} names the backend {node.value!r}")
    return found


def test_no_module_outside_backends_names_a_backend_or_imports_a_driver() -> None:
    modules = [p for p in sorted(PACKAGE.rglob("*.py")) if BACKENDS not in p.parents]
    assert len(modules) > 30  # the walk found the package
    found = [v for p in modules for v in violations(p.read_text(), str(p.relative_to(PACKAGE.parent)))]
    assert found == [], "backend differences belong in dataflow_nb/backends/:\n" + "\n".join(found)


def test_the_shared_backend_modules_name_no_backend() -> None:
    """What both backends share branches on neither: each backend module brings its own part."""
    found = [v for name in SHARED for v in violations((BACKENDS / name).read_text(), f"backends/{name}")]
    assert found == []


def test_results_are_normalized_inside_the_backends() -> None:
    """Each backend evens out its own results; nothing outside ``backends/`` normalizes them again."""
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno} imports {node.module}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if BACKENDS not in path.parents
        for node in ast.walk(_parse(path.read_text(), str(path.relative_to(PACKAGE.parent))))
        if isinstance(node, ast.ImportFrom)
        and (node.module or "").startswith("dataflow_nb.backends")
        and (node.module or "").endswith("results")
    ]
    assert found == []


def test_the_check_catches_a_branch_and_a_driver_import() -> None:
    source = (
        '"""Mentions duckdb in a docstring, which is allowed."""\n'
        "import duckdb\n"
        "from sqlalchemy.dialects.postgresql import insert\n"
        "def f(db):\n"
        "    return db.backend.capabilities.name == 'duckdb'\n"
    )
    assert violations(source, "probe.py") == [
        "probe.py:2 imports duckdb",
        "probe.py:3 imports sqlalchemy.dialects.postgresql",
        "probe.py:5 names the backend 'duckdb'",
    ]


REGISTRY = PACKAGE / "core" / "types.py"
HINT_NAMES = {"bool", "int", "float", "str", "bytes", "dict", "list", "Decimal", "UUID", "datetime", "date", "time"}
# Labels as strings; "float", "date" and "time" are also SQL type names (a catalog's), so they do not count.
HINT_LABELS = {"bool", "int", "str", "bytes", "dict", "list", "Decimal", "UUID", "datetime"}
SQL_TYPES = {
    "Boolean", "Integer", "BigInteger", "SmallInteger", "Float", "Double", "Numeric", "String", "Text",
    "Unicode", "UnicodeText", "LargeBinary", "DateTime", "Date", "Time", "Uuid", "JSON", "JSONB", "Enum",
}  # fmt: skip
TYPE_MODULES = {"sa", "sqlalchemy", "pa", "pyarrow", "pl", "polars", "pd", "pandas"}


def _dotted(node: ast.AST) -> list[str]:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return parts[::-1]


def _is_hint(node: ast.AST) -> bool:
    """``int``, ``dt.datetime``, ``uuid.UUID`` or the label ``"int"``."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and node.value in HINT_LABELS
    dotted = _dotted(node)
    return bool(dotted) and dotted[-1] in HINT_NAMES and len(dotted) <= 2


def _is_storage_type(node: ast.AST) -> bool:
    """A SQLAlchemy type (``sa.Text``, ``sa.BigInteger()``), an Arrow type or check (``pa.int64()``,
    ``pa.types.is_integer``), a polars dtype (``pl.Int64``) or a pandas one (``pd.Int64Dtype()``)."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Lambda):
        return _is_storage_type(node.body)
    dotted = _dotted(node)
    if not dotted:
        return False
    if dotted == ["JSONB"]:
        return True
    if dotted[0] not in TYPE_MODULES or len(dotted) < 2:
        return False
    if dotted[0] in ("sa", "sqlalchemy"):
        return dotted[-1] in SQL_TYPES
    if dotted[0] in ("pa", "pyarrow"):
        return dotted[1] == "types" or (len(dotted) == 2 and dotted[1][0].islower() and dotted[1] != "array")
    return dotted[-1][0].isupper()  # polars dtypes and pandas' *Dtype classes


def _isinstance_of_hint(test: ast.AST) -> bool:
    """``isinstance(value, int)``: a value's Python type decides (a label compared is a field's own type)."""
    for node in ast.walk(test):
        if isinstance(node, ast.Call) and _dotted(node.func) == ["isinstance"] and len(node.args) == 2:
            kinds = node.args[1]
            items = kinds.elts if isinstance(kinds, ast.Tuple) else [kinds]
            if any(_is_hint(i) for i in items):
                return True
    return False


def type_mappings(source: str, where: str) -> list[str]:
    """Places that map a Python type to a storage type: a dict entry, a tuple, a call's arguments,
    or an ``if isinstance(value, <type>)`` choosing one."""
    found = []
    for node in ast.walk(_parse(source, where)):
        pairs: list[tuple[ast.AST, list[ast.AST]]] = []
        if isinstance(node, ast.Dict):
            pairs = [(k, [k, v]) for k, v in zip(node.keys, node.values, strict=True) if k is not None]
        elif isinstance(node, ast.Tuple | ast.List):
            pairs = [(node, list(node.elts))]
        elif isinstance(node, ast.Call):  # FieldType("int", sa.BigInteger, pa.int64(), python=int)
            pairs = [(node, [*node.args, *(k.value for k in node.keywords)])]
        elif isinstance(node, ast.If | ast.IfExp) and _isinstance_of_hint(node.test):
            body = node.body if isinstance(node.body, list) else [node.body]
            if any(_is_storage_type(n) for b in body for n in ast.walk(b)):
                found.append(f"{where}:{node.lineno} chooses a storage type by Python type")
            continue
        for at, items in pairs:
            if any(_is_hint(i) for i in items) and any(_is_storage_type(i) for i in items):
                found.append(f"{where}:{getattr(at, 'lineno', node.lineno)} maps a Python type to a storage type")
    return sorted(found, key=lambda f: int(f.split(":")[1].split()[0]))


def test_the_type_mapping_exists_once() -> None:
    modules = [p for p in sorted(PACKAGE.rglob("*.py")) if p != REGISTRY]
    found = [v for p in modules for v in type_mappings(p.read_text(), str(p.relative_to(PACKAGE.parent)))]
    assert found == [], "map types in dataflow_nb/core/types.py (the registry) and look them up:\n" + "\n".join(found)
    assert type_mappings(REGISTRY.read_text(), "types.py"), "the registry itself maps types (the check works)"


def test_the_check_catches_each_kind_of_type_mapping() -> None:
    source = (
        "KINDS = {'int': sa.BigInteger, 'str': sa.String}\n"
        "PAIRS = [(bool, pa.bool_()), (pa.types.is_integer, int)]\n"
        "POLARS = {dt.date: pl.Date}\n"
        "def bind(value):\n"
        "    if isinstance(value, uuid.UUID):\n"
        "        return sa.literal(str(value), sa.Uuid(as_uuid=False))\n"
        "    if isinstance(value, (int, float)) and not isinstance(value, bool):\n"
        "        return sa.literal(value, sa.Double())\n"
        "    return sa.literal(value)\n"
        "INT = FieldType('int', sa.BigInteger, pa.int64(), python=int)\n"
        "TABLE = sa.Table('t', sa.MetaData(), sa.Column('a', sa.Text))\n"  # a column, not a mapping
    )
    assert type_mappings(source, "probe.py") == [
        "probe.py:1 maps a Python type to a storage type",
        "probe.py:1 maps a Python type to a storage type",
        "probe.py:2 maps a Python type to a storage type",
        "probe.py:2 maps a Python type to a storage type",
        "probe.py:3 maps a Python type to a storage type",
        "probe.py:5 chooses a storage type by Python type",
        "probe.py:7 chooses a storage type by Python type",
        "probe.py:10 maps a Python type to a storage type",
    ]
