"""Layer handlers keyed by module type (registered on import)."""

# importing a handler module registers it (conv/linear/norm: S1; the others: S2)
from prunekit.handlers import (  # noqa: F401
    attention,
    attention_hf,
    conv,
    embedding,
    hf_conv1d,
    linear,
    norm,
    rnn,
    tv_attention,
    tv_swin,
)
from prunekit.handlers.base import (
    HANDLERS,
    Handler,
    HandlerBase,
    InternalGroup,
    PruneError,
    get_handler,
    register_handler,
    slice_param,
)

__all__ = [
    "HANDLERS", "Handler", "HandlerBase", "InternalGroup", "PruneError", "get_handler",
    "register_handler", "slice_param",
]
