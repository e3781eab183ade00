"""Workflow nodes: the base class, generated CRUD nodes and Python callables."""

from __future__ import annotations

from dataflow_nb.nodes.base import CallableNode, Node

__all__ = ["CallableNode", "Node"]
