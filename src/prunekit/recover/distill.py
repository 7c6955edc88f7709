"""Knowledge distillation from the dense teacher into the pruned student.

Logits: Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", 2015 —
``T^2 * KL(softmax(z_t / T) || softmax(z_s / T))`` (batch mean), mixed with the task loss:
``(1 - alpha) * task + alpha * soft``. Hidden states: Romero et al., "FitNets", ICLR 2015 —
MSE between a learnable projection of the student's feature and the teacher's.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.recover.recipe import Distill
from prunekit.call import call_model


def logits_of(output: Any) -> Tensor:
    """The logits tensor of a model output (tensor, HF ``ModelOutput`` or ``(logits, ...)``)."""
    if isinstance(output, Tensor):
        return output
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    raise ValueError(f"cannot find logits in model output of type {type(output).__name__}")


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """``T^2 * KL(p_t || p_s)`` with ``p = softmax(z / T)`` over the last dim, averaged over rows."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} differ in shape")
    c = student_logits.shape[-1]
    log_ps = F.log_softmax(student_logits.float().reshape(-1, c) / temperature, dim=-1)
    log_pt = F.log_softmax(teacher_logits.detach().float().reshape(-1, c) / temperature, dim=-1)
    kl = F.kl_div(log_ps, log_pt, reduction="batchmean", log_target=True)
    return kl * temperature**2


def distill_loss(student_logits: Tensor, teacher_logits: Tensor, task_loss: Tensor,
                 temperature: float, alpha: float) -> Tensor:
    """``(1 - alpha) * task_loss + alpha * kd_loss(student, teacher, T)``."""
    return (1.0 - alpha) * task_loss + alpha * kd_loss(student_logits, teacher_logits, temperature)


def _projection(s: Tensor, t: Tensor, conv_like: bool) -> nn.Module:
    if s.dim() == 4:
        return nn.Conv2d(s.shape[1], t.shape[1], 1, bias=False)
    if s.dim() == 3 and conv_like:
        return nn.Conv1d(s.shape[1], t.shape[1], 1, bias=False)
    return nn.Linear(s.shape[-1], t.shape[-1], bias=False)


_CONV_LIKE = (nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm)


class Distiller(nn.Module):
    """Teacher forward + the distillation loss; owns the learnable hidden projections.

    Args:
        teacher: the dense model (kept frozen, in eval mode).
        student: the model being pruned (its module names are looked up once, at creation).
        cfg: :class:`Distill`.
    """

    def __init__(self, teacher: nn.Module, student: nn.Module, cfg: Distill) -> None:
        super().__init__()
        self.cfg = cfg
        self.teacher = [teacher.eval().requires_grad_(False)]  # list: not a registered submodule
        self.proj = nn.ModuleList()
        self._feats: dict[str, Tensor] = {}
        self._handles = []
        s_mods, t_mods = dict(student.named_modules()), dict(teacher.named_modules())
        self._conv_like = []
        for i, (s_name, t_name) in enumerate(cfg.hidden):
            for name, mods, who in ((s_name, s_mods, "student"), (t_name, t_mods, "teacher")):
                if name not in mods:
                    raise ValueError(f"distill.hidden[{i}]: no {who} module named {name!r}")
            self._handles.append(s_mods[s_name].register_forward_hook(self._keep(f"s{i}")))
            self._handles.append(t_mods[t_name].register_forward_hook(self._keep(f"t{i}")))
            self._conv_like.append(isinstance(s_mods[s_name], _CONV_LIKE))
            self.proj.append(nn.Identity())  # real projection created on the first batch

    def _keep(self, key: str):
        def hook(module: nn.Module, args: Any, out: Any) -> None:
            self._feats[key] = logits_of(out)
        return hook

    @torch.no_grad()
    def teacher_forward(self, inputs: Any) -> Tensor:
        return logits_of(call_model(self.teacher[0], inputs))

    def _hidden_term(self) -> Tensor:
        total: Tensor | float = 0.0
        for i in range(len(self.cfg.hidden)):
            s, t = self._feats.pop(f"s{i}", None), self._feats.pop(f"t{i}", None)
            if s is None or t is None:
                raise ValueError(f"distill.hidden[{i}]: module did not run in the forward pass")
            p = self.proj[i]
            if isinstance(p, nn.Identity) or _in_size(p) != _feat_size(s, p):
                p = _projection(s, t, self._conv_like[i]).to(s.device)
                self.proj[i] = p  # (re)created: first batch, or student resized by pruning
            total = total + F.mse_loss(p(s.float()), t.detach().float())
        return total

    def loss(self, student_out: Any, teacher_logits: Tensor, task_loss: Tensor) -> Tensor:
        """Mixed loss for one batch (call after the student and teacher forwards)."""
        loss = distill_loss(logits_of(student_out), teacher_logits, task_loss,
                            self.cfg.temperature, self.cfg.alpha)
        if self.cfg.hidden:
            loss = loss + self.cfg.hidden_weight * self._hidden_term()
        return loss

    def prepare(self, inputs: Any, student: nn.Module) -> None:
        """Run one batch through both models so hidden projections exist before the optimizer."""

        if not self.cfg.hidden:
            return
        with torch.no_grad():
            self.teacher_forward(inputs)
            was = student.training
            call_model(student.eval(), inputs)
            student.train(was)
            self._hidden_term()

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


def _in_size(p: nn.Module) -> int:
    return p.in_features if isinstance(p, nn.Linear) else p.in_channels


def _feat_size(s: Tensor, p: nn.Module) -> int:
    return s.shape[-1] if isinstance(p, nn.Linear) else s.shape[1]


__all__ = ["Distiller", "distill_loss", "kd_loss", "logits_of"]
