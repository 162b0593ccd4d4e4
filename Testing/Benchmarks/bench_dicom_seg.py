"""DICOM SEG writing speed: 117 segments on the full-size Pancreas-CT series (512x512x134).

There is no 117-structure segmentation of that patient, so the label map is built on its grid:
TotalSegmentator's own 117-class labels of its example CT (example_seg.nii.gz, 41 structures present)
resampled to cover the pancreas CT's body, and the structures that example lacks as compact blocks
inside the body, so every one of the 117 total-task structures is present and spans many slices
(more frames than real organs, an upper bound). Prints the figures as JSON; nothing is written to the
repository.

    .venv/bin/python Testing/Benchmarks/bench_dicom_seg.py [--data ../shared/data] [--workers 0]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[2]


def label_map(ct, ts_seg: Path, names) -> np.ndarray:
    ref = ct.to_sitk()
    lab = sitk.ReadImage(str(ts_seg))
    # Stretch the example's labels over the pancreas CT's extent (same orientation, so no mirroring).
    size_ct = np.array(ref.GetSize()) * np.array(ref.GetSpacing())
    size_lab = np.array(lab.GetSize()) * np.array(lab.GetSpacing())
    stretched = sitk.Image(lab)
    stretched.SetSpacing(tuple(np.array(lab.GetSpacing()) * size_ct / size_lab))
    stretched.SetDirection(ref.GetDirection())
    stretched.SetOrigin(ref.GetOrigin())
    arr = sitk.GetArrayFromImage(sitk.Resample(stretched, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                                               sitk.sitkUInt8))
    missing = [v for v in sorted(names) if v and not (arr == v).any()]
    body = np.argwhere((ct.array > -300) & (arr == 0))
    rng = np.random.default_rng(0)
    for v, centre in zip(missing, body[rng.choice(len(body), len(missing), replace=False)]):
        k, j, i = centre
        block = arr[max(k - 6, 0):k + 6, max(j - 8, 0):j + 8, max(i - 8, 0):i + 8]
        block[block == 0] = v
    return arr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("MEDSEGAI_DATA_DIR", REPO.parent / "shared/data")))
    ap.add_argument("--workers", type=int, default=0)
    a = ap.parse_args()

    from medsegai.io.dicom_seg_read import read_dicom_seg
    from medsegai.io.dicom_seg_write import AlgorithmInfo, write_dicom_seg
    from medsegai.io.image import Image
    from medsegai.io.read import read_dicom_series
    from medsegai.io.segments import segments_from_names
    from medsegai.terminology import lookup
    from medsegai.totalseg.tasks import class_map

    folder = a.data / "ct/pancreas-ct-cb001-dicom/Pancreas-CT-CB_001_CT_dicom"
    t = time.perf_counter()
    img, series, _ = read_dicom_series(folder)
    ct = Image.from_sitk(img)
    read_s = time.perf_counter() - t
    names = class_map("total")
    labels = ct.with_array(label_map(ct, a.data / "ct/totalsegmentator-examples/tests/reference_files/example_seg.nii.gz",
                                     names))
    present = len(set(np.unique(labels.array).tolist()) - {0})
    segments = segments_from_names(names, lookup)
    out = {"image_shape": list(ct.shape), "segments": present, "workers": a.workers, "read_series_s": round(read_s, 2)}
    with tempfile.TemporaryDirectory() as tmp:
        for seg_type in ("BINARY", "LABELMAP"):
            path = Path(tmp) / f"{seg_type}.dcm"
            t = time.perf_counter()
            write_dicom_seg(labels, segments, series.files, path, algorithm=AlgorithmInfo("benchmark"),
                            segmentation_type=seg_type, workers=a.workers)
            write_s = time.perf_counter() - t
            t = time.perf_counter()
            back = read_dicom_seg(path, reference=ct).relabel({s.name: s.value for s in segments})
            read_back_s = time.perf_counter() - t
            out[seg_type] = {"write_s": round(write_s, 2), "file_mb": round(path.stat().st_size / 2**20, 1),
                             "read_back_and_resample_s": round(read_back_s, 2),
                             "identical": bool(np.array_equal(back.labels.array, labels.array))}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
