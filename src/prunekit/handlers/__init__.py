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

__all__ = [
    "HANDLERS", "Handler", "HandlerBase", "InternalGroup", "PruneError", "get_handler",
    "register_handler", "slice_param",
]
