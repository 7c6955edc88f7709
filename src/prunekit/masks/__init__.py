"""Weight masks: pure selection, layouts, parametrization apply/finalize, torch.prune interop."""

from prunekit.masks.apply import (
    WeightMask,
    apply_masks,
    export_torch_prune,
    finalize,
    get_mask,
    import_torch_prune,
    masked_modules,
    set_mask,
)
from prunekit.masks.layout import WeightLayout, layout_for, prunable_types, register_layout
from prunekit.masks.select import global_masks, is_nm_valid, nm_mask, parse_pattern, unstructured_mask

__all__ = [
    "WeightMask", "apply_masks", "export_torch_prune", "finalize", "get_mask", "import_torch_prune",
    "masked_modules", "set_mask", "WeightLayout", "layout_for", "prunable_types", "register_layout",
    "global_masks", "is_nm_valid", "nm_mask", "parse_pattern", "unstructured_mask",
]
