"""One Connection.ensure_tables for dataflow_nb's own tables, on both databases."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from dataflow_nb.model.migration_log import MIGRATIONS_TABLE, migration_log


def _columns(connection: Any, table: str) -> list[str]:
    found = connection.execute_sql(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = $1 ORDER BY ordinal_position",
        [table],
    )
    return [] if found is None else [str(c) for c in found.column(0).to_pylist()]


def test_a_missing_table_is_created_once_and_an_old_one_gets_its_new_nullable_columns(db: Any) -> None:
    metadata = sa.MetaData()
    sequence = sa.Sequence("ledger_test_seq", metadata=metadata)
    old = sa.Table(
        "ledger_test",
        metadata,
        sa.Column("id", sa.BigInteger, server_default=sequence.next_value(), primary_key=True),
        sa.Column("what", sa.Text, nullable=False),
    )
    with db.migrations.connection() as connection:
        assert connection.ensure_tables([old, migration_log]) == {"ledger_test", MIGRATIONS_TABLE}
        assert connection.ensure_tables([old, migration_log]) == set()
        connection.execute_sql("INSERT INTO ledger_test (what) VALUES ('x')")  # the sequence was made too
        newer = sa.Table("ledger_test", sa.MetaData(), sa.Column("id", sa.BigInteger), sa.Column("note", sa.Text))
        assert connection.ensure_tables([newer]) == set()
        assert _columns(connection, "ledger_test") == ["id", "what", "note"]  # nothing dropped, "note" added
        connection.commit()


def test_a_commit_without_flush_is_seen_at_once_and_changes_no_later_transaction(db: Any) -> None:
    """The run history's commit (``flush=False``): committed and visible to another connection,
    and PostgreSQL's ``synchronous_commit = off`` lasts for that one transaction only."""
    with db.migrations.connection() as connection:
        connection.execute_sql("CREATE TABLE flush_test (what TEXT)")
        connection.commit()
    with db.migrations.connection() as connection:
        connection.execute_sql("INSERT INTO flush_test VALUES ('kept')")
        connection.commit(flush=False)
        if db.backend.capabilities.name == "postgres":  # the connection's next transaction (DuckDB: none)
            shown = connection.execute_sql("SELECT current_setting('synchronous_commit')")
            assert shown is not None and shown.column(0)[0].as_py() == "on"
    with db.migrations.connection() as other:
        seen = other.execute_sql("SELECT what FROM flush_test")
        assert seen is not None and seen.column(0).to_pylist() == ["kept"]
