"""Name -> factory registry for embedders and PAD models (one declaration per model)."""

from __future__ import annotations

from typing import Callable

from harness.models.base import Embedder, PADModel

EMBEDDERS: dict[str, Callable[..., Embedder]] = {}
PAD_MODELS: dict[str, Callable[..., PADModel]] = {}


class ModelOptionError(ValueError, TypeError):
    """A model was given an option it does not take (a misspelt config key, usually)."""


def check_options(kind: str, name: str, kw: dict) -> None:
    """Refuse options a factory does not take, naming the config keys (``embedder.*`` / ``pad.*``)."""
    if kw:
        raise ModelOptionError(f"{kind} {name}: unknown option(s) {sorted(kw)} (config keys {kind}.<option>)")


def register_embedder(name: str):
    def deco(factory):
        EMBEDDERS[name] = factory
        return factory
    return deco


def register_pad(name: str):
    def deco(factory):
        PAD_MODELS[name] = factory
        return factory
    return deco


def _load_builtin() -> None:
    # importing the modules registers their factories
    import harness.models.dlib_resnet  # noqa: F401
    import harness.models.minifasnet  # noqa: F401
    import harness.models.facenet  # noqa: F401
    import harness.models.onnx_models  # noqa: F401
    import harness.models.tflite_models  # noqa: F401


def build_embedder(name: str, **kwargs) -> Embedder:
    _load_builtin()
    if name not in EMBEDDERS:
        raise KeyError(f"unknown embedder {name!r}; known: {sorted(EMBEDDERS)} (config key embedder.name)")
    return EMBEDDERS[name](**kwargs)


def build_pad(name: str, **kwargs) -> PADModel:
    _load_builtin()
    if name not in PAD_MODELS:
        raise KeyError(f"unknown PAD model {name!r}; known: {sorted(PAD_MODELS)} (config key pad.name)")
    return PAD_MODELS[name](**kwargs)
