"""The dataflow-nb command: load files, check health, list models, migrate, copy, run the demo.

Every command takes --url (default: DATABASE_URL, then the DuckDB file dataflow.duckdb in the
current folder). Exit codes: 0 ok, 1 failure (the message says why), 2 usage (a wrong option or
argument), 130 interrupted (nothing half-written stays).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dataflow_nb.exceptions import DataflowError
from dataflow_nb.model import SAMPLE_ROWS

if TYPE_CHECKING:
    from dataflow_nb.bulk.report import BulkReport

DEFAULT_FILE_URL = "duckdb:///dataflow.duckdb"
RUN_COLUMNS = ("run_id", "started_at", "status", "seconds", "nodes", "tenant_id", "error_node")
NODE_COLUMNS = ("node_id", "node_type", "status", "seconds", "rows_read", "rows_written", "error")
WIDTH = 100  # columns: every table the command prints fits a 100-column terminal
OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130


def database_url(given: str | None) -> str:
    """``--url``, else ``DATABASE_URL``, else the DuckDB file ``dataflow.duckdb``."""
    return given or os.environ.get("DATABASE_URL") or DEFAULT_FILE_URL


def load_model_classes(source: str) -> dict[str, type]:
    """The model classes of a models file (``models.py``) or module (``shop.models``).

    A models file holds plain annotated classes, without ``@db.model``, so that a notebook
    registers them with ``db.model(Flight)`` and the CLI with its own DataFlow.
    """
    import enum

    if source.endswith(".py"):
        path = Path(source)
        if not path.is_file():
            raise DataflowError(f"--models {source}: no such file")
        spec = importlib.util.spec_from_file_location(f"dataflow_models_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(source)
        except ImportError as exc:
            raise DataflowError(f"--models {source}: cannot import it ({exc}); give a .py file or a module") from exc
    classes = {
        name: value
        for name, value in vars(module).items()
        if inspect.isclass(value)
        and value.__module__ == module.__name__
        and not name.startswith("_")
        and not issubclass(value, enum.Enum)
        and inspect.get_annotations(value)
    }
    if not classes:
        raise DataflowError(f"--models {source}: defines no model class (a class with type-annotated fields)")
    return classes


def _open(args: argparse.Namespace, **options: Any) -> Any:
    from dataflow_nb import DataFlow

    return DataFlow(database_url(args.url), **options)


def _print_frame(frame: Any) -> None:
    import polars as pl

    with pl.Config(tbl_rows=50, tbl_cols=20, fmt_str_lengths=40, tbl_width_chars=WIDTH):
        print(frame)


def load_summary(report: BulkReport, table: str, run_id: str) -> str:
    """One line for a terminal: what the load did to the table, how fast, and the run to look it up by."""
    kinds = ("inserted", "updated", "unchanged", "deleted", "collapsed", "rows_rejected")
    counts = [f"{report[k]:,} {k.removeprefix('rows_')}" for k in kinds if report[k]]
    rate = f" ({report.rows_read / report.seconds:,.0f} rows/s)" if report.seconds > 0 and report.rows_read else ""
    return f"loaded {table}: {', '.join(counts) or 'nothing written'} in {report.seconds:,.1f} s{rate}; run {run_id}"


def _cell(value: Any) -> str:
    """A value as a text table shows it: nothing for null, times to the second, floats to the millisecond."""
    from datetime import datetime

    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def fit(text: str) -> str:
    """One line of at most ``WIDTH`` columns, cut with "…" when longer."""
    return text if len(text) <= WIDTH else text[: WIDTH - 1] + "…"


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[str]:
    """The header and one line per row, aligned, each within ``WIDTH`` columns."""
    cells = [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max([len(c), *(len(line[i]) for line in cells)]) for i, c in enumerate(columns)]
    return [
        fit("  ".join(value.ljust(width) for value, width in zip(line, widths, strict=True)).rstrip())
        for line in [list(columns), *cells]
    ]


def cmd_load(args: argparse.Namespace) -> int:
    """Load a CSV/Parquet file (or glob) into a model's table, creating the model when it is new.

    A model inferred here takes its types from the file's first rows (--sample); when the load
    then fails and the whole file reads as other types, the still empty table is changed to them
    and the load runs again.
    """
    from dataflow_nb.exceptions import WorkflowError
    from dataflow_nb.model.readback import read_model

    with _open(args) as db:
        classes = load_model_classes(args.models) if args.models else {}
        inferred = False
        if args.model in classes:
            db.model(classes[args.model])
            origin = args.models
        else:
            with db.migrations.connection() as connection:
                model = read_model(connection, db.backend, args.model)
            if model is not None:
                db.model(model)
                origin = "its table"
            else:
                print(f"reading {args.file} to infer model {args.model}'s fields...", file=sys.stderr, flush=True)
                db.model_from(args.file, name=args.model, sample=args.sample, **_unique(args))
                origin, inferred = f"inferred from {args.file}", True
        spec = db.models[args.model]
        print(f"model {spec.name} ({origin}) -> table {spec.table_name} on {db.backend.safe_url}")
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning  # restored when the block ends
            try:
                report, run_id = _run_load(db, args)
            except WorkflowError:
                if not (inferred and _widen(db, args)):
                    raise
                report, run_id = _run_load(db, args)
        print(load_summary(report, spec.table_name, run_id))
        if report.rows_rejected:
            print(f"{report.rows_rejected:,} row(s) rejected (on_error={args.on_error}):")
            _print_frame(report.rejected.head(20))
            if args.rejected:
                report.rejected.write_csv(args.rejected)
                print(f"rejected rows written to {args.rejected}")
    return OK


def _show_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    """A warning as one line of the command's own (not the module and line that raised it)."""
    print(f"dataflow-nb load: {category.__name__}: {message}", file=sys.stderr)


def _unique(args: argparse.Namespace) -> dict[str, Any]:
    return {"unique": [args.unique.split(",")]} if args.unique else {}


def _run_load(db: Any, args: argparse.Namespace) -> tuple[Any, str]:
    """One run of the load node --mode names: the report and the run id."""
    from dataflow_nb import LocalRuntime, WorkflowBuilder

    params: dict[str, Any] = {"source": args.file, "on_error": args.on_error, "progress": not args.no_progress}
    if args.batch_size:
        params["batch_size"] = args.batch_size
    if args.mode != "upsert":
        params["mode"] = args.mode
    workflow = WorkflowBuilder()
    workflow.add_node(
        db.nodes[f"{args.model}Bulk{'Upsert' if args.mode == 'upsert' else 'Create'}Node"], "load", params
    )
    results, run_id = LocalRuntime().execute(workflow.build())
    return results["load"], run_id


def _widen(db: Any, args: argparse.Namespace) -> bool:
    """After a failed load of a model this command inferred from the file's first rows: when the
    whole file reads as other types, change the table (empty: the load rolled back) to them."""
    from dataflow_nb.bulk.infer import infer_class
    from dataflow_nb.core.spec import spec_from_class
    from dataflow_nb.exceptions import SchemaError

    sampled = db.models[args.model]
    if not sampled.options.get("sampled_rows"):
        return False
    whole = infer_class(args.file, args.model, None, _unique(args))
    before = {n: f.label for n, f in sampled.fields.items()}
    after = {n: f.label for n, f in spec_from_class(whole).fields.items()}
    changed = [
        f"{name} {before.get(name, '(none)')} -> {after.get(name, '(none)')}"
        for name in dict.fromkeys([*before, *after])
        if before.get(name) != after.get(name)
    ]
    if not changed:
        return False
    print(
        f"{args.model}: the whole file does not fit the types of its first {sampled.options['sampled_rows']:,} rows; "
        f"the table takes the whole file's ({', '.join(changed)}) and the load starts again"
    )
    try:
        db.migrate(whole)  # the table is empty: the load rolled back
    except SchemaError:
        return False  # a change it will not make on its own: the load's own error says what failed
    return True


def cmd_health(args: argparse.Namespace) -> int:
    """Ping the database; exit 1 when it does not answer."""
    from datetime import UTC, datetime

    from dataflow_nb.exceptions import DatabaseError

    try:
        # A server that hangs is waited for no longer than a health check waits (libpq's minimum is 2 s).
        with _open(args, monitoring=True, connect_timeout=2) as db:
            status = db.get_monitor().get_health_status()
    except DatabaseError as exc:  # PostgreSQL connects when the DataFlow opens: unreachable is unhealthy
        from dataflow_nb.backends.postgres_url import mask_url

        status = {"status": "unhealthy", "database": mask_url(database_url(args.url)), "latency_ms": None}
        status |= {"error": f"ConnectionError: {exc}", "checked_at": datetime.now(UTC)}
    for key, value in status.items():
        if value is not None:  # a healthy database has no error, an unreachable one no latency
            print(f"{key}: {f'{value:.1f}' if isinstance(value, float) else value}")
    return OK if status["status"] == "healthy" else FAILED


def cmd_models(args: argparse.Namespace) -> int:
    """The models this database holds (from its migration history): table, rows and columns."""
    import textwrap

    from dataflow_nb.core.spec import spec_from_class
    from dataflow_nb.model.readback import model_tables, read_model

    with _open(args) as db, db.migrations.connection() as connection:
        tables = model_tables(connection, db.backend)
        print(f"{len(tables)} model(s) on {db.backend.safe_url}")
        for model, table in tables.items():
            cls = read_model(connection, db.backend, model)
            assert cls is not None
            counted = connection.execute_sql(f'SELECT count(*) FROM "{table}"')
            assert counted is not None
            print(f"{model}: table {table}, {counted.column(0)[0].as_py():,} rows")
            columns = [f"{f.name}: {f.label}".replace(" ", "\0") for f in spec_from_class(cls).fields.values()]
            wrapped = textwrap.fill(", ".join(columns), width=100, initial_indent="  ", subsequent_indent="  ")
            print(wrapped.replace("\0", " "))  # wrapped between columns, never inside one
    return OK


def cmd_migrate(args: argparse.Namespace) -> int:
    """Compare the models of a models file with their tables; show the plan or apply it."""
    import polars as pl

    classes = load_model_classes(args.models)
    renames = dict(pair.split("=", 1) for pair in args.rename)
    with _open(args) as db:
        frames = []
        for cls in classes.values():
            if args.apply:
                frames.append(db.migrate(cls, allow_destructive=args.allow_destructive, renames=renames or None))
            else:
                frames.append(db.migration_plan(cls))
        changes = pl.concat(frames)
        verb = "applied" if args.apply else "planned"
        print(f"{changes.height} change(s) {verb} for {len(classes)} model(s) on {db.backend.safe_url}")
        if changes.height:
            _print_frame(changes.drop("ddl"))
            print("\n".join(ddl if ddl.rstrip().endswith(";") else f"{ddl};" for ddl in changes["ddl"] if ddl))
        if not args.apply and not changes["safe"].all():
            print("some changes could lose data: apply them with --apply --allow-destructive", file=sys.stderr)
    return OK


def cmd_runs(args: argparse.Namespace) -> int:
    """The run history kept in the database: the newest runs, or one run's nodes with --run."""
    with _open(args, run_history=False) as db:  # reading the history records no run
        if args.run:
            nodes = db.run(args.run)
            run = db.runs(last=db.history.keep).filter(run_id=args.run)
            if run.height:
                row = run.row(0, named=True)
                print(f"run {row['run_id']} on {row['database']}: {row['status']}, {row['seconds'] or 0:.3f}s")
                print(f"tenant {row['tenant_id'] or '-'}, started {_cell(row['started_at'])} UTC")
                if row["error"]:
                    print(f"error in node {row['error_node']}: {row['error']}")
            print("\n".join(format_table(nodes.to_dicts(), NODE_COLUMNS)))
            return OK
        runs = db.runs(last=args.last)
        print(f"{runs.height} run(s) on {db.backend.safe_url}, newest first (times UTC)")
        if runs.height:
            rows = runs.to_dicts()
            header, *lines = format_table(rows, RUN_COLUMNS)
            print(header)
            for row, line in zip(rows, lines, strict=True):
                print(line)
                if row["error"]:  # under its run: the table stays narrow, the error readable
                    print(fit(f"  error: {row['error']}"))
    return OK


def cmd_copy(args: argparse.Namespace) -> int:
    """Copy every model's table and the run history from one database to another, in one transaction."""
    from dataflow_nb import DataFlow

    models = args.models.split(",") if args.models else None
    with DataFlow(args.source, read_only=True) as source, DataFlow(args.target) as target:
        report = source.copy_to(
            target, models=models, replace=args.replace, history=not args.no_history, progress=not args.no_progress
        )
    print(report)
    for model, table, rows in report.tables:
        print(f"  {model}: {rows:,} rows -> table {table}")
    return OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Define a model, run one workflow (creates, an update and a filtered list), print the frames."""
    from datetime import UTC, datetime

    from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder

    with DataFlow(args.url) as db:

        @db.model
        class User:
            name: str
            email: str
            age: int
            active: bool = True
            created_at: datetime
            profile: str | None = None

            __dataflow__ = {"unique": [["email"]]}

        workflow = WorkflowBuilder()
        for name, age in [("Alice", 30), ("Bob", 17), ("Chen", 45), ("Dana", 22)]:
            workflow.add_node(
                "UserCreateNode",
                f"create_{name.lower()}",
                {"name": name, "email": f"{name.lower()}@example.com", "age": age, "created_at": datetime.now(UTC)},
            )
        workflow.add_node("UserUpdateNode", "deactivate_chen", {"active": False})
        workflow.add_connection("create_chen", "id", "deactivate_chen", "id")
        workflow.add_node(
            "UserListNode",
            "list_users",
            {"filter": {"active": True, "age": {"$gte": 18}}, "order_by": ["-age"], "limit": 10},
        )
        workflow.add_node("UserCountNode", "count_users", {})
        results, run_id = LocalRuntime().execute(workflow.build())

        print(f"dataflow_nb demo on {db.backend.safe_url}: run {run_id} took {results['execution_time']:.3f}s")
        print(f"{results['count_users']} users stored; active adults, oldest first:")
        print(results["list_users"].select("id", "name", "email", "age", "active"))
        print("per-node timings:")
        print(results.timings)
    return OK


def _sample_rows(text: str) -> int | None:
    if text == "all":
        return None
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive number of rows, or all")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """One subparser per command; each command's function is its ``handler`` default."""
    parser = argparse.ArgumentParser(prog="dataflow-nb", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    url = argparse.ArgumentParser(add_help=False)
    url.add_argument("--url", default=None, help=f"database URL (default: DATABASE_URL, then {DEFAULT_FILE_URL})")

    def command(
        name: str, handler: Callable[[argparse.Namespace], int], summary: str, *, database: bool = True
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[url] if database else [], help=summary, description=handler.__doc__)
        sub.set_defaults(handler=handler)
        return sub

    load = command("load", cmd_load, "load a CSV or Parquet file (or a glob) into a model's table")
    load.add_argument("file", help="a .csv, .csv.gz or .parquet file, or a quoted glob such as 'data/*.parquet'")
    load.add_argument("--model", required=True, help="the model name; inferred from the file when it has no table")
    load.add_argument("--models", help="a models file (models.py) or module defining the model's class")
    load.add_argument(
        "--on-error",
        choices=("rollback", "skip", "quarantine"),
        default="rollback",
        help="a bad row: roll the whole load back (default), skip it, or skip it and list it",
    )
    load.add_argument(
        "--mode",
        choices=("append", "replace", "upsert"),
        default="append",
        help="append the rows (default; warns when a run already loaded this file), replace the table's rows "
        "with them in one transaction, or upsert on the unique key (update rows whose key exists, insert the rest)",
    )
    load.add_argument("--unique", help="comma-separated unique key for a model inferred from the file")
    load.add_argument(
        "--sample",
        type=_sample_rows,
        default=SAMPLE_ROWS,
        metavar="ROWS|all",
        help=f"rows a model inferred from the file takes its types from (default {SAMPLE_ROWS:,}; all: every row)",
    )
    load.add_argument("--batch-size", type=int, help="rows per batch (default 50,000)")
    load.add_argument("--rejected", help="write the rejected rows to this CSV file")
    load.add_argument("--no-progress", action="store_true", help="no progress bar")

    command("health", cmd_health, "check that the database answers (exit 1 when it does not)")
    command("models", cmd_models, "list the models in the database: table, rows, columns")

    migrate = command("migrate", cmd_migrate, "compare a models file with the tables; show or apply the plan")
    migrate.add_argument("--models", required=True, help="a models file (models.py) or module")
    action = migrate.add_mutually_exclusive_group(required=True)
    action.add_argument("--plan", action="store_true", help="show what would change; change nothing")
    action.add_argument("--apply", action="store_true", help="apply the changes, each model in one transaction")
    migrate.add_argument("--allow-destructive", action="store_true", help="also apply changes that can lose data")
    migrate.add_argument(
        "--rename", action="append", default=[], metavar="OLD=NEW", help="rename a column, keeping its values"
    )

    runs = command("runs", cmd_runs, "show the run history kept in the database (newest first)")
    runs.add_argument("--last", type=int, default=20, help="how many of the newest runs (default 20)")
    runs.add_argument("--run", metavar="RUN_ID", help="show this run's nodes: status, seconds, rows, error")

    copy = command("copy", cmd_copy, "copy every model's table and the run history to another database", database=False)
    copy.add_argument("source", help="the database to copy from, e.g. duckdb:///prototype.duckdb")
    copy.add_argument("target", help="the database to copy into, e.g. postgresql://user@host/db")
    copy.add_argument("--models", help="comma-separated model names (default: every model)")
    copy.add_argument("--replace", action="store_true", help="replace rows the target's tables already hold")
    copy.add_argument("--no-history", action="store_true", help="leave the run history behind")
    copy.add_argument("--no-progress", action="store_true", help="no progress bar")

    # Further commands register here the same way.

    demo = command("demo", cmd_demo, "run a small workflow and print the resulting frame", database=False)
    # The demo's own default leaves nothing behind (its unique emails would clash on a second run).
    demo.add_argument("--url", default=None, help="database URL (default: DATABASE_URL or an in-memory DuckDB)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code (0 ok, 1 failure, 2 usage, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except DataflowError as exc:
        print(f"dataflow-nb {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        print(f"dataflow-nb {args.command}: interrupted; its unfinished transaction was rolled back", file=sys.stderr)
        return INTERRUPTED
    return code


if __name__ == "__main__":
    sys.exit(main())
