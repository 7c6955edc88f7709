"""Structural pruning: plan (trace, score, select), apply (transactional), verify."""

from prunekit.structural.plan import plan_structured
from prunekit.structural.result import LayerEdit, ParamEdit, StructuredConfig, StructuredPlan
from prunekit.structural.verify import VerifyResult, verify

__all__ = ["LayerEdit", "ParamEdit", "StructuredConfig", "StructuredPlan", "VerifyResult",
           "plan_structured", "verify"]
