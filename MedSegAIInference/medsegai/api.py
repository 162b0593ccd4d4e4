"""The runner's Python API. The CLI, the worker process and the Slicer Logic all come through here."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Union

from .io.image import Image
from .io.read import read_image
from .progress import CancelToken, ProgressCallback
from .result import SegmentationResult

ImageLike = Union[Image, str, os.PathLike]


def segment(
    image: ImageLike,
    *,
    model: Optional[Union[str, os.PathLike]] = None,
    task: Optional[str] = None,
    quality: str = "normal",
    roi_subset: Optional[Sequence[str]] = None,
    folds: Optional[Sequence[int]] = None,
    device: str = "auto",
    threads: Optional[int] = None,
    tile_step: Optional[float] = None,
    mode: str = "auto",
    precision: str = "auto",
    return_probabilities: bool = False,
    uncertainty: Optional[str] = None,
    uncertainty_passes: int = 8,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> SegmentationResult:
    """Segment a 3D CT/MR image.

    image: an :class:`Image`, or a path to a NIfTI/NRRD/MHA file or a DICOM series folder.
    model: an nnU-Net v2 result folder (``<trainer>__<plans>__<config>/``), a folder holding
        several of them, or a catalogue model id. ``task`` picks TotalSegmentator's task logic
        (``"total"``, ``"total_mr"``) with ``quality`` ``normal|fast|fastest``.
    roi_subset: structure names to keep; other labels are dropped, and multi-part tasks run only
        the parts that hold them (cropped to the region found by the low-resolution model).
    device: ``auto`` (CUDA when available), ``cuda``, ``cuda:N`` or ``cpu``.
    mode: ``nnunet`` (exactly nnU-Net v2's predictor pipeline), ``totalseg`` (exactly
        TotalSegmentator's: resample the input to the model spacing first, tile step 0.8) or
        ``auto`` (``totalseg`` for TotalSegmentator tasks, ``nnunet`` otherwise).
    precision: ``auto`` (fp16 autocast on CUDA as nnU-Net does, fp32 on the CPU), ``fp32``, ``fp16`` or
        ``bf16`` (CPU autocast through oneDNN: faster on AVX-512 BF16/AMX CPUs, not bit-exact).
    uncertainty: ``None`` or ``entropy|tta|mcdropout|ensemble``.
    progress / cancel: see :mod:`medsegai.progress`; a cancelled run raises CancelledError.
    """
    from .inference.pipeline import run_segmentation

    if not isinstance(image, Image):
        image = read_image(image)
    return run_segmentation(
        image,
        model=model,
        task=task,
        quality=quality,
        roi_subset=roi_subset,
        folds=folds,
        device=device,
        threads=threads,
        tile_step=tile_step,
        mode=mode,
        precision=precision,
        return_probabilities=return_probabilities,
        uncertainty=uncertainty,
        uncertainty_passes=uncertainty_passes,
        progress=progress,
        cancel=cancel,
    )


def write_outputs(
    result: SegmentationResult,
    out_dir: Union[str, os.PathLike],
    *,
    stem: str = "segmentation",
    nifti: bool = True,
    seg_nrrd: bool = True,
    probabilities: bool = False,
) -> dict:
    """Write the result files atomically into ``out_dir``; returns {kind: path}."""
    from .outputs import write_result_files

    return write_result_files(result, Path(out_dir), stem=stem, nifti=nifti, seg_nrrd=seg_nrrd,
                              probabilities=probabilities)
