"""Layer handlers keyed by module type (registered on import)."""

# importing a handler module registers it; `examples` keeps a tiny model beside each one
from prunekit.handlers import (  # noqa: F401
    attention,
    attention_hf,
    conv,
    embedding,
    linear,
    norm,
    rnn,
    tv_attention,
    tv_swin,
)
from prunekit.handlers import examples  # noqa: F401,E402  (after every handler module)
from prunekit.handlers import base
from prunekit.handlers.base import (
    HANDLERS,
    Handler,
    HandlerExample,
    InternalGroup,
    PruneError,
    get_handler,
    register_handler,
    slice_param,
)

__all__ = [
    "HANDLERS", "Handler", "HandlerExample", "InternalGroup", "PruneError", "get_handler",
    "register_handler", "slice_param",
]


def __getattr__(name: str):
    if name == "HandlerBase":  # deprecated: warns in prunekit.handlers.base
        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
