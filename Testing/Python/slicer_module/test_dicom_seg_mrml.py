"""DICOM SEG export and import at the MRML level (slicer-core): a volume loaded from a real DICOM series,
overlapping segments, the codes of MedSegAI's terminology, and bad input that leaves no file and the
scene as it was. Slicer's DICOM database is not part of slicer-core: its lookup (SOP instance UID ->
file) is answered by MedSegAILib.dicom_seg_bridge.FolderIndex over the same files."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
import slicer

from conftest import add_volume, scene_snapshot
from dicom_seg_support import pancreas_crop
from medsegai import terminology
from medsegai.io.dicom_series_select import find_series
from medsegai.io.read import read_image
from medsegai.io.segments import segments_from_names

from MedSegAILib.dicom_seg_bridge import INSTANCE_UIDS_ATTRIBUTE, FolderIndex, export_dicom_seg, import_dicom_seg
from MedSegAILib.errors import InputError
from MedSegAILib.segmentation_bridge import write_segments


@pytest.fixture(scope="module")
def series(data_dir, tmp_path_factory):
    return pancreas_crop(data_dir, tmp_path_factory.mktemp("dicom") / "ct", first=60, count=10)


def dicom_volume(scene, folder):
    """The series as Slicer's DICOM plugin leaves it: a volume with its instance UIDs in slice order."""
    image = read_image(folder)
    volume = add_volume(scene, image.array, image.ijk_to_ras(), name="Pancreas CT")
    (info,) = find_series(folder)
    uids = [str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in info.files]
    volume.SetAttribute(INSTANCE_UIDS_ATTRIBUTE, " ".join(uids))
    return volume, image


def organ_segments(scene, volume, image):
    """liver and spleen boxes, then a 'spleen' grown into the liver (overlap, as a tumour in its organ)."""
    labels = np.zeros(image.shape, np.uint8)
    labels[2:8, 100:200, 100:220] = 1
    labels[3:6, 250:330, 300:380] = 2
    info = segments_from_names({1: "liver", 2: "spleen"}, terminology.lookup)
    node = write_segments(scene, image.with_array(labels), info, reference_volume=volume).node
    spleen_id = node.GetSegmentation().GetSegmentIdBySegmentName("spleen")
    spleen = slicer.util.arrayFromSegmentBinaryLabelmap(node, spleen_id, volume)
    spleen[4:6, 180:260, 200:320] = 1
    slicer.util.updateSegmentBinaryLabelmapFromArray(spleen, node, spleen_id, volume)
    return node


def masks_of(node, volume):
    seg = node.GetSegmentation()
    return {seg.GetSegment(seg.GetNthSegmentID(n)).GetName():
            slicer.util.arrayFromSegmentBinaryLabelmap(node, seg.GetNthSegmentID(n), volume) > 0
            for n in range(seg.GetNumberOfSegments())}


def test_export_keeps_overlapping_segments_codes_and_the_source_series(mrml, series, tmp_path):
    import highdicom as hd

    volume, image = dicom_volume(mrml.scene, series)
    node = organ_segments(mrml.scene, volume, image)
    masks = masks_of(node, volume)
    assert (masks["liver"] & masks["spleen"]).any()
    before = scene_snapshot(mrml.scene)
    out = tmp_path / "seg.dcm"
    notes = export_dicom_seg(volume, node, out, database=FolderIndex(series))
    assert notes == [] and scene_snapshot(mrml.scene) == before

    seg = hd.seg.segread(str(out))
    source = pydicom.dcmread(find_series(series)[0].files[0], stop_before_pixels=True)
    assert [str(s.SeriesInstanceUID) for s in seg.ReferencedSeriesSequence] == [str(source.SeriesInstanceUID)]
    assert str(seg.SegmentationType) == "BINARY"
    by_label = {str(seg.get_segment_description(n).SegmentLabel): n for n in seg.segment_numbers}
    assert set(by_label) == {"liver", "spleen"}
    for name, number in by_label.items():
        desc = seg.get_segment_description(number)
        _, entry = terminology.lookup(name)  # the same codes as `medsegai segment -o seg.dcm` writes
        assert f"SCT^{desc.SegmentedPropertyTypeCodeSequence[0].CodeValue}^" in entry
        assert f"SCT^{desc.SegmentedPropertyCategoryCodeSequence[0].CodeValue}^" in entry
        assert str(desc.SegmentAlgorithmType) == "SEMIAUTOMATIC"
        # Each segment's own frames keep every voxel, the overlap included.
        frames = seg.get_volume(segment_numbers=[number], combine_segments=False).array
        assert int(frames.sum()) == int(masks[name].sum()), name


def test_a_labelmap_export_imports_back_voxel_for_voxel(mrml, series, tmp_path):
    volume, image = dicom_volume(mrml.scene, series)
    labels = np.zeros(image.shape, np.uint8)
    labels[2:8, 100:200, 100:220] = 1
    labels[3:6, 250:330, 300:380] = 2
    info = segments_from_names({1: "liver", 2: "spleen"}, terminology.lookup)
    node = write_segments(mrml.scene, image.with_array(labels), info, reference_volume=volume).node
    out = tmp_path / "labelmap.dcm"
    export_dicom_seg(volume, node, out, segmentation_type="LABELMAP", database=FolderIndex(series))
    update, notes = import_dicom_seg(mrml.scene, out, volume, database=FolderIndex(series))
    assert update.node is not node and notes == []
    again = masks_of(update.node, volume)
    for name, value in (("liver", 1), ("spleen", 2)):
        np.testing.assert_array_equal(again[name], labels == value)
    seg = update.node.GetSegmentation()
    liver = seg.GetSegment(seg.GetSegmentIdBySegmentName("liver"))
    assert np.allclose(liver.GetColor(), terminology.lookup("liver")[0], atol=0.02)


def test_bad_exports_are_one_line_and_leave_no_file_and_the_scene_unchanged(mrml, series, tmp_path):
    volume, image = dicom_volume(mrml.scene, series)
    node = organ_segments(mrml.scene, volume, image)
    plain = add_volume(mrml.scene, image.array, image.ijk_to_ras(), name="from NIfTI")
    empty_folder = tmp_path / "nothing"
    empty_folder.mkdir()
    before = scene_snapshot(mrml.scene)
    out = tmp_path / "bad.dcm"
    cases = [
        (dict(volume_node=plain), "was not loaded from DICOM"),
        (dict(database=FolderIndex(empty_folder)), "are not in the DICOM database or folder"),
        (dict(segmentation_type="LABELMAP"), "overlap in"),
        (dict(segment_ids=["no such segment"]), "has no segment 'no such segment'"),
    ]
    for kwargs, says in cases:
        args = dict(volume_node=volume, segmentation_node=node, path=out, database=FolderIndex(series))
        args.update(kwargs)
        with pytest.raises(InputError, match=says) as err:
            export_dicom_seg(args.pop("volume_node"), args.pop("segmentation_node"), args.pop("path"), **args)
        assert "\n" not in str(err.value)
        assert not out.exists() and not list(tmp_path.glob("*.dcm*"))
    assert scene_snapshot(mrml.scene) == before


def test_a_seg_of_another_series_is_refused_on_a_dicom_volume(mrml, series, data_dir, tmp_path):
    volume, image = dicom_volume(mrml.scene, series)
    node = organ_segments(mrml.scene, volume, image)
    out = tmp_path / "seg.dcm"
    export_dicom_seg(volume, node, out, database=FolderIndex(series))
    # The same pixels under another series UID: the SEG does not reference it.
    other = tmp_path / "other"
    other.mkdir()
    new_uid = pydicom.uid.generate_uid()
    for f in find_series(series)[0].files:
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID = new_uid
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(str(other / f"{ds.SOPInstanceUID}.dcm"))
    second, _ = dicom_volume(mrml.scene, other)
    before = scene_snapshot(mrml.scene)
    with pytest.raises(InputError, match="references series"):
        import_dicom_seg(mrml.scene, out, second, database=FolderIndex(other))
    assert scene_snapshot(mrml.scene) == before
