"""Tracing, channel labels, coupling and the DependencyGraph."""

from prunekit.graph.dependency import DependencyGraph, Fixed, Group
from prunekit.graph.trace import LeafRecord, TraceResult, trace

__all__ = ["DependencyGraph", "Fixed", "Group", "LeafRecord", "TraceResult", "trace"]
