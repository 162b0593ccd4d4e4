"""Small crops of the real TotalSegmentator example CT and its reference label map."""
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REFERENCE = Path("ct/totalsegmentator-examples/tests/reference_files")
CLASS_MAP = Path(__file__).resolve().parents[3] / "MedSegAIInference/medsegai/totalseg/class_maps.json"


def total_label_names() -> dict:
    return {int(k): v for k, v in json.loads(CLASS_MAP.read_text())["tasks"]["total"].items()}


def ct_and_labels(data_dir: Path, crop=(slice(8, 24), slice(20, 70), slice(25, 95))):
    """(CT int16 [k, j, i], TotalSegmentator labels uint8 [k, j, i]) cropped to the abdomen."""
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(data_dir / REFERENCE / "example_ct_sm.nii.gz")))
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(data_dir / REFERENCE / "example_seg.nii.gz")))
    return np.ascontiguousarray(ct[crop]), np.ascontiguousarray(seg[crop])
