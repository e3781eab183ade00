"""The audit log: one row per write, inserted in the run's own transaction.

Because the row is written on the run's connection before the commit, the audit and the data
commit or roll back together: a rolled-back run leaves no audit row, and a committed write
always has one. Single-record writes list their ids; bulk writes keep a digest of the rows they
were given, or of their filter (millions of ids would make the log larger than the data).

The digests are HMAC-SHA-256 keyed with a secret of the database's own, kept in
``dataflow_nb_audit_key``: a plain hash of one SSN in a filter could be found by hashing every
SSN, by anyone who reads the log. The key is made with the audit table, read once per DataFlow
outside any tenant's run, and kept from the log's readers: on PostgreSQL a tenant's transaction
sees no row of it (row-level security) and an auditor is granted the log, not the key; on DuckDB
a tenant's raw SQL is refused it (``nodes/sql.py``). See docs/security.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlalchemy as sa

from dataflow_nb.backends.base import Connection, compile_statement
from dataflow_nb.exceptions import DataflowError
from dataflow_nb.observers.digests import InputDigests
from dataflow_nb.protocols import RunObserver

if TYPE_CHECKING:
    from dataflow_nb.protocols import NodeEnd, Run, RunDatabase

AUDIT_TABLE = "dataflow_nb_audit"
AUDIT_KEY_TABLE = "dataflow_nb_audit_key"
_metadata = sa.MetaData()
_sequence = sa.Sequence(f"{AUDIT_TABLE}_id_seq", metadata=_metadata)
audit = sa.Table(
    AUDIT_TABLE,
    _metadata,
    # The sequence is the server default only, so an insert sends no id and asks for none back.
    sa.Column("id", sa.BigInteger, server_default=_sequence.next_value(), primary_key=True, autoincrement=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("tenant_id", sa.Text),
    sa.Column("node_id", sa.Text, nullable=False),
    sa.Column("node_type", sa.Text, nullable=False),
    sa.Column("model", sa.Text),
    sa.Column("operation", sa.Text, nullable=False),
    sa.Column("rows", sa.BigInteger),
    sa.Column("keys", sa.Text),  # a JSON list of ids for single-record writes
    sa.Column("digest", sa.Text),  # HMAC-SHA-256 of a bulk node's input rows or filter, or of SQL and its values
    sa.Column("db_user", sa.Text, nullable=False, server_default=sa.text("current_user")),
    implicit_returning=False,  # no RETURNING: the login role may insert audit rows but not read them
)
audit_key = sa.Table(AUDIT_KEY_TABLE, _metadata, sa.Column("key", sa.Text, nullable=False))


def ensure_audit_table(connection: Connection, db: RunDatabase) -> bytes:
    """Create the audit table and its key when they are missing (in the caller's transaction);
    return the key. A new key is written before its table is protected: nobody may change it after.
    """
    if AUDIT_KEY_TABLE in connection.ensure_tables([audit, audit_key]):
        insert = sa.insert(audit_key).values(key=sa.bindparam("key", type_=sa.Text))
        connection.execute(compile_statement(insert, db.backend.dialect), {"key": secrets.token_hex(32)})
        db.backend.protect_secret_table(connection, AUDIT_KEY_TABLE)
    return read_audit_key(connection, db)


def read_audit_key(connection: Connection, db: RunDatabase) -> bytes:
    """The database's audit key; outside a tenant's run, where row-level security shows it."""
    found = connection.execute(compile_statement(sa.select(audit_key.c.key), db.backend.dialect))
    if found is None or found.num_rows != 1:
        raise DataflowError(
            f"the audit key ({AUDIT_KEY_TABLE}) of {db.backend.safe_url} is missing or cannot be read: open "
            "the database once with security_enabled=True as the role that owns its tables"
        )
    return bytes.fromhex(found.column(0)[0].as_py())


def audit_write(
    ctx: Run,
    db: RunDatabase,
    *,
    node_type: str,
    model: str | None,
    operation: str,
    rows: int | None,
    keys: list[Any] | None = None,
    digest: str | None = None,
) -> None:
    """Insert one audit row on the run's connection (so it shares the run's transaction)."""
    values = {
        "run_id": ctx.run_id,
        "tenant_id": ctx.scope.tenant_id,
        "node_id": ctx.node_id or "",
        "node_type": node_type,
        "model": model,
        "operation": operation,
        "rows": rows,
        "keys": None if keys is None else json.dumps(keys),
        "digest": digest,
    }
    binds = {k: sa.bindparam(k, type_=audit.c[k].type) for k in values}
    ctx.execute(db, compile_statement(sa.insert(audit).values(binds), db.backend.dialect), values)


def digest_of(value: Any, key: bytes) -> str:
    """A SQL statement with its values, or a bulk filter, as a keyed digest: never the values themselves."""
    return hmac.new(key, json.dumps(value, default=str, sort_keys=True).encode(), hashlib.sha256).hexdigest()


def read_audit_log(connection: Connection, db: RunDatabase, last: int | None) -> pa.Table:
    query = sa.select(audit).order_by(audit.c.id.desc())
    if last is not None:
        query = query.limit(last)
    result = connection.execute(compile_statement(query, db.backend.dialect))
    assert result is not None
    return result.take(pa.array(range(result.num_rows - 1, -1, -1), pa.int64()))  # oldest first


class AuditObserver(RunObserver):
    """``security_enabled=True``: every write of the DataFlow's runs gets an audit row."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    def open(self, run: Run, db: RunDatabase) -> RunObserver:
        return AuditRun(db, self.key)


class AuditRun(InputDigests):
    """One run's writes to one database: audited as each node ends, in the run's transaction.
    A bulk node's input is digested as it streams (``InputDigests``, fed by ``bulk/load.py``)."""

    def __init__(self, db: RunDatabase, key: bytes) -> None:
        super().__init__(key)
        self.db = db

    def on_node_end(self, run: Run, end: NodeEnd) -> None:
        """Audit what the node just wrote here: the node says what that was (``Node.written``)."""
        running = self.digests.pop(end.node_id, None)
        node, params = end.node, end.params
        if end.status != "ok" or node is None or node.writes_to(params) is not self.db:
            return
        written = node.written(params, end.output)
        if written is None:
            return
        if running is not None:
            digest: str | None = running.hexdigest()
        elif written.digest_of is not None:
            digest = digest_of(written.digest_of, self.key)
        else:
            digest = None
        audit_write(
            run,
            self.db,
            node_type=node.node_type,
            model=written.model,
            operation=written.operation,
            rows=written.rows,
            keys=written.keys,
            digest=digest,
        )
