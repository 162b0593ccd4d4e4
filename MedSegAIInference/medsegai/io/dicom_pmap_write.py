"""The voxel uncertainty map as a DICOM Parametric Map over the source series (highdicom).

A Parametric Map is DICOM's object for a real-valued quantity per voxel, which the uncertainty is; a
FRACTIONAL SEG would instead claim that each voxel belongs to a segment with that probability. The
frames are float32, one per source slice and referencing it, with a Real World Value Mapping that
names the quantity and its range (0 certain, 1 most uncertain), in the study and frame of reference
of the source, like our SEG.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from ..atomic import atomic_path
from .dicom_seg_write import (MANUFACTURER, AlgorithmInfo, DicomSegError, check_referenceable, frame_indices,
                              highdicom, load_source_datasets)
from .image import Image

SERIES_NUMBER = 901  # beside the SEG's 900


def build_uncertainty_map(uncertainty: Image, source_files: Sequence[str], *, algorithm: AlgorithmInfo,
                          method: str = "entropy"):
    hd = highdicom()
    values = np.asarray(uncertainty.array, dtype=np.float32)
    if not np.isfinite(values).all() or values.min() < 0.0 or values.max() > 1.0:
        raise DicomSegError("The uncertainty map must hold finite values between 0 and 1.")
    sources = load_source_datasets(source_files)
    check_referenceable(sources)
    ks = frame_indices(uncertainty, sources)
    mapping = hd.pm.RealWorldValueMapping(
        lut_label="uncertainty", lut_explanation=f"MedSegAI {method} uncertainty, 0 certain to 1 most uncertain"[:64],
        unit=hd.sr.CodedConcept(value="1", scheme_designator="UCUM", meaning="no units"),
        value_range=(0.0, 1.0), slope=1.0, intercept=0.0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*intended person name.*")
        return hd.pm.ParametricMap(
            source_images=sources, pixel_array=values[ks], series_instance_uid=hd.UID(), series_number=SERIES_NUMBER,
            sop_instance_uid=hd.UID(), instance_number=1, manufacturer=MANUFACTURER,
            manufacturer_model_name=algorithm.model_id[:64] or MANUFACTURER, software_versions=algorithm.version,
            device_serial_number="0", contains_recognizable_visual_features=False,
            real_world_value_mappings=[mapping],
            voi_lut_transformations=[hd.content.VOILUTTransformation(window_center=0.5, window_width=1.0)],
            content_label="UNCERTAINTY", content_description=f"MedSegAI {method} uncertainty"[:64])


def write_uncertainty_map(uncertainty: Image, source_files: Sequence[str], path: str | os.PathLike, **options) -> Path:
    pmap = build_uncertainty_map(uncertainty, source_files, **options)
    with atomic_path(path) as tmp:
        pmap.save_as(str(tmp), enforce_file_format=True)
    return Path(path)


__all__ = ["build_uncertainty_map", "write_uncertainty_map"]
