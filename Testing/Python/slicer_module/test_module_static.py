"""Static checks of the Slicer module: widget names, layering, CMake lists, options, dependencies."""
from __future__ import annotations

import ast
import os
import re
import xml.etree.ElementTree as ET

import pytest

from conftest import REPO
from medsegai import terminology
from MedSegAILib.dependencies import PROTECTED, plan_installation
from MedSegAILib.model_choices import load_choices
from MedSegAILib.run_options import cpu_warning

MODULE = REPO / "MedSegAI" / "MedSegAI.py"
LIB = REPO / "MedSegAI" / "MedSegAILib"
GUI = REPO / "MedSegAI" / "MedSegAIGui"
UI = REPO / "Resources" / "UI" / "MedSegAI.ui"


def _gui_sources():
    return {path.name: path.read_text() for path in [MODULE, *sorted(GUI.glob("*.py"))]}


def test_every_widget_the_code_uses_exists_in_the_ui_file():
    names = {w.get("name") for w in ET.parse(UI).iter("widget")}
    used = {name for text in _gui_sources().values() for name in re.findall(r"\bui\.(\w+)", text)}
    assert used, "the widget uses no ui names: the check would be empty"
    assert sorted(used - names) == []


def test_module_file_keeps_only_what_slicer_looks_for():
    tree = ast.parse(MODULE.read_text())
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    assert classes == {"MedSegAI", "MedSegAIWidget", "MedSegAILogic", "MedSegAITest"}
    assert len(MODULE.read_text().splitlines()) < 200
    # The self-test flow is given the logic: it must not import the module file back.
    assert "import MedSegAI\n" not in (REPO / "MedSegAI" / "MedSegAITesting" / "module_flow.py").read_text()
    assert "from MedSegAI import" not in (REPO / "MedSegAI" / "MedSegAITesting" / "module_flow.py").read_text()


def test_the_panel_calls_only_the_logic_interface_and_one_place_reads_testing_mode():
    from MedSegAILib.logic_interface import PanelLogic

    allowed = {n for n in vars(PanelLogic) if not n.startswith("_")} | set(PanelLogic.__annotations__)
    sources = _gui_sources()
    called = {name for name, text in sources.items() if name != "MedSegAI.py"
              for name in re.findall(r"\blogic\.(\w+)", text)}
    assert called and called <= allowed, sorted(called - allowed)
    for name, text in sources.items():
        assert ".core." not in text and "job.cleanup" not in text and "job.process" not in text, name
    readers = sorted(name for name, text in sources.items() if "testingEnabled" in text)
    assert readers == ["dialogs.py"], readers


def _assert_implements(interface, cls):
    import inspect

    for name in (n for n in vars(interface) if not n.startswith("_")):
        assert hasattr(cls, name), f"{cls.__name__} lacks {name}"
        wanted = inspect.signature(getattr(interface, name)).parameters
        real = inspect.signature(getattr(cls, name)).parameters
        for param in wanted.values():
            assert param.name in real, f"{cls.__name__}.{name} lacks '{param.name}'"
            assert (real[param.name].default is inspect.Parameter.empty) == \
                (param.default is inspect.Parameter.empty), f"{cls.__name__}.{name}: '{param.name}' default differs"
        extra = [p for p in real.values() if p.name not in wanted and p.default is inspect.Parameter.empty]
        assert not extra, f"{cls.__name__}.{name} needs more than the interface passes: {extra}"


def test_segment_logic_and_both_dialog_sets_implement_their_interfaces():
    from MedSegAIGui.automatic_dialogs import AutomaticDialogs
    from MedSegAIGui.dialogs import Dialogs
    from MedSegAIGui.qt_dialogs import QtDialogs
    from MedSegAILib.logic_interface import PanelLogic
    from MedSegAILib.segment_logic import SegmentLogic

    _assert_implements(PanelLogic, SegmentLogic)
    _assert_implements(Dialogs, QtDialogs)
    _assert_implements(Dialogs, AutomaticDialogs)


def test_bridge_and_logic_do_not_import_qt_or_the_application():
    for path in LIB.glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not imported & {"qt", "ctk", "PythonQt"}, path.name
        assert "slicer.app" not in path.read_text(), path.name


def test_cmake_lists_every_library_file():
    cmake = (REPO / "MedSegAI" / "CMakeLists.txt").read_text()
    for package in (LIB, GUI):
        for path in package.glob("*.py"):
            assert f"{package.name}/{path.name}" in cmake, path.name
    top = (REPO / "CMakeLists.txt").read_text()
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY \"Segmentation\"", "EXTENSION_ICONURL",
                "EXTENSION_SCREENSHOTURLS", "EXTENSION_DESCRIPTION", "EXTENSION_CONTRIBUTORS",
                "EXTENSION_DEPENDS \"PyTorch\"", "add_subdirectory(MedSegAI)"):
        assert key in top, key


def test_terminology_covers_every_total_structure_and_groups_them(data_dir):
    from real_data import total_label_names

    names = list(total_label_names().values())
    assert len(names) == 117
    missing = [n for n in names if terminology.lookup(n) is None]
    assert missing == []
    coded = [n for n in names if terminology.lookup(n)[1]]
    assert len(coded) == 117  # every structure has a SNOMED CT code: DICOM SEG must never fall back to "Tissue"
    groups = terminology.structure_groups(names)
    assert sum(len(v) for v in groups.values()) == 117
    assert "vertebrae_L1" in groups["Vertebrae"] and "rib_left_3" in groups["Ribs and sternum"]
    assert "liver" in groups["Organs"] and "aorta" in groups["Heart and vessels"]
    assert "gluteus_maximus_left" in groups["Muscles"]
    assert terminology.structure_groups(["new_thing"]) == {"Other": ["new_thing"]}


def test_model_choices_from_the_catalogue_and_without_it(tmp_path):
    from MedSegAILib.model_choices import BUNDLED_LABEL, DEFAULT_CHOICE_KEY

    choices, problem = load_choices(REPO / "Resources" / "Models" / "catalog.json")
    assert problem is None
    assert choices[0].key == DEFAULT_CHOICE_KEY == "task:total"
    demo = choices[-1]
    assert demo.model == "medsegai_ct_demo" and BUNDLED_LABEL in demo.title
    total = next(c for c in choices if c.task == "total")
    assert total.qualities == ("normal", "fast", "fastest") and len(total.structures) == 117
    assert total.licence.startswith("Licence: Apache-2.0")
    choices, problem = load_choices(tmp_path / "missing.json")
    assert "No model catalogue" in problem and [c.task for c in choices] == ["total"]
    (tmp_path / "bad.json").write_text("{")
    choices, problem = load_choices(tmp_path / "bad.json")
    assert "cannot be read" in problem and choices


def test_cpu_warning_only_for_slow_full_resolution_runs():
    big = 512 * 512 * 300
    assert "many minutes" in cpu_warning("cpu", "normal", big, None)
    assert "many minutes" in cpu_warning("auto", "normal", big, False)
    assert cpu_warning("auto", "normal", big, True) == ""
    assert cpu_warning("cpu", "fast", big, None) == ""
    assert "No CUDA" in cpu_warning("cuda", "fast", big, False)


def test_install_plan_pins_slicers_own_packages_and_skips_what_is_there():
    versions = {"torch": "2.0.1", "scipy": "1.13.0", "scikit-image": None, "monai": "1.5.0", "pillow": "10.0.0",
                "filelock": "3.13.1", "SimpleITK": "2.4.0", "numpy": "1.26.4", "requests": "2.32.0",
                "vtk": "9.2.20230607"}
    plan = plan_installation(versions.get)
    assert plan.torch == "<3,>=2.1" or plan.torch == ">=2.1,<3"
    assert plan.pip_requirements == ["scikit-image>=0.21,<1"]
    assert plan.constraints == ["SimpleITK==2.4.0", "numpy==1.26.4", "requests==2.32.0", "vtk==9.2.20230607"]
    assert plan.restart_needed  # torch was present in an older version
    args = plan.pip_arguments("/tmp/c.txt")
    assert '"scikit-image>=0.21,<1"' in args and '-c "/tmp/c.txt"' in args
    assert not any(p.lower() in args.lower() for p in PROTECTED)
    complete = plan_installation({**versions, "torch": "2.5.0", "scikit-image": "0.24.0"}.get)
    assert complete.empty and not complete.restart_needed


def test_slicer_installs_exactly_the_runners_dependencies_less_slicers_own():
    """Inside Slicer the runner is not pip-installed: the module installs its dependencies itself,
    so its list must not drift from the runner's (a stale ceiling downgraded Pillow in Slicer)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    from packaging.requirements import Requirement

    from MedSegAILib.dependencies import REQUIREMENTS

    project = tomllib.loads((REPO / "MedSegAIInference" / "pyproject.toml").read_text())["project"]
    runner = {Requirement(r).name.lower(): str(Requirement(r).specifier) for r in project["dependencies"]}
    slicer_side = {Requirement(r).name.lower(): str(Requirement(r).specifier) for r in REQUIREMENTS}
    shipped_by_slicer = {p.lower() for p in PROTECTED}
    assert slicer_side == {n: v for n, v in runner.items() if n not in shipped_by_slicer}
    assert all(">=" in v and "<" in v.replace("<=", "") for v in runner.values()), "floors and ceilings"


def test_the_gui_process_works_before_the_dependencies_are_installed(tmp_path):
    """A fresh Slicer has numpy, SimpleITK, requests and VTK but none of torch, scipy, scikit-image,
    MONAI, Pillow or filelock: the panel must still list the models, say which are missing and
    reach the dependency question, and nothing it imports may need those packages."""
    import subprocess
    import sys

    script = f"""
import importlib.abc, sys
ABSENT = {{"torch", "scipy", "skimage", "monai", "PIL", "filelock", "nibabel"}}
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ABSENT:
            raise ModuleNotFoundError(f"No module named {{name!r}}")
sys.meta_path.insert(0, Absent())
sys.path[:0] = [{str(REPO / "MedSegAI")!r}, {str(REPO / "MedSegAIInference")!r}]
from MedSegAILib.model_choices import load_choices
from MedSegAILib.model_availability import missing_models
from MedSegAILib.dependencies import plan_installation
import MedSegAILib.segment_logic, MedSegAILib.statistics, MedSegAILib.uncertainty_overlay
import MedSegAILib.logic_interface, MedSegAILib.console_request
choices, problem = load_choices()
assert problem is None and [c.key for c in choices][:1] == ["task:total"], (problem, choices)
assert [m.model_id for m in missing_models("total", "fast", None, None)] == ["Dataset297_TotalSegmentator_total_3mm_1559subj"]
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if k not in ("TOTALSEG_WEIGHTS_PATH", "PYTHONPATH")}
    env.update(MEDSEGAI_HOME=str(tmp_path / "home"), TOTALSEG_HOME_DIR=str(tmp_path / "ts"))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
