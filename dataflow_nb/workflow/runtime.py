"""LocalRuntime: run a workflow in one transaction per database, all or nothing."""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Mapping
from typing import Any

from dataflow_nb.backends.errors import loggable_error
from dataflow_nb.core.masking import mask_exception, mask_values
from dataflow_nb.exceptions import DataflowError, WorkflowError
from dataflow_nb.monitor.runs import RunLog
from dataflow_nb.nodes.base import CallableNode
from dataflow_nb.query.scope import Scope
from dataflow_nb.security.audit import audit_node
from dataflow_nb.security.guard import refuse_writes
from dataflow_nb.security.sensitive import chain_text, sensitive_columns, sensitive_values, values_read
from dataflow_nb.workflow.builder import Edge, Workflow
from dataflow_nb.workflow.context import RunContext
from dataflow_nb.workflow.results import NodeTiming, RunResults

log = logging.getLogger("dataflow_nb")


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

    Args:
        retries: how many times a run is tried again when that is safe (default 2): when
            connecting failed before anything was sent, or the database rolled the run back for a
            serialization failure or a deadlock; never once a commit was sent. Waits
            ``retry_backoff`` seconds, doubling each time, with jitter.
        retry_backoff: seconds before the first retry.
        retry_callables: also retry runs with Python callable nodes (off: they may have side
            effects outside the database that a retry would repeat).

    Examples:
        >>> from dataflow_nb import WorkflowBuilder
        >>> workflow = WorkflowBuilder()
        >>> workflow.add_node(lambda: 2, "two")
        'two'
        >>> results, run_id = LocalRuntime().execute(workflow.build())
        >>> results["two"]
        2
    """

    def __init__(self, *, retries: int = 2, retry_backoff: float = 0.05, retry_callables: bool = False):
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise DataflowError(f"LocalRuntime(retries={retries!r}): give a whole number >= 0 (0 turns retries off)")
        if isinstance(retry_backoff, bool) or not isinstance(retry_backoff, int | float) or retry_backoff < 0:
            raise DataflowError(f"LocalRuntime(retry_backoff={retry_backoff!r}): give seconds >= 0, e.g. 0.05")
        self.retries = retries
        self.retry_backoff = float(retry_backoff)
        self.retry_callables = retry_callables

    def execute(
        self,
        workflow: Workflow,
        parameters: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        tenant_id: str | None = None,
    ) -> tuple[RunResults, str]:
        """Run every node in order; on any failure roll back every write and raise WorkflowError.

        A KeyboardInterrupt (or any other BaseException) also rolls back and gives the
        connections back before it propagates unchanged.

        Args:
            workflow: from ``WorkflowBuilder.build()``.
            parameters: per-node overrides, ``{"node_id": {"param": value}}``.
            tenant_id: the tenant the run acts for.

        Returns:
            ``(results, run_id)``: results maps node id to output, plus ``execution_time``;
            ``results.retries`` says how many times the run was tried again.
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
        writers: set[int] = set()  # the DataFlows some node may write; the others are read from a replica
        for checked, spec in workflow.nodes.items():
            try:
                given = {**spec.params, **parameters.get(checked, {})}
                refuse_writes(checked, spec.node, given)
                written = spec.node.database_written(given)
                if written is not None:
                    writers.add(id(written))
            except DataflowError as exc:
                raise WorkflowError(f"{exc} (run {run_id})", node_id=checked, run_id=run_id) from exc
        started = time.perf_counter()
        retries = 0
        history = RunLog(run_id, tenant_id, len(workflow.order))  # the run's record, across its attempts
        while True:
            ctx = RunContext(
                run_id, Scope(tenant_id=tenant_id), retries=retries, log=history, writers=frozenset(writers)
            )
            history.nodes.clear()  # the history shows the last attempt's nodes
            try:
                results = self._attempt(workflow, parameters, ctx)
            except WorkflowError as exc:
                if retries >= self.retries or not self._may_retry(workflow, ctx, exc):
                    exc.retries = retries
                    ctx.record_run(time.perf_counter() - started, status="failed", nodes=len(workflow.nodes))
                    ctx.record_history_apart()  # after the rollback, in a transaction of its own
                    ctx.forget_history()
                    raise
                retries += 1
                delay = self.retry_backoff * 2 ** (retries - 1) * random.uniform(0.5, 1.5)  # noqa: S311 - jitter
                log.info("run %s: %s; retry %d of %d in %.2f s", run_id, exc.__cause__, retries, self.retries, delay)
                ctx.record_retry()
                time.sleep(delay)
                continue
            except BaseException:
                ctx.record_run(time.perf_counter() - started, status="interrupted", nodes=len(workflow.nodes))
                ctx.record_history_apart()
                ctx.forget_history()
                raise
            seconds = time.perf_counter() - started
            results["execution_time"] = seconds
            ctx.record_run(seconds, status="ok", nodes=len(workflow.nodes))
            ctx.forget_history()
            return results, run_id

    def _may_retry(self, workflow: Workflow, ctx: RunContext, error: WorkflowError) -> bool:
        """Safe to run again: nothing committed, the database says so, and no callable to repeat."""
        if ctx.commit_sent:
            return False
        if not self.retry_callables and any(isinstance(s.node, CallableNode) for s in workflow.nodes.values()):
            return False
        cause: BaseException | None = error.__cause__
        while cause is not None:
            if isinstance(cause, DataflowError) and cause.retryable:
                return True
            cause = cause.__cause__
        return False

    def _attempt(self, workflow: Workflow, parameters: Mapping[str, Mapping[str, Any]], ctx: RunContext) -> RunResults:
        """One try of the run: every node, then the commit; released whatever happens."""
        run_id = ctx.run_id
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
                ctx.finish_node("ok")
                timings.append(NodeTiming(node_id, spec.node_type, time.perf_counter() - node_started, "ok"))
            node_id = None
            if ctx.log is not None:  # an ok run's record commits with it; "retried": it needed more than one try
                ctx.log.finish("retried" if ctx.retries else "ok")
            ctx.commit()
        except BaseException as exc:
            # Sensitive values the run read, repeated by the error (a row in a user function's exception).
            read = ((outputs[n], columns) for n, columns in sensitive.items() if columns)
            ctx.secrets.update(values_read(chain_text(exc), read))
            if ctx.log is not None:
                status = "failed" if isinstance(exc, Exception) else "interrupted"
                error = mask_values(loggable_error(exc), ctx.secrets)
                ctx.finish_node(status, error=error)
                ctx.log.finish(status, error_node=node_id, error=error)
            committed, rolled_back = tuple(ctx.committed), ctx.rolled_back
            ctx.release()  # first: locks and connections go back even for a KeyboardInterrupt
            if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: unchanged, after the rollback
                where = f"node {node_id!r}" if node_id else "the commit"
                exc.add_note(
                    f"dataflow_nb: run {run_id} was interrupted in {where}; what it had not committed was rolled back"
                )
                raise
            mask_exception(exc, ctx.secrets)  # a traceback shows the chain: mask it all
            where = f"node {node_id!r} ({workflow.nodes[node_id].node_type})" if node_id else "the commit"
            if committed:
                outcome = (
                    f"Databases commit one after another, in the order the run first used them, with no atomicity "
                    f"across them: {list(committed)} committed, {list(rolled_back)} rolled back (run {run_id})."
                )
            else:
                outcome = f"Every write of run {run_id} was rolled back."
            raise WorkflowError(
                f"{where} failed: {exc}. {outcome}",
                node_id=node_id,
                run_id=run_id,
                committed=committed,
                rolled_back=rolled_back,
                retries=ctx.retries,
            ) from exc
        ctx.release()
        return RunResults(
            run_id, outputs, timings, time.perf_counter() - started, sensitive=sensitive, retries=ctx.retries
        )
