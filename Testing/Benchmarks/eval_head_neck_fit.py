"""Is the head-and-neck model short of data or of training? Its Dice on cases it trained on.

    .venv/bin/python Testing/Benchmarks/eval_head_neck_fit.py [--cases 14] [--precision bf16]

Reads only training cases (every 9th of the 137, never the held-out split), so nothing here can
tune the model to the validation figures. If training-case Dice is no better than the held-out
Dice of the model card, the model underfits: more data or augmentation cannot help, more training
(compute) or capacity can. Also measures two post-hoc changes on the same cases: keeping each
organ's largest 26-connected component, and a left-right mirrored second pass averaged with the
paired organs' probabilities swapped.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from monai.transforms.utils import get_largest_connected_component_mask

from medsegai import Image, Predictor
from medsegai.datasets import openkbp
from medsegai.evaluate import dice as dice_of
from medsegai.training.transforms import left_right_permutation


def largest_component(mask: np.ndarray) -> np.ndarray:
    return get_largest_connected_component_mask(mask, connectivity=3)  # 26-connected


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("MEDSEGAI_DATA_DIR", "../shared/data")))
    ap.add_argument("--cases", type=int, default=14)
    ap.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    cases = openkbp.training_cases(a.data)[::9][: a.cases]
    predictor = Predictor(task="head_neck_oar", precision=a.precision)
    values = openkbp.organ_values(a.data)
    variants = ("plain", "largest component", "mirror pass", "mirror pass + largest")
    dice = {v: {} for v in variants}
    for case in cases:
        c = openkbp.read_case(a.data, case)
        res = predictor.predict(c.image, return_probabilities=True)
        names = [None] + [s.name for s in sorted(res.segments, key=lambda s: s.value)]
        perm = left_right_permutation(["background"] + names[1:])
        # The OpenKBP array's last axis runs left-right: flipping it with the geometry kept is the
        # mirrored patient.
        img = c.image
        mirrored = Image(np.ascontiguousarray(img.array[..., ::-1]), img.spacing, img.origin, img.direction)
        back = predictor.predict(mirrored, return_probabilities=True).probabilities[..., ::-1]
        avg = np.argmax(res.probabilities.astype(np.float32) + back[perm].astype(np.float32), axis=0)
        line = []
        for name, ref_value in values.items():
            if name not in c.contoured:
                continue
            ref = c.organs == ref_value
            plain, tta = res.labels.array == names.index(name), avg == names.index(name)
            for v, m in zip(variants, (plain, largest_component(plain), tta, largest_component(tta))):
                dice[v].setdefault(name, []).append(dice_of(m, ref))
            line.append(f"{name}={dice['plain'][name][-1]:.3f}")
        print(case, " ".join(line), flush=True)
    print(f"\nmedian Dice over {len(cases)} training cases ({', '.join(cases)}), precision {a.precision}")
    print("| organ | cases | " + " | ".join(variants) + " |\n|---|---|" + "---|" * len(variants))
    for name in values:
        if name in dice["plain"]:
            print(f"| {name} | {len(dice['plain'][name])} | "
                  + " | ".join(f"{np.median(dice[v][name]):.3f}" for v in variants) + " |")


if __name__ == "__main__":
    main()
