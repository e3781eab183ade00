"""Workflows: build a graph of nodes, run it in one transaction per database."""

from __future__ import annotations

from dataflow_nb.workflow.builder import Workflow, WorkflowBuilder
from dataflow_nb.workflow.results import RunResults
from dataflow_nb.workflow.runtime import LocalRuntime

__all__ = ["LocalRuntime", "RunResults", "Workflow", "WorkflowBuilder"]
