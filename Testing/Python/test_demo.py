"""The README's main job: `medsegai demo` on the sample CT with the bundled model."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image as PILImage


@pytest.fixture(scope="module")
def demo_outputs(data_dir, tmp_path_factory):
    from medsegai.cli import main

    out = tmp_path_factory.mktemp("demo")
    import os

    os.environ["MEDSEGAI_DATA_DIR"] = str(data_dir)
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["demo", "-o", str(out), "--device", "cpu", "--no-download"])
    assert rc == 0
    return out, buf.getvalue()


def test_demo_writes_segmentation_preview_and_scores(demo_outputs):
    out, printed = demo_outputs
    seg = out / "sample_ct.nii.gz"
    assert (out / "sample_ct.seg.nrrd").is_file() and seg.is_file()
    assert (out / "sample_ct_uncertainty.nii.gz").is_file() or (out / "sample_ct_probabilities.npz").is_file()
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(seg)))
    assert labels.shape == (30, 101, 122)
    found = set(np.unique(labels).tolist()) - {0}
    # TotalSegmentator's values (liver = 5), and only values the bundled model learned.
    import json
    from pathlib import Path

    listed = json.loads((Path(__file__).resolve().parents[2] / "Resources/Models/medsegai_ct_demo/label_names.json")
                        .read_text())["structures"]
    assert 5 in found and found <= {s["value"] for s in listed}, found
    png = PILImage.open(out / "sample_ct_preview.png")
    arr = np.asarray(png.convert("RGB"))
    assert png.width >= 900 and png.height >= 300
    # Coloured labels are drawn (not only grey CT).
    rgb = arr.reshape(-1, 3).astype(int)
    assert (np.abs(rgb[:, 0] - rgb[:, 1]) > 40).mean() > 0.01
    # The command says where the outputs are.
    assert "outputs:" in printed and str((out / "sample_ct_preview.png").resolve()) in printed


def test_sample_ct_is_verified_and_cached(data_dir, tmp_path, monkeypatch):
    from medsegai import sample_data

    real = data_dir / sample_data.SAMPLE_CT.relative_path
    monkeypatch.setenv("MEDSEGAI_DATA_DIR", str(tmp_path / "no-data"))
    monkeypatch.setattr(sample_data, "_cache_dir", lambda: tmp_path / "cache")
    calls = []

    def fake_download(url, dest):
        calls.append(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(real, dest)

    monkeypatch.setattr(sample_data, "_download", fake_download)
    p = sample_data.sample_ct(log=lambda m: None)
    assert p.is_file() and sample_data.sha256_of(p) == sample_data.SAMPLE_CT.sha256
    assert calls == [sample_data.SAMPLE_CT.url] and "/wasserth/TotalSegmentator/" in calls[0]
    assert sample_data.sample_ct(log=lambda m: None) == p and len(calls) == 1  # from the cache now


def test_sample_ct_with_wrong_hash_is_refused(tmp_path, monkeypatch):
    from medsegai import sample_data

    monkeypatch.setenv("MEDSEGAI_DATA_DIR", str(tmp_path / "no-data"))
    monkeypatch.setattr(sample_data, "_cache_dir", lambda: tmp_path / "cache")

    def evil_download(url, dest):
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(b"not the CT")

    monkeypatch.setattr(sample_data, "_download", evil_download)
    with pytest.raises(sample_data.SampleDataError, match="was deleted"):
        sample_data.sample_ct(log=lambda m: None)
    assert not any((tmp_path / "cache").rglob("*.nii.gz*"))
    with pytest.raises(sample_data.SampleDataError, match="downloads are off"):
        sample_data.sample_ct(allow_download=False, log=lambda m: None)


def test_local_sample_with_other_content_is_refused(tmp_path, monkeypatch):
    from medsegai import sample_data

    local = tmp_path / "data" / sample_data.SAMPLE_CT.relative_path
    local.parent.mkdir(parents=True)
    local.write_bytes(b"something else")
    monkeypatch.setenv("MEDSEGAI_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(sample_data.SampleDataError, match="expected SHA256"):
        sample_data.sample_ct(log=lambda m: None)
