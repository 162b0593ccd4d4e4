"""Per-class patch sampling (structures contoured in few cases) and bf16 training."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch

from training_support import make_training_folder, tiny_options


def _cases(n_cases=10, rare_in=(3,), shape=(20, 24, 24)):
    """Cases with classes 1 and 2 everywhere and class 3 only in ``rare_in``."""
    from medsegai.training.transforms import cached_transforms, class_sampling_label

    out = []
    rng = np.random.default_rng(0)
    for i in range(n_cases):
        target = np.zeros((1,) + shape, np.int16)
        target[0, 2:6, 2:8, 2:8] = 1
        target[0, 10:14, 12:20, 3:9] = 2
        if i in rare_in:
            target[0, 14:17, 3:6, 15:18] = 3
        item = {"image": rng.normal(size=(1,) + shape).astype(np.float32), "target": target,
                "sampling": class_sampling_label(target, 4)}
        out.append(cached_transforms((8, 8, 8), 4)(item))
    return out


def test_per_class_sampling_centres_rare_structures_as_often_as_common_ones():
    from medsegai.training.transforms import BACKGROUND_SHARE, ClassBalancedSampler, training_transforms

    cache = _cases()
    present = np.array([[len(ix) > 0 for ix in c["sampling_indices"]] for c in cache])
    assert present[:, 3].sum() == 1
    sampler = ClassBalancedSampler(present, lambda r: training_transforms(
        (8, 8, 8), 4, elastic_p=0.0, limited_fov_p=0.0, ratios=r), seed=1)
    rng = np.random.default_rng(0)
    n = 600
    seen = Counter()
    for _ in range(n):
        patch = sampler.draw(rng, cache)
        for c in np.unique(np.asarray(patch["target"])):
            seen[int(c)] += 1
    # Each structure is in (at least) its own share of patches; picking the case first would put
    # class 3, contoured in 1 case of 10, in about 1/10 x 1/4 of them.
    share = (1 - BACKGROUND_SHARE) / 3
    for c in (1, 2, 3):
        assert seen[c] / n > 0.8 * share, (c, seen)


def test_per_class_sampling_keeps_a_background_share_and_only_asks_cases_that_have_the_class():
    from medsegai.training.transforms import BACKGROUND_SHARE, ClassBalancedSampler, training_transforms

    cache = _cases(rare_in=(4,))
    present = np.array([[len(ix) > 0 for ix in c["sampling_indices"]] for c in cache])
    present[:, 2] = False  # as if no case had class 2
    sampler = ClassBalancedSampler(present, lambda r: training_transforms(
        (8, 8, 8), 4, elastic_p=0.0, limited_fov_p=0.0, ratios=r))
    assert sampler.classes == [1, 3]  # a class no case has is never asked for
    rng = np.random.default_rng(3)
    draws = [sampler.choose(rng) for _ in range(3000)]
    classes = Counter(c for c, _ in draws)
    assert classes[0] / 3000 == pytest.approx(BACKGROUND_SHARE, abs=0.03)
    assert classes[1] == pytest.approx(classes[3], rel=0.12) and classes[2] == 0
    assert {case for c, case in draws if c == 3} == {4}
    assert len({case for c, case in draws if c == 0}) == len(cache)


def test_bf16_training_is_refused_where_the_cpu_has_no_bf16_units(ts_ref, tmp_path, monkeypatch):
    from medsegai.inference import device
    from medsegai.training import train
    from medsegai.training.errors import TrainingConfigError

    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: False)
    assert device.fastest_training_precision(torch.device("cpu")) == "fp32"
    data = make_training_folder(ts_ref, tmp_path / "d")
    with pytest.raises(TrainingConfigError, match="no bf16 units"):
        train(tiny_options(data, tmp_path / "out", precision="bf16"), log=lambda m: None)
    assert not (tmp_path / "out").exists()  # refused before anything is written
    with pytest.raises(TrainingConfigError, match="Unknown precision"):
        train(tiny_options(data, tmp_path / "out", precision="fp16"), log=lambda m: None)


@pytest.mark.skipif(not __import__("medsegai.inference.device", fromlist=["x"]).cpu_has_bf16_units(),
                    reason="this CPU has no bf16 units (AVX-512 BF16 or AMX)")
def test_bf16_per_class_training_writes_a_model_that_runs(ts_ref, tmp_path):
    from medsegai import Predictor
    from medsegai.training import train

    data = make_training_folder(ts_ref, tmp_path / "d", keep=(1, 5))
    logs = []
    summary = train(tiny_options(data, tmp_path / "out", iterations=3, precision="auto", class_sampling="per-class"),
                    log=logs.append)
    assert np.isfinite(summary.final_loss)
    assert any(m.endswith("bf16") and m.startswith("network:") for m in logs)
    assert any(m.startswith("patch centres:") for m in logs)
    ck = torch.load(summary.model_folder / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=True)
    assert ck["medsegai"]["training_precision"] == "bf16"
    assert ck["medsegai"]["class_sampling"] == "per-class"
    record = json.loads((summary.model_folder / "training_log.json").read_text())
    assert record["options"]["precision"] == "auto" and record["options"]["class_sampling"] == "per-class"
    image = str(data / "images" / "ct_sm.nii.gz")
    labels = Predictor(model=str(summary.model_folder)).predict(image).labels.array
    assert labels.shape[0] > 0
