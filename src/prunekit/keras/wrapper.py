"""``PruneLowMagnitude``: the layer wrapper that holds masks and enforces them during ``fit``.

As in TF-MOT, the wrapper keeps one non-trainable mask per prunable weight and a
``pruning_step`` counter written by :class:`~prunekit.keras.callbacks.UpdatePruningStep`. On
every training call it recomputes the masks when the schedule says so (magnitude threshold:
the ``round(n * (1 - sparsity))`` largest |w| stay, Zhu & Gupta 2017) and zeroes the masked
weights before the wrapped layer runs, so pruned weights are zero in every forward pass.
"""

from __future__ import annotations

import keras
import torch

from prunekit.keras.schedules import ConstantSparsity, PruningSchedule

CALLBACK_MISSING = ("PruneLowMagnitude: the pruning step is not set. Add "
                    "prunekit.keras.UpdatePruningStep() to the callbacks of model.fit "
                    "(callbacks=[pk.keras.UpdatePruningStep()]).")

# layer class -> weights pruned (TF-MOT's registry: kernels and embeddings, never biases)
PRUNABLE: dict[type, tuple[str, ...]] = {
    keras.layers.Dense: ("kernel",),
    keras.layers.EinsumDense: ("kernel",),
    keras.layers.Conv1D: ("kernel",),
    keras.layers.Conv2D: ("kernel",),
    keras.layers.Conv3D: ("kernel",),
    keras.layers.Conv1DTranspose: ("kernel",),
    keras.layers.Conv2DTranspose: ("kernel",),
    keras.layers.Conv3DTranspose: ("kernel",),
    keras.layers.DepthwiseConv1D: ("depthwise_kernel",),
    keras.layers.DepthwiseConv2D: ("depthwise_kernel",),
    keras.layers.SeparableConv1D: ("pointwise_kernel",),
    keras.layers.SeparableConv2D: ("pointwise_kernel",),
    keras.layers.Embedding: ("embeddings",),
}
# layers with weights that are left dense (their weights are per channel)
NOT_PRUNED = (keras.layers.BatchNormalization, keras.layers.LayerNormalization,
              keras.layers.GroupNormalization, keras.layers.PReLU, keras.layers.Normalization)


def prunable_weights(layer) -> tuple[str, ...] | None:
    """Names of the weights pruned in ``layer``; ``()`` for layers left dense; ``None`` unknown."""
    for cls in type(layer).__mro__:
        if cls in PRUNABLE:
            return PRUNABLE[cls]
    if isinstance(layer, NOT_PRUNED) or not layer.weights:
        return ()
    return None


@keras.saving.register_keras_serializable(package="prunekit")
class PruneLowMagnitude(keras.layers.Wrapper):
    """Magnitude pruning of one layer's kernel during training (TF-MOT's wrapper).

    Args:
        layer: a Dense, Conv*, DepthwiseConv*, SeparableConv* or Embedding layer.
        pruning_schedule: a :class:`~prunekit.keras.PruningSchedule` (default
            ``ConstantSparsity(0.5, 0)``).
    """

    def __init__(self, layer, pruning_schedule: PruningSchedule | None = None, **kwargs):
        names = prunable_weights(layer) if isinstance(layer, keras.layers.Layer) else None
        if not names:
            raise ValueError(f"layer {getattr(layer, 'name', layer)!r} "
                             f"({type(layer).__name__}) cannot be pruned; supported: "
                             f"{', '.join(sorted(c.__name__ for c in PRUNABLE))}")
        if pruning_schedule is None:
            pruning_schedule = ConstantSparsity(0.5, 0)
        if isinstance(pruning_schedule, dict):
            pruning_schedule = keras.saving.deserialize_keras_object(pruning_schedule)
        if not isinstance(pruning_schedule, PruningSchedule):
            raise ValueError(f"pruning_schedule must be a PruningSchedule such as "
                             f"PolynomialDecay(...), got {type(pruning_schedule).__name__}")
        kwargs.setdefault("name", f"prune_low_magnitude_{layer.name}")
        super().__init__(layer, **kwargs)
        self.pruning_schedule = pruning_schedule
        self.weight_names = names
        self.masks: list = []

    def build(self, input_shape=None):
        super().build(input_shape)
        self.masks = [self.add_weight(name=f"{n}_mask", shape=tuple(getattr(self.layer, n).shape),
                                      initializer="ones", trainable=False)
                      for n in self.weight_names]
        self.pruning_step = self.add_weight(name="pruning_step", shape=(), dtype="int64",
                                            initializer=keras.initializers.Constant(-1),
                                            trainable=False)
        self.built = True

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def prunable(self) -> list:
        return [getattr(self.layer, n) for n in self.weight_names]

    def update_masks(self, sparsity: float) -> None:
        """Keep the ``round(n * (1 - sparsity))`` largest magnitudes of each weight (>= 1)."""
        with torch.no_grad():
            for w, m in zip(self.prunable(), self.masks, strict=False):
                a = w.value.detach().abs()
                k = max(1, int(round(a.numel() * (1.0 - sparsity))))
                thr = torch.topk(a.flatten(), k).values[-1]
                m.assign((a >= thr).to(m.value.dtype))

    def apply_masks(self) -> None:
        """Zero the masked weights (in place, outside autograd)."""
        with torch.no_grad():
            for w, m in zip(self.prunable(), self.masks, strict=False):
                w.assign(w.value * m.value.to(w.value.dtype))

    def call(self, inputs, training=None, **kwargs):
        if training:
            step = int(self.pruning_step.value)
            if step < 0:
                raise ValueError(CALLBACK_MISSING)
            should_prune, sparsity = self.pruning_schedule(step)
            if should_prune:
                self.update_masks(sparsity)
            self.apply_masks()
        if getattr(self.layer, "_call_has_training_arg", False):
            kwargs["training"] = training
        return self.layer(inputs, **kwargs)

    def get_config(self):
        return {**super().get_config(),
                "pruning_schedule": keras.saving.serialize_keras_object(self.pruning_schedule)}
