"""``prune_low_magnitude``, ``UpdatePruningStep``, ``strip_pruning``: TF-MOT's weight-pruning API
for Keras 3 models on the torch backend (switch by changing the import)."""

from __future__ import annotations

from typing import Any

import keras

from prunekit.keras.schedules import ConstantSparsity, PolynomialDecay, PruningSchedule
from prunekit.keras.wrapper import PRUNABLE, PruneLowMagnitude, prunable_weights


def _check_model(model: Any, what: str) -> None:
    if not isinstance(model, keras.Model):
        raise ValueError(f"{what} must be a keras.Model, got {type(model).__name__}")
    if not any(c.__name__ in ("Sequential", "Functional") for c in type(model).__mro__):
        raise ValueError(f"{what}: subclassed models are not supported (as in TF-MOT); "
                         f"build a Sequential or functional model, or wrap its layers with "
                         f"prune_low_magnitude(layer) inside the subclass")


def _copy_layer(layer):
    """A new layer with the same config (weights are copied once the model is built)."""
    return layer.__class__.from_config(layer.get_config())


def _copy_weights(src: keras.Model, dst: keras.Model, name_map: dict[str, str]) -> None:
    for old in src.layers:
        if not old.weights:
            continue
        new = dst.get_layer(name_map.get(old.name, old.name))
        target = new.layer if isinstance(new, PruneLowMagnitude) and not isinstance(
            old, PruneLowMagnitude) else new
        target.set_weights(old.get_weights())


def _schedule(pruning_schedule, sparsity) -> PruningSchedule:
    if pruning_schedule is not None and sparsity is not None:
        raise ValueError("give pruning_schedule= or sparsity=, not both")
    sched = pruning_schedule if pruning_schedule is not None else sparsity
    if sched is None:
        return ConstantSparsity(0.5, 0)
    if isinstance(sched, (int, float)) and not isinstance(sched, bool):
        return ConstantSparsity(sched, 0)
    if not isinstance(sched, PruningSchedule):
        raise ValueError(f"pruning_schedule must be a PruningSchedule (ConstantSparsity, "
                         f"PolynomialDecay) or a sparsity, got {type(sched).__name__}")
    return sched


def prune_low_magnitude(to_prune: Any, pruning_schedule: PruningSchedule | None = None,
                        block_size: tuple[int, int] = (1, 1), block_pooling_type: str = "AVG",
                        pruning_policy: Any = None, sparsity_m_by_n: Any = None, *,
                        sparsity: PruningSchedule | float | None = None) -> Any:
    """Wrap the prunable layers for magnitude pruning during training (TF-MOT semantics).

    Zhu & Gupta, "To prune, or not to prune" (2017): during ``fit`` with
    :class:`UpdatePruningStep`, every ``frequency`` steps of the schedule the smallest-magnitude
    weights of each Dense/Conv/Embedding kernel are masked to reach the scheduled sparsity, and
    masked weights stay zero in every forward pass.

    Args:
        to_prune: a Sequential or functional ``keras.Model``, a layer, or a list of layers.
        pruning_schedule: ``ConstantSparsity``/``PolynomialDecay`` (default
            ``ConstantSparsity(0.5, 0)``); ``sparsity=`` is accepted as an alias.
        block_size / block_pooling_type / pruning_policy / sparsity_m_by_n: TF-MOT options;
            only their defaults are supported.

    Returns:
        A new model (weights copied; the given model is not modified) whose prunable layers
        are :class:`PruneLowMagnitude` wrappers; or the wrapped layer(s).

    Raises:
        ValueError: a subclassed model, an unknown layer with weights (named), bad options.
    """
    sched = _schedule(pruning_schedule, sparsity)
    if tuple(block_size) != (1, 1) or pruning_policy is not None or sparsity_m_by_n is not None:
        raise ValueError("block_size, pruning_policy and sparsity_m_by_n are not supported "
                         "(unstructured masks only)")
    if block_pooling_type not in ("AVG", "MAX"):
        raise ValueError(f"block_pooling_type must be 'AVG' or 'MAX', got {block_pooling_type!r}")
    if isinstance(to_prune, (list, tuple)):
        return [prune_low_magnitude(layer, sched) for layer in to_prune]
    if isinstance(to_prune, keras.layers.Layer) and not isinstance(to_prune, keras.Model):
        return to_prune if isinstance(to_prune, PruneLowMagnitude) else PruneLowMagnitude(
            to_prune, sched)
    _check_model(to_prune, "to_prune")
    for layer in to_prune.layers:
        if not isinstance(layer, PruneLowMagnitude) and prunable_weights(layer) is None:
            raise ValueError(
                f"layer {layer.name!r} ({type(layer).__name__}) has weights prunekit does not "
                f"know how to prune; supported: {', '.join(sorted(c.__name__ for c in PRUNABLE))}. "
                f"Wrap only the supported layers with prune_low_magnitude(layer)")
    name_map: dict[str, str] = {}

    def clone(layer):
        if isinstance(layer, PruneLowMagnitude) or not prunable_weights(layer):
            return _copy_layer(layer)
        wrapped = PruneLowMagnitude(_copy_layer(layer), sched)
        name_map[layer.name] = wrapped.name
        return wrapped

    new = keras.models.clone_model(to_prune, clone_function=clone)
    _copy_weights(to_prune, new, name_map)
    return new


class UpdatePruningStep(keras.callbacks.Callback):
    """Advance every wrapper's ``pruning_step`` before each batch; re-mask after each epoch.

    The step is the optimizer's iteration count, as in TF-MOT: the first batch of a freshly
    compiled model is step 0, and a later ``fit`` continues the count.
    """

    def __init__(self) -> None:
        super().__init__()
        self.prunable_layers: list[PruneLowMagnitude] = []
        self.step = -1

    def on_train_begin(self, logs=None):
        # TF-MOT counts steps with the optimizer: a second fit() continues where the first
        # stopped, a freshly compiled optimizer starts the schedule again from step 0
        self.prunable_layers = collect_prunable_layers(self.model)
        optimizer = getattr(self.model, "optimizer", None)
        iterations = getattr(optimizer, "iterations", None)
        self.step = 0 if iterations is None else int(keras.ops.convert_to_numpy(iterations))

    def on_train_batch_begin(self, batch, logs=None):
        for layer in self.prunable_layers:
            if layer.built:
                layer.pruning_step.assign(self.step)
        self.step += 1

    def on_epoch_end(self, epoch, logs=None):
        for layer in self.prunable_layers:
            if layer.built:
                layer.apply_masks()


def collect_prunable_layers(model) -> list[PruneLowMagnitude]:
    """Every :class:`PruneLowMagnitude` in ``model``, nested models included."""
    out = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, PruneLowMagnitude):
            out.append(layer)
        elif isinstance(layer, keras.Model):
            out += collect_prunable_layers(layer)
    return out


def prune_scope():
    """TF-MOT's deserialization scope: ``with prune_scope(): keras.models.load_model(p)``.

    prunekit registers its wrapper and schedules with Keras, so loading works without it; it
    is kept so TF-MOT code runs unchanged.
    """
    return keras.saving.custom_object_scope({
        "PruneLowMagnitude": PruneLowMagnitude, "ConstantSparsity": ConstantSparsity,
        "PolynomialDecay": PolynomialDecay})


def strip_pruning(model: keras.Model) -> keras.Model:
    """A new model with every :class:`PruneLowMagnitude` replaced by its layer, masks baked in.

    The result contains only stock Keras layers: ``model.save("m.keras")`` reloads with plain
    ``keras.models.load_model``. The given model is not modified.
    """
    _check_model(model, "model")
    name_map: dict[str, str] = {}

    def clone(layer):
        if isinstance(layer, PruneLowMagnitude):
            name_map[layer.name] = layer.layer.name
            return _copy_layer(layer.layer)
        return _copy_layer(layer)

    new = keras.models.clone_model(model, clone_function=clone)
    for old in model.layers:
        if not old.weights:
            continue
        target = new.get_layer(name_map.get(old.name, old.name))
        if isinstance(old, PruneLowMagnitude):
            masks = {id(w): m for w, m in zip(old.prunable(), old.masks, strict=False)}
            weights = [w.numpy() * masks[id(w)].numpy() if id(w) in masks else w.numpy()
                       for w in old.layer.weights]
            target.set_weights(weights)
        else:
            target.set_weights(old.get_weights())
    return new
