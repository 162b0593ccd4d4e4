"""``medsegai evaluate``: a DICOM SEG, a .seg.nrrd or a label map scored against a reference of any of
those forms, on real runs of the bundled model over a real DICOM series, TotalSegmentator's reference
labels and dcmqi's reference SEG; plus the one-line errors of pairs that cannot be compared."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("highdicom")

from dicom_seg_support import derived_series  # noqa: E402
from medsegai.cli import main  # noqa: E402
from medsegai.evaluate import EvaluationError, evaluate  # noqa: E402
from medsegai.io import read_image  # noqa: E402
from medsegai.io.image import Image  # noqa: E402
from medsegai.io.write import write_image  # noqa: E402
from medsegai.totalseg.tasks import class_map  # noqa: E402

DCMQI = "dicom-seg/dcmqi/data/segmentations"


@pytest.fixture(scope="module")
def run(ts_ref, tmp_path_factory):
    """The bundled model over a DICOM series of the small example CT: NIfTI, .seg.nrrd, labels CSV and SEG."""
    root = tmp_path_factory.mktemp("eval")
    series = derived_series(ts_ref / "example_ct_sm.nii.gz", root / "series", "CT")
    out = root / "out"
    assert main(["segment", "-i", str(series), "-o", str(out), "-ot", "dicom_seg", "--ml", "-d", "cpu", "-q"]) == 0
    return out


@pytest.fixture(scope="module")
def total_labels(tmp_path_factory):
    path = tmp_path_factory.mktemp("labels") / "total.json"
    path.write_text(json.dumps({name: value for value, name in class_map("total").items()}))
    return path


@pytest.fixture(scope="module")
def reference_on_run_grid(ts_ref, run, tmp_path_factory):
    """TotalSegmentator's 1.5 mm reference labels put on the run's grid with SimpleITK (not our code)."""
    grid = sitk.ReadImage(str(run / "segmentation.nii.gz"))
    ref = sitk.ReadImage(str(ts_ref / "example_seg.nii.gz"))
    out = sitk.Resample(ref, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, ref.GetPixelID())
    path = tmp_path_factory.mktemp("ref") / "reference.nii.gz"
    sitk.WriteImage(out, str(path))
    return path


def test_the_seg_of_a_run_scores_perfectly_against_its_own_nifti_and_seg_nrrd(run):
    for other in ("segmentation.nii.gz", "segmentation.seg.nrrd"):
        result = evaluate(run / "segmentation.dcm", run / other)
        present = set(np.unique(read_image(run / "segmentation.nii.gz").array).tolist()) - {0}
        assert len(result.scores) == len(present) >= 2
        assert all(s.dice == 1.0 and s.hd95_mm == 0.0 for s in result.scores), result.scores
        assert result.not_in_reference == []


def test_scores_against_totalsegmentators_reference_equal_a_direct_count(run, reference_on_run_grid, total_labels):
    from medsegai.evaluate import read_labels_table

    pred = read_image(run / "segmentation.nii.gz").array
    ref = read_image(reference_on_run_grid).array
    ours = read_labels_table(run / "segmentation_labels.csv")
    theirs = read_labels_table(total_labels)
    by_seg = evaluate(run / "segmentation.dcm", reference_on_run_grid, reference_labels=theirs)
    by_nifti = evaluate(run / "segmentation.nii.gz", reference_on_run_grid, reference_labels=theirs)
    assert by_seg.scores == by_nifti.scores  # the SEG and the NIfTI of one run are the same segmentation
    scored = {s.name: s for s in by_seg.scores}
    assert "liver" in scored and scored["liver"].dice > 0.3
    for name, s in scored.items():
        r = ref == theirs[name]
        p = pred == ours[name] if name in ours else np.zeros_like(r)
        assert s.voxels_reference == int(r.sum()) and s.voxels_prediction == int(p.sum())
        assert s.dice == pytest.approx(2 * (p & r).sum() / (p.sum() + r.sum()), abs=1e-12), name
    # Reference structures the model does not know score 0; they are not dropped.
    assert any(s.dice == 0.0 and s.voxels_prediction == 0 for s in by_seg.scores)


def test_the_prediction_is_put_on_the_references_grid(run, ts_ref, total_labels):
    """The 1.5 mm reference as it is: the 3 mm prediction is resampled onto it, not the other way round."""
    result = evaluate(run / "segmentation.dcm", ts_ref / "example_seg.nii.gz",
                      reference_labels=json.loads(total_labels.read_text()))
    ref = read_image(ts_ref / "example_seg.nii.gz")
    liver = next(s for s in result.scores if s.name == "liver")
    assert liver.voxels_reference == int((ref.array == 5).sum()) and 0.3 < liver.dice < 1.0


def test_hd95_is_the_shift_in_millimetres(tmp_path):
    ref = np.zeros((20, 30, 30), np.uint8)
    ref[5:15, 10:20, 10:20] = 1
    pred = np.roll(ref, 2, axis=2)  # two voxels along i, spacing 1.5 mm there
    for name, arr in (("ref.nii.gz", ref), ("pred.nii.gz", pred)):
        write_image(Image(arr, (1.5, 1.0, 2.0), (0.0, 0.0, 0.0), np.eye(3)), tmp_path / name)
    (s,) = evaluate(tmp_path / "pred.nii.gz", tmp_path / "ref.nii.gz").scores
    assert s.name == "1" and s.dice == pytest.approx(0.8) and s.hd95_mm == pytest.approx(3.0)


def test_dcmqis_reference_seg_against_the_label_map_it_was_made_from(data_dir, tmp_path):
    seg, nrrd = data_dir / DCMQI / "liver.dcm", data_dir / DCMQI / "liver_seg.nrrd"
    (s,) = evaluate(seg, nrrd, reference_labels={"Liver": 1}).scores
    assert s.name == "Liver" and s.dice == 1.0 and s.voxels_reference > 1000
    # The CLI: a table, and the same numbers as JSON.
    assert main(["evaluate", str(seg), str(nrrd), "--reference-labels", str(_json(tmp_path, {"Liver": 1})),
                 "--json", str(tmp_path / "scores.json"), "--no-distances"]) == 0
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["scores"][0]["dice"] == 1.0 and scores["mean_dice"] == 1.0


def _json(tmp_path, obj):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(obj))
    return path


def test_pairs_that_cannot_be_compared_are_one_line_errors_and_write_nothing(run, data_dir, tmp_path, capsys):
    far = read_image(run / "segmentation.nii.gz")
    far = Image(far.array, far.spacing, tuple(np.asarray(far.origin) + 5000.0), far.direction)
    write_image(far, tmp_path / "far.nii.gz")
    (tmp_path / "far_labels.csv").write_bytes((run / "segmentation_labels.csv").read_bytes())
    fractional = Image(np.full((4, 8, 8), 0.5, np.float32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    write_image(fractional, tmp_path / "prob.nii.gz")
    dcmqi = data_dir / DCMQI / "liver.dcm"
    cases = [
        ([str(tmp_path / "far.nii.gz"), str(run / "segmentation.nii.gz")], "do not overlap in space"),
        ([str(dcmqi), str(data_dir / DCMQI / "liver_seg.nrrd")], "is named like one of"),  # "Liver" vs "1"
        ([str(tmp_path / "prob.nii.gz"), str(run / "segmentation.nii.gz")], "fractional values"),
        ([str(tmp_path / "missing.dcm"), str(run / "segmentation.nii.gz")], "not found"),
        ([str(dcmqi), str(run / "segmentation.nii.gz"), "--labels", str(run / "segmentation.nii.gz")],
         "not a label table"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        code = main(["evaluate", *argv, "--json", str(tmp_path / "out.json")])
        err = capsys.readouterr().err.strip()
        assert code != 0 and message in err and "\n" not in err and "Traceback" not in err, (argv, err)
        assert not (tmp_path / "out.json").exists()
    with pytest.raises(EvaluationError):
        evaluate(tmp_path / "far.nii.gz", run / "segmentation.nii.gz")
