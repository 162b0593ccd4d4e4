"""Small real training folders for the training tests, built from the real CT in the data folder."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import SimpleITK as sitk

# TotalSegmentator values, kept as they are: the model must output these values.
NAMES = {"background": 0, "spleen": 1, "kidney_right": 2, "kidney_left": 3, "gallbladder": 4, "liver": 5}


def make_training_folder(ts_ref: Path, dest: Path, *, names: Optional[Dict[str, int]] = None,
                         layout: str = "simple", keep=(1, 5), case: str = "ct_sm") -> Path:
    """example_ct_sm (real CT) with TotalSegmentator's labels, only ``keep`` values kept."""
    names = dict(names or NAMES)
    img = sitk.ReadImage(str(ts_ref / "example_ct_sm.nii.gz"))
    seg = sitk.ReadImage(str(ts_ref / "example_seg.nii.gz"))
    arr = sitk.GetArrayFromImage(seg)
    arr = np.where(np.isin(arr, keep), arr, 0).astype(np.uint8)
    lab = sitk.GetImageFromArray(arr)
    lab.CopyInformation(seg)
    img_dir, lab_dir = ("imagesTr", "labelsTr") if layout == "nnunet" else ("images", "labels")
    (dest / img_dir).mkdir(parents=True, exist_ok=True)
    (dest / lab_dir).mkdir(parents=True, exist_ok=True)
    img_name = f"{case}_0000.nii.gz" if layout == "nnunet" else f"{case}.nii.gz"
    sitk.WriteImage(img, str(dest / img_dir / img_name))
    sitk.WriteImage(lab, str(dest / lab_dir / f"{case}.nii.gz"))
    (dest / "labels.json").write_text(json.dumps(names))
    return dest


def tiny_options(data: Path, out: Path, **kw):
    from medsegai.training import ArchitectureOptions, TrainOptions

    base = dict(data_dir=data, output_dir=out, spacing=(6.0, 6.0, 6.0), patch=(16, 32, 32), batch_size=1,
                iterations=3, arch=ArchitectureOptions(features=[4, 8, 16], dropout_p=0.1), device="cpu",
                threads=1, checkpoint_every=1, log_every=1, elastic_p=0.0)
    base.update(kw)
    return TrainOptions(**base)
