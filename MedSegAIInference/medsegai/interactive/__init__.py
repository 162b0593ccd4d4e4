"""Interactive segmentation: clicks, boxes, scribbles, lassos and structure names edit one mask.

``InteractiveSession`` is the entry point (the Slicer module, a server and the benchmarks drive
it); engines (``classical``, ``nninteractive``, ``clicks``) are chosen by name and imported only
when used. Names are imported on first use, so ``medsegai --help`` (which registers this package's
CLI) does not pay for numpy, SciPy and SimpleITK.
"""
from importlib import import_module

from .errors import EngineUnavailableError, InteractiveError, StructureNotFoundError, UnknownStructureError

_LAZY = {
    "InteractiveSession": "session", "Engine": "engine", "Prompt": "engine", "Update": "engine", "Region": "engine",
    "KINDS": "engine", "ENGINES": "registry",
}

__all__ = ["InteractiveSession", "Engine", "Prompt", "Update", "Region", "KINDS", "ENGINES", "InteractiveError",
           "EngineUnavailableError", "UnknownStructureError", "StructureNotFoundError"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
