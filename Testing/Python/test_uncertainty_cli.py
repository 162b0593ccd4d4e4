"""``medsegai segment --uncertainty``: the map file on the input grid, the per-segment CSV, the preview row."""
from __future__ import annotations

import csv

import numpy as np
from PIL import Image as PILImage

from medsegai.cli import main
from medsegai.io.image import Image
from medsegai.io.read import read_image
from medsegai.io.write import write_image

CROP = (slice(4, 28), slice(20, 84), slice(25, 97))


def test_cli_writes_map_csv_and_preview_overlay(ts_ref, small_model, tmp_path):
    img = read_image(ts_ref / "example_ct_sm.nii.gz")
    ijk0 = np.array([CROP[2].start, CROP[1].start, CROP[0].start, 1.0])
    crop = Image(np.ascontiguousarray(img.array[CROP]), img.spacing, tuple((img.ijk_to_lps() @ ijk0)[:3]),
                 img.direction)
    src = write_image(crop, tmp_path / "ct.nii.gz")
    common = ["segment", "-i", str(src), "--model", str(small_model), "--ml", "--preview", "-d", "cpu", "-nt", "1",
              "-q"]
    assert main(common + ["-o", str(tmp_path / "plain")]) == 0
    assert main(common + ["-o", str(tmp_path / "unc"), "--uncertainty", "tta", "--uncertainty-passes", "3"]) == 0

    unc = read_image(tmp_path / "unc" / "segmentation_uncertainty.nii.gz")
    assert unc.same_grid(crop) and unc.array.dtype == np.float32
    assert 0.0 <= unc.array.min() and unc.array.max() <= 1.0 and unc.array.max() > 0.05
    labels = read_image(tmp_path / "unc" / "segmentation.nii.gz").array
    np.testing.assert_array_equal(labels, read_image(tmp_path / "plain" / "segmentation.nii.gz").array)
    rows = list(csv.DictReader(open(tmp_path / "unc" / "segmentation_confidence.csv")))
    names = {r["value"]: r["name"] for r in csv.DictReader(open(tmp_path / "unc" / "segmentation_labels.csv"))}
    present = {names[str(v)] for v in np.unique(labels) if v}
    assert {r["segment"] for r in rows} == present
    for r in rows:
        assert 0.0 <= float(r["soft_dice"]) <= 1.0 and r["flagged"] in ("0", "1")
    assert not (tmp_path / "plain" / "segmentation_uncertainty.nii.gz").exists()
    # The preview gains a row of uncertainty panels, drawn in heat colours (red > green > blue).
    def heat_pixels(path):
        rgb = np.asarray(PILImage.open(path).convert("RGB")).astype(int)
        return rgb.shape[0], int(((rgb[..., 0] - rgb[..., 2] > 60) & (rgb[..., 0] >= rgb[..., 1])).sum())

    plain_h, plain_heat = heat_pixels(tmp_path / "plain" / "segmentation_preview.png")
    unc_h, unc_heat = heat_pixels(tmp_path / "unc" / "segmentation_preview.png")
    assert unc_h > plain_h + 100 and unc_heat > plain_heat + 500
