"""Interactive engines by name, imported only when chosen, and the ``"auto"`` choice.

An engine is plugged in with one line in ``ENGINES``: ``name -> "module:factory"``, where
``factory(model, device=..., threads=...)`` returns an :class:`~medsegai.interactive.engine.Engine`
(``model``: the engine's model folder, or None for its default).
Importing lazily keeps ``import medsegai.interactive`` free of torch and of the other engines'
dependencies, and lets a runner without an engine still use the others.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Optional, Tuple

from ..errors import MedSegAIError
from ..resources import resource_path
from .errors import EngineUnavailableError, InteractiveError

ENGINES = {
    "classical": "medsegai.interactive.classical:create_engine",
    "nninteractive": "medsegai.interactive.nninteractive:NNInteractiveEngine",
    "clicks": "medsegai.interactive.clicks:create_engine",
}
CLICK_MODEL_ID = "medsegai_clicks"
_NNINTERACTIVE_INFO = ("inference_session_class.json", "inference_info.json")


def nninteractive_folder(model) -> Optional[Path]:
    """The nnInteractive model folder ``model`` names (itself, else its first child folder that is one)."""
    if model is None:
        return None
    if not isinstance(model, (str, os.PathLike)):
        raise InteractiveError(f"model= is a folder path, got {type(model).__name__}.")
    root = Path(model).expanduser()
    candidates = [root] + (sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else [])
    found = [c for c in candidates
             if (c / "plans.json").is_file() and any((c / name).is_file() for name in _NNINTERACTIVE_INFO)]
    return found[0] if found else None


def click_model_folder() -> Optional[Path]:
    folder = resource_path("Models", CLICK_MODEL_ID)
    return folder if folder.is_dir() else None


def _factory(name: str):
    module_name, attr = ENGINES[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == module_name or module_name.startswith(missing + "."):
            raise EngineUnavailableError(f"The '{name}' interactive engine is not part of this runner "
                                         f"({module_name} is not installed).") from None
        if missing.split(".")[0] == "medsegai":
            raise  # our own module is broken: a bug, not a missing option
        raise EngineUnavailableError(f"The '{name}' interactive engine needs the Python package '{missing}': "
                                     f"pip install {missing}") from None
    factory = getattr(module, attr, None)
    if factory is None:
        raise EngineUnavailableError(f"The '{name}' interactive engine is not ready in this runner "
                                     f"({module_name} has no {attr}()).")
    return factory


def create(engine: str, model=None, device: str = "auto",
           threads: Optional[int] = None) -> Tuple[object, Optional[str]]:
    """``(engine object, note)``; the note says why ``"auto"`` chose what it did when that is not obvious."""
    if not isinstance(engine, str) or (engine != "auto" and engine not in ENGINES):
        raise EngineUnavailableError(f"Unknown interactive engine {engine!r}; known: auto, {', '.join(ENGINES)}.")
    if engine == "nninteractive":
        folder = nninteractive_folder(model)
        if folder is None:
            raise InteractiveError("The 'nninteractive' engine needs model= naming an nnInteractive model folder "
                                   f"(plans.json with {' or '.join(_NNINTERACTIVE_INFO)}); got {model!r}.")
        return _factory(engine)(folder, device=device, threads=threads), None
    if engine != "auto":
        return _factory(engine)(model, device=device, threads=threads), None
    folder = nninteractive_folder(model)
    if folder is not None:
        return _factory("nninteractive")(folder, device=device, threads=threads), None
    if model is not None:
        raise InteractiveError(f"{model} is not an nnInteractive model folder (plans.json with "
                               f"{' or '.join(_NNINTERACTIVE_INFO)}); pass engine= to use another engine's model.")
    clicks = click_model_folder()
    if clicks is None:
        note = (f"MedSegAI's click model ({CLICK_MODEL_ID}) is not installed: using the classical engine "
                "(seeded region growing on the image around each prompt, no network).")
        return _factory("classical")(None, device=device, threads=threads), note
    try:
        return _factory("clicks")(clicks, device=device, threads=threads), None
    except MedSegAIError as exc:  # not in this runner, or a damaged model folder: "auto" still works
        note = f"{exc} Using the classical engine (no network)."
        return _factory("classical")(None, device=device, threads=threads), note
