"""Training and held-out objects for the click model, read from the shared data folder.

An object is one binary structure of one scan: an OpenKBP organ or planning target volume (the
nested PTVs as PTV56 = ptv >= 1, PTV63 = ptv >= 2, PTV70 = ptv == 3), a TotalSegmentator
reference structure, or an MRI lesion. HELD OUT, never read for training: the OpenKBP cases of
``Resources/Splits/openkbp_validation.json`` (case number divisible by 5), the TotalSegmentator
DICOM case (``example_ct_dicom`` + ``example_seg_dicom.nii.gz``) and the BraTS FLAIR edema.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from ...datasets.openkbp import FOLDER as OPENKBP
from ...datasets.openkbp import case_names as openkbp_cases
from ...datasets.openkbp import validation_cases

TOTALSEG = "ct/totalsegmentator-examples/tests/reference_files"
MIN_VOXELS = 30


@dataclass
class Scan:
    name: str
    group: str  # "openkbp" | "totalseg" | "mri"
    array: np.ndarray  # float32 or int16 (k, j, i)
    spacing: Tuple[float, float, float]  # (k, j, i) mm
    ct: bool
    objects: List[Tuple[str, Callable[[], np.ndarray], Tuple[slice, slice, slice]]] = field(default_factory=list)


def data_dir(explicit=None) -> Path:
    return Path(explicit or os.environ.get("MEDSEGAI_DATA_DIR") or Path.cwd().parent / "shared" / "data")


def is_held_out_openkbp(case: str) -> bool:
    return int(case.split("_")[1]) % 5 == 0 or case in validation_cases()


def _read(path: Path) -> Tuple[np.ndarray, Tuple[float, float, float]]:
    img = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(img), tuple(float(s) for s in img.GetSpacing()[::-1])


def _add_label_objects(scan: Scan, labels: np.ndarray, names: dict, prefix: str = "") -> None:
    boxes = ndi.find_objects(labels.astype(np.int32))
    counts = np.bincount(labels.ravel().astype(np.int64))
    for value, box in enumerate(boxes, start=1):
        if box is None or counts[value] < MIN_VOXELS:
            continue
        scan.objects.append((prefix + names.get(value, str(value)), (lambda v=value: labels == v), box))


def openkbp_scan(root: Path, case: str) -> Scan:
    info = json.loads((root / OPENKBP / "cases.json").read_text())
    ct, spacing = _read(root / OPENKBP / f"{case}_ct.nii.gz")
    scan = Scan(case, "openkbp", ct.astype(np.int16), spacing, True)
    organs, _ = _read(root / OPENKBP / f"{case}_organs.nii.gz")
    organs = organs.astype(np.uint8)
    _add_label_objects(scan, organs, {int(v): k for k, v in info["organs"].items()})
    ptv, _ = _read(root / OPENKBP / f"{case}_ptv.nii.gz")
    ptv = ptv.astype(np.uint8)
    for name, level in sorted(info["ptv"].items(), key=lambda kv: kv[1]):
        m = ptv >= int(level)
        if m.sum() >= MIN_VOXELS:
            box = ndi.find_objects(m.astype(np.uint8))[0]
            scan.objects.append((name, (lambda lv=int(level): ptv >= lv), box))
    return scan


def training_openkbp_cases(root: Path) -> List[str]:
    """The OpenKBP cases the click model trains on: every case not held out."""
    return [c for c in openkbp_cases(root) if not is_held_out_openkbp(c)]


def _label_scan(name, group, image_path: Path, label_path: Path, ct: bool, names=None) -> Optional[Scan]:
    if not image_path.exists() or not label_path.exists():
        return None
    img, spacing = _read(image_path)
    lab, _ = _read(label_path)
    if img.shape != lab.shape:
        return None
    scan = Scan(name, group, img.astype(np.int16) if ct else img.astype(np.float32), spacing, ct)
    _add_label_objects(scan, lab.astype(np.uint8), names or {})
    return scan


def training_scans(root=None, limit_openkbp: Optional[int] = None, log=print) -> List[Scan]:
    """Every training scan (never a held-out one)."""
    root = data_dir(root)
    scans: List[Scan] = []
    cases = training_openkbp_cases(root)
    if limit_openkbp is not None:
        cases = cases[:limit_openkbp]
    for case in cases:
        scans.append(openkbp_scan(root, case))
    ts = root / TOTALSEG
    class_map = {}
    cm = root / "ct/totalsegmentator-examples/totalsegmentator_class_map.json"
    if cm.exists():
        class_map = {int(k): v for k, v in json.loads(cm.read_text()).get("total", {}).items()}
    for name, image, label in (("example_ct", "example_ct.nii.gz", "example_seg_fast_force_split.nii.gz"),
                               ("example_ct_sm", "example_ct_sm.nii.gz", "example_seg.nii.gz")):
        s = _label_scan(name, "totalseg", ts / image, ts / label, True, class_map)
        if s is not None:
            scans.append(s)
    mri = root / "mri"
    for name, image, label in (("brain1", "pyradiomics/brain1_image.nrrd", "pyradiomics/brain1_label.nrrd"),
                               ("anatomical", "monai-testing-data/anatomical.nii", "monai-testing-data/anatomical_label.nii.gz"),
                               ("reoriented_anat", "monai-testing-data/reoriented_anat_moved.nii",
                                "monai-testing-data/reoriented_anat_moved_label.nii.gz")):
        s = _label_scan(name, "mri", mri / image, mri / label, False)
        if s is not None:
            scans.append(s)
    log(f"training data: {len(scans)} scans, {sum(len(s.objects) for s in scans)} objects "
        f"({', '.join(f'{g}: {sum(len(s.objects) for s in scans if s.group == g)}' for g in ('openkbp', 'totalseg', 'mri'))})")
    return scans
