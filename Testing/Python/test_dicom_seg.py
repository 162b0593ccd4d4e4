"""DICOM SEG out and in on real series: geometry per orientation, codes, references, dcmqi's SEGs, bad input."""
from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest

highdicom = pytest.importorskip("highdicom")

import medsegai  # noqa: E402
from dicom_seg_support import (centroid_lps, derived_series, jpeg2000_series, labels_on,  # noqa: E402
                               pancreas_crop)
from medsegai.cli import main  # noqa: E402
from medsegai.io import read_image, read_seg_nrrd  # noqa: E402
from medsegai.io.dicom_seg_read import read_dicom_seg  # noqa: E402
from medsegai.io.dicom_seg_write import AlgorithmInfo, DicomSegError, write_dicom_seg  # noqa: E402
from medsegai.io.dicom_series_select import find_series  # noqa: E402
from medsegai.io.segments import segments_from_names  # noqa: E402
from medsegai.terminology import lookup  # noqa: E402
from medsegai.totalseg.tasks import class_map  # noqa: E402

DCMQI = Path("dicom-seg/dcmqi/data/segmentations")
TOTAL = segments_from_names(class_map("total"), lookup)


@pytest.fixture(scope="module")
def series(data_dir, ts_ref, tmp_path_factory):
    """One real DICOM series per orientation: RAS and LPS volumes as derived series, the JPEG2000 series,
    and a crop of the full-size pancreas series."""
    root = tmp_path_factory.mktemp("series")
    return {
        "ras": derived_series(ts_ref / "example_ct_sm.nii.gz", root / "ras", "CT"),
        "lps": derived_series(ts_ref / "example_mr_sm.nii.gz", root / "lps", "MR"),
        "jpeg2000": jpeg2000_series(ts_ref, root / "jpeg2000"),
        "pancreas": pancreas_crop(data_dir, root / "pancreas"),
    }


@pytest.fixture(scope="module")
def runs(series, tmp_path_factory):
    """One CLI run per series with the bundled model, writing the NIfTI and the DICOM SEG side by side."""
    out = {}
    for kind, folder in series.items():
        target = tmp_path_factory.mktemp(f"run_{kind}") / "out"
        assert main(["segment", "-i", str(folder), "-o", str(target), "-ot", "dicom_seg", "--ml", "--device", "cpu",
                     "-q"]) == 0
        out[kind] = target
    return out


def _label_values(run: Path) -> dict:
    with open(run / "segmentation_labels.csv", newline="") as fh:
        return {row["name"]: int(row["value"]) for row in csv.DictReader(fh)}


@pytest.mark.parametrize("kind", ["ras", "lps", "jpeg2000", "pancreas"])
def test_seg_matches_the_nifti_of_the_same_run(kind, series, runs):
    run = runs[kind]
    nifti = read_image(run / "segmentation.nii.gz")
    source = read_image(series[kind])
    assert nifti.same_grid(source)
    seg = read_dicom_seg(run / "segmentation.dcm", reference=source).relabel(_label_values(run))
    assert seg.notes == []
    np.testing.assert_array_equal(seg.labels.array, nifti.array)
    present = set(np.unique(nifti.array).tolist()) - {0}
    assert {s.value for s in seg.segments} == present  # only non-empty segments are written


@pytest.mark.parametrize("kind", ["ras", "jpeg2000", "pancreas"])
def test_each_frame_is_linked_to_its_own_source_slice(kind, series, runs):
    """What a viewer uses: frames fetched by source SOP instance equal the NIfTI slice of that instance."""
    run = runs[kind]
    nifti = read_image(run / "segmentation.nii.gz").array
    values = _label_values(run)
    seg = highdicom.seg.segread(str(run / "segmentation.dcm"))
    numbers = list(seg.segment_numbers)
    lut = np.zeros(max(numbers) + 1, dtype=np.int64)
    for n in numbers:
        lut[n] = values[str(seg.get_segment_description(n).SegmentLabel)]
    (info,) = find_series(series[kind])  # files in slice order = k order of the volume
    for k, f in enumerate(info.files):
        sop = str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID)
        if not nifti[k].any():
            continue  # empty frames are omitted
        frame = seg.get_pixels_by_source_instance([sop], segment_numbers=numbers, combine_segments=True)
        np.testing.assert_array_equal(lut[frame[0]], nifti[k], err_msg=f"slice {k} ({Path(f).name})")


def test_segments_carry_name_codes_colour_and_algorithm(series, runs, small_sha=None):
    run = runs["pancreas"]
    ds = pydicom.dcmread(str(run / "segmentation.dcm"))
    src = pydicom.dcmread(find_series(series["pancreas"])[0].files[0], stop_before_pixels=True)
    assert ds.SOPClassUID == pydicom.uid.SegmentationStorage and ds.SegmentationType == "BINARY"
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == src.SeriesInstanceUID
    assert ds.StudyInstanceUID == src.StudyInstanceUID and ds.FrameOfReferenceUID == src.FrameOfReferenceUID
    table = {row["name"]: row for row in csv.DictReader(open(run / "segmentation_labels.csv"))}
    for item in ds.SegmentSequence:
        name = str(item.SegmentLabel)
        term = table[name]["terminology"]
        assert item.SegmentedPropertyTypeCodeSequence[0].CodeValue in term
        assert item.SegmentedPropertyCategoryCodeSequence[0].CodeValue in term
        assert item.SegmentedPropertyCategoryCodeSequence[0].CodeValue != "85756007" or "Tissue" in term
        lab = highdicom.color.CIELabColor.from_dicom_value(item.RecommendedDisplayCIELabValue)
        rgb = np.array(lab.to_rgb(clip=True)) / 255.0
        np.testing.assert_allclose(rgb, [float(table[name][c]) for c in "rgb"], atol=2 / 255)
        algo = item.SegmentationAlgorithmIdentificationSequence[0]
        assert algo.AlgorithmName == "MedSegAI" and algo.AlgorithmVersion == medsegai.__version__
        params = str(algo.AlgorithmParameters)
        assert re.search(r"weights_sha256=[0-9a-f]{64}", params) and "model=" in params
        if name.endswith("_left") or name.endswith("_right"):
            modifier = item.SegmentedPropertyTypeModifierCodeSequence[0].CodeMeaning
            assert modifier == ("Left" if name.endswith("_left") else "Right")


def _write_reference_labels(image_folder: Path, labels_path: Path, out: Path, seg_type: str = "BINARY") -> Path:
    image = read_image(image_folder)
    (info,) = find_series(image_folder)
    labels = image.with_array(labels_on(image, labels_path))
    return write_dicom_seg(labels, TOTAL, info.files, out, algorithm=AlgorithmInfo("reference"),
                           segmentation_type=seg_type)


@pytest.mark.parametrize("kind, labels", [("jpeg2000", "example_seg_dicom.nii.gz"), ("ras", "example_seg.nii.gz")])
def test_left_right_and_anterior_posterior_are_not_mirrored(kind, labels, series, ts_ref, tmp_path):
    """TotalSegmentator's own labels, written as SEG and read back by highdicom alone: the liver lies on
    the patient's right of the spleen, the right back muscle right of the left one, the aorta in front of the
    spine (LPS: +x = left, +y = posterior). 2.18's bug mirrored exactly such a column direction."""
    path = _write_reference_labels(series[kind], ts_ref / labels, tmp_path / "seg.dcm")
    seg = highdicom.seg.segread(str(path))
    volume = seg.get_volume(combine_segments=True, relabel=False)
    number = {str(seg.get_segment_description(n).SegmentLabel): n for n in seg.segment_numbers}
    c = {name: centroid_lps(volume, number[name]) for name in
         ("liver", "spleen", "autochthon_left", "autochthon_right", "aorta")}
    assert c["liver"][0] < c["spleen"][0] - 50
    assert c["autochthon_right"][0] < c["autochthon_left"][0] - 30
    spine = [n for n in number if n.startswith("vertebrae_")]
    assert spine
    assert c["aorta"][1] < min(centroid_lps(volume, number[n])[1] for n in spine)


def test_labelmap_seg_round_trips(series, ts_ref, tmp_path):
    path = _write_reference_labels(series["jpeg2000"], ts_ref / "example_seg_dicom.nii.gz", tmp_path / "lm.dcm",
                                   "LABELMAP")
    assert pydicom.dcmread(str(path), stop_before_pixels=True).SegmentationType == "LABELMAP"
    source = read_image(series["jpeg2000"])
    back = read_dicom_seg(path, reference=source).relabel({s.name: s.value for s in TOTAL})
    np.testing.assert_array_equal(back.labels.array, labels_on(source, ts_ref / "example_seg_dicom.nii.gz"))


@pytest.mark.parametrize("seg, nrrd", [("liver.dcm", "liver_seg.nrrd"), ("24x38x3/seg/label.seg", "24x38x3/nrrd/label.nrrd"),
                                       ("23x38x3/seg/label.seg", "23x38x3/nrrd/label.nrrd"),
                                       ("sparse-labelmap-noppv.dcm", "sparse_labelmap_noppv_seg.nrrd"),
                                       ("sparse-labelmap-ppv5.dcm", "sparse_labelmap_ppv5_seg.nrrd")])
def test_dcmqi_reference_segs_read_like_dcmqi(seg, nrrd, data_dir):
    """dcmqi's SEG objects (BINARY and the label-map type) against dcmqi's own NRRD conversions."""
    ref = read_image(data_dir / DCMQI / nrrd, validate=False)
    got = read_dicom_seg(data_dir / DCMQI / seg, reference=ref)
    expected = ref.array.copy()
    if "ppv5" in seg:
        # The SEG omits the middle frame; dcmqi fills it with the pixel padding value 5, we with background.
        assert (expected[1] == 5).all()
        expected[1] = 0
    np.testing.assert_array_equal(got.labels.array, expected)
    assert [s.name for s in got.segments] == ["Liver"]
    # dcmqi's older objects still use the SNOMED RT code of the liver (SRT T-62000), the newer SNOMED CT's.
    assert re.search(r"~(SCT\^10200004|SRT\^T-62000)\^Liver~", got.segments[0].terminology)


def test_overlapping_segments_say_how_they_were_resolved(data_dir):
    got = read_dicom_seg(data_dir / DCMQI / "partial_overlaps.dcm")
    assert len(got.notes) == 1 and "higher-numbered segment was kept" in got.notes[0]
    assert re.search(r"GREEN lost \d+ voxel", got.notes[0])


def test_fractional_seg_is_thresholded_with_a_note(data_dir):
    got = read_dicom_seg(data_dir / "dicom-seg/highdicom/data/test_files/seg_image_ct_true_fractional.dcm")
    assert got.segmentation_type == "FRACTIONAL" and "0.5" in got.notes[0]
    assert got.labels.array.any()


# -- DICOM SEG in: conversion and the interactive session's starting mask --------------------------------------
def test_convert_seg_to_seg_nrrd_keeps_labels_names_and_codes(series, runs, tmp_path):
    run = runs["pancreas"]
    out = tmp_path / "from_seg.seg.nrrd"
    assert main(["convert", str(run / "segmentation.dcm"), "-o", str(out), "--reference", str(series["pancreas"]),
                 "-q"]) == 0
    labels, segments = read_seg_nrrd(out)
    nifti = read_image(run / "segmentation.nii.gz")
    assert labels.same_grid(nifti)
    by_number = {s.value: s.name for s in segments}
    values = _label_values(run)
    remapped = np.vectorize(lambda v: values[by_number[v]] if v else 0)(labels.array)
    np.testing.assert_array_equal(remapped, nifti.array)
    assert all("SCT^" in s.terminology for s in segments)


def test_convert_refuses_a_reference_without_the_referenced_series(runs, series, tmp_path, capsys):
    out = tmp_path / "x.nii.gz"
    assert main(["convert", str(runs["pancreas"] / "segmentation.dcm"), "-o", str(out), "--reference",
                 str(series["ras"])]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "references series" in err[0] and "which is not in" in err[0]
    assert not out.exists()


def test_interactive_session_starts_from_a_seg_segment(series, runs):
    from medsegai.interactive.dicom_seg_mask import set_mask_from_dicom_seg
    from medsegai.interactive.session import InteractiveSession

    run = runs["pancreas"]
    image = read_image(series["pancreas"])
    nifti = read_image(run / "segmentation.nii.gz").array
    values = _label_values(run)
    name = max((n for n, v in values.items() if (nifti == v).any()), key=lambda n: (nifti == values[n]).sum())
    session = InteractiveSession(device="cpu")
    session.set_image(image)
    set_mask_from_dicom_seg(session, run / "segmentation.dcm", segment=name)
    np.testing.assert_array_equal(session.mask.astype(bool), nifti == values[name])


# -- bad input ---------------------------------------------------------------------------------------------------
def _one_line_error(argv, capsys) -> str:
    assert main([str(a) for a in argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("medsegai: error: "), err
    return err[0]


def test_non_dicom_input_with_dicom_seg_output_is_one_clear_line(ts_ref, tmp_path, capsys):
    for argv in (["-o", tmp_path / "seg.dcm"], ["-o", tmp_path / "out", "-ot", "dicom_seg"]):
        msg = _one_line_error(["segment", "-i", ts_ref / "example_ct_sm.nii.gz", *argv, "--device", "cpu"], capsys)
        assert "DICOM SEG output needs a DICOM source series" in msg and "medsegai convert" in msg
    assert list(tmp_path.iterdir()) == []


def test_anonymised_series_without_uids_is_refused_before_the_model_runs(ts_ref, tmp_path, capsys):
    before = {p: p.stat().st_mtime_ns for p in (ts_ref / "example_ct_dicom").iterdir()}
    msg = _one_line_error(["segment", "-i", ts_ref / "example_ct_dicom", "-o", tmp_path / "seg.dcm",
                           "--device", "cpu"], capsys)
    assert "has no SOPClassUID, SOPInstanceUID, SeriesInstanceUID, StudyInstanceUID" in msg
    assert list(tmp_path.iterdir()) == []
    assert {p: p.stat().st_mtime_ns for p in (ts_ref / "example_ct_dicom").iterdir()} == before


def test_structure_without_a_code_is_an_error_not_a_generic_code(series, tmp_path):
    image = read_image(series["pancreas"])
    (info,) = find_series(series["pancreas"])
    labels = image.with_array(np.zeros(image.shape, np.uint8))
    labels.array[:, 100:120, 100:120] = 1
    with pytest.raises(DicomSegError, match="'my_lesion' has no SNOMED CT category and type code"):
        write_dicom_seg(labels, segments_from_names({1: "my_lesion"}, lookup), info.files, tmp_path / "s.dcm",
                        algorithm=AlgorithmInfo("x"))
    with pytest.raises(DicomSegError, match="empty"):
        write_dicom_seg(image.with_array(np.zeros(image.shape, np.uint8)), TOTAL, info.files, tmp_path / "s.dcm",
                        algorithm=AlgorithmInfo("x"))
    assert not (tmp_path / "s.dcm").exists()


def test_labels_on_another_grid_are_refused(series, tmp_path):
    image = read_image(series["pancreas"])
    (info,) = find_series(series["pancreas"])
    shifted = image.with_array(np.ones(image.shape, np.uint8))
    shifted.origin = (shifted.origin[0], shifted.origin[1] + 1.0, shifted.origin[2])
    with pytest.raises(DicomSegError, match="not one of its slices"):
        write_dicom_seg(shifted, TOTAL, info.files, tmp_path / "s.dcm", algorithm=AlgorithmInfo("x"))
    assert not (tmp_path / "s.dcm").exists()


def test_a_seg_is_a_reference_for_evaluation_like_the_nifti(series, runs):
    from medsegai.io.dicom_seg_read import reference_labels

    run = runs["lps"]
    image = read_image(series["lps"])
    from_seg = reference_labels(run / "segmentation.dcm", image, _label_values(run))
    from_nifti = reference_labels(run / "segmentation.nii.gz", image)
    np.testing.assert_array_equal(from_seg, from_nifti)
