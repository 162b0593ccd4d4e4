"""The bundled demo model: size, format, structures, dropout, and the Dice its model card reports."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO / "Resources" / "Models" / "medsegai_ct_demo"
FOLDER = MODEL_DIR / "MedSegAITrainer__nnUNetPlans__3d_fullres"


def _card_dice() -> dict:
    """The held-out Dice table of MODEL_CARD.md: rows '| name | 0.123 |'."""
    text = (MODEL_DIR / "MODEL_CARD.md").read_text()
    section = text.split("<!-- held-out-dice -->")[1].split("<!-- /held-out-dice -->")[0]
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^\|\s*([a-z0-9_]+)\s*\|\s*([0-9.]+)\s*\|", section, re.M)}


def test_bundled_model_folder_is_small_and_loads():
    from medsegai.nnunet.model_folder import load_model_folder

    size = sum(p.stat().st_size for p in MODEL_DIR.rglob("*") if p.is_file())
    assert size <= 20 * 2**20, f"{size / 2**20:.1f} MB"
    model = load_model_folder(FOLDER)
    assert model.dropout_p > 0  # Monte Carlo dropout can use it
    assert min(model.config.spacing) >= 3.0
    assert model.mirror_axes is None  # left/right structures differ: never mirrored


def test_bundled_model_has_totalsegmentator_names_and_values(data_dir):
    cmap = json.loads((data_dir / "ct/totalsegmentator-examples/totalsegmentator_class_map.json").read_text())
    total = {int(k): v for k, v in cmap["class_map"]["total"].items()}
    listed = json.loads((MODEL_DIR / "label_names.json").read_text())["structures"]
    assert len(listed) >= 20
    for s in listed:
        assert total[s["value"]] == s["name"]
    ck = torch.load(FOLDER / "fold_0" / "checkpoint_final.pth", weights_only=True)
    assert [s["value"] for s in listed] == [v for v in ck["medsegai"]["trained_label_values"] if v]
    for needed in ("liver", "spleen", "kidney_left", "kidney_right", "aorta", "urinary_bladder", "hip_left"):
        assert needed in {s["name"] for s in listed}


def test_model_card_is_honest_about_held_out_dice(ts_ref):
    """Recompute the held-out Dice of the card on the DICOM series the model never saw."""
    import medsegai
    from medsegai.nnunet.model_folder import load_model_folder
    from medsegai.training.dataset import LabelMap, Pair, load_case
    from medsegai.training.validation import dice_per_structure

    card = (MODEL_DIR / "MODEL_CARD.md").read_text()
    assert "not a clinical" in card.lower()
    reported = _card_dice()
    assert len(reported) >= 10
    names = load_model_folder(FOLDER).config.label_names
    case = load_case(Pair("dicom", ts_ref / "example_ct_dicom", ts_ref / "example_seg_dicom.nii.gz"), LabelMap(names))
    res = medsegai.segment(case.image, model=FOLDER, device="cpu")
    by_name = {n: v for v, n in names.items()}
    got = dice_per_structure(res.labels.array, case.label, names, [by_name[n] for n in reported])
    for name, d in reported.items():
        assert got.get(name, 0.0) == pytest.approx(d, abs=0.01), name
    assert np.isfinite(list(got.values())).all()


def test_bundled_model_finds_large_organs_on_unseen_scan(ts_ref):
    from medsegai.nnunet.model_folder import load_model_folder
    from medsegai.training.dataset import LabelMap, Pair, load_case
    from medsegai.training.validation import dice_per_structure

    import medsegai

    names = load_model_folder(FOLDER).config.label_names
    case = load_case(Pair("dicom", ts_ref / "example_ct_dicom", ts_ref / "example_seg_dicom.nii.gz"), LabelMap(names))
    res = medsegai.segment(case.image, model=FOLDER, device="cpu")
    got = dice_per_structure(res.labels.array, case.label, names, [1, 5])
    # Measured 0.64 and 0.32 (MODEL_CARD.md); fed the DICOM's LPS array as stored, it gets ~0.01 and 0.
    assert got.get("liver", 0) > 0.5 and got.get("spleen", 0) > 0.25, got
