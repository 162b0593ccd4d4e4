"""Build the training and held-out folders of the head-and-neck organ model from ../shared/data.

Writes into a scratch folder (never into the repository; the data stay in the shared folder):
  train/imagesTr/pt_N_0000.nii.gz, train/labelsTr/pt_N.nii.gz   137 cases not in the split
  val/imagesTr/...,  val/labelsTr/...                              the 33 held-out cases
  labels.json and unlabelled.json (organs a case has no contour of) in both.
Images get their true orientation (medsegai.datasets.openkbp explains why and how).
Held out: Resources/Splits/openkbp_validation.json (case number divisible by 5), chosen before
any result was seen.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from medsegai.datasets import openkbp


def write_folder(root: Path, cases, out: Path) -> None:
    values = openkbp.organ_values(root)
    labels = {"background": 0, **dict(sorted(values.items(), key=lambda kv: kv[1]))}
    unlabelled = {}
    for case in cases:
        img, lab = out / "imagesTr" / f"{case}_0000.nii.gz", out / "labelsTr" / f"{case}.nii.gz"
        if not (img.exists() and lab.exists()):
            openkbp.write_case_files(root, case, img, lab)
        missing = [n for n in values if n not in openkbp.contoured(root, case)]
        if missing:
            unlabelled[case] = missing
    (out / "labels.json").write_text(json.dumps(labels, indent=1))
    (out / "unlabelled.json").write_text(json.dumps(unlabelled, indent=1))
    print(f"{out}: {len(cases)} cases, {len(unlabelled)} with some organs not contoured")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="the shared data folder")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=None, help="only the first N training cases (for a quick try)")
    a = ap.parse_args()
    train = openkbp.training_cases(a.data)[: a.limit]
    write_folder(a.data, train, a.out / "train")
    write_folder(a.data, openkbp.validation_cases(), a.out / "val")


if __name__ == "__main__":
    main()
