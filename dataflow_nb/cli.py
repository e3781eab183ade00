"""The ``dataflow-nb`` command: ``demo`` runs a small workflow on an embedded DuckDB."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def demo(url: str | None) -> int:
    """Define a model, run one workflow (creates, an update and a filtered list), print the frames."""
    from datetime import UTC, datetime

    from dataflow_nb import DataFlow, LocalRuntime, WorkflowBuilder

    with DataFlow(url) as db:

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
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dataflow-nb", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run_demo = commands.add_parser("demo", help="run a small workflow and print the resulting frame")
    run_demo.add_argument("--url", default=None, help="database URL (default: DATABASE_URL or an in-memory DuckDB)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(args.url)
    return 2  # pragma: no cover - argparse rejects unknown commands first


if __name__ == "__main__":
    sys.exit(main())
