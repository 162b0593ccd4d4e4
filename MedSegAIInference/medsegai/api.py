"""The runner's Python API. The CLI, the worker process and the Slicer Logic all come through here."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

from .io.image import Image
from .io.read import read_image
from .progress import CancelToken, ProgressCallback
from .result import SegmentationResult
from .run_request import RunRequest, RunRequestError, request_from_options

ImageLike = Union[Image, str, os.PathLike]


def segment(image: ImageLike, request: Optional[RunRequest] = None, *, progress: Optional[ProgressCallback] = None,
            cancel: Optional[CancelToken] = None, **options) -> SegmentationResult:
    """Segment a 3D CT/MR image (one call; to run many images on one model, use :class:`Predictor`).

    image: an :class:`Image`, or a path to a NIfTI/NRRD/MHA file or a DICOM series folder.
    options: the fields of :class:`medsegai.RunRequest` (or ``request=`` one), among them
        ``model`` (an nnU-Net v2 result folder, a folder holding several, or a catalogue id),
        ``task`` (TotalSegmentator's ``"total"``/``"total_mr"``) with ``quality``
        ``normal|fast|fastest``, ``roi_subset``, ``device`` (``auto|cpu|cuda|cuda:N``), ``mode``
        (``nnunet``: exactly nnU-Net v2's predictor; ``totalseg``: exactly TotalSegmentator's; ``auto``),
        ``precision`` (``auto|fp32|fp16|bf16``), ``folds``, ``tile_step``, ``threads``,
        ``return_probabilities`` and ``uncertainty`` (``entropy|tta|mcdropout|ensemble``).
    progress / cancel: see :mod:`medsegai.progress`; a cancelled run raises CancelledError.
    """
    from .predictor import Predictor

    if request is not None and options:
        raise RunRequestError("Pass the run options either as a request or as keywords, not both.")
    request = (request or request_from_options(options)).validate()
    if not isinstance(image, Image):
        image = read_image(image)  # a bad image fails before any model is loaded
    predictor = Predictor(request=request, progress=progress, cancel=cancel)
    return predictor.predict(image, request=request, progress=progress, cancel=cancel)


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
