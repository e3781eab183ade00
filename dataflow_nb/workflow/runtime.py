"""LocalRuntime: run a workflow in one transaction per database, all or nothing."""

from __future__ import annotations

import logging
import os
import random
import time
import uuid
from collections.abc import Mapping
from typing import Any

from dataflow_nb.backends.errors import loggable_error
from dataflow_nb.exceptions import DataflowError, WorkflowError
from dataflow_nb.monitor.run_log import RunLog
from dataflow_nb.nodes.base import CallableNode
from dataflow_nb.observers.history import RunRecorder
from dataflow_nb.query.scope import Scope
from dataflow_nb.security.guard import refuse_writes
from dataflow_nb.security.masking import Secrets
from dataflow_nb.workflow.builder import Edge, Workflow
from dataflow_nb.workflow.context import RunContext
from dataflow_nb.workflow.results import NodeTiming, RunResults

log = logging.getLogger("dataflow_nb")

# Run ids must be unique, not secret: they come from a generator of their own (seeded from
# os.urandom, and again in a forked child; a notebook's random.seed does not touch it) rather than
# uuid4, whose os.urandom lets go of the GIL: with threads running runs, each such release is a
# wait to take it back (~4% of 8-thread throughput, issue 24).
_run_ids = random.Random()  # noqa: S311 - unique ids, not secrets
os.register_at_fork(after_in_child=_run_ids.seed)


def new_run_id() -> str:
    """A random (version 4) UUID as 32 hex digits."""
    return uuid.UUID(int=_run_ids.getrandbits(128), version=4).hex


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
        run_id = new_run_id()
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
        recorder = RunRecorder(RunLog(run_id, tenant_id, len(workflow.order)))  # the run's record, across its attempts
        nodes = len(workflow.nodes)
        while True:
            secrets = Secrets()
            ctx = RunContext(
                run_id,
                Scope(tenant_id=tenant_id),
                observers=(recorder, secrets),
                writers=frozenset(writers),
            )
            try:
                results = self._attempt(workflow, parameters, ctx, secrets, retries)
            except WorkflowError as exc:
                if retries >= self.retries or not self._may_retry(workflow, ctx, exc):
                    exc.retries = retries
                    ctx.end_run("failed", seconds=time.perf_counter() - started, nodes=nodes, retries=retries)
                    raise
                retries += 1
                delay = self.retry_backoff * 2 ** (retries - 1) * random.uniform(0.5, 1.5)  # noqa: S311 - jitter
                log.info("run %s: %s; retry %d of %d in %.2f s", run_id, exc.__cause__, retries, self.retries, delay)
                ctx.retrying()
                time.sleep(delay)
                continue
            except BaseException:
                ctx.end_run("interrupted", seconds=time.perf_counter() - started, nodes=nodes, retries=retries)
                raise
            seconds = time.perf_counter() - started
            results["execution_time"] = seconds
            ctx.end_run("ok", seconds=seconds, nodes=nodes, retries=retries)
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

    def _attempt(
        self,
        workflow: Workflow,
        parameters: Mapping[str, Mapping[str, Any]],
        ctx: RunContext,
        secrets: Secrets,
        retries: int,
    ) -> RunResults:
        """One try of the run: every node, then the commit; released whatever happens."""
        run_id = ctx.run_id
        outputs: dict[str, Any] = {}
        timings: list[NodeTiming] = []
        started = time.perf_counter()
        node_id = None
        params: dict[str, Any] = {}
        try:
            for node_id in workflow.order:
                spec = workflow.nodes[node_id]
                params = {**spec.params, **parameters.get(node_id, {})}
                for connection in workflow.inputs_of(node_id):
                    params[connection.input] = pick_output(outputs[connection.source], connection)
                node_started = time.perf_counter()
                ctx.start_node(node_id, spec.node, params)
                outputs[node_id] = spec.node.run(ctx, params)
                ctx.end_node(spec.node, params, outputs[node_id])
                timings.append(NodeTiming(node_id, spec.node_type, time.perf_counter() - node_started, "ok"))
            node_id = None
            ctx.outcome("retried" if retries else "ok")  # an ok run's record commits with it
            ctx.commit()
        except BaseException as exc:
            secrets.note_error(exc)
            status = "failed" if isinstance(exc, Exception) else "interrupted"
            error = ctx.mask(loggable_error(exc))
            if ctx.node_id is not None and node_id is not None:
                ctx.end_node(None, params, None, status=status, error=error)
            ctx.outcome(status, node_id=node_id, error=error)
            committed, rolled_back = ctx.committed, ctx.rolled_back
            ctx.release()  # first: locks and connections go back even for a KeyboardInterrupt
            if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: unchanged, after the rollback
                where = f"node {node_id!r}" if node_id else "the commit"
                exc.add_note(
                    f"dataflow_nb: run {run_id} was interrupted in {where}; what it had not committed was rolled back"
                )
                raise
            secrets.mask_exception(exc)  # a traceback shows the chain: mask it all
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
                retries=retries,
            ) from exc
        ctx.release()
        return RunResults(
            run_id, outputs, timings, time.perf_counter() - started, sensitive=secrets.columns, retries=retries
        )
