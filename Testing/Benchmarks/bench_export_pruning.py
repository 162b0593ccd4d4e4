"""Export with and without skipping classes that cannot win, side by side on the same class scores.

  .venv/bin/python Testing/Benchmarks/bench_export_pruning.py [--model FOLDER] [--repeats 2]

Runs the bundled model once (nnU-Net mode) on the full-size Pancreas-CT-CB_001 series (512 x 512 x 134), keeps the
class scores on the network grid, then exports them to the input grid alternately with every class
resampled (the path an ``on_chunk`` consumer takes) and with dominated classes skipped (the default
labels-only path). Prints seconds, peak RSS growth and whether the labels are identical.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "MedSegAIInference"))


def main() -> None:
    from medsegai.inference.case_preparation import prepare_case
    from medsegai.inference.export import classes_that_can_win, scores_to_labels
    from medsegai.inference.single_model import RunOptions, _networks, _window
    from medsegai.inference.sliding_window import predict_logits
    from medsegai.io.read import read_image
    from medsegai.nnunet.model_folder import load_model_folder
    from medsegai.progress import Reporter

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path,
                    default=REPO / "Resources/Models/medsegai_ct_demo/MedSegAITrainer__nnUNetPlans__3d_fullres")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("MEDSEGAI_DATA_DIR", REPO.parent / "shared/data")))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    image = read_image(a.data / "ct/pancreas-ct-cb001-dicom/Pancreas-CT-CB_001_CT_dicom")
    model = load_model_folder(a.model)
    # nnU-Net mode: there ``on_chunk`` goes straight into scores_to_labels, so "all" and "pruned"
    # are the same export with and without the skipping (the bundled model itself runs canonical).
    opts = RunOptions(device=torch.device("cpu"), mode="nnunet")
    reporter = Reporter()
    case = prepare_case(model, image, opts.mode, reporter)
    scores = predict_logits(_networks(model, opts), case.data, model.config.num_classes, _window(model, opts),
                            opts.device, reporter)
    print(f"image {image.shape}, scores {tuple(scores.shape)} {scores.dtype}; "
          f"{len(classes_that_can_win(scores))} of {scores.shape[0]} classes can win")
    results = {}
    for r in range(a.repeats):
        for name in (("all", "pruned") if r % 2 == 0 else ("pruned", "all")):
            on_chunk = (lambda idx, res: None) if name == "all" else None
            t = time.perf_counter()
            labels = case.labels_from_scores(scores, on_chunk)
            secs = time.perf_counter() - t
            results.setdefault(name, []).append(secs)
            results[f"{name}_labels"] = labels
            print(f"  {name:<7} {secs:6.1f} s  (peak RSS so far "
                  f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GB)", flush=True)
    same = np.array_equal(results["all_labels"], results["pruned_labels"])
    print(f"every class resampled: {min(results['all']):.1f} s; dominated classes skipped: "
          f"{min(results['pruned']):.1f} s (best of {a.repeats}); labels identical: {same}")


if __name__ == "__main__":
    main()
