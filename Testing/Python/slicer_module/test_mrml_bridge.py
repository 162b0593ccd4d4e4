"""MRML bridge against real slicer-core nodes: geometry, segments, terminology, .seg.nrrd."""
from __future__ import annotations

import numpy as np
import pytest
import slicer
import vtk

from conftest import add_volume, scene_snapshot
from geometry_cases import GEOMETRIES
from real_data import ct_and_labels, total_label_names
from medsegai import terminology
from medsegai.io.image import Image
from medsegai.io.seg_nrrd import write_seg_nrrd
from medsegai.io.segments import segments_from_names

from MedSegAILib.errors import EditedSegmentsError, InputError
from MedSegAILib.segment_edits import internal_mask, is_edited
from MedSegAILib.segmentation_bridge import segments_in_node, write_segments
from MedSegAILib.volume_bridge import image_from_volume

SEGMENTS = segments_from_names(total_label_names(), terminology.lookup)


@pytest.fixture
def ct_labels(data_dir):
    return ct_and_labels(data_dir)


def _voxel_to_ras(matrix, ijk):
    return (matrix @ np.append(np.asarray(ijk, float), 1.0))[:3]


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_volume_to_image_keeps_exact_geometry(mrml, ct_labels, geometry):
    ct, _ = ct_labels
    matrix = GEOMETRIES[geometry]
    node = add_volume(mrml.scene, ct, matrix)
    image = image_from_volume(node)
    np.testing.assert_array_equal(image.array, ct)
    np.testing.assert_allclose(image.ijk_to_ras(), matrix, atol=1e-9)
    # The runner's LPS view of a far corner voxel is Slicer's RAS with x and y negated.
    corner = (ct.shape[2] - 1, ct.shape[1] - 1, ct.shape[0] - 1)
    lps = _voxel_to_ras(image.ijk_to_lps(), corner)
    np.testing.assert_allclose(lps * [-1, -1, 1], _voxel_to_ras(matrix, corner), atol=1e-9)
    # A copy: editing the node afterwards does not change what the runner got.
    slicer.util.arrayFromVolume(node)[:] = 0
    assert image.array.any()


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_labels_become_segments_on_the_volume_geometry(mrml, ct_labels, geometry):
    ct, labels = ct_labels
    volume = add_volume(mrml.scene, ct, GEOMETRIES[geometry])
    result = image_from_volume(volume).with_array(labels)
    update = write_segments(mrml.scene, result, SEGMENTS, reference_volume=volume, node_name="TotalSeg")

    node = update.node
    present = sorted(set(np.unique(labels)) - {0})
    assert len(present) > 5
    assert update.created_node and node.GetSegmentation().GetNumberOfSegments() == len(present)
    by_value = {s.value: s for s in SEGMENTS}
    for value in present:
        info = by_value[value]
        seg_id = node.GetSegmentation().GetSegmentIdBySegmentName(info.name)
        assert seg_id, info.name
        segment = node.GetSegmentation().GetSegment(seg_id)
        assert segment.GetLabelValue() == value
        np.testing.assert_allclose(segment.GetColor(), info.color, atol=1e-6)
        # Resampled by Slicer itself onto the input volume: exactly the runner's voxels.
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(node, seg_id, volume)
        np.testing.assert_array_equal(mask > 0, labels == value, err_msg=info.name)
    assert node.GetNodeReference(node.GetReferenceImageGeometryReferenceRole()) is volume


def test_segments_carry_snomed_terminology(mrml, ct_labels):
    ct, labels = ct_labels
    volume = add_volume(mrml.scene, ct, GEOMETRIES["lps"])
    node = write_segments(mrml.scene, image_from_volume(volume).with_array(labels), SEGMENTS,
                          reference_volume=volume).node
    seg = node.GetSegmentation()
    tag = vtk.mutable("")
    checked = 0
    for name, type_code, modifier in (("liver", "10200004", None), ("kidney_left", "64033007", "7771000"),
                                      ("kidney_right", "64033007", "24028007"), ("spleen", "78961009", None),
                                      ("vertebrae_L1", "66794005", None)):
        seg_id = seg.GetSegmentIdBySegmentName(name)
        if not seg_id:
            continue
        assert seg.GetSegment(seg_id).GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), tag)
        entry = slicer.vtkSlicerTerminologyEntry()
        assert mrml.terminologies.DeserializeTerminologyEntry(str(tag), entry)
        assert entry.GetCategoryObject().GetCodeValue() == "123037004"
        assert entry.GetTypeObject().GetCodingSchemeDesignator() == "SCT"
        assert entry.GetTypeObject().GetCodeValue() == type_code
        assert (entry.GetTypeModifierObject().GetCodeValue() or None) == modifier
        checked += 1
    assert checked >= 4


def test_seg_nrrd_round_trip_through_slicer_storage(mrml, ct_labels, tmp_path):
    ct, labels = ct_labels
    volume = add_volume(mrml.scene, ct, GEOMETRIES["oblique_anisotropic"])
    node = write_segments(mrml.scene, image_from_volume(volume).with_array(labels), SEGMENTS,
                          reference_volume=volume).node
    path = str(tmp_path / "out.seg.nrrd")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    mrml.scene.AddNode(storage)
    storage.SetFileName(path)
    assert storage.WriteData(node)

    loaded = mrml.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "loaded")
    reader = slicer.vtkMRMLSegmentationStorageNode()
    mrml.scene.AddNode(reader)
    reader.SetFileName(path)
    assert reader.ReadData(loaded)
    before, after = segments_in_node(node), segments_in_node(loaded)
    assert [(s.value, s.name, s.terminology) for s in after] == [(s.value, s.name, s.terminology) for s in before]
    np.testing.assert_allclose([s.color for s in after], [s.color for s in before], atol=1e-5)
    for info in segments_in_node(node):
        a = slicer.util.arrayFromSegmentBinaryLabelmap(node, node.GetSegmentation().GetSegmentIdBySegmentName(info.name), volume)
        b = slicer.util.arrayFromSegmentBinaryLabelmap(loaded, loaded.GetSegmentation().GetSegmentIdBySegmentName(info.name), volume)
        np.testing.assert_array_equal(a, b, err_msg=info.name)


def test_runner_seg_nrrd_reads_in_slicer_with_names_values_and_terminology(mrml, ct_labels, tmp_path):
    """The runner's own .seg.nrrd writer (what the worker hands back) against Slicer's reader."""
    ct, labels = ct_labels
    volume = add_volume(mrml.scene, ct, GEOMETRIES["oblique_anisotropic"])
    result = image_from_volume(volume).with_array(labels)
    present = [s for s in SEGMENTS if s.value in set(np.unique(labels))]
    path = write_seg_nrrd(result, present, tmp_path / "runner.seg.nrrd")
    loaded = mrml.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "runner")
    reader = slicer.vtkMRMLSegmentationStorageNode()
    mrml.scene.AddNode(reader)
    reader.SetFileName(str(path))
    assert reader.ReadData(loaded)
    got = {s.name: s for s in segments_in_node(loaded)}
    for info in present:
        assert got[info.name].value == info.value
        assert got[info.name].terminology == info.terminology
        seg_id = loaded.GetSegmentation().GetSegmentIdBySegmentName(info.name)
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(loaded, seg_id, volume)
        np.testing.assert_array_equal(mask > 0, labels == info.value, err_msg=info.name)


# -- bad input: a clear message and the scene unchanged -------------------------------------------
def test_bad_volumes_are_refused_with_a_message(mrml, ct_labels):
    ct, labels = ct_labels
    label_node = add_volume(mrml.scene, labels, GEOMETRIES["ras"], name="seg", label=True)
    flat = add_volume(mrml.scene, ct[:1], GEOMETRIES["ras"], name="flat")
    vector = mrml.scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "rgb")
    slicer.util.updateVolumeFromArray(vector, np.zeros((4, 5, 6, 3), np.uint8))
    before = scene_snapshot(mrml.scene)
    for node, words in ((None, "Select an input volume"), (label_node, "label map"), (flat, "2D"),
                        (vector, "values per voxel")):
        with pytest.raises(InputError, match=words):
            image_from_volume(node)
    assert scene_snapshot(mrml.scene) == before


def _edit_liver(node):
    seg_id = node.GetSegmentation().GetSegmentIdBySegmentName("liver")
    image = node.GetBinaryLabelmapInternalRepresentation(seg_id)
    arr = slicer.util.arrayFromSegmentInternalBinaryLabelmap(node, seg_id)
    value = node.GetSegmentation().GetSegment(seg_id).GetLabelValue()
    k, j, i = np.argwhere(arr == value)[0]
    arr[k, j, i] = 0  # the user erases one voxel
    image.Modified()
    node.GetSegmentation().GetSegment(seg_id).Modified()
    return seg_id


def test_update_protects_user_edits(mrml, ct_labels):
    ct, labels = ct_labels
    assert 5 in labels  # liver
    volume = add_volume(mrml.scene, ct, GEOMETRIES["lps"])
    result = image_from_volume(volume).with_array(labels)
    node = write_segments(mrml.scene, result, SEGMENTS, reference_volume=volume).node
    assert not any(is_edited(node, node.GetSegmentation().GetNthSegmentID(n))
                   for n in range(node.GetSegmentation().GetNumberOfSegments()))
    liver_id = _edit_liver(node)
    assert is_edited(node, liver_id)
    edited_mask = internal_mask(node, liver_id)[0].copy()

    before = scene_snapshot(mrml.scene)
    with pytest.raises(EditedSegmentsError, match="liver"):
        write_segments(mrml.scene, result, SEGMENTS, reference_volume=volume, segmentation_node=node)
    assert scene_snapshot(mrml.scene) == before

    update = write_segments(mrml.scene, result, SEGMENTS, reference_volume=volume, segmentation_node=node,
                            on_edited="keep")
    assert update.kept_edited == ["liver"] and "liver" not in update.written
    liver_id = node.GetSegmentation().GetSegmentIdBySegmentName("liver")
    assert internal_mask(node, liver_id)[0].sum() == edited_mask.sum() == (labels == 5).sum() - 1

    update = write_segments(mrml.scene, result, SEGMENTS, reference_volume=volume, segmentation_node=node,
                            on_edited="replace")
    assert "liver" in update.written
    liver_id = node.GetSegmentation().GetSegmentIdBySegmentName("liver")
    np.testing.assert_array_equal(slicer.util.arrayFromSegmentBinaryLabelmap(node, liver_id, volume) > 0,
                                  labels == 5)


def test_user_segments_with_other_names_survive_and_same_names_count_as_edited(mrml, ct_labels):
    ct, labels = ct_labels
    volume = add_volume(mrml.scene, ct, GEOMETRIES["ras"])
    node = mrml.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "mine")
    node.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    tumour = np.zeros_like(labels)
    tumour[5:8, 10:20, 10:20] = 1
    for name in ("my tumour", "liver"):
        seg_id = node.GetSegmentation().AddEmptySegment(name, name)
        slicer.util.updateSegmentBinaryLabelmapFromArray(tumour, node, seg_id, volume)
    result = image_from_volume(volume).with_array(labels)
    with pytest.raises(EditedSegmentsError, match="liver"):
        write_segments(mrml.scene, result, SEGMENTS, reference_volume=volume, segmentation_node=node)
    update = write_segments(mrml.scene, result, SEGMENTS, reference_volume=volume, segmentation_node=node,
                            on_edited="keep")
    assert update.kept_edited == ["liver"]
    mine = node.GetSegmentation().GetSegmentIdBySegmentName("my tumour")
    np.testing.assert_array_equal(slicer.util.arrayFromSegmentBinaryLabelmap(node, mine, volume) > 0, tumour > 0)


def test_failed_write_restores_the_existing_segmentation(mrml, ct_labels):
    ct, labels = ct_labels
    volume = add_volume(mrml.scene, ct, GEOMETRIES["ras"])
    result = image_from_volume(volume).with_array(labels)
    node = write_segments(mrml.scene, result, SEGMENTS, reference_volume=volume).node
    before = scene_snapshot(mrml.scene)
    # Two structures claiming the same label value cannot be written: refused before any change.
    broken = list(SEGMENTS) + [SEGMENTS[4].__class__(5, "liver_again", (1.0, 0.0, 0.0), "")]
    with pytest.raises(InputError):
        write_segments(mrml.scene, result, broken, reference_volume=volume, segmentation_node=node,
                       on_edited="replace")
    bad = [s for s in SEGMENTS if s.value in set(np.unique(labels))][:2]
    bad = [bad[0], bad[1].__class__(bad[1].value, bad[0].name, bad[1].color, "")]  # same name twice
    with pytest.raises(InputError, match="unique"):
        write_segments(mrml.scene, result, bad, reference_volume=volume, segmentation_node=node,
                       on_edited="replace")
    assert scene_snapshot(mrml.scene) == before


def test_segmentation_of_surfaces_is_refused_and_left_as_it_was(mrml, ct_labels):
    ct, labels = ct_labels
    volume = add_volume(mrml.scene, ct, GEOMETRIES["ras"])
    node = write_segments(mrml.scene, image_from_volume(volume).with_array(labels), SEGMENTS,
                          reference_volume=volume).node
    node.CreateClosedSurfaceRepresentation()
    node.GetSegmentation().SetSourceRepresentationName("Closed surface")
    before = scene_snapshot(mrml.scene)
    with pytest.raises(InputError, match="binary labelmap"):
        write_segments(mrml.scene, image_from_volume(volume).with_array(labels), SEGMENTS,
                       reference_volume=volume, segmentation_node=node, on_edited="replace")
    assert scene_snapshot(mrml.scene) == before
    assert node.GetSegmentation().GetNumberOfSegments() == len(set(np.unique(labels)) - {0})
