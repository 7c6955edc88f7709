"""Measuring what pruning buys: timing, runtimes, memory, energy, MACs, sparse backends."""

from prunekit.bench.analyze import AnalyzeResult, analyze
from prunekit.bench.bn_fold import FoldReport, fold_batchnorm
from prunekit.bench.config import BenchConfig
from prunekit.bench.deploy import DeployConfig, DeployResult, deploy, load_artifact
from prunekit.bench.harness import BenchCell, BenchResult, bench, compare
from prunekit.bench.latency_target import LatencySearchResult, prune_for_latency, search_latency
from prunekit.bench.runtimes import RUNTIMES, Runtime, RuntimeUnavailable, get_runtime
from prunekit.bench.sparse import LayerDecision, choose_sparse_backends
from prunekit.bench.reliability import SpeedupEstimate, paired_speedup
from prunekit.bench.timer import LatencyStats, measure_latency

__all__ = [
    "AnalyzeResult", "analyze", "LatencySearchResult", "prune_for_latency", "search_latency",
    "FoldReport", "fold_batchnorm", "BenchConfig", "BenchCell", "BenchResult", "bench",
    "compare", "RUNTIMES", "Runtime", "RuntimeUnavailable", "get_runtime", "LatencyStats",
    "measure_latency", "LayerDecision", "choose_sparse_backends", "DeployConfig",
    "DeployResult", "deploy", "load_artifact", "SpeedupEstimate", "paired_speedup",
]
