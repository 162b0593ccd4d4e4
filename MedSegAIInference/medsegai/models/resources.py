"""Where the built-in catalogue and its schema live, in a checkout, a Slicer install or a wheel.

Order: ``$MEDSEGAI_RESOURCES`` (the folder holding ``Models/catalog.json``), then the installed
Slicer extension (``qt-scripted-modules/Resources`` beside ``qt-scripted-modules/medsegai``, where
the extension's CMake puts both), then the source checkout (``<repo>/Resources`` beside
``<repo>/MedSegAIInference/medsegai``), then the copy that ``setup.py`` puts into a built wheel
(``medsegai/_resources``). The first folder that holds ``Models/catalog.json`` wins.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List

from .errors import CatalogError

RESOURCES_ENV = "MEDSEGAI_RESOURCES"
CATALOG_NAME = "catalog.json"
SCHEMA_NAME = "catalog.schema.json"
# Admin-provided additions placed beside the built-in catalogue (read-only for the runner).
SITE_CATALOG_NAME = "catalog.user.json"

_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # .../medsegai


def candidate_resource_dirs() -> List[Path]:
    dirs = []
    env = os.environ.get(RESOURCES_ENV)
    if env:
        dirs.append(Path(env).expanduser())
    dirs.append(_PACKAGE_DIR.parent / "Resources")  # Slicer extension: medsegai/ beside Resources/
    dirs.append(_PACKAGE_DIR.parent.parent / "Resources")  # source checkout
    dirs.append(_PACKAGE_DIR / "_resources")  # built wheel
    return dirs


def models_resource_dir() -> Path:
    """The ``Models`` folder holding the built-in ``catalog.json``."""
    tried = []
    for base in candidate_resource_dirs():
        folder = base / "Models"
        if (folder / CATALOG_NAME).is_file():
            return folder
        tried.append(str(folder))
    raise CatalogError(
        "The built-in model catalogue was not found (looked in: " + ", ".join(tried) + "). "
        f"Set {RESOURCES_ENV} to the folder that holds Models/{CATALOG_NAME}."
    )


def builtin_catalog_path() -> Path:
    return models_resource_dir() / CATALOG_NAME


def schema_path() -> Path:
    return models_resource_dir() / SCHEMA_NAME
