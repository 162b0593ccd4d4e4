"""The demo's head-and-neck part: a held-out OpenKBP patient through the organs-at-risk task.

Runs only where the shared data folder holds the OpenKBP cases (they are not downloadable from
a pinned URL, unlike the sample CT). The case is one the model never saw in training (the
validation split), read with its true orientation; the run writes the CT as segmented, the
segmentation files, the uncertainty map and a preview, and prints Dice against the experts'
contours.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

import numpy as np

TASK = "head_neck_oar"
DEMO_CASE = "pt_60"  # held out; one of the held-out patients with all seven organs contoured


def head_neck_demo(out_dir: Path, data_dir: Path, *, device: str = "auto", threads: Optional[int] = None,
                   uncertainty: Optional[str] = "entropy", progress=None, log=print) -> Dict[str, Path]:
    import SimpleITK as sitk

    from .api import segment
    from .datasets import openkbp
    from .outputs import write_result_files
    from .preview import write_preview

    if DEMO_CASE not in openkbp.validation_cases():  # the demo must never show a training case
        raise AssertionError(f"{DEMO_CASE} is not in the held-out split")
    case = openkbp.read_case(data_dir, DEMO_CASE)
    log(f"head and neck: held-out OpenKBP patient {DEMO_CASE} ({'x'.join(map(str, case.image.shape[::-1]))} voxels), "
        f"task {TASK}")
    result = segment(case.image, task=TASK, device=device, threads=threads, uncertainty=uncertainty,
                     progress=progress)
    out_dir = Path(out_dir)
    stem = f"head_neck_{DEMO_CASE}"
    written = write_result_files(result, out_dir, stem=stem)
    ct_path = out_dir / f"{stem}_ct.nii.gz"
    sitk.WriteImage(case.image.to_sitk(), str(ct_path), True)  # the CT as segmented, to open beside the result
    written["head_neck_ct"] = ct_path
    written["head_neck_preview"] = write_preview(case.image, result, out_dir / f"{stem}_preview.png")
    values = openkbp.organ_values(data_dir)
    by_name = {s.name: s.value for s in result.segments}
    scores = []
    for name in case.contoured:
        p, r = result.labels.array == by_name[name], case.organs == values[name]
        scores.append(f"{name} {2.0 * np.sum(p & r) / max(int(p.sum()) + int(r.sum()), 1):.2f}")
    log("head and neck Dice against the experts' contours: " + ", ".join(scores))
    for warning in result.warnings:
        log(f"warning: {warning}")
    log("head and neck timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()))
    return written
