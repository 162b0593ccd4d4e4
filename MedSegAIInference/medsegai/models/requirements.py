"""Which catalogue models a run needs, which of those are not installed yet, and fetching them.

A front end (the Slicer module) asks before a run, so the user can agree to a download with its
size and licence in front of them instead of meeting a "not installed" error; the worker then
fetches what was agreed. Nothing here hashes files: it is cheap enough for a button press.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

from ..progress import CancelToken, ProgressCallback
from .api import ModelStatus, locate, pull
from .catalog import MODEL_ID_RE, Catalog, load_catalog


def parts_holding(model_ids: Sequence[str], subset: Sequence[str], catalog: Optional[Catalog] = None) -> List[str]:
    """The parts of a multi-part task that can hold one of ``subset``, by their catalogue structures.
    A part the catalogue does not describe is kept: the runner then checks its labels itself."""
    catalog = catalog if catalog is not None else load_catalog()
    wanted = set(subset)
    kept = []
    for mid in model_ids:
        entry = catalog.find(mid)
        if entry is None or not entry.structures or wanted & {s.name for s in entry.structures}:
            kept.append(mid)
    return kept


def models_for_run(task: Optional[str], quality: str = "normal", model: Optional[str] = None,
                   roi_subset: Optional[Sequence[str]] = None, catalog: Optional[Catalog] = None) -> List[str]:
    """Catalogue ids a run loads; a model given as a folder needs none (with a task, ``model`` is the
    folder that holds the task's models, as with ``medsegai segment --task total --model DIR``)."""
    if task and model:
        return []
    if task:
        from ..totalseg.tasks import get_task

        spec = get_task(task, quality)
        ids = list(spec.model_ids)
        if roi_subset and len(ids) > 1:
            ids = parts_holding(ids, roi_subset, catalog)
            if spec.crop_model:  # the low-resolution model that finds the region first
                ids.append(spec.crop_model)
        return list(dict.fromkeys(ids))
    if model and MODEL_ID_RE.match(str(model)):
        return [str(model)]
    return []


def missing_models(model_ids: Sequence[str], catalog: Optional[Catalog] = None) -> List[ModelStatus]:
    """Those of ``model_ids`` available nowhere (cache, bundled, TotalSegmentator's own folder)."""
    catalog = catalog if catalog is not None else load_catalog()
    return [s for s in (locate(mid, catalog) for mid in model_ids) if not s.available]


def fetch_missing(model_ids: Sequence[str], *, accept_license: bool = False,
                  progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None) -> List[str]:
    """Download and install those of ``model_ids`` that are missing; returns the ids fetched."""
    fetched = []
    for status in missing_models(model_ids):
        pull(status.model_id, accept_license=accept_license, progress=progress, cancel=cancel)
        fetched.append(status.model_id)
    return fetched


__all__ = ["models_for_run", "missing_models", "fetch_missing", "parts_holding"]
