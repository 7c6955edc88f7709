"""Structural pruning: plan (trace, score, select), apply (transactional), verify."""

from prunekit.structural.plan import LayerEdit, ParamEdit, StructuredConfig, plan_structured
from prunekit.structural.result import StructuredPlan
from prunekit.structural.verify import VerifyResult, verify

__all__ = ["LayerEdit", "ParamEdit", "StructuredConfig", "StructuredPlan", "VerifyResult",
           "plan_structured", "verify"]
