"""LocalRuntime: run a workflow in one transaction per database, all or nothing."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from dataflow_nb.exceptions import DataflowError, WorkflowError
from dataflow_nb.query.scope import Scope
from dataflow_nb.security.audit import audit_node
from dataflow_nb.security.guard import refuse_writes
from dataflow_nb.security.sensitive import mask_exception, sensitive_columns, sensitive_values
from dataflow_nb.workflow.builder import Edge, Workflow
from dataflow_nb.workflow.context import RunContext
from dataflow_nb.workflow.results import NodeTiming, RunResults


def pick_output(value: Any, connection: Edge) -> Any:
    """The value a connection carries: a key of a dict, a column of a frame, or the whole output.

    A one-row frame gives the column's single value, so ``create.id -> read.id`` just works.
    """
    output = connection.output
    if isinstance(value, Mapping):
        if output in value:
            return value[output]
    elif hasattr(value, "columns") and output in list(value.columns):
        column = value[output]
        values = column.to_list() if hasattr(column, "to_list") else column.tolist()
        return values[0] if len(values) == 1 else values
    elif hasattr(value, output):
        return getattr(value, output)
    if output in ("data", "result", "frame", "output"):
        return value
    raise WorkflowError(
        f"connection {connection.source}.{output} -> {connection.target}.{connection.input}: "
        f"node {connection.source!r} has no output {output!r}",
        node_id=connection.target,
    )


class LocalRuntime:
    """Runs workflows in this process; each run is one transaction per database it touches.

    Examples:
        >>> from dataflow_nb import WorkflowBuilder
        >>> workflow = WorkflowBuilder()
        >>> workflow.add_node(lambda: 2, "two")
        'two'
        >>> results, run_id = LocalRuntime().execute(workflow.build())
        >>> results["two"]
        2
    """

    def execute(
        self,
        workflow: Workflow,
        parameters: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        tenant_id: str | None = None,
    ) -> tuple[RunResults, str]:
        """Run every node in order; on any failure roll back every write and raise WorkflowError.

        Args:
            workflow: from ``WorkflowBuilder.build()``.
            parameters: per-node overrides, ``{"node_id": {"param": value}}``.
            tenant_id: the tenant the run acts for.

        Returns:
            ``(results, run_id)``: results maps node id to output, plus ``execution_time``.
        """
        if not isinstance(workflow, Workflow):
            raise DataflowError("execute() takes a built workflow: pass workflow.build(), not the builder")
        parameters = dict(parameters or {})
        unknown = [n for n in parameters if n not in workflow.nodes]
        if unknown:
            raise WorkflowError(
                f"parameters name unknown node(s) {unknown}; nodes are {list(workflow.nodes)}", node_id=unknown[0]
            )
        run_id = uuid.uuid4().hex
        for checked, spec in workflow.nodes.items():
            try:
                refuse_writes(checked, spec.node, {**spec.params, **parameters.get(checked, {})})
            except DataflowError as exc:
                raise WorkflowError(f"{exc} (run {run_id})", node_id=checked, run_id=run_id) from exc
        ctx = RunContext(run_id, Scope(tenant_id=tenant_id))
        outputs: dict[str, Any] = {}
        sensitive: dict[str, set[str]] = {}
        timings: list[NodeTiming] = []
        started = time.perf_counter()
        node_id = None
        try:
            for node_id in workflow.order:
                spec = workflow.nodes[node_id]
                params = {**spec.params, **parameters.get(node_id, {})}
                for connection in workflow.inputs_of(node_id):
                    params[connection.input] = pick_output(outputs[connection.source], connection)
                node_started = time.perf_counter()
                ctx.start_node(node_id, spec.node, params)
                model = getattr(spec.node, "model", None)
                if model is not None:
                    ctx.secrets.update(sensitive_values(model, params))
                outputs[node_id] = spec.node.run(ctx, params)
                sensitive[node_id] = sensitive_columns(spec.node, params)
                audit_node(ctx, spec.node, params, outputs[node_id])
                timings.append(NodeTiming(node_id, spec.node_type, time.perf_counter() - node_started, "ok"))
            node_id = None
            ctx.commit()
        except Exception as exc:
            mask_exception(exc, ctx.secrets)  # a traceback shows the chain: mask it all
            ctx.record_run(time.perf_counter() - started, status="failed", nodes=len(timings))
            ctx.rollback()
            ctx.close()
            where = f"node {node_id!r} ({workflow.nodes[node_id].node_type})" if node_id else "the commit"
            raise WorkflowError(
                f"{where} failed: {exc}. Every write of run {run_id} was rolled back.",
                node_id=node_id,
                run_id=run_id,
            ) from exc
        seconds = time.perf_counter() - started
        ctx.record_run(seconds, status="ok", nodes=len(timings))
        ctx.close()
        return RunResults(run_id, outputs, timings, seconds, sensitive=sensitive), run_id
