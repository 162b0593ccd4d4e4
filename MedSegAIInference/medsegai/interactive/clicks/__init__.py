"""MedSegAI's own click model: a small class-agnostic 3D U-Net on a crop around the prompts.

``engine.ClickModelEngine`` runs it (the ``"clicks"`` interactive engine); ``train`` trains it
(``medsegai train-clicks``); ``model_folder`` documents the folder format. Importing this package
imports no torch: the engine and the trainer are loaded when used.
"""
from __future__ import annotations

from typing import Optional


def create_engine(model=None, device: str = "auto", threads: Optional[int] = None, **options):
    from .engine import ClickModelEngine

    return ClickModelEngine(model_folder=model, device=device, threads=threads, **options)


def __getattr__(name):
    if name == "ClickModelEngine":
        from .engine import ClickModelEngine

        return ClickModelEngine
    raise AttributeError(name)
