"""The one MAC counter: :class:`torch.utils.flop_counter.FlopCounterMode` (FLOPs / 2).

Handler ``cost()`` formulas are the fast predictor used while planning; they are tested against
this counter (``tests/contracts``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from prunekit.call import call_model


def count_macs(model: nn.Module, example_inputs: Any) -> int:
    """Multiply-accumulates of one eval-mode forward on ``example_inputs`` (no gradients; the
    training mode is restored)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            call_model(model, example_inputs)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops()) // 2
