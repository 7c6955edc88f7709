"""Keras 3 on the torch backend, or a clear error saying how to get it."""

from __future__ import annotations

import os

_INSTALL = "install with: pip install 'prunekit[keras]'"
_SWITCH = ("Switch by setting the environment variable before keras is first imported: "
           "`export KERAS_BACKEND=torch` in the shell, or `os.environ['KERAS_BACKEND'] = 'torch'` "
           "at the top of the script (or \"backend\": \"torch\" in ~/.keras/keras.json)")


class KerasBackendError(RuntimeError):
    """Keras is not Keras 3 on the torch backend."""


def require_torch_keras():
    """Import ``keras`` and check it is Keras 3 running on torch; return the module."""
    wanted = os.environ.get("KERAS_BACKEND")
    try:
        import keras
    except ImportError as exc:
        if wanted and wanted != "torch":
            raise KerasBackendError(f"keras could not load its {wanted!r} backend ({exc}); "
                                    f"prunekit.keras needs the torch backend: {_SWITCH}") from None
        raise ImportError(f"prunekit.keras needs Keras 3; {_INSTALL}") from None
    major = int(str(getattr(keras, "__version__", "0")).split(".")[0] or 0)
    if major < 3:
        raise KerasBackendError(f"prunekit.keras needs Keras 3 (found keras {keras.__version__}); "
                                f"{_INSTALL}")
    backend = keras.backend.backend()
    if backend != "torch":
        raise KerasBackendError(
            f"prunekit.keras needs Keras' torch backend, but the active backend is {backend!r} "
            f"(KERAS_BACKEND={wanted or '<unset>'}). {_SWITCH}")
    return keras
