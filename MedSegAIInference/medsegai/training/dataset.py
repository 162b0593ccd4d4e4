"""Finding and checking image/label pairs and the label-name map of a training folder.

Accepted layouts (NIfTI, NRRD, MHA files; an image may also be a DICOM series folder):
  <folder>/imagesTr/<case>_0000.nii.gz + <folder>/labelsTr/<case>.nii.gz   (nnU-Net raw layout)
  <folder>/images/<case>.nrrd          + <folder>/labels/<case>.nrrd
The name map is ``labels.json`` ({"background": 0, "liver": 5, ...}) or the ``labels`` entry of
``dataset.json``. A label named ``ignore`` (nnU-Net's convention) marks voxels whose class is
unknown (partially labelled cases): they are left out of the loss and of the statistics.

Every check runs before training starts, so a bad pair costs seconds, not a training run.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from ..errors import InvalidImageError
from ..io.image import Image
from ..io.read import IMAGE_SUFFIXES, read_image
from .errors import TrainingDataError

IGNORE_NAME = "ignore"
_GRID_TOL_MM = 1e-3


@dataclass
class LabelMap:
    """Structure names by label value. ``ignore_value`` is the unknown-class value, if any."""
    names: Dict[int, str]  # includes 0 = background
    ignore_value: Optional[int] = None

    @property
    def values(self) -> List[int]:
        return sorted(self.names)


@dataclass
class Pair:
    case: str
    image: Path
    label: Path


@dataclass
class Case:
    """A loaded pair on one grid: the label array is on the image's exact voxel grid."""
    name: str
    image: Image
    label: np.ndarray  # (k, j, i), integer label values


def _strip_suffix(name: str) -> str:
    for suf in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return name


def _entries(folder: Path) -> Dict[str, Path]:
    out = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_dir() or p.name.lower().endswith(IMAGE_SUFFIXES):
            out[_strip_suffix(p.name)] = p
    return out


def find_pairs(folder: Path) -> List[Pair]:
    folder = Path(folder)
    if not folder.is_dir():
        raise TrainingDataError(f"Training folder not found: {folder}")
    for img_dir, lab_dir, nnunet in (("imagesTr", "labelsTr", True), ("images", "labels", False)):
        if (folder / img_dir).is_dir() and (folder / lab_dir).is_dir():
            break
    else:
        raise TrainingDataError(
            f"{folder} holds neither imagesTr/ + labelsTr/ (nnU-Net layout) nor images/ + labels/ folders.")
    images, labels = _entries(folder / img_dir), _entries(folder / lab_dir)
    if nnunet:  # case_0000 -> case; only single-channel (CT/MR) training is supported
        multi = [k for k in images if not k.endswith("_0000")]
        if multi:
            raise TrainingDataError(
                f"{folder / img_dir} has files that are not channel 0 ({', '.join(multi[:3])}); only "
                "single-channel images are supported (name them <case>_0000.nii.gz).")
        images = {k[: -len("_0000")]: v for k, v in images.items()}
    if not images:
        raise TrainingDataError(f"{folder / img_dir} is empty: no NIfTI/NRRD/MHA images or DICOM folders.")
    missing = sorted(set(images) - set(labels))
    extra = sorted(set(labels) - set(images))
    if missing:
        raise TrainingDataError(f"No label file for image(s) {', '.join(missing[:5])} in {folder / lab_dir}.")
    if extra:
        raise TrainingDataError(f"Label file(s) {', '.join(extra[:5])} in {folder / lab_dir} have no image.")
    return [Pair(k, images[k], labels[k]) for k in sorted(images)]


def load_label_map(folder: Path, labels_json: Optional[Path] = None) -> LabelMap:
    folder = Path(folder)
    if labels_json is None:
        for cand in (folder / "labels.json", folder / "dataset.json"):
            if cand.is_file():
                labels_json = cand
                break
        else:
            raise TrainingDataError(
                f"No label-name map: put labels.json ({{\"background\": 0, \"liver\": 1, ...}}) or a dataset.json "
                f"with a 'labels' entry into {folder}, or pass --labels.")
    try:
        raw = json.loads(Path(labels_json).read_text())
    except (OSError, ValueError) as exc:
        raise TrainingDataError(f"Cannot read the label-name map {labels_json}: {exc}") from None
    raw = raw.get("labels", raw) if isinstance(raw, dict) else raw
    if not isinstance(raw, dict) or not raw:
        raise TrainingDataError(f"{labels_json} holds no name -> value map.")
    names: Dict[int, str] = {}
    ignore = None
    for name, value in raw.items():
        if isinstance(value, (list, tuple)) or not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise TrainingDataError(
                f"Label '{name}' in {labels_json} has value {value!r}; values must be non-negative integers "
                "(region-based label lists are not supported).")
        if name == IGNORE_NAME:
            ignore = value
            continue
        if value in names:
            raise TrainingDataError(f"Labels '{names[value]}' and '{name}' in {labels_json} share value {value}.")
        names[value] = name
    if names.get(0) != "background":
        raise TrainingDataError(f"{labels_json} must map 'background' to 0.")
    if len(names) < 2:
        raise TrainingDataError(f"{labels_json} names no structure besides background.")
    if ignore is not None and ignore <= max(names):
        raise TrainingDataError(f"The 'ignore' label must have the highest value (nnU-Net's rule); it is {ignore}.")
    return LabelMap(names, ignore)


def _on_same_voxels(label: sitk.Image, image: sitk.Image) -> bool:
    """True when the label's voxel centres are the image's, possibly in another axis order or direction."""
    if sorted(label.GetSize()) != sorted(image.GetSize()):
        return False
    size = image.GetSize()
    for corner in np.ndindex(2, 2, 2):
        idx = [c * (s - 1) for c, s in zip(corner, size)]
        pt = image.TransformIndexToPhysicalPoint([int(i) for i in idx])
        cont = np.array(label.TransformPhysicalPointToContinuousIndex(pt))
        if np.any(np.abs(cont - np.round(cont)) > 1e-3) or np.any(cont < -1e-3) or np.any(
                cont > np.array(label.GetSize()) - 1 + 1e-3):
            return False
    return True


def _label_on_image_grid(pair: Pair, image: Image) -> np.ndarray:
    try:
        lab = sitk.ReadImage(str(pair.label))
    except RuntimeError as exc:
        raise TrainingDataError(f"Cannot read label file {pair.label}: {str(exc).strip().splitlines()[-1]}") from None
    if lab.GetDimension() != 3 or lab.GetNumberOfComponentsPerPixel() != 1:
        raise TrainingDataError(f"Label file {pair.label} is not a single-component 3D image.")
    if not np.issubdtype(sitk.GetArrayViewFromImage(lab).dtype, np.integer):
        arr = sitk.GetArrayFromImage(lab)
        if not np.all(arr == np.round(arr)):
            raise TrainingDataError(f"Label file {pair.label} holds non-integer values.")
    img = image.to_sitk()
    same = lab.GetSize() == img.GetSize() and np.allclose(lab.GetSpacing(), img.GetSpacing(), atol=_GRID_TOL_MM) \
        and np.allclose(lab.GetOrigin(), img.GetOrigin(), atol=_GRID_TOL_MM) \
        and np.allclose(lab.GetDirection(), img.GetDirection(), atol=1e-4)
    if same:
        return sitk.GetArrayFromImage(lab).astype(np.int32)
    if _on_same_voxels(lab, img):
        # Same voxels stored in another axis order (e.g. a NIfTI label beside a DICOM series): reorder
        # exactly with nearest-neighbour sampling at the coinciding voxel centres.
        out = sitk.Resample(lab, img, sitk.Transform(), sitk.sitkNearestNeighbor, 0, lab.GetPixelID())
        return sitk.GetArrayFromImage(out).astype(np.int32)
    raise TrainingDataError(
        f"Case '{pair.case}': the label's geometry differs from the image's (image size {img.GetSize()}, spacing "
        f"{tuple(round(s, 4) for s in img.GetSpacing())}, origin {tuple(round(o, 2) for o in img.GetOrigin())}; label "
        f"size {lab.GetSize()}, spacing {tuple(round(s, 4) for s in lab.GetSpacing())}, origin "
        f"{tuple(round(o, 2) for o in lab.GetOrigin())}). Resample the label onto the image grid first.")


def load_case(pair: Pair, label_map: LabelMap) -> Case:
    try:
        image = read_image(pair.image)
    except InvalidImageError as exc:
        raise TrainingDataError(f"Case '{pair.case}': {exc}") from None
    label = _label_on_image_grid(pair, image)
    allowed = set(label_map.names) | ({label_map.ignore_value} if label_map.ignore_value is not None else set())
    present = set(np.unique(label).tolist())
    unknown = sorted(present - allowed)
    if unknown:
        raise TrainingDataError(
            f"Case '{pair.case}': label value(s) {', '.join(map(str, unknown[:10]))} are not in the label-name map "
            f"({pair.label.name}). Add them to labels.json or remap them.")
    return Case(pair.case, image, label)


def load_cases(folder: Path, label_map: LabelMap) -> List[Case]:
    return [load_case(p, label_map) for p in find_pairs(folder)]


def trained_values(cases: Sequence[Case], label_map: LabelMap) -> List[int]:
    """Label values that occur in the training data (background always): the classes the network learns."""
    present = {0}
    for c in cases:
        present |= set(np.unique(c.label).tolist())
    present.discard(label_map.ignore_value)
    return sorted(present)


def check_cases(cases: Sequence[Case], label_map: LabelMap) -> Tuple[List[int], List[str]]:
    """(values the network will learn, warnings). Raises when nothing can be learned."""
    if not cases:
        raise TrainingDataError("No training cases.")
    values = trained_values(cases, label_map)
    if len(values) < 2:
        raise TrainingDataError("The label maps hold only background: there is nothing to learn.")
    never = [label_map.names[v] for v in label_map.values if v not in values]
    warnings = []
    if never:
        warnings.append(f"{len(never)} structure(s) of the name map never occur in the training labels and will never "
                        f"be predicted: {', '.join(never[:8])}{' ...' if len(never) > 8 else ''}")
    return values, warnings


UNLABELLED_FILE = "unlabelled.json"


def load_unlabelled(folder: Path, label_map: LabelMap, cases: Sequence[Case],
                    path: Optional[Path] = None) -> Dict[str, List[int]]:
    """Per case, the label values of structures that were not contoured in it (unknown, not background).

    Radiotherapy and most public data sets contour only some organs per patient. Taking an
    uncontoured organ's voxels as background teaches the network to miss it; the loss instead
    folds such classes into background for that case (see ``loop.Loss``). The file
    (``unlabelled.json`` in the training folder, or ``path``) maps case names to structure names:
    ``{"pt_1": ["Esophagus", "Larynx"], ...}``. Cases it does not name are fully labelled.
    """
    path = Path(path) if path is not None else Path(folder) / UNLABELLED_FILE
    if not path.is_file():
        if path.name != UNLABELLED_FILE or path.parent != Path(folder):
            raise TrainingDataError(f"Unlabelled-structures file not found: {path}")
        return {}
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TrainingDataError(f"Cannot read {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise TrainingDataError(f"{path} must map case names to lists of structure names.")
    by_name = {n: v for v, n in label_map.names.items()}
    labels = {c.name: c.label for c in cases}
    out: Dict[str, List[int]] = {}
    for case, names in raw.items():
        if case not in labels:
            raise TrainingDataError(f"{path} names case '{case}', which is not in {folder}.")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise TrainingDataError(f"{path}: the entry of case '{case}' must be a list of structure names.")
        values = []
        for n in names:
            if n not in by_name or by_name[n] == 0:
                raise TrainingDataError(f"{path}: case '{case}' lists '{n}', which is not a structure of the "
                                        "label-name map.")
            if np.any(labels[case] == by_name[n]):
                raise TrainingDataError(f"{path}: case '{case}' lists '{n}' as not contoured, but its label file "
                                        "has voxels of it.")
            values.append(by_name[n])
        if values:
            out[case] = sorted(set(values))
    return out
