"""Writing a SegmentationResult to files: NIfTI labels, Slicer .seg.nrrd, probabilities, uncertainty."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Optional, Sequence

import numpy as np

from .atomic import removing_new_outputs
from .io.seg_nrrd import write_seg_nrrd
from .io.write import atomic_path, write_image
from .result import SegmentationResult

if TYPE_CHECKING:  # highdicom is optional: imported only when a SEG is written
    from .io.dicom_seg_write import AlgorithmInfo


# An output path with one of these endings is that one label file; anything else is a folder.
LABEL_FILE_SUFFIXES = (".seg.nrrd", ".nii.gz", ".nii", ".nrrd", ".dcm")
DICOM_SEG_SUFFIX = ".dcm"


@dataclass(frozen=True)
class DicomSegOutput:
    """What a DICOM SEG output needs beyond the result: the source slices it references and who made it."""
    source_files: Sequence[str]
    algorithm: "AlgorithmInfo"
    segmentation_type: str = "BINARY"
    workers: Optional[int] = None


@dataclass(frozen=True)
class OutputTarget:
    """Where a run's files go: a folder of outputs, or one label file (plus its side files beside it,
    named after the file's stem: ``<stem>_uncertainty.nii.gz``, ``<stem>_confidence.csv``, ...)."""
    folder: Path
    stem: str
    label_suffix: Optional[str] = None  # one of LABEL_FILE_SUFFIXES; None: a folder

    @property
    def single_file(self) -> bool:
        return self.label_suffix is not None


def output_target(path, default_stem: str = "segmentation") -> OutputTarget:
    path = Path(path)
    name = path.name.lower()
    for suffix in LABEL_FILE_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return OutputTarget(path.parent, path.name[: -len(suffix)], suffix)
    return OutputTarget(path, default_stem)


def write_result_files(result: SegmentationResult, out_dir: Path, *, stem: str = "segmentation", nifti: bool = True,
                       seg_nrrd: bool = True, probabilities: bool = False, labels_csv: bool = True,
                       label_suffix: Optional[str] = None, dicom_seg: Optional[DicomSegOutput] = None
                       ) -> Dict[str, Path]:
    """The result's files in ``out_dir``; ``label_suffix`` writes the labels as that one file instead
    of the NIfTI + .seg.nrrd pair (an :class:`OutputTarget` that is a single file). ``dicom_seg`` adds
    ``<stem>.dcm`` to a folder's files, and is required for a ``.dcm`` single file."""
    if label_suffix == DICOM_SEG_SUFFIX and dicom_seg is None:
        from .io.dicom_seg_write import DicomSegError

        raise DicomSegError("A DICOM SEG output needs the DICOM source series it refers to.")
    created_dir = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    # A write that fails half-way (a full disk) takes back what it wrote and restores what it replaced.
    with removing_new_outputs(out_dir, created_dir):
        return _write_result_files(result, out_dir, stem, nifti, seg_nrrd, probabilities, labels_csv, label_suffix,
                                   dicom_seg)


def _write_result_files(result, out_dir: Path, stem, nifti, seg_nrrd, probabilities, labels_csv, label_suffix,
                        dicom_seg) -> Dict[str, Path]:
    written: Dict[str, Path] = {}
    if dicom_seg is not None:
        # First: the SEG is the output most likely to refuse (a structure without a code, a grid mismatch).
        from .io.dicom_seg_write import write_dicom_seg

        written["dicom_seg"] = write_dicom_seg(
            result.labels, result.segments, dicom_seg.source_files, out_dir / f"{stem}{DICOM_SEG_SUFFIX}",
            algorithm=dicom_seg.algorithm, segmentation_type=dicom_seg.segmentation_type, workers=dicom_seg.workers)
    if label_suffix is not None:
        nifti = seg_nrrd = labels_csv = False
        path = out_dir / f"{stem}{label_suffix}"
        if label_suffix == DICOM_SEG_SUFFIX:
            pass  # written above
        elif label_suffix == ".seg.nrrd":
            written["seg_nrrd"] = write_seg_nrrd(result.labels, result.segments, path)
        else:
            written["nifti" if label_suffix.startswith(".nii") else "nrrd"] = write_image(result.labels, path)
    if nifti:
        written["nifti"] = write_image(result.labels, out_dir / f"{stem}.nii.gz")
    if seg_nrrd:
        written["seg_nrrd"] = write_seg_nrrd(result.labels, result.segments, out_dir / f"{stem}.seg.nrrd")
    if labels_csv:
        csv_path = out_dir / f"{stem}_labels.csv"
        with atomic_path(csv_path) as tmp:
            with open(tmp, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["value", "name", "r", "g", "b", "terminology"])
                for s in result.segments:
                    w.writerow([s.value, s.name, *(f"{c:.4f}" for c in s.color), s.terminology])
        written["labels_csv"] = csv_path
    if probabilities and result.probabilities is not None:
        path = out_dir / f"{stem}_probabilities.npz"
        with atomic_path(path) as tmp:
            np.savez_compressed(tmp, probabilities=result.probabilities,
                                values=np.arange(result.probabilities.shape[0]))
        written["probabilities"] = path
    if result.uncertainty is not None:
        written["uncertainty"] = write_image(result.uncertainty, out_dir / f"{stem}_uncertainty.nii.gz")
        if dicom_seg is not None:  # the map as DICOM too, over the same source slices as the SEG
            from .io.dicom_pmap_write import write_uncertainty_map

            written["uncertainty_dicom"] = write_uncertainty_map(
                result.uncertainty, dicom_seg.source_files, out_dir / f"{stem}_uncertainty.dcm",
                algorithm=dicom_seg.algorithm, method=result.uncertainty_method or "entropy")
    if result.segment_confidence:
        path = out_dir / f"{stem}_confidence.csv"
        keys = sorted({k for v in result.segment_confidence.values() for k in v})
        with atomic_path(path) as tmp:
            with open(tmp, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["segment", *keys])
                for name, vals in result.segment_confidence.items():
                    w.writerow([name, *(vals.get(k, "") for k in keys)])
        written["confidence_csv"] = path
    return written


def write_structure_masks(result: SegmentationResult, out_dir: Path) -> Path:
    """One binary mask per structure, like TotalSegmentator without --ml (empty ones too)."""
    mask_dir = out_dir / "masks"
    mask_dir.mkdir(parents=True, exist_ok=True)
    arr = result.labels.array
    for s in result.segments:
        write_image(result.labels.with_array((arr == s.value).astype(np.uint8)), mask_dir / f"{s.name}.nii.gz")
    return mask_dir


def algorithm_info(predictor) -> "AlgorithmInfo":
    """Model id and weights hash of the models a Predictor ran, for a DICOM SEG's Algorithm Identification.

    The weights hash is the SHA256 of the used checkpoints' own SHA256s (in model and fold order), so one
    value names exactly the weights behind the labels, for one model or five merged parts alike.
    """
    import hashlib

    from .io.dicom_seg_write import AlgorithmInfo
    from .models.integrity import sha256_file
    from .nnunet.folder_layout import _available_folds

    ids, digest = [], hashlib.sha256()
    for m in predictor.loaded_models:
        ids.append(m.folder.parent.name or m.folder.name)
        checkpoints = _available_folds(m.folder)
        for fold in m.folds:
            digest.update(sha256_file(checkpoints[fold]).encode())
    model_id = ids[0] if len(ids) == 1 else f"{predictor.request.task or 'models'}: " + ",".join(ids)
    return AlgorithmInfo(model_id=model_id, weights_sha256=digest.hexdigest() if ids else "")
