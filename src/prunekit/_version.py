"""The package version (one home; the facade and the CLI read it)."""

__version__ = "0.1.0"
