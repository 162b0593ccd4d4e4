"""medsegai.io on real files: formats, orientations, DICOM series, geometry, .seg.nrrd, atomic writes."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
import SimpleITK as sitk

from medsegai import Image, InvalidImageError
from medsegai.io import SegmentInfo, atomic_path, read_image, read_seg_nrrd, write_image, write_seg_nrrd

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _sitk_affine_lps(img: sitk.Image) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = np.array(img.GetDirection()).reshape(3, 3) @ np.diag(img.GetSpacing())
    m[:3, 3] = img.GetOrigin()
    return m


@pytest.mark.parametrize("name", ["example_ct_sm.nii.gz", "example_mr_sm.nii.gz"])
def test_nifti_matches_simpleitk_and_nibabel(ts_ref, name):
    """RAS CT and LPS MR: voxels and IJK->RAS equal to nibabel's affine (an independent reader)."""
    nib = pytest.importorskip("nibabel")
    path = ts_ref / name
    img = read_image(path)
    ref = sitk.ReadImage(str(path))
    assert img.shape == ref.GetSize()[::-1]
    np.testing.assert_array_equal(img.array, sitk.GetArrayFromImage(ref))
    n = nib.load(str(path))
    # nibabel's affine maps (i, j, k) to RAS, like Slicer's IJKToRAS.
    np.testing.assert_allclose(img.ijk_to_ras(), n.affine, atol=1e-4)
    np.testing.assert_array_equal(img.array, np.asanyarray(n.dataobj).transpose(2, 1, 0))


def test_ras_and_lps_files_have_opposite_in_plane_directions(ts_ref):
    ct = read_image(ts_ref / "example_ct_sm.nii.gz")
    mr = read_image(ts_ref / "example_mr_sm.nii.gz")
    # LPS direction columns: the RAS CT's i axis points to -x (patient right), the LPS MR's to +x.
    assert np.sign(ct.direction[0, 0]) == -1 and np.sign(ct.direction[1, 1]) == -1
    assert np.sign(mr.direction[0, 0]) == 1 and np.sign(mr.direction[1, 1]) == 1


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".nii"])
def test_converted_copies_read_identically(ts_ref, tmp_path, suffix):
    src = sitk.ReadImage(str(ts_ref / "example_mr_sm.nii.gz"))
    dst = tmp_path / f"mr{suffix}"
    sitk.WriteImage(src, str(dst))
    a = read_image(ts_ref / "example_mr_sm.nii.gz")
    b = read_image(dst)
    np.testing.assert_array_equal(a.array, b.array)
    assert a.same_grid(b)


def test_dicom_jpeg2000_series_spacing_from_positions(ts_ref):
    pydicom = pytest.importorskip("pydicom")
    folder = ts_ref / "example_ct_dicom"
    img = read_image(folder)
    assert img.shape == (20, 512, 512)
    files = sorted(folder.iterdir())
    hdr = pydicom.dcmread(str(files[0]), stop_before_pixels=True)
    assert float(hdr.SliceThickness) == pytest.approx(3.0)  # the header's claim ...
    z = sorted(float(pydicom.dcmread(str(f), stop_before_pixels=True).ImagePositionPatient[2]) for f in files)
    assert np.diff(z) == pytest.approx(2.0)  # ... versus the positions
    assert img.spacing[2] == pytest.approx(2.0)
    assert img.spacing[0] == pytest.approx(float(hdr.PixelSpacing[1]))
    # Decoded JPEG2000 pixels are real HU, not zeros: air outside, tissue/bone inside.
    assert img.array.min() <= -1000 and img.array.max() > 500
    # Same physical grid as TotalSegmentator's reference segmentation of this series (an LPS->RAS
    # flipped NIfTI): equal voxel-to-world mapping up to the flip of the j axis.
    ref = sitk.ReadImage(str(ts_ref / "example_seg_dicom.nii.gz"))
    corners_ours = img.ijk_to_lps() @ np.array([[0, 0, 0, 1], [511, 511, 19, 1]]).T
    corners_ref = _sitk_affine_lps(ref) @ np.array([[0, 511, 0, 1], [511, 0, 19, 1]]).T
    np.testing.assert_allclose(corners_ours, corners_ref, atol=1e-3)


def test_dicom_series_in_nested_folder(data_dir):
    """The TCIA layout (series one folder down) loads from the top folder, with its geometry."""
    top = data_dir / "ct" / "pancreas-ct-cb001-dicom"
    img = read_image(top)
    assert img.shape == (134, 512, 512)
    assert img.spacing == pytest.approx((1.07421875, 1.07421875, 3.0))
    assert img.array.dtype == np.int16


def test_folder_without_dicom_names_problem(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(InvalidImageError, match="No DICOM series"):
        read_image(tmp_path)


def test_nifti_nan_is_not_silently_zeroed(tmp_path):
    """SimpleITK's NIfTI reader turns NaN into 0; read_image must still refuse the file."""
    a = np.zeros((6, 7, 8), np.float32)
    a[2, 3, 4] = np.nan
    a[1, 1, 1] = -np.inf
    sitk.WriteImage(sitk.GetImageFromArray(a), str(tmp_path / "nan.nii.gz"))
    assert np.isfinite(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "nan.nii.gz")))).all()
    with pytest.raises(InvalidImageError, match="2 NaN or infinite"):
        read_image(tmp_path / "nan.nii.gz")
    # uncompressed float64 too
    raw = tmp_path / "nan_be.nii"
    sitk.WriteImage(sitk.GetImageFromArray(a.astype(np.float64)), str(raw))
    with pytest.raises(InvalidImageError, match="NaN or infinite"):
        read_image(raw)
    # a clean float file still loads
    a[np.isnan(a) | np.isinf(a)] = 0
    sitk.WriteImage(sitk.GetImageFromArray(a), str(tmp_path / "ok.nii.gz"))
    assert read_image(tmp_path / "ok.nii.gz").array.dtype == np.float32


def _oblique_image() -> Image:
    rng = np.random.default_rng(0)
    c, s = np.cos(0.3), np.sin(0.3)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.array([[1, 0, 0], [0, np.cos(0.2), -np.sin(0.2)],
                                                                   [0, np.sin(0.2), np.cos(0.2)]])
    return Image(rng.integers(-1000, 1000, (5, 6, 7)).astype(np.int16), spacing=(0.7, 0.8, 2.5),
                 origin=(-10.0, 20.5, 33.0), direction=rot)


def test_ijk_to_ras_round_trip_oblique():
    img = _oblique_image()
    m = img.ijk_to_ras()
    # The columns carry the anisotropic spacing; RAS is LPS with x and y negated.
    np.testing.assert_allclose(np.linalg.norm(m[:3, :3], axis=0), img.spacing)
    np.testing.assert_allclose(m[:3, 3], [10.0, -20.5, 33.0])
    back = Image.from_ijk_to_ras(img.array, m)
    assert back.same_grid(img, atol=1e-9)
    np.testing.assert_allclose(back.direction, img.direction, atol=1e-12)
    # voxel (i, j, k) = (6, 5, 4) lands on the same world point through both routes
    p = np.array([6, 5, 4, 1.0])
    np.testing.assert_allclose(LPS_TO_RAS @ img.ijk_to_lps() @ p, back.ijk_to_ras() @ p)


def test_from_ijk_to_ras_refuses_degenerate_matrix():
    m = np.eye(4)
    m[2, 2] = 0.0
    with pytest.raises(InvalidImageError, match="spacing"):
        Image.from_ijk_to_ras(np.zeros((2, 2, 2)), m)


def test_sitk_round_trip_and_file_round_trip_oblique(tmp_path):
    img = _oblique_image()
    s = img.to_sitk()
    assert s.GetSize() == (7, 6, 5)
    np.testing.assert_allclose(_sitk_affine_lps(s), img.ijk_to_lps(), atol=1e-12)
    back = Image.from_sitk(s)
    np.testing.assert_array_equal(back.array, img.array)
    assert back.same_grid(img, atol=1e-12)
    for suffix in (".nii.gz", ".nrrd", ".mha"):
        path = write_image(img, tmp_path / f"obl{suffix}")
        again = read_image(path)
        np.testing.assert_array_equal(again.array, img.array)
        assert again.same_grid(img, atol=1e-4), suffix


def test_seg_nrrd_round_trip(tmp_path):
    img = _oblique_image()
    labels = np.zeros(img.shape, np.uint8)
    labels[1:3, 2:4, 3:6] = 5
    labels[4, 0, 0] = 2
    segs = [
        SegmentInfo(2, "kidney_right", (0.1, 0.2, 0.3),
                    "Segmentation category and type - 3D Slicer General Anatomy list~SCT^123037004^Anatomical "
                    "Structure~SCT^64033007^Kidney~SCT^24028007^Right~Anatomic codes - DICOM master list~^^~^^"),
        SegmentInfo(5, "liver", (0.85, 0.6, 0.4), ""),
        SegmentInfo(9, "absent structure", (1.0, 0.0, 0.5), ""),
    ]
    path = write_seg_nrrd(img.with_array(labels), segs, tmp_path / "s.seg.nrrd")
    back, back_segs = read_seg_nrrd(path)
    np.testing.assert_array_equal(back.array, labels)
    assert back.same_grid(img, atol=1e-4)
    assert [(s.value, s.name, s.terminology) for s in back_segs] == [(s.value, s.name, s.terminology) for s in segs]
    for a, b in zip(back_segs, segs):
        assert a.color == pytest.approx(b.color, abs=1e-6)
    # Slicer's header fields: extent of each segment in (i, j, k) voxel bounds; empty for absent ones
    r = sitk.ImageFileReader()
    r.SetFileName(str(path))
    r.ReadImageInformation()
    assert r.GetMetaData("Segment1_Extent") == "3 5 2 3 1 2"
    assert r.GetMetaData("Segment2_Extent") == "0 -1 0 -1 0 -1"
    assert r.GetMetaData("Segment0_ID") == "Segment_2"
    assert r.GetMetaData("Segmentation_MasterRepresentation") == "Binary labelmap"
    assert r.GetMetaData("Segment0_Tags").startswith("TerminologyEntry:Segmentation category")


def test_seg_nrrd_label_values_above_255(tmp_path):
    img = Image(np.zeros((3, 3, 3), np.uint16))
    img.array[1, 1, 1] = 300
    path = write_seg_nrrd(img, [SegmentInfo(300, "big", (1, 1, 1))], tmp_path / "b.seg.nrrd")
    back, segs = read_seg_nrrd(path)
    assert back.array[1, 1, 1] == 300 and segs[0].value == 300


def test_atomic_path_failure_leaves_nothing(tmp_path):
    target = tmp_path / "sub" / "out.nii.gz"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            assert tmp.parent == target.parent and tmp.name.endswith(".nii.gz")
            tmp.write_bytes(b"half a file")
            raise RuntimeError("boom")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_atomic_path_keeps_previous_file_on_failure(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("new but unfinished")
            raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_write_image_failure_leaves_no_file(tmp_path):
    """A real writer failure (a 3D image as PNG) inside write_image leaves no temp file behind."""
    with pytest.raises(OSError, match="Cannot write x.png"):  # one line, not ITK's RuntimeError
        write_image(_oblique_image(), tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_gzip_text_renamed_nifti_is_refused(tmp_path):
    p = tmp_path / "notes.nii.gz"
    with gzip.open(p, "wt") as fh:
        fh.write("this is a report, not a volume\n" * 20)
    with pytest.raises(InvalidImageError, match="notes.nii.gz"):
        read_image(p)
