"""Where the ``Resources`` folder (model catalogue, bundled model, terminology) is found.

Candidates in order: ``$MEDSEGAI_RESOURCES``; the installed Slicer extension, whose CMake puts
``medsegai/`` and ``Resources/`` side by side in ``qt-scripted-modules``; the source checkout
(``<repo>/Resources`` beside ``<repo>/MedSegAIInference/medsegai``); the catalogue copy that
``setup.py`` puts into a built wheel (``medsegai/_resources``). Standard library only: Slicer's GUI
process imports this.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List

RESOURCES_ENV = "MEDSEGAI_RESOURCES"

_PACKAGE_DIR = Path(__file__).resolve().parent  # .../medsegai


def resource_dirs() -> List[Path]:
    """Candidate Resources folders, first choice first; they need not exist."""
    dirs = []
    env = os.environ.get(RESOURCES_ENV)
    if env:
        dirs.append(Path(env).expanduser())
    dirs.append(_PACKAGE_DIR.parent / "Resources")  # Slicer extension
    dirs.append(_PACKAGE_DIR.parent.parent / "Resources")  # source checkout
    dirs.append(_PACKAGE_DIR / "_resources")  # built wheel: the catalogue only
    return dirs


def resource_path(*parts: str) -> Path:
    """The first candidate holding ``parts`` (a file or a folder), else the path under the first candidate.

    Looked up per item rather than per folder: a ``$MEDSEGAI_RESOURCES`` holding only a catalogue
    must not hide the bundled model of the installed tree.
    """
    dirs = resource_dirs()
    return next((p for p in (d.joinpath(*parts) for d in dirs) if p.exists()), dirs[0].joinpath(*parts))


def resource_dir() -> Path:
    """The first candidate folder that exists (the first candidate when none does)."""
    return resource_path()
