"""A model class becomes a ModelSpec: ordered fields, managed columns and a SQLAlchemy Table."""

from __future__ import annotations

import datetime as dt
import functools
import html
import math
import re
import typing
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from dataflow_nb.core.identifiers import PORTABLE_IDENTIFIER_LENGTH, check_identifier
from dataflow_nb.core.masking import Sensitive
from dataflow_nb.core.partitions import Partitioning, check_unique_key, read_partitioning
from dataflow_nb.core.types import SUPPORTED, FieldType, Precision, decimal_type, field_type_for, unwrap_optional
from dataflow_nb.exceptions import ValidationError

MISSING: Any = object()
MANAGED_TIMESTAMPS = ("created_at", "updated_at")
# Columns only dataflow_nb writes: Delete sets deleted_at, Update bumps version.
LIFECYCLE_COLUMNS = ("deleted_at", "version")
KNOWN_OPTIONS = {
    "table",
    "indexes",
    "unique",
    "multi_tenant",
    "tenant_isolation",
    "soft_delete",
    "versioned",
    "source_columns",  # source column -> field, for a model inferred from a file (bulk nodes rename so)
    "sampled_rows",  # the rows of its file a model's types were inferred from, when it has more
    "sensitive",
    "partition_by",  # ("range", field, interval) or ("list", field): see core/partitions.py
}


@dataclass(frozen=True)
class Field:
    """One column of a model."""

    name: str
    type: FieldType
    nullable: bool
    default: Any = MISSING
    managed: bool = False
    sensitive: bool = False  # stored and returned as is; masked wherever dataflow_nb shows values

    @property
    def required(self) -> bool:
        """A value must be given on create."""
        return not (self.nullable or self.managed or self.default is not MISSING)

    @property
    def label(self) -> str:
        return f"Optional[{self.type.label}]" if self.nullable else self.type.label

    @property
    def notes(self) -> str:
        """What else a reader of the model needs: generated, default, sensitive."""
        notes = ["generated"] if self.managed else []
        if self.default is not MISSING:
            notes.append(f"default {self.default!r}")
        if self.sensitive:
            notes.append("sensitive")
        return ", ".join(notes)

    def __repr__(self) -> str:  # the FieldType inside is pages of functions and classes
        return f"Field({self.name!r}: {self.label}{f'; {self.notes}' if self.notes else ''})"


@dataclass(repr=False)
class ModelSpec:
    """Everything dataflow_nb knows about one model: its fields and its table."""

    name: str
    table_name: str
    fields: dict[str, Field]
    options: dict[str, Any]
    table: sa.Table = field(init=False)
    partitioning: Partitioning | None = field(init=False)  # how the table is split, if it is

    def __post_init__(self) -> None:
        self.partitioning = read_partitioning(self.name, self.options.get("partition_by"), self.fields)
        self.table = build_table(self)

    @functools.cached_property
    def writable(self) -> tuple[str, ...]:
        """Fields a caller may set: not the generated id, the run's tenant, deleted_at or version."""
        return tuple(n for n in self.fields if n not in ("id", "tenant_id", *LIFECYCLE_COLUMNS))

    @functools.cached_property
    def sensitive(self) -> frozenset[str]:
        """Names of the fields whose values are masked wherever shown (asked of every node a run runs)."""
        return frozenset(n for n, f in self.fields.items() if f.sensitive)

    @property
    def multi_tenant(self) -> bool:
        return "tenant_id" in self.fields

    @property
    def soft_delete(self) -> bool:
        return "deleted_at" in self.fields

    @property
    def versioned(self) -> bool:
        return "version" in self.fields

    def __repr__(self) -> str:
        fields = ", ".join(f"{f.name}: {f.label}" for f in self.fields.values())
        return f"ModelSpec({self.name!r}, table {self.table_name!r}: {fields})"

    def _repr_html_(self) -> str:
        """The model as a notebook shows it: its table, then a row per field."""
        rows = "".join(
            f"<tr><td>{html.escape(f.name)}</td><td>{html.escape(f.label)}</td><td>{html.escape(f.notes)}</td></tr>"
            for f in self.fields.values()
        )
        options = f"<br>options: <code>{html.escape(repr(self.options))}</code>" if self.options else ""
        return (
            f"<b>{html.escape(self.name)}</b> &middot; table <code>{html.escape(self.table_name)}</code>{options}"
            f"<table><tr><th>field</th><th>type</th><th></th></tr>{rows}</table>"
        )

    def signature(self) -> tuple[Any, ...]:
        """What must match for a re-run model cell to be a no-op (columns, defaults and options)."""
        columns = tuple((f.name, f.type.label, f.nullable, repr(f.default)) for f in self.fields.values())
        options = tuple(sorted((k, repr(v)) for k, v in self.options.items()))
        return (self.table_name, columns, options)


def snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])|(?<=[A-Z])([A-Z])(?=[a-z])", r"_\1\2", name).lower()


def default_table_name(model_name: str) -> str:
    """``User`` -> ``users``, ``Category`` -> ``categories``, ``OrderLine`` -> ``order_lines``."""
    base = snake_case(model_name)
    if re.search(r"[^aeiou]y$", base):
        return base[:-1] + "ies"
    if re.search(r"(s|x|z|ch|sh)$", base):
        return base + "es"
    return base + "s"


def spec_from_class(
    cls: type,
    localns: dict[str, Any] | None = None,
    *,
    multi_tenant: bool = False,
    max_identifier_length: int = PORTABLE_IDENTIFIER_LENGTH,
) -> ModelSpec:
    """Read a model class's type hints, defaults and ``__dataflow__`` options.

    ``localns`` resolves string annotations that name the defining function's locals;
    ``multi_tenant`` is the DataFlow's default, which ``__dataflow__['multi_tenant']`` overrides;
    ``max_identifier_length`` is the database's (its capabilities say it).
    """
    model = check_identifier(cls.__name__, "model name", max_identifier_length)
    options = dict(getattr(cls, "__dataflow__", {}) or {})
    unknown = set(options) - KNOWN_OPTIONS
    if unknown:
        raise ValidationError(
            f"model {model}: unknown __dataflow__ option(s) {sorted(unknown)}; "
            f"valid options are {sorted(KNOWN_OPTIONS)}"
        )
    for flag in ("soft_delete", "versioned"):
        if not isinstance(options.get(flag, False), bool):
            raise ValidationError(f"model {model}: __dataflow__[{flag!r}] takes True or False, got {options[flag]!r}")
    for kind in ("unique", "indexes"):
        options[kind] = [[c] if isinstance(c, str) else list(c) for c in options.get(kind, [])]
    try:
        hints = typing.get_type_hints(cls, localns=localns, include_extras=False)
    except NameError as exc:
        raise ValidationError(f"model {model}: a type hint names something undefined ({exc})") from exc

    sensitive = _sensitive_fields(cls, model, options, localns)
    precisions = _precisions(cls, model, localns)
    fields: dict[str, Field] = {"id": Field("id", field_type_for(int), nullable=False, managed=True)}  # type: ignore[arg-type]
    if options.get("multi_tenant", multi_tenant):
        if options.get("tenant_isolation", "strict") != "strict":
            raise ValidationError(f"model {model}: tenant_isolation must be 'strict' (the only mode built)")
        fields["tenant_id"] = Field("tenant_id", field_type_for(str), nullable=False, managed=True)  # type: ignore[arg-type]
    for name, hint in hints.items():
        if name.startswith("_") or typing.get_origin(hint) is typing.ClassVar:
            continue
        check_identifier(name, f"model {model}: field", max_identifier_length)
        if name in ("id", "tenant_id", *LIFECYCLE_COLUMNS):
            raise ValidationError(f"model {model}: {name!r} is managed by dataflow_nb; remove the field")
        inner, nullable = unwrap_optional(hint)
        ftype = field_type_for(inner)
        if name in precisions:
            if inner is not Decimal:
                raise ValidationError(
                    f"model {model}: field {name!r} has Precision(...), which only a Decimal field takes"
                )
            ftype = decimal_type(precisions[name].precision, precisions[name].scale)
        if ftype is None:
            raise ValidationError(
                f"model {model}: field {name!r} has unsupported type {hint!r}; supported types are {SUPPORTED}"
            )
        managed = name in MANAGED_TIMESTAMPS
        if managed and inner is not dt.datetime:
            raise ValidationError(f"model {model}: field {name!r} is managed and must be a datetime")
        default = getattr(cls, name, MISSING)
        if default is not MISSING and default is not None:
            try:
                ftype.to_wire(default)
            except (TypeError, ValueError) as exc:
                raise ValidationError(
                    f"model {model}: default {default!r} of field {name!r} does not fit {ftype.label} ({exc})"
                ) from None
        fields[name] = Field(name, ftype, nullable or default is None, default, managed, name in sensitive)
    for name in MANAGED_TIMESTAMPS:
        fields.setdefault(name, Field(name, field_type_for(dt.datetime), nullable=False, managed=True))  # type: ignore[arg-type]
    if options.get("soft_delete"):
        fields["deleted_at"] = Field("deleted_at", field_type_for(dt.datetime), nullable=True, managed=True)  # type: ignore[arg-type]
    if options.get("versioned"):
        fields["version"] = Field("version", field_type_for(int), nullable=False, default=1, managed=True)  # type: ignore[arg-type]
    table = check_identifier(
        options.get("table") or default_table_name(model), f"model {model}: table", max_identifier_length
    )
    return ModelSpec(model, table, fields, options)


def _sensitive_fields(cls: type, model: str, options: dict[str, Any], localns: dict[str, Any] | None) -> set[str]:
    """Fields marked ``Annotated[str, Sensitive]`` or listed in ``__dataflow__['sensitive']``."""
    listed = options.get("sensitive", [])
    if isinstance(listed, str) or not all(isinstance(n, str) for n in listed):
        raise ValidationError(f"model {model}: __dataflow__['sensitive'] takes a list of field names, got {listed!r}")
    marked = set(listed)
    for name, hint in typing.get_type_hints(cls, localns=localns, include_extras=True).items():
        candidates = [hint, *typing.get_args(hint)]  # Annotated[...] itself, or inside Optional[...]
        for candidate in candidates:
            if typing.get_origin(candidate) is typing.Annotated and any(
                m is Sensitive or isinstance(m, Sensitive) for m in candidate.__metadata__
            ):
                marked.add(name)
    unknown = marked - set(typing.get_type_hints(cls, localns=localns))
    if unknown:
        raise ValidationError(f"model {model}: __dataflow__['sensitive'] names unknown field(s) {sorted(unknown)}")
    return marked


def _markers(hint: Any) -> list[Any]:
    """The ``Annotated`` metadata of a hint, also inside ``Optional[...]``."""
    found = []
    for candidate in [hint, *typing.get_args(hint)]:
        if typing.get_origin(candidate) is typing.Annotated:
            found += list(candidate.__metadata__)
    return found


def _precisions(cls: type, model: str, localns: dict[str, Any] | None) -> dict[str, Precision]:
    """Fields declared ``Annotated[Decimal, Precision(p, s)]``."""
    found: dict[str, Precision] = {}
    for name, hint in typing.get_type_hints(cls, localns=localns, include_extras=True).items():
        markers = _markers(hint)
        if any(m is Precision for m in markers):
            raise ValidationError(f"model {model}: field {name!r}: give Precision its digits, e.g. Precision(38, 12)")
        marks = [m for m in markers if isinstance(m, Precision)]
        if marks:
            found[name] = marks[-1]
    return found


def server_default(f: Field) -> sa.ColumnElement[Any] | sa.TextClause | str | None:
    """The column's database default: managed timestamps get now(), scalar field defaults their value.

    A database default lets a migration add a NOT NULL column to a table with rows, and bulk
    loads that omit the column get the same value a Create would.
    """
    if f.name in MANAGED_TIMESTAMPS:
        return sa.func.now()
    value = f.default
    if value is MISSING or value is None or f.type.as_object:
        return None
    wired = f.type.to_wire(value)
    # Check bool before int: a bool is an int, and must render as true/false.
    if isinstance(wired, bool):
        return sa.true() if wired else sa.false()
    if isinstance(wired, int | Decimal) or (isinstance(wired, float) and math.isfinite(wired)):
        return sa.text(str(wired))
    if isinstance(wired, str):
        return wired  # SQLAlchemy quotes a str default as a literal
    return None  # dates, times and bytes: the Python default still fills them on Create


def primary_key(spec: ModelSpec) -> list[str]:
    """The primary key's columns: ``id``, after ``tenant_id`` on a multi-tenant model, before the
    partition column on a partitioned one.

    Citus requires every unique key of a table distributed by ``tenant_id`` to contain it, and
    PostgreSQL every unique key of a partitioned table to contain the partition column. Ids the
    database generates come from one sequence, so they stay unique across tenants; an id only has
    to be unique within its tenant (a tenant's upsert may give an id another tenant holds).
    """
    key = ["tenant_id", "id"] if spec.multi_tenant else ["id"]
    if spec.partitioning is not None and spec.partitioning.column not in key:
        key.append(spec.partitioning.column)
    return key


def build_table(spec: ModelSpec) -> sa.Table:
    """The SQLAlchemy Table for a spec; ``id`` draws from a sequence both databases understand."""
    metadata = sa.MetaData()
    sequence = sa.Sequence(f"{spec.table_name}_id_seq", metadata=metadata)
    key = spec.fields["id"].type.sa_type()
    columns = [sa.Column("id", key, sequence, server_default=sequence.next_value(), nullable=False)]
    columns += [
        sa.Column(f.name, f.type.sa_type(), nullable=f.nullable, server_default=server_default(f))
        for f in list(spec.fields.values())[1:]
    ]
    table = sa.Table(spec.table_name, metadata, *columns, sa.PrimaryKeyConstraint(*primary_key(spec)))
    if spec.partitioning is not None:
        table.info["partitioning"] = spec.partitioning  # the backends' DDL reads it
    for kind in ("unique", "indexes"):
        for cols in spec.options[kind]:
            unknown = [c for c in cols if c not in spec.fields]
            if unknown:
                raise ValidationError(
                    f"model {spec.name}: __dataflow__[{kind!r}] names unknown field(s) {unknown}; "
                    f"fields are {list(spec.fields)}"
                )
            name = f"{spec.table_name}_{'_'.join(cols)}_{'key' if kind == 'unique' else 'idx'}"
            if kind == "unique":
                # Strict tenancy: a unique key holds within a tenant, never across tenants.
                scoped = ["tenant_id", *cols] if spec.multi_tenant else cols
                if spec.partitioning is not None:
                    check_unique_key(spec.name, spec.partitioning, scoped)
                table.append_constraint(sa.UniqueConstraint(*scoped, name=name))
            else:
                sa.Index(name, *(table.c[c] for c in cols))
    return table
