"""A real MRML scene with the module logics Slicer would have wired up (GUIDE.md section 3), for
the tests, the benchmarks and the screenshot tool: application, colors, terminologies (with
MedSegAI's terminology loaded), segmentations and volumes logics, in that order."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import slicer

TERMINOLOGY = Path(__file__).resolve().parents[3] / "Resources/Terminology/SegmentationCategoryTypeModifier-MedSegAI.term.json"


def _wire(logic, scene, app_logic, name):
    logic.SetMRMLScene(scene)
    logic.SetMRMLApplicationLogic(app_logic)
    app_logic.SetModuleLogic(name, logic)
    return logic


def make_scene() -> SimpleNamespace:
    scene = slicer.vtkMRMLScene()
    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    colors = slicer.vtkSlicerColorLogic()
    colors.SetMRMLScene(scene)
    colors.SetMRMLApplicationLogic(app_logic)
    colors.AddDefaultColorNodes()
    app_logic.SetModuleLogic("Colors", colors)
    terminologies = _wire(slicer.vtkSlicerTerminologiesModuleLogic(), scene, app_logic, "Terminologies")
    if not terminologies.LoadTerminologyFromFile(str(TERMINOLOGY)):
        raise RuntimeError(f"Slicer could not load {TERMINOLOGY}")
    segmentations = _wire(slicer.vtkSlicerSegmentationsModuleLogic(), scene, app_logic, "Segmentations")
    volumes = _wire(slicer.vtkSlicerVolumesLogic(), scene, app_logic, "Volumes")
    return SimpleNamespace(scene=scene, app_logic=app_logic, segmentations=segmentations,
                           terminologies=terminologies, colors=colors, volumes=volumes)


def install_as_current(mrml: SimpleNamespace):
    """Make ``mrml`` what ``slicer.mrmlScene`` and ``slicer.modules.<name>.logic()`` return, as inside
    Slicer (slicer.util's helpers look there); returns what was there before."""
    saved = getattr(slicer, "mrmlScene", None), getattr(slicer, "modules", None)
    slicer.mrmlScene = mrml.scene
    slicer.modules = SimpleNamespace(**{name: SimpleNamespace(logic=(lambda lg=getattr(mrml, name): lg))
                                        for name in ("segmentations", "terminologies", "colors", "volumes")})
    return saved
