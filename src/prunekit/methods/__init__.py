"""Pruning algorithms composed from prunekit's parts (one method per file)."""
