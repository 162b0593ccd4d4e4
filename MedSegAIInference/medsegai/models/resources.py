"""The built-in catalogue and its schema, found through ``medsegai.resources``.

The first candidate Resources folder that holds ``Models/catalog.json`` wins.
"""
from __future__ import annotations

from pathlib import Path

from ..resources import RESOURCES_ENV, resource_dirs, resource_path
from .errors import CatalogError

CATALOG_NAME = "catalog.json"
SCHEMA_NAME = "catalog.schema.json"
# Admin-provided additions placed beside the built-in catalogue (read-only for the runner).
SITE_CATALOG_NAME = "catalog.user.json"


def models_resource_dir() -> Path:
    """The ``Models`` folder holding the built-in ``catalog.json``."""
    catalog = resource_path("Models", CATALOG_NAME)
    if catalog.is_file():
        return catalog.parent
    raise CatalogError(
        "The built-in model catalogue was not found (looked in: "
        + ", ".join(str(d / "Models") for d in resource_dirs()) + "). "
        f"Set {RESOURCES_ENV} to the folder that holds Models/{CATALOG_NAME}."
    )


def builtin_catalog_path() -> Path:
    return models_resource_dir() / CATALOG_NAME


def schema_path() -> Path:
    return models_resource_dir() / SCHEMA_NAME
