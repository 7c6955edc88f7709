"""The version of prunekit (one home, read by the package, the CLI and the build)."""

__version__ = "0.2.0"
