"""``medsegai convert``: between DICOM SEG, Slicer .seg.nrrd / NIfTI label maps and DICOM series.

* ``convert seg.dcm -o labels.seg.nrrd [--reference CT]``: a DICOM SEG as a label map (names,
  colours, codes kept in the .seg.nrrd); with ``--reference`` on that image's grid (a DICOM folder:
  the series the SEG references is picked from it, and a SEG whose series is not there is refused).
* ``convert labels.seg.nrrd -o seg.dcm --reference DICOM_DIR``: a label map as a DICOM SEG of that series.
* ``convert ct.nii.gz -o ct_dicom/``: a derived DICOM series from a volume, for PACS and DICOM SEG.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .errors import InvalidImageError, MedSegAIError

_LABEL_SUFFIXES = (".seg.nrrd", ".nii.gz", ".nii", ".nrrd")


def register(sub) -> None:
    p = sub.add_parser("convert", help="convert DICOM SEG <-> .seg.nrrd/NIfTI, or a volume to a DICOM series",
                       description=__doc__.split("\n\n", 1)[1], formatter_class=_raw())
    p.add_argument("input", help="a DICOM SEG (.dcm), a label map (.seg.nrrd/.nii.gz/.nrrd) or an image volume")
    p.add_argument("-o", "--output", required=True,
                   help="a .seg.nrrd/.nii.gz/.nrrd label file, a .dcm DICOM SEG, or a folder for a DICOM series")
    p.add_argument("-r", "--reference", default=None,
                   help="image or DICOM folder whose grid the labels are put on (required for a .dcm output)")
    p.add_argument("--series", default=None, metavar="UID", help="series of --reference to use (DICOM folder)")
    p.add_argument("--seg-type", choices=("binary", "labelmap"), default="binary", help="DICOM SEG type (.dcm output)")
    p.add_argument("--modality", choices=("CT", "MR"), default="CT", help="modality of a derived DICOM series")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_convert)


def _raw():
    import argparse

    return argparse.RawDescriptionHelpFormatter


def _is_label_file(path: Path) -> bool:
    return path.name.lower().endswith(_LABEL_SUFFIXES)


def _is_dicom_seg(path: Path) -> bool:
    if not path.is_file():
        return False
    import pydicom

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=["SOPClassUID", "Modality"])
    except Exception:  # noqa: BLE001 - not DICOM at all
        return False
    return str(ds.get("Modality", "")) == "SEG"


def _reference(args):
    """(reference Image or None, its series UID or None, its source slice files or None)."""
    if args.reference is None:
        return None, None, None
    from .io.image import Image
    from .io.read import read_dicom_series, read_image

    ref = Path(args.reference)
    if ref.is_dir():
        img, chosen, _ = read_dicom_series(ref, args.series)
        return Image.from_sitk(img), chosen.uid, chosen.files
    return read_image(ref), None, None


def _cmd_convert(args) -> int:
    src, out = Path(args.input), Path(args.output)
    if not src.exists():
        raise InvalidImageError(f"Input not found: {src}")
    if out.name.lower().endswith(".dcm"):
        written = _to_dicom_seg(args, src, out)
    elif _is_dicom_seg(src):
        written = _seg_to_labels(args, src, out)
    elif _is_label_file(out):
        raise MedSegAIError(f"{src.name} is not a DICOM SEG; to change a label map's format, name a .dcm output "
                            "(DICOM SEG) or use any image tool.")
    else:
        written = _volume_to_series(args, src, out)
    if not args.quiet:
        print(written)
    return 0


def _seg_to_labels(args, src: Path, out: Path) -> Path:
    from .io.dicom_seg_read import read_dicom_seg
    from .io.seg_nrrd import write_seg_nrrd
    from .io.write import write_image

    if not _is_label_file(out):
        raise MedSegAIError(f"Output {out} must end in .seg.nrrd, .nii.gz, .nii or .nrrd for a DICOM SEG input.")
    reference, series_uid, _ = _reference(args)
    if reference is not None and Path(args.reference).is_dir() and args.series is None:
        reference, series_uid = _referenced_series(src, Path(args.reference))
    seg = read_dicom_seg(src, reference=reference, reference_series_uid=series_uid)
    for note in seg.notes:
        print(f"note: {note}", file=sys.stderr)  # also with -q: the labels differ from the SEG there
    if out.name.lower().endswith(".seg.nrrd"):
        return write_seg_nrrd(seg.labels, seg.segments, out)
    return write_image(seg.labels, out)


def _referenced_series(seg_path: Path, folder: Path):
    """The series of ``folder`` that the SEG references; a clear error when it is not there."""
    import pydicom

    from .io.dicom_seg_write import DicomSegError
    from .io.image import Image
    from .io.read import read_dicom_series

    ds = pydicom.dcmread(str(seg_path), stop_before_pixels=True)
    refs = [str(s.SeriesInstanceUID) for s in ds.get("ReferencedSeriesSequence", [])]
    from .io.dicom_series_select import find_series

    found = {s.uid for s in find_series(folder)}
    hit = next((uid for uid in refs if uid in found), None)
    if hit is None:
        raise DicomSegError(f"{seg_path.name} references series {', '.join(refs) or '(none)'}, which is not in "
                            f"{folder} (found: {', '.join(sorted(found)) or 'no DICOM series'}).")
    img, chosen, _ = read_dicom_series(folder, hit)
    return Image.from_sitk(img), chosen.uid


def _to_dicom_seg(args, src: Path, out: Path) -> Path:
    from .io.dicom_seg_write import AlgorithmInfo, DicomSegError, write_dicom_seg
    from .io.dicom_seg_read import resample_to
    from .io.read import read_image
    from .io.seg_nrrd import read_seg_nrrd
    from .io.segments import segments_from_names
    from .terminology import lookup

    reference, _, files = _reference(args)
    if files is None:
        raise DicomSegError("A DICOM SEG output needs --reference DICOM_FOLDER: the source series it refers to.")
    if src.name.lower().endswith(".seg.nrrd"):
        labels, segments = read_seg_nrrd(src)
    else:  # a plain label map: segments named by value only if the structure table cannot name them
        labels = read_image(src)
        import numpy as np

        values = [int(v) for v in np.unique(labels.array) if v > 0]
        segments = segments_from_names({v: str(v) for v in values}, lookup)
    labels = resample_to(labels.with_array(labels.array.astype("uint16" if labels.array.max() > 255 else "uint8")),
                         reference)
    return write_dicom_seg(labels, segments, files, out, segmentation_type=args.seg_type.upper(),
                           algorithm=AlgorithmInfo(model_id=f"converted from {src.name}"[:64]))


def _volume_to_series(args, src: Path, out: Path) -> Path:
    from .io.dicom_series_write import write_dicom_series
    from .io.read import read_image

    if src.is_dir():
        raise MedSegAIError(f"{src} is already a DICOM folder.")
    return write_dicom_series(read_image(src), out, modality=args.modality,
                              series_description=f"MedSegAI derived from {src.name}"[:64])
