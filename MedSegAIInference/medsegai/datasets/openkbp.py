"""The OpenKBP head-and-neck CTs (``ct/openkbp-head-neck`` in the data folder) with their true orientation.

The challenge's NIfTI files carry identity direction cosines because the source had none. In
ITK's LPS convention that says the array's k axis runs towards the head, but the anatomy runs
the other way: in every case the brainstem lies at lower k than the spinal cord. The i and j
axes agree with the anatomy (the right parotid at low i = patient right, the mandible at low j
= anterior), as for a DICOM series stored head first. So :func:`read_case` returns images with
direction diag(1, 1, -1), which real head-first DICOM series of these patients would have had,
and models trained on them see the same orientation as a user's scan.

Organ names are MedSegAI's (TotalSegmentator-style) structure names. An organ missing from a
case's contour list is not contoured there: unknown, not background.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import numpy as np
import SimpleITK as sitk

from ..io.image import Image
from ..resources import resource_path

FOLDER = "ct/openkbp-head-neck"
SPLIT = ("Splits", "openkbp_validation.json")
DIRECTION = np.diag([1.0, 1.0, -1.0])

# OpenKBP's contour names -> MedSegAI's structure names (terminology/structures.csv).
STRUCTURE_NAMES: Dict[str, str] = {
    "Brainstem": "brainstem",
    "SpinalCord": "spinal_cord",
    "RightParotid": "parotid_gland_right",
    "LeftParotid": "parotid_gland_left",
    "Esophagus": "esophagus",
    "Larynx": "larynx",
    "Mandible": "mandible",
}


@dataclass
class OpenKBPCase:
    name: str
    image: Image  # CT in HU, true orientation
    organs: np.ndarray  # (k, j, i) uint8, the values of ``organ_values()``
    contoured: List[str]  # MedSegAI structure names contoured in this case


def _info(root: Path) -> dict:
    return json.loads((Path(root) / FOLDER / "cases.json").read_text())


def organ_values(root: Path) -> Dict[str, int]:
    """MedSegAI structure name -> value in the ``*_organs.nii.gz`` files."""
    return {STRUCTURE_NAMES[k]: int(v) for k, v in _info(root)["organs"].items()}


def case_names(root: Path) -> List[str]:
    cases = _info(root)["cases"]
    names = list(cases) if isinstance(cases, dict) else [c if isinstance(c, str) else c["case"] for c in cases]
    return sorted(names, key=lambda c: int(c.split("_")[1]))


def validation_cases() -> List[str]:
    """The fixed held-out split (case number divisible by 5), chosen before any result was seen."""
    return list(json.loads(resource_path(*SPLIT).read_text())["validation"])


def training_cases(root: Path) -> List[str]:
    held_out = set(validation_cases())
    return [c for c in case_names(root) if c not in held_out]


def contoured(root: Path, case: str) -> List[str]:
    cases = _info(root)["cases"]
    entry = cases[case] if isinstance(cases, dict) else next(c for c in cases if c["case"] == case)
    organs = entry["organs"] if isinstance(entry, dict) else entry
    return [STRUCTURE_NAMES[o] for o in organs]


def _with_true_direction(path: Path) -> sitk.Image:
    img = sitk.ReadImage(str(path))
    img.SetDirection(tuple(DIRECTION.flatten()))
    return img


def read_case(root: Path, case: str) -> OpenKBPCase:
    folder = Path(root) / FOLDER
    ct = _with_true_direction(folder / f"{case}_ct.nii.gz")
    organs = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{case}_organs.nii.gz"))).astype(np.uint8)
    return OpenKBPCase(case, Image.from_sitk(ct), organs, contoured(root, case))


def write_case_files(root: Path, case: str, image_path: Path, label_path: Path) -> None:
    """The case's CT and organ map as NIfTI files with the true orientation (for training folders)."""
    folder = Path(root) / FOLDER
    image_path.parent.mkdir(parents=True, exist_ok=True)
    label_path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(_with_true_direction(folder / f"{case}_ct.nii.gz"), str(image_path), True)
    sitk.WriteImage(_with_true_direction(folder / f"{case}_organs.nii.gz"), str(label_path), True)
