"""Checkpoints are loaded without executing pickled code, and real nnU-Net checkpoints still load."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import medsegai
from medsegai import InvalidModelError, UnsafeCheckpointError
from medsegai.nnunet.checkpoint import load_checkpoint
from medsegai.nnunet.model_folder import load_model_folder


class _RunsCode:
    """Unpickling this calls os.system: what a tampered checkpoint does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _BuiltinCall:
    def __reduce__(self):
        return (eval, ("__import__('os').getpid()",))


def _tampered_copy(small_model: Path, dest: Path, payload) -> Path:
    folder = dest / small_model.name
    shutil.copytree(small_model, folder)
    ckpt_path = folder / "fold_0" / "checkpoint_final.pth"
    ckpt = torch.load(ckpt_path, weights_only=False)  # our own file, written by the test factory
    ckpt["logging"] = {"note": payload}
    torch.save(ckpt, ckpt_path)
    return folder


def test_code_executing_checkpoint_is_refused(small_model, tmp_path):
    marker = tmp_path / "pwned"
    folder = _tampered_copy(small_model, tmp_path, _RunsCode(marker))
    # Control: the file really runs code when loaded the unsafe way (in a child process, whose
    # side effect is the marker file). Without this, a harmless payload would make the test vacuous.
    code = f"import torch; torch.load({str(folder / 'fold_0' / 'checkpoint_final.pth')!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, timeout=120)
    assert marker.exists(), "the payload did not run under weights_only=False: the test proves nothing"
    marker.unlink()

    with pytest.raises(UnsafeCheckpointError, match=r"Refusing to load .*checkpoint_final\.pth.*system") as info:
        load_model_folder(folder)
    assert "execute code" in str(info.value)
    assert not marker.exists()
    # Through the public API the same refusal, and still no side effect.
    img = medsegai.Image(np.zeros((8, 8, 8), np.int16), spacing=(3, 3, 3))
    with pytest.raises(UnsafeCheckpointError):
        medsegai.segment(img, model=folder, device="cpu")
    assert not marker.exists()


def test_builtin_eval_is_refused(tmp_path):
    path = tmp_path / "checkpoint_final.pth"
    torch.save({"network_weights": {"w": torch.zeros(1)}, "x": _BuiltinCall()}, path)
    with pytest.raises(UnsafeCheckpointError, match="eval"):
        load_checkpoint(path)


def test_cli_refuses_unsafe_checkpoint(small_model, tmp_path):
    marker = tmp_path / "pwned"
    folder = _tampered_copy(small_model, tmp_path, _RunsCode(marker))
    ct = tmp_path / "ct.nrrd"
    import SimpleITK as sitk

    sitk.WriteImage(sitk.Image(16, 16, 16, sitk.sitkInt16), str(ct))
    proc = subprocess.run([sys.executable, "-m", "medsegai.cli", "segment", "-i", str(ct), "-o", str(tmp_path / "out"),
                           "--model", str(folder), "--device", "cpu", "-q"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert "Refusing to load" in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()


def _nnunet_style_checkpoint(small_model: Path) -> dict:
    """What nnU-Net's trainer saves: numpy scalars in logging, optimizer state, a grad scaler."""
    ckpt = torch.load(small_model / "fold_0" / "checkpoint_final.pth", weights_only=False)
    ckpt.update({
        "optimizer_state": {"state": {0: {"momentum_buffer": torch.zeros(3)}},
                            "param_groups": [{"lr": 0.01, "momentum": 0.99, "nesterov": True, "params": [0]}]},
        "grad_scaler_state": None,
        "logging": {
            "mean_fg_dice": [np.float64(0.41), np.float32(0.52)],
            "ema_fg_dice": [np.float64(0.4)],
            "dice_per_class_or_region": [[np.float64(0.1), np.float64(0.9)]],
            "train_losses": [np.float32(-0.3)],
            "epoch_start_timestamps": [1700000000.0],
            "lrs": [0.01],
            "counts": np.array([1, 2, 3], dtype=np.int64),
        },
        "_best_ema": np.float64(0.47),
        "inference_allowed_mirroring_axes": (0, 1, 2),
    })
    return ckpt


def test_nnunet_checkpoint_with_numpy_logging_loads(small_model, tmp_path):
    path = tmp_path / "checkpoint_final.pth"
    torch.save(_nnunet_style_checkpoint(small_model), path)
    ck = load_checkpoint(path)
    assert ck["_best_ema"] == pytest.approx(0.47)
    assert ck["logging"]["mean_fg_dice"][1] == pytest.approx(0.52)
    np.testing.assert_array_equal(ck["logging"]["counts"], [1, 2, 3])
    assert ck["inference_allowed_mirroring_axes"] == (0, 1, 2)
    ref = torch.load(small_model / "fold_0" / "checkpoint_final.pth", weights_only=True)["network_weights"]
    assert ck["network_weights"].keys() == ref.keys()
    for k in ref:
        assert torch.equal(ck["network_weights"][k], ref[k])


def test_checkpoint_pickled_under_numpy1_loads(small_model, tmp_path):
    """TotalSegmentator's weights (2023) were pickled under numpy 1.x, which names numpy scalars
    ``numpy.core.multiarray.scalar``; numpy 2 moved that to ``numpy._core``. Rewrite a checkpoint's
    pickle to the old names (exactly what numpy 1.x writes) and load it."""
    new = tmp_path / "np2.pth"
    torch.save(_nnunet_style_checkpoint(small_model), new)
    old = tmp_path / "np1.pth"
    with zipfile.ZipFile(new) as zin, zipfile.ZipFile(old, "w", zipfile.ZIP_STORED) as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name.endswith("/data.pkl"):
                assert b"numpy._core.multiarray" in data
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            zout.writestr(name, data)
    ck = load_checkpoint(old)
    assert ck["_best_ema"] == pytest.approx(0.47)
    np.testing.assert_array_equal(ck["logging"]["counts"], [1, 2, 3])


def test_bare_state_dict_and_state_dict_key(small_model, tmp_path):
    sd = torch.load(small_model / "fold_0" / "checkpoint_final.pth", weights_only=True)["network_weights"]
    torch.save(sd, tmp_path / "bare.pth")
    torch.save({"state_dict": sd}, tmp_path / "lightning.pth")
    for name in ("bare.pth", "lightning.pth"):
        assert load_checkpoint(tmp_path / name)["network_weights"].keys() == sd.keys()


def test_non_checkpoint_content_is_reported_as_corrupt_not_unsafe(tmp_path):
    path = tmp_path / "checkpoint_final.pth"
    path.write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(InvalidModelError) as info:
        load_checkpoint(path)
    assert not isinstance(info.value, UnsafeCheckpointError)
    assert "corrupt" in str(info.value)
