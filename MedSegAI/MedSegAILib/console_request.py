"""The Python console's keyword arguments (``MedSegAILogic.segment``) as one RunRequest.

The console keeps its documented names (``subset``, ``model`` beside a default ``task``); the
other run options go through under RunRequest's own names, and a misspelt one is an InputError
that lists them, not a TypeError from deep inside.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

from medsegai.run_request import RunRequest

from .errors import InputError

# RunRequest fields the console passes through as they are (the others have console arguments).
CONSOLE_RUN_OPTIONS = ("precision", "mode", "tile_step", "folds", "threads")


def console_run_request(task: Optional[str], quality: str, subset: Optional[Sequence[str]], device: str,
                        model: Optional[str], run_options: Dict[str, Any], **uncertainty: Any) -> RunRequest:
    """Not validated here: the Logic validates every request and turns a bad option into an InputError."""
    unknown = sorted(set(run_options) - set(CONSOLE_RUN_OPTIONS))
    if unknown:
        raise InputError(f"Unknown run option(s): {', '.join(unknown)} (valid: {', '.join(CONSOLE_RUN_OPTIONS)}).")
    # A model replaces the default task: task="total" with a model would mean "a folder of task models".
    return RunRequest(task=task if model is None else None, model=model, quality=quality, device=device,
                      roi_subset=subset, **uncertainty, **run_options)
