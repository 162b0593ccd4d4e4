"""Uncertainty in the scene, against real MRML nodes: overlay volume, colour table, legend, views,
confidence tags, statistics columns and the jump to the least confident segment."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import slicer

from conftest import add_volume, scene_snapshot
from geometry_cases import GEOMETRIES
from real_data import ct_and_labels, total_label_names

from medsegai.io.segments import segments_from_names
from MedSegAILib.errors import InputError
from MedSegAILib.segmentation_bridge import write_segments
from MedSegAILib.statistics import segment_statistics, write_statistics_csv
from MedSegAILib.uncertainty_overlay import (COLOR_NODE_NAME, add_uncertainty_volume, set_overlay_opacity,
                                             set_overlay_threshold, show_overlay)
from MedSegAILib.uncertainty_scores import (jump_to_segment, least_confident_segment, read_confidence,
                                            write_confidence_tags)
from MedSegAILib.volume_bridge import image_from_volume


@pytest.fixture(params=sorted(GEOMETRIES))
def case(request, mrml, data_dir):
    ct, labels = ct_and_labels(data_dir)
    volume = add_volume(mrml.scene, ct, GEOMETRIES[request.param])
    image = image_from_volume(volume)
    # A map with structure: high on label borders, low inside organs (what entropy looks like).
    from scipy import ndimage

    edges = ndimage.morphological_gradient(labels, size=3) > 0
    unc = np.where(edges, 0.9, 0.02).astype(np.float32)
    return volume, image.with_array(labels), image.with_array(unc)


def test_overlay_volume_has_the_input_geometry_a_heat_table_and_a_legend(mrml, case):
    volume, _labels, unc = case
    comps = [mrml.scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode") for _ in range(3)]
    node = add_uncertainty_volume(mrml.scene, unc, volume, "entropy", colors_logic=mrml.colors)
    np.testing.assert_allclose(slicer.util.arrayFromVTKMatrix(_ijk_to_ras(node)),
                               slicer.util.arrayFromVTKMatrix(_ijk_to_ras(volume)), atol=1e-9)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), unc.array)
    display = node.GetDisplayNode()
    color = display.GetColorNode()
    assert color.GetName() == COLOR_NODE_NAME and color.GetNumberOfColors() == 256
    rgba = [0.0] * 4
    color.GetColor(0, rgba)
    assert rgba[:3] == [0.0, 0.0, 0.0]
    color.GetColor(255, rgba)
    assert rgba[:3] == [1.0, 1.0, 1.0]
    assert (display.GetWindowLevelMin(), display.GetWindowLevelMax()) == (0.0, 1.0)
    assert display.GetApplyThreshold() and display.GetLowerThreshold() == pytest.approx(0.1)
    legends = [display_node for display_node in _display_nodes(node) if display_node.IsA("vtkMRMLColorLegendDisplayNode")]
    assert len(legends) == 1 and "entropy" in legends[0].GetTitleText()

    assert show_overlay(mrml.scene, volume, node, opacity=0.4) == 3
    for c in comps:
        assert c.GetForegroundVolumeID() == node.GetID() and c.GetBackgroundVolumeID() == volume.GetID()
        assert c.GetForegroundOpacity() == pytest.approx(0.4)
    assert set_overlay_opacity(mrml.scene, node, 0.8) == 3 and comps[0].GetForegroundOpacity() == pytest.approx(0.8)
    set_overlay_threshold(node, 0.5)
    assert display.GetLowerThreshold() == pytest.approx(0.5)
    with pytest.raises(InputError):
        set_overlay_threshold(node, 1.5)
    # A second map reuses the colour table.
    add_uncertainty_volume(mrml.scene, unc, volume, "tta")
    assert len([n for n in _nodes(mrml.scene) if n.GetName() == COLOR_NODE_NAME]) == 1


def test_a_misplaced_or_invalid_map_is_refused_and_the_scene_unchanged(mrml, case):
    volume, _labels, unc = case
    before = scene_snapshot(mrml.scene)
    shifted = unc.with_array(unc.array)
    shifted.origin = tuple(np.array(unc.origin) + 1.5)
    with pytest.raises(InputError, match="grid"):
        add_uncertainty_volume(mrml.scene, shifted, volume, "entropy")
    with pytest.raises(InputError, match="0..1"):
        add_uncertainty_volume(mrml.scene, unc.with_array(unc.array * 3), volume, "entropy")
    assert scene_snapshot(mrml.scene) == before


def test_confidence_tags_statistics_and_jump_to_the_least_confident_segment(mrml, case, tmp_path):
    volume, labels, unc = case
    names = total_label_names()
    present = sorted(set(np.unique(labels.array).tolist()) - {0})
    segs = [s for s in segments_from_names(names) if s.value in present]
    update = write_segments(mrml.scene, labels, segs, reference_volume=volume, node_name="seg")
    node = update.node
    rng = np.random.default_rng(0)
    sdc = {names[v]: float(x) for v, x in zip(present, rng.uniform(0.3, 0.99, len(present)))}
    worst = min(sdc, key=sdc.get)
    confidence = {n: {"soft_dice": v, "mean_uncertainty": 0.1, "flagged": 0} for n, v in sdc.items()}
    write_confidence_tags(node, confidence, "entropy", threshold=0.8)
    seg = node.GetSegmentation()
    worst_id = seg.GetSegmentIdBySegmentName(worst)
    assert least_confident_segment(node) == worst_id
    scores = read_confidence(node)
    assert {s.name for s in scores.values() if s.flagged} == {n for n, v in sdc.items() if v < 0.8}
    assert {s.name for s in read_confidence(node, threshold=0.5).values() if s.flagged} == \
        {n for n, v in sdc.items() if v < 0.5}

    slices = [mrml.scene.AddNewNodeByClass("vtkMRMLSliceNode") for _ in range(2)]
    ras = jump_to_segment(mrml.scene, node, worst_id, volume)
    value = next(v for v in present if names[v] == worst)
    k, j, i = np.argwhere(labels.array == value).mean(0)
    expected = (labels.ijk_to_ras() @ np.array([i, j, k, 1.0]))[:3]
    np.testing.assert_allclose(ras, expected, atol=1e-6)
    for s in slices:
        np.testing.assert_allclose(slicer.util.arrayFromVTKMatrix(s.GetSliceToRAS())[:3, 3], expected, atol=1e-6)

    unc_node = add_uncertainty_volume(mrml.scene, unc, volume, "entropy")
    stats = segment_statistics(node, volume, mrml.segmentations, uncertainty_volume=unc_node)
    for s in stats:
        value = next(v for v in present if names[v] == s.name)
        assert s.confidence == pytest.approx(sdc[s.name], abs=1e-6)
        assert s.mean_uncertainty == pytest.approx(float(unc.array[labels.array == value].mean()), abs=1e-6)
        assert s.flagged == (sdc[s.name] < 0.8)
    rows = list(csv.DictReader(open(write_statistics_csv(stats, tmp_path / "s.csv"))))
    assert {r["Segment"] for r in rows if r["Low confidence"] == "yes"} == {n for n, v in sdc.items() if v < 0.8}


def _ijk_to_ras(node):
    import vtk

    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return m


def _display_nodes(node):
    return [node.GetNthDisplayNode(n) for n in range(node.GetNumberOfDisplayNodes())]


def _nodes(scene):
    return [scene.GetNthNode(n) for n in range(scene.GetNumberOfNodes())]
