"""The ``dataflow-nb`` console script, run as a user runs it, on DuckDB (a file) and on PostgreSQL.

Each test calls the installed script next to this interpreter, in a temporary folder, and checks
the exit code, what it printed and what the database holds afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dataflow_nb import DataFlow, datasets

pytestmark = pytest.mark.slow  # each test runs the console script in new processes

SCRIPT = str(Path(sys.executable).with_name("dataflow-nb"))


def cli(*argv: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATAFLOW_PROGRESS")}
    return subprocess.run(
        [SCRIPT, *argv], capture_output=True, text=True, cwd=cwd, check=False, env={**environment, **(env or {})}
    )


@pytest.fixture
def url(backend_url: str | None, tmp_path: Path) -> str:
    """The test's database as a URL another process can open: a DuckDB file, or the PostgreSQL schema."""
    return backend_url or f"duckdb:///{tmp_path / 'cli.duckdb'}"


@pytest.fixture
def query(url: str) -> Iterator[Any]:
    """``query(sql)``: a frame from the test's database, read after the command has finished."""
    opened: list[DataFlow] = []

    def read(sql: str) -> pl.DataFrame:
        from dataflow_nb import LocalRuntime, WorkflowBuilder

        db = DataFlow(url)
        opened.append(db)
        workflow = WorkflowBuilder()
        workflow.add_node("SQLQueryNode", "q", {"sql": sql, "db": db})
        frame: pl.DataFrame = LocalRuntime().execute(workflow.build())[0]["q"]
        db.close()
        return frame

    yield read
    for db in opened:
        db.close()


def test_load_infers_the_model_then_appends_to_its_table(url: str, tmp_path: Path, query: Any) -> None:
    flights = str(datasets.path("flights.parquet"))
    first = cli("load", flights, "--model", "Flight", "--url", url, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"model Flight (inferred from {flights}) -> table flights" in first.stdout
    assert "loaded flights: 27,004 inserted in " in first.stdout and "BulkReport" not in first.stdout
    assert first.stderr.startswith(f"reading {flights} to infer model Flight's fields...")  # before model_from
    assert "FlightBulkCreateNode: 100%" in first.stderr and "27,004/27,004 rows" in first.stderr  # the bar

    again = cli("load", flights, "--model", "Flight", "--url", url, "--no-progress", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "model Flight (its table) -> table flights" in again.stdout
    first_run = first.stdout.split("; run ")[1].split()[0]
    assert again.stderr.startswith(f"dataflow-nb load: UserWarning: FlightBulkCreateNode: {flights} was already ")
    assert f"loaded into flights by run {first_run}" in again.stderr and "--mode replace|upsert" in again.stderr
    assert query("SELECT count(*) AS n, count(DISTINCT id) AS ids FROM flights").row(0) == (54_008, 54_008)
    expected = pl.read_parquet(flights).filter(pl.col("dep_delay") > 300).sort("time_hour", "flight")
    loaded = query("SELECT * FROM flights WHERE dep_delay > 300 ORDER BY time_hour, flight, id")
    assert loaded["flight"].to_list() == [f for f in expected["flight"].to_list() for _ in (1, 2)]

    listed = cli("models", "--url", url, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "1 model(s) on" in listed.stdout
    assert "Flight: table flights, 54,008 rows" in listed.stdout
    assert "dep_delay: Optional[int]" in listed.stdout and "time_hour: datetime" in listed.stdout

    replaced = cli(
        "load", flights, "--model", "Flight", "--url", url, "--no-progress", "--mode", "replace", cwd=tmp_path
    )
    assert replaced.returncode == 0, replaced.stderr
    assert replaced.stderr == ""
    assert "loaded flights: 27,004 inserted, 54,008 deleted in " in replaced.stdout
    assert query("SELECT count(*) AS n FROM flights")["n"].item() == 27_004


def test_load_widens_a_model_inferred_from_the_first_rows(url: str, tmp_path: Path, query: Any) -> None:
    path = tmp_path / "late.csv"
    lines = [f"{i},{'twelve' if i == 250 else i * 2},{'' if i == 280 else 'x'}" for i in range(1, 301)]
    path.write_text("n,twice,note\n" + "\n".join(lines) + "\n")
    done = cli("load", str(path), "--model", "Late", "--sample", "100", "--url", url, "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"Late: types inferred from the first 100 rows of {path}" in done.stdout
    assert "the table takes the whole file's (twice int -> str, note str -> Optional[str])" in done.stdout
    assert "loaded lates: 300 inserted in " in done.stdout
    assert query("SELECT twice, note FROM lates WHERE n IN (250, 280) ORDER BY n").rows() == [
        ("twelve", "x"),
        ("560", None),
    ]
    whole = cli("load", str(path), "--model", "Whole", "--sample", "all", "--url", url, "--no-progress", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    assert "types inferred from the first" not in whole.stdout and "takes the whole file's" not in whole.stdout
    ids = tmp_path / "ids.csv"  # ids unique in the first 100 rows only: not the key after all
    ids.write_text("id,v\n" + "".join(f"{5 if i == 250 else i},{i}\n" for i in range(1, 301)))
    keyed = cli("load", str(ids), "--model", "Keyed", "--sample", "100", "--url", url, "--no-progress", cwd=tmp_path)
    assert keyed.returncode == 0, keyed.stderr
    assert "(source_id (none) -> int)" in keyed.stdout and ": 300 inserted in " in keyed.stdout


def test_load_a_glob_of_csv_files(url: str, tmp_path: Path, query: Any) -> None:
    weather = pl.read_csv(datasets.path("seattle-weather.csv"))
    for year, part in weather.group_by(pl.col("date").str.slice(0, 4)):
        part.write_csv(tmp_path / f"weather-{year[0]}.csv")
    done = cli("load", str(tmp_path / "weather-*.csv"), "--model", "Weather", "--url", url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "loaded weathers: 1,461 inserted in " in done.stdout
    assert query("SELECT count(*) AS n, sum(precipitation) AS rain FROM weathers").row(0) == pytest.approx(
        (1461, weather["precipitation"].sum())
    )


def _broken_csv(folder: Path) -> Path:
    """Ten flights with one unreadable delay in row 4."""
    frame = pl.read_parquet(datasets.path("flights.parquet")).head(10).select("carrier", "flight", "dep_delay")
    path = folder / "broken.csv"
    frame.with_columns(pl.col("dep_delay").cast(pl.String)).with_row_index().with_columns(
        pl.when(pl.col("index") == 3).then(pl.lit("late")).otherwise(pl.col("dep_delay")).alias("dep_delay")
    ).drop("index").write_csv(path)
    return path


def test_load_on_error_modes(url: str, tmp_path: Path, query: Any) -> None:
    models = tmp_path / "models.py"
    models.write_text("class Delay:\n    carrier: str\n    flight: int\n    dep_delay: int\n")
    broken = str(_broken_csv(tmp_path))
    common = ("--model", "Delay", "--models", str(models), "--url", url, "--no-progress")

    rolled_back = cli("load", broken, *common, cwd=tmp_path)
    assert rolled_back.returncode == 1
    assert "row 4, column 'dep_delay': value 'late' does not fit int" in rolled_back.stderr
    assert query("SELECT count(*) AS n FROM delays")["n"].item() == 0

    skipped = cli("load", broken, *common, "--on-error", "skip", cwd=tmp_path)
    assert skipped.returncode == 0, skipped.stderr
    assert "loaded delays: 9 inserted, 1 rejected in " in skipped.stdout

    rejected = tmp_path / "rejected.csv"
    kept = cli("load", broken, *common, "--on-error", "quarantine", "--rejected", str(rejected), cwd=tmp_path)
    assert kept.returncode == 0, kept.stderr
    assert pl.read_csv(rejected).select("row", "column", "value").rows() == [(4, "dep_delay", "late")]
    assert query("SELECT count(*) AS n FROM delays")["n"].item() == 18


def test_load_upsert_updates_by_the_unique_key(url: str, tmp_path: Path, query: Any) -> None:
    airlines = str(datasets.path("airlines.csv"))
    created = cli("load", airlines, "--model", "Airline", "--unique", "carrier", "--url", url, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    changed = tmp_path / "airlines-renamed.csv"
    pl.read_csv(airlines).with_columns(pl.col("name").str.to_uppercase()).write_csv(changed)
    upserted = cli("load", str(changed), "--model", "Airline", "--mode", "upsert", "--url", url, cwd=tmp_path)
    assert upserted.returncode == 0, upserted.stderr
    assert "loaded airlines: 16 updated in " in upserted.stdout
    names = query("SELECT name FROM airlines WHERE carrier = 'AA'")["name"].to_list()
    assert names == ["AMERICAN AIRLINES INC."]


def test_migrate_plans_then_applies(url: str, tmp_path: Path, query: Any) -> None:
    models = tmp_path / "shop_models.py"
    models.write_text(
        "from typing import Optional\n\n"
        "class Customer:\n    name: str\n    email: str\n    city: Optional[str] = None\n"
        "    __dataflow__ = {'unique': [['email']]}\n"
    )
    plan = cli("migrate", "--models", str(models), "--plan", "--url", url, cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert "1 change(s) planned for 1 model(s)" in plan.stdout and "create table" in plan.stdout
    assert "0 model(s) on" in cli("models", "--url", url, cwd=tmp_path).stdout  # a plan changes nothing

    applied = cli("migrate", "--models", str(models), "--apply", "--url", url, cwd=tmp_path)
    assert applied.returncode == 0, applied.stderr
    assert "1 change(s) applied" in applied.stdout
    assert "Customer: table customers, 0 rows" in cli("models", "--url", url, cwd=tmp_path).stdout
    (tmp_path / "customers.csv").write_text("name,email,city\nAda,ada@example.com,London\n")
    loaded = cli("load", "customers.csv", "--model", "Customer", "--url", url, cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr

    models.write_text(models.read_text().replace("    city: Optional[str] = None\n", ""))
    plan = cli("migrate", "--models", str(models), "--plan", "--url", url, cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert "drop column" in plan.stdout and "ALTER TABLE customers DROP COLUMN city;" in plan.stdout
    assert "--allow-destructive" in plan.stderr

    refused = cli("migrate", "--models", str(models), "--apply", "--url", url, cwd=tmp_path)
    assert refused.returncode == 1
    assert "SchemaError" in refused.stderr and "allow_destructive=True" in refused.stderr
    assert query("SELECT city FROM customers")["city"].to_list() == ["London"]

    forced = cli("migrate", "--models", str(models), "--apply", "--allow-destructive", "--url", url, cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "city" not in query("SELECT * FROM customers").columns


def test_health(url: str, tmp_path: Path) -> None:
    done = cli("health", "--url", url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "status: healthy" in done.stdout and "latency_ms: " in done.stdout
    assert "None" not in done.stdout and "error" not in done.stdout  # a healthy database has no error


def test_health_of_an_unreachable_database_fails(tmp_path: Path) -> None:
    done = cli("health", "--url", "postgresql://postgres:s3cret@127.0.0.1:1/test", cwd=tmp_path)
    assert done.returncode == 1
    assert "status: unhealthy" in done.stdout and "127.0.0.1:1" in done.stdout
    assert "error: ConnectionError: " in done.stdout  # as docs/monitoring.md says
    assert "None" not in done.stdout and "latency_ms" not in done.stdout  # no latency without an answer
    assert "s3cret" not in done.stdout + done.stderr


def test_health_of_unreachable_hosts_in_a_libpq_host_list(tmp_path: Path) -> None:
    done = cli("health", "--url", "postgresql://postgres:s3cret@127.0.0.1:1,127.0.0.1:2/test", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "status: unhealthy" in done.stdout and "127.0.0.1:1, 127.0.0.1:2" in done.stdout
    assert "s3cret" not in done.stdout + done.stderr


def test_url_defaults_to_database_url_then_a_duckdb_file(url: str, tmp_path: Path) -> None:
    from_env = cli("health", cwd=tmp_path, env={"DATABASE_URL": url})
    assert f"database: {url.split('?')[0]}" in from_env.stdout
    default = cli("health", cwd=tmp_path)
    assert "database: duckdb:///dataflow.duckdb" in default.stdout
    assert (tmp_path / "dataflow.duckdb").exists()


def test_failures_exit_1_with_the_reason(tmp_path: Path) -> None:
    missing = cli("load", "nowhere.csv", "--model", "Flight", cwd=tmp_path)
    assert missing.returncode == 1
    reading, error = missing.stderr.splitlines()  # what it was doing, then why that failed
    assert reading == "reading nowhere.csv to infer model Flight's fields..."
    assert error.startswith("dataflow-nb load: ValidationError:") and "nowhere.csv" in error
    no_models = cli("migrate", "--models", "absent.py", "--plan", cwd=tmp_path)
    assert no_models.returncode == 1 and "absent.py: no such file" in no_models.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dance"], "invalid choice: 'dance'"),
        (["load", "x.csv"], "the following arguments are required: --model"),
        (["load", "x.csv", "--model", "X", "--on-error", "ignore"], "invalid choice: 'ignore'"),
        (["load", "x.csv", "--model", "X", "--mode", "overwrite"], "invalid choice: 'overwrite'"),
        (["load", "x.csv", "--model", "X", "--sample", "0"], "'0': give a positive number of rows, or all"),
        (["migrate", "--models", "m.py"], "one of the arguments --plan --apply is required"),
        (["migrate", "--models", "m.py", "--plan", "--apply"], "not allowed with argument"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], message: str, tmp_path: Path) -> None:
    done = cli(*argv, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr


@pytest.mark.parametrize("command", ["load", "health", "models", "migrate", "runs", "demo"])
def test_help_of_each_command(command: str, tmp_path: Path) -> None:
    done = cli(command, "--help", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.startswith(f"usage: dataflow-nb {command}") and "--url" in done.stdout


def test_help_lists_every_command(tmp_path: Path) -> None:
    done = cli("--help", cwd=tmp_path)
    assert done.returncode == 0
    listed = [line.split()[0] for line in done.stdout.splitlines() if line.startswith("    ") and line.split()]
    assert listed == ["load", "health", "models", "migrate", "runs", "copy", "demo"]


def test_help_imports_neither_arrow_nor_sqlalchemy_nor_polars(tmp_path: Path) -> None:
    """--help answers at once: the package's names load their modules only when used."""
    code = (
        "import sys, contextlib, io\n"
        "from dataflow_nb.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()): main(['--help'])\n"
        "print([m for m in ('pyarrow', 'sqlalchemy', 'polars', 'duckdb') if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert done.stdout.strip() == "[]"


def test_demo_prints_the_resulting_frame(tmp_path: Path) -> None:
    done = cli("demo", cwd=tmp_path, env={"DATAFLOW_PROGRESS": "0"})
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "dataflow_nb demo on duckdb:///:memory:" in out
    assert "4 users stored" in out
    lines = [line for line in out.splitlines() if "@example.com" in line]
    assert [line.split("┆")[1].strip() for line in lines] == ["Alice", "Dana"]
    assert done.stderr == ""


def test_demo_on_both_databases(url: str, tmp_path: Path, query: Any) -> None:
    done = cli("demo", "--url", url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert query("SELECT count(*) AS n FROM users")["n"].item() == 4


def test_runs_prints_the_history_and_one_runs_nodes(url: str, tmp_path: Path) -> None:
    from dataflow_nb import LocalRuntime, WorkflowBuilder, WorkflowError

    def boom() -> None:
        raise ValueError("boom in the node")

    with DataFlow(url) as db:
        db.model(type("Note", (), {"__annotations__": {"text": str}}))
        workflow = WorkflowBuilder()
        workflow.add_node("NoteCreateNode", "add_note", {"text": "a"})
        _, ok_id = LocalRuntime().execute(workflow.build())
        workflow.add_node(boom, "explode")
        with pytest.raises(WorkflowError) as info:
            LocalRuntime().execute(workflow.build())
    failed_id = info.value.run_id
    assert failed_id is not None

    listed = cli("runs", "--url", url, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "2 run(s) on" in listed.stdout
    assert listed.stdout.index(failed_id[:8]) < listed.stdout.index(ok_id[:8])  # newest first
    assert "failed" in listed.stdout and "ok" in listed.stdout
    assert "ValueError: boom" in listed.stdout and "None" not in listed.stdout and "null" not in listed.stdout
    table = listed.stdout.splitlines()[1:]  # the line naming the database is as long as its URL
    assert table[0].split() == ["run_id", "started_at", "status", "seconds", "nodes", "tenant_id", "error_node"]
    assert max(len(line) for line in table) <= 100, listed.stdout

    one = cli("runs", "--url", url, "--run", failed_id, cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    assert f"run {failed_id}" in one.stdout and ": failed," in one.stdout
    assert "error in node explode: ValueError: boom in the node" in one.stdout
    assert "add_note" in one.stdout and "NoteCreateNode" in one.stdout
    nodes = one.stdout[one.stdout.index("node_id") :].splitlines()
    assert len(nodes) == 3 and max(len(line) for line in nodes) <= 100, one.stdout

    missing = cli("runs", "--url", url, "--run", "nope", cwd=tmp_path)
    assert missing.returncode == 1 and "no run 'nope'" in missing.stderr


def test_runs_shows_a_run_of_another_process_while_it_executes(postgres_url: str, tmp_path: Path) -> None:
    """Another kernel on the same PostgreSQL database: a run that lasts past the progress interval
    (a second) appears as running, with its nodes as they stand, refreshed once a second while it
    executes. DuckDB lets one process at a time open a file, so there this process's views see its
    runs live in memory instead."""
    import threading
    import time

    from dataflow_nb import LocalRuntime, WorkflowBuilder

    entered, release = threading.Event(), threading.Event()

    def wait() -> None:
        entered.set()
        assert release.wait(60)

    with DataFlow(postgres_url) as db:
        db.model(type("Note", (), {"__annotations__": {"text": str}}))
        workflow = WorkflowBuilder()
        workflow.add_node("NoteCreateNode", "add_note", {"text": "a"})
        workflow.add_node(wait, "wait")
        thread = threading.Thread(target=LocalRuntime().execute, args=(workflow.build(),))
        thread.start()
        try:
            assert entered.wait(60)
            run_id = db.runs().row(0, named=True)["run_id"]
            deadline = time.monotonic() + 20
            while True:  # the row is written a second after the run started, then once a second
                nodes = cli("runs", "--url", postgres_url, "--run", run_id, cwd=tmp_path)
                if nodes.returncode == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert nodes.returncode == 0, nodes.stderr
            assert ": running," in nodes.stdout
            lines = {line.split()[0]: line for line in nodes.stdout.splitlines() if line.strip()}
            assert "ok" in lines["add_note"] and "running" in lines["wait"], nodes.stdout
            listed = cli("runs", "--url", postgres_url, cwd=tmp_path)
            assert listed.returncode == 0, listed.stderr
            assert "1 run(s) on" in listed.stdout and "running" in listed.stdout
        finally:
            release.set()
            thread.join(60)
    done = cli("runs", "--url", postgres_url, "--run", run_id, cwd=tmp_path)
    assert ": ok," in done.stdout and "wait" in done.stdout
