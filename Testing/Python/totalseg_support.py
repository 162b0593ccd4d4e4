"""Fixtures' helpers for TotalSegmentator-style tasks: model folders named like the real ones, and
TotalSegmentator's own pipeline re-enacted with nibabel + nnU-Net's predictor as the reference."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Sequence

import numpy as np

from model_factory import shrink_plans, write_model_folder
from nnunet_reference import nnunet_predict

CLASS_MAPS = Path(__file__).resolve().parents[2] / "MedSegAIInference" / "medsegai" / "totalseg" / "class_maps.json"


FAST = "Dataset297_TotalSegmentator_total_3mm_1559subj"
FASTEST = "Dataset298_TotalSegmentator_total_6mm_1559subj"
# The five 1.5 mm parts and the total-task values each one holds (parts number theirs 1..N).
PARTS = [
    ("Dataset291_TotalSegmentator_part1_organs_1559subj", range(1, 25)),
    ("Dataset292_TotalSegmentator_part2_vertebrae_1532subj", range(25, 51)),
    ("Dataset293_TotalSegmentator_part3_cardiac_1559subj", range(51, 69)),
    ("Dataset294_TotalSegmentator_part4_muscles_1559subj", range(69, 92)),
    ("Dataset295_TotalSegmentator_part5_ribs_1559subj", range(92, 118)),
]


def total_class_map() -> Dict[int, str]:
    return {int(v): n for v, n in json.loads(CLASS_MAPS.read_text())["tasks"]["total"].items()}


def make_task_model(root: Path, dataset_folder: str, plans: dict, dataset: dict, names: Dict[int, str],
                    spacing: Sequence[float], seed: int, patch=(32, 48, 48), features=(16, 16, 16),
                    background_bias: float = 0.0) -> Path:
    """<root>/<DatasetXXX_...>/<trainer>__nnUNetPlans__3d_fullres with the given label names."""
    ds = dict(dataset)
    ds["labels"] = {"background": 0, **{n: v for v, n in sorted(names.items())}}
    small = shrink_plans(plans, patch=patch, features=features, spacing=spacing)
    return write_model_folder(root / dataset_folder, small, ds, seed=seed, trainer="nnUNetTrainerNoMirroring",
                              background_bias=background_bias)


def totalseg_reference(folder: Path, nifti_path: Path, spacing_xyz: Sequence[float], tile_step: float = 0.8):
    """TotalSegmentator 2.x's steps: closest canonical, zoom order 1 to int32, nnU-Net without
    mirroring, nearest zoom back, orientation undone. Returns labels in the file's (k, j, i) order."""
    import nibabel as nib
    from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform
    from scipy import ndimage

    img = nib.load(str(nifti_path))
    can = nib.as_closest_canonical(img)
    data = can.get_fdata()
    zoom = np.array(can.header.get_zooms()[:3]) / np.array(spacing_xyz)
    rs = ndimage.zoom(data, zoom, mode="nearest", order=1).astype(np.int32)
    seg = nnunet_predict(folder, rs.transpose(2, 1, 0), tuple(spacing_xyz)[::-1], tile_step=tile_step,
                         use_mirroring=False)
    seg_xyz = seg.transpose(2, 1, 0)
    back = ndimage.zoom(seg_xyz, np.array(can.shape[:3]) / np.array(seg_xyz.shape), order=0, mode="nearest")
    orig = apply_orientation(back, ornt_transform(axcodes2ornt("RAS"), io_orientation(img.affine)))
    return np.ascontiguousarray(orig.transpose(2, 1, 0))
