"""The uncertainty map as a DICOM Parametric Map beside the SEG: a real run over a real DICOM series,
read back with pydicom, frame by frame against the NIfTI map of the same run."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest

pytest.importorskip("highdicom")

from dicom_seg_support import derived_series  # noqa: E402
from medsegai.cli import main  # noqa: E402
from medsegai.io import read_image  # noqa: E402
from medsegai.io.dicom_series_select import find_series  # noqa: E402


@pytest.fixture(scope="module")
def run(ts_ref, tmp_path_factory):
    root = tmp_path_factory.mktemp("pmap")
    series = derived_series(ts_ref / "example_ct_sm.nii.gz", root / "series", "CT")
    out = root / "out"
    assert main(["segment", "-i", str(series), "-o", str(out), "-ot", "dicom_seg", "--ml", "-d", "cpu", "-q",
                 "--uncertainty", "entropy"]) == 0
    return series, out


def test_the_map_references_each_source_slice_and_holds_the_niftis_values(run):
    series, out = run
    nifti = read_image(out / "segmentation_uncertainty.nii.gz").array
    ds = pydicom.dcmread(str(out / "segmentation_uncertainty.dcm"))
    assert ds.SOPClassUID == pydicom.uid.ParametricMapStorage
    (info,) = find_series(series)
    source = pydicom.dcmread(info.files[0], stop_before_pixels=True)
    assert ds.StudyInstanceUID == source.StudyInstanceUID and ds.FrameOfReferenceUID == source.FrameOfReferenceUID
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    seg = pydicom.dcmread(str(out / "segmentation.dcm"), stop_before_pixels=True)
    assert seg.SeriesInstanceUID != ds.SeriesInstanceUID and seg.StudyInstanceUID == ds.StudyInstanceUID

    mapping = ds.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
    assert mapping.LUTLabel == "uncertainty" and "entropy" in mapping.LUTExplanation
    # Float pixels: the mapped range is in the double-float attributes.
    assert float(mapping.DoubleFloatRealWorldValueFirstValueMapped) == 0.0
    assert float(mapping.DoubleFloatRealWorldValueLastValueMapped) == 1.0
    assert mapping.MeasurementUnitsCodeSequence[0].CodeValue == "1"

    k_of = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID): k for k, f in enumerate(info.files)}
    frames = ds.pixel_array
    assert frames.dtype == np.float32 and frames.shape == (len(info.files),) + nifti.shape[1:]
    seen = set()
    for f, group in enumerate(ds.PerFrameFunctionalGroupsSequence):
        uid = str(group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        k = k_of[uid]
        seen.add(k)
        np.testing.assert_array_equal(frames[f], nifti[k], err_msg=f"frame {f} (slice {k})")
    assert seen == set(range(nifti.shape[0]))
    assert nifti.max() > 0.1  # a map with something in it, not zeros compared with zeros


def test_without_uncertainty_no_map_is_written(ts_ref, tmp_path):
    series = derived_series(ts_ref / "example_ct_sm.nii.gz", tmp_path / "series", "CT")
    assert main(["segment", "-i", str(series), "-o", str(tmp_path / "seg.dcm"), "-d", "cpu", "-q"]) == 0
    assert (tmp_path / "seg.dcm").is_file() and not list(tmp_path.glob("*uncertainty*"))
