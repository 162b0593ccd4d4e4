"""Build the training and held-out folders for the bundled demo model from ../shared/data.

Writes into a scratch folder (never into the repository; the data may not be redistributed):
  train/images/example_ct.nii.gz -> symlink, train/labels/example_ct.nii.gz      (full labels)
  with --with-partial-crops also (off for the shipped model, see below):
  train/images/aorta_crop.nii.gz -> symlink, train/labels/aorta_crop.nii.gz      (partial labels)
  train/images/heart_crop.nii.gz -> symlink, train/labels/heart_crop.nii.gz      (partial labels)
  val/images/dicom_case -> the DICOM series folder, val/labels/dicom_case.nii.gz (held out)
  labels.json in both: TotalSegmentator's 117 'total' names and values, plus 'ignore': 255.

Label choices: structures of the demo set keep TotalSegmentator's values; other TotalSegmentator
structures in a fully labelled map become background (the model is taught not to call them).
In the 1.5 mm crops only a few structures have masks, so every voxel outside them is 'ignore'
(unknown), not background. The shipped model is trained without them: in a first 38-minute CPU
run with the crops, two of every three patches came from them, their only known voxels were a
few vessels and the heart, and the network learned to call everything heart or aorta (held-out
mean Dice 0.002). With ~200-400 iterations on 2 CPU cores, the fully labelled CT alone does better.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

# The demo model's structures (TotalSegmentator 'total' names; values come from its class map).
DEMO_STRUCTURES = [
    "spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "pancreas",
    "lung_lower_lobe_left", "lung_lower_lobe_right", "small_bowel", "duodenum", "colon", "urinary_bladder",
    "sacrum", "vertebrae_S1", "vertebrae_L5", "vertebrae_L4", "vertebrae_L3", "vertebrae_L2", "vertebrae_L1",
    "vertebrae_T12", "heart", "aorta", "inferior_vena_cava", "portal_vein_and_splenic_vein",
    "iliac_artery_left", "iliac_artery_right", "iliac_vena_left", "iliac_vena_right",
    "femur_left", "femur_right", "hip_left", "hip_right", "spinal_cord",
    "gluteus_maximus_left", "gluteus_maximus_right", "gluteus_medius_left", "gluteus_medius_right",
    "gluteus_minimus_left", "gluteus_minimus_right", "autochthon_left", "autochthon_right",
    "iliopsoas_left", "iliopsoas_right",
]
IGNORE = 255


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() or dst.exists():
        dst.unlink()
    os.symlink(src.resolve(), dst)


def _write(arr: np.ndarray, ref: sitk.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = sitk.GetImageFromArray(arr.astype(np.uint8))
    img.CopyInformation(ref)
    sitk.WriteImage(img, str(path), True)


def _full_labels(seg_path: Path, total: dict) -> tuple:
    seg = sitk.ReadImage(str(seg_path))
    arr = sitk.GetArrayFromImage(seg)
    keep = np.zeros(256, np.uint8)
    for v, n in total.items():
        if n in DEMO_STRUCTURES:
            keep[v] = v
    return keep[arr], seg


def _partial_labels(ct_path: Path, masks: dict, name_to_value: dict) -> tuple:
    ct = sitk.ReadImage(str(ct_path))
    out = np.full(sitk.GetArrayFromImage(ct).shape, IGNORE, np.uint8)
    for name, mask_path in masks.items():
        m = sitk.ReadImage(str(mask_path))
        # Some masks are stored on a larger grid than the crop: sample them at the crop's voxels.
        m = sitk.Resample(m, ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0, m.GetPixelID())
        out[sitk.GetArrayFromImage(m) > 0] = name_to_value[name]
    return out, ct


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("MEDSEGAI_DATA_DIR",
                                                                     Path(__file__).resolve().parents[3] / "shared" / "data")))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--with-partial-crops", action="store_true",
                    help="add the 1.5 mm aorta and heart crops with partial labels (unknown voxels = ignore)")
    a = ap.parse_args()
    ts = a.data / "ct" / "totalsegmentator-examples"
    ref = ts / "tests" / "reference_files"
    total = {int(k): v for k, v in json.loads((ts / "totalsegmentator_class_map.json").read_text())["class_map"]["total"].items()}
    names = {"background": 0, **{n: v for v, n in sorted(total.items())}}
    missing = [s for s in DEMO_STRUCTURES if s not in names]
    assert not missing, missing
    labels_json = json.dumps({**names, "ignore": IGNORE}, indent=1)

    train, val = a.out / "train", a.out / "val"
    for d in (train, val):
        d.mkdir(parents=True, exist_ok=True)
        (d / "labels.json").write_text(labels_json)
    # 1. example_ct with TotalSegmentator --fast --force_split labels (full labels).
    _link(ref / "example_ct.nii.gz", train / "images" / "example_ct.nii.gz")
    arr, seg = _full_labels(ref / "example_seg_fast_force_split.nii.gz", total)
    _write(arr, seg, train / "labels" / "example_ct.nii.gz")
    # 2./3. The 1.5 mm crops with their masks (partial labels).
    crops = {
        "aorta_crop": (ref / "aorta_report" / "test_result" / "models" / "ct_cropped.nii.gz",
                       {n: ref / "aorta_report" / "test_result" / "models" / f"{n}.nii.gz"
                        for n in ("aorta", "iliac_artery_left", "iliac_artery_right", "vertebrae_T12")}),
        "heart_crop": (ref / "pulmonary_report" / "models" / "ct_cropped.nii.gz",
                       {"heart": ref / "pulmonary_report" / "models" / "heart.nii.gz"}),
    }
    for case, (ct, masks) in (crops.items() if a.with_partial_crops else ()):
        _link(ct, train / "images" / f"{case}.nii.gz")
        arr, img = _partial_labels(ct, masks, names)
        _write(arr, img, train / "labels" / f"{case}.nii.gz")
    # 4. Held out: the DICOM series (another scan) with TotalSegmentator's labels for it.
    _link(ref / "example_ct_dicom", val / "images" / "dicom_case")
    arr, seg = _full_labels(ref / "example_seg_dicom.nii.gz", total)
    _write(arr, seg, val / "labels" / "dicom_case.nii.gz")
    print(f"training folder: {train}\nheld-out folder: {val}")


if __name__ == "__main__":
    main()
