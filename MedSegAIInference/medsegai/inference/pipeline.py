"""Orchestration: which models to run, in which mode, merged how; the result on the input grid."""
from __future__ import annotations

import difflib
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import DeviceError, InvalidModelError, MedSegAIError
from ..io.image import Image, validate_image
from ..io.segments import segments_from_names
from ..nnunet.model_folder import LoadedModel, find_result_folders, load_model_folder
from ..progress import Reporter
from ..result import SegmentationResult
from ..totalseg.tasks import QUALITIES, TaskSpec, get_task
from .device import check_precision, configure_threads, is_out_of_memory, select_device
from .probabilities import ProbabilitySink
from .single_model import RunOptions, run_model

DEFAULT_MODEL = "medsegai_ct_demo"
CROP_MARGIN_MM = 20.0  # around the low-resolution model's region of interest


def _locate(model_id: str, search_dir: Optional[Path]) -> Path:
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


def _parts_to_check(model_ids: Sequence[str], subset: Sequence[str], search_dir: Optional[Path]) -> List[str]:
    """Parts whose catalogue structures rule them out are not even located, so a structure subset
    needs only its own parts installed; the labels of the rest are checked after loading."""
    if search_dir is not None:
        return list(model_ids)
    try:
        from ..models.requirements import parts_holding
    except ImportError:  # the model manager is optional for a bare runner
        return list(model_ids)
    return parts_holding(model_ids, subset)


def _validate_subset(subset: Optional[Sequence[str]], names: Dict[int, str]) -> Optional[List[str]]:
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


def _value_map(model: LoadedModel, target: Dict[int, str]) -> np.ndarray:
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


def _crop_box(mask: np.ndarray, image: Image) -> Tuple[slice, ...]:
    idx = np.argwhere(mask)
    margin = [int(np.ceil(CROP_MARGIN_MM / s)) for s in image.spacing[::-1]]
    lo = np.maximum(idx.min(0) - margin, 0)
    hi = np.minimum(idx.max(0) + 1 + margin, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _crop_image(image: Image, box: Tuple[slice, ...]) -> Image:
    ijk0 = np.array([box[2].start, box[1].start, box[0].start, 1.0])
    origin = (image.ijk_to_lps() @ ijk0)[:3]
    return Image(np.ascontiguousarray(image.array[box]), image.spacing, tuple(origin), image.direction)


def run_segmentation(image: Image, *, model=None, task=None, quality="normal", roi_subset=None, folds=None,
                     device="auto", threads=None, tile_step=None, mode="auto", precision="auto",
                     return_probabilities=False, uncertainty=None, uncertainty_passes=8, progress=None,
                     cancel=None) -> SegmentationResult:
    reporter = Reporter(progress, cancel)
    timings: Dict[str, float] = {}
    notes: List[str] = []
    validate_image(image)
    if quality not in QUALITIES:
        raise MedSegAIError(f"Unknown quality '{quality}' (use {', '.join(QUALITIES)}).")
    if mode not in ("auto", "nnunet", "totalseg"):
        raise MedSegAIError(f"Unknown mode '{mode}' (use auto, nnunet or totalseg).")
    if uncertainty is not None:
        from ..uncertainty import check_method  # validated before any heavy work

        check_method(uncertainty)
    configure_threads(threads)
    dev = select_device(device)
    check_precision(dev, precision)

    t0 = time.perf_counter()
    spec: Optional[TaskSpec] = get_task(task, quality) if task else None
    search_dir = Path(model) if (model is not None and spec is not None) else None
    if spec is not None:
        model_ids = spec.model_ids
        names = spec.class_map
    else:
        model_ids = [str(model) if model is not None else DEFAULT_MODEL]
        names = None
    reporter("load", 0.0, "loading model(s)")
    loaded: List[LoadedModel] = []
    subset = None
    if spec is not None:
        subset = _validate_subset(roi_subset, names)
        if subset:  # run only the parts that hold a requested structure
            needed = []
            for mid in _parts_to_check(model_ids, subset, search_dir):
                part = load_model_folder(_locate(mid, search_dir), folds)
                if set(part.config.label_names.values()) & set(subset):
                    needed.append(part)
            loaded = needed
        else:
            loaded = [load_model_folder(_locate(mid, search_dir), folds) for mid in model_ids]
    else:
        loaded = [load_model_folder(_locate(model_ids[0], None), folds)]
        names = {v: n for v, n in loaded[0].config.label_names.items()}
        subset = _validate_subset(roi_subset, names)
    if loaded[0].config.region_based:
        raise InvalidModelError("Region-based nnU-Net models (overlapping label regions) are not supported yet.")
    timings["load"] = time.perf_counter() - t0
    reporter("load", 1.0, f"{len(loaded)} model(s) loaded")

    # TotalSegmentator's pipeline for its tasks and for models trained on canonical (RAS) arrays,
    # such as ours: a network that never saw a mirrored body must not get a DICOM's LPS array.
    canonical = spec is not None or loaded[0].config.canonical_input
    run_mode = mode if mode != "auto" else ("totalseg" if canonical else "nnunet")
    step = tile_step if tile_step is not None else (spec.tile_step if (spec is not None and run_mode == "totalseg") else 0.5)
    opts = RunOptions(device=dev, mode=run_mode, tile_step=step, precision=precision,
                      use_mirroring=(run_mode != "totalseg"))

    work_image, box = image, None
    if spec is not None and subset and len(spec.model_ids) > 1 and spec.crop_model:
        try:
            crop_model = load_model_folder(_locate(spec.crop_model, search_dir), folds)
        except InvalidModelError as exc:
            notes.append(f"No cropping with the low-resolution model ({exc}); running the parts on the whole image.")
        else:
            t = time.perf_counter()
            reporter("crop", 0.0, "finding the region with the low-resolution model")
            low = _run_with_fallback(crop_model, image, opts, reporter, notes)
            lut = _value_map(crop_model, names)
            mask = np.isin(lut[low.labels], [v for v, n in names.items() if n in subset])
            if mask.any():
                box = _crop_box(mask, image)
                work_image = _crop_image(image, box)
            timings["crop"] = time.perf_counter() - t

    sink = None
    if (return_probabilities or uncertainty) and len(loaded) > 1:
        raise MedSegAIError("Probabilities and uncertainty need a single-model run (use quality fast/fastest).")
    t = time.perf_counter()
    merged = np.zeros(work_image.shape, dtype=np.uint8 if max(names) < 256 else np.uint16)
    result_unc = None
    for n, m in enumerate(loaded):
        reporter("predict", 0.0, f"model {n + 1}/{len(loaded)}: {m.folder.parent.name or m.folder.name}")
        if uncertainty is not None:
            from ..uncertainty import run_with_uncertainty

            out, result_unc = run_with_uncertainty(m, work_image, opts, reporter, uncertainty, uncertainty_passes,
                                                   return_probabilities)
            sink = getattr(out, "sink", None)
        else:
            sink = ProbabilitySink(m.config.num_classes, work_image.shape) if return_probabilities else None
            out = _run_with_fallback(m, work_image, opts, reporter, notes, sink)
        lut = _value_map(m, names)
        mapped = lut[out.labels].astype(merged.dtype)
        merged = np.where(mapped > 0, mapped, merged)
    timings["predict"] = time.perf_counter() - t

    if subset:
        keep = [v for v, n in names.items() if n in subset]
        merged[~np.isin(merged, keep)] = 0
    if box is not None:
        full = np.zeros(image.shape, dtype=merged.dtype)
        full[box] = merged
        merged = full
    labels = image.with_array(merged)

    segs = segments_from_names({v: n for v, n in names.items() if not subset or n in subset}, _terminology_lookup())
    result = SegmentationResult(labels=labels, segments=segs, timings=timings, device=str(dev), notes=notes)
    if sink is not None and return_probabilities:
        result.probabilities = sink.finish(out.scores_grid, image.shape, box)
    if result_unc is not None:
        result_unc.apply(result, image, box)
    reporter("done", 1.0, "finished")
    return result


def _terminology_lookup():
    """Colours and SNOMED codes by structure name, when the terminology tables are installed."""
    try:
        from ..terminology import lookup
    except ImportError:
        return None
    return lookup


def _run_with_fallback(model, image, opts, reporter, notes, sink=None):
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
        from dataclasses import replace

        return run_model(model, image, replace(opts, device=torch.device("cpu"), batch_tiles=1), reporter,
                         on_chunk=sink.add if sink is not None else None)
