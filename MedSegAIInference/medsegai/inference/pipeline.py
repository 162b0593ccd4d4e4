"""Building blocks of a plain prediction, used by :class:`medsegai.predictor.Predictor`: where a model
is, which parts a subset needs, label value maps, the CUDA out-of-memory fallback."""
from __future__ import annotations

import difflib
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import DeviceError, InvalidModelError, MedSegAIError
from ..nnunet.model_folder import LoadedModel, find_result_folders
from .device import is_out_of_memory
from .single_model import run_model

DEFAULT_MODEL = "medsegai_ct_demo"
CROP_MARGIN_MM = 20.0  # around the low-resolution model's region of interest


def locate_model(model_id: str, search_dir: Optional[Path]) -> Path:
    """A result folder for a model id or path: explicit folder, then the model cache/catalogue."""
    candidates = []
    if search_dir is not None:
        candidates.append(search_dir / model_id)
    candidates.append(Path(model_id))
    for c in candidates:
        if c.exists():
            found = find_result_folders(c)
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise InvalidModelError(
                    f"{c} holds several model folders ({', '.join(f.name for f in found)}); name one of them."
                )
            raise InvalidModelError(f"{c} holds no nnU-Net result folder (plans.json, dataset.json, fold_N/).")
    try:
        from ..models import resolve_model
    except ImportError:  # the model manager is optional for a bare runner
        resolve_model = None
    if resolve_model is not None:
        found = find_result_folders(Path(resolve_model(model_id)))
        if found:
            return found[0]
    raise InvalidModelError(
        f"Model '{model_id}' is not installed. Install it with 'medsegai models pull {model_id}' or "
        f"'medsegai models import <zip-or-folder>', or pass --model with its folder."
    )


def parts_to_check(model_ids: Sequence[str], subset: Sequence[str], search_dir: Optional[Path]) -> List[str]:
    """Parts whose catalogue structures rule them out are not even located, so a structure subset
    needs only its own parts installed; the labels of the rest are checked after loading."""
    if search_dir is not None:
        return list(model_ids)
    try:
        from ..models.requirements import parts_holding
    except ImportError:  # the model manager is optional for a bare runner
        return list(model_ids)
    return parts_holding(model_ids, subset)


def validate_subset(subset: Optional[Sequence[str]], names: Dict[int, str]) -> Optional[List[str]]:
    if not subset:
        return None
    known = set(names.values())
    unknown = [s for s in subset if s not in known]
    if unknown:
        hints = []
        for u in unknown:
            close = difflib.get_close_matches(u, known, n=2)
            hints.append(f"'{u}'" + (f" (did you mean {' or '.join(close)}?)" if close else ""))
        raise MedSegAIError(f"Unknown structure(s) for this model: {', '.join(hints)}.")
    return list(subset)


def value_map(model: LoadedModel, target: Dict[int, str]) -> np.ndarray:
    """Lookup table from the model's label values to the task's values (matched by name)."""
    by_name = {n: v for v, n in target.items()}
    lut = np.zeros(max(model.config.label_names) + 1, dtype=np.uint16)
    for v, n in model.config.label_names.items():
        if v == 0:
            continue
        if n not in by_name:
            raise InvalidModelError(f"Model {model.folder.name} outputs '{n}', which the task's class map lacks.")
        lut[v] = by_name[n]
    return lut


def terminology_lookup():
    """Colours and SNOMED codes by structure name, when the terminology tables are installed."""
    try:
        from ..terminology import lookup
    except ImportError:
        return None
    return lookup


def run_with_fallback(model, image, opts, reporter, notes, sink=None):
    """Run on the chosen device; on CUDA out-of-memory that the tiling could not absorb, rerun on the CPU."""
    try:
        return run_model(model, image, opts, reporter, on_chunk=sink.add if sink is not None else None)
    except (DeviceError, RuntimeError) as exc:
        if opts.device.type != "cuda" or not (is_out_of_memory(exc) or "out of memory" in str(exc).lower()):
            raise
        import torch

        torch.cuda.empty_cache()
        notes.append("CUDA ran out of memory; this model ran on the CPU instead.")
        reporter("note", 0.0, "CUDA out of memory: continuing on the CPU")
        if sink is not None:
            sink.reset()
        model.release_networks("cuda")
        return run_model(model, image, replace(opts, device=torch.device("cpu"), batch_tiles=1), reporter,
                         on_chunk=sink.add if sink is not None else None)
