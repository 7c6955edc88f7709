"""Pruning algorithms composed from the parts (slimming, progressive, ...)."""
