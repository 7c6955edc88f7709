"""Layer handlers keyed by module type (registered on import)."""

from prunekit.handlers import conv, linear, norm  # noqa: F401  (registration)

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

# S2 handlers (import registers them)
from prunekit.handlers import (  # noqa: E402,F401
    attention,
    attention_hf,
    embedding,
    hf_conv1d,
    rnn,
    tv_attention,
)

__all__ = [
    "HANDLERS", "Handler", "HandlerBase", "InternalGroup", "PruneError", "get_handler",
    "register_handler", "slice_param",
]
