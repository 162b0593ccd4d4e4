"""The Slicer extension as CMake builds and installs it, and the installed tree used on its own.

Nothing else runs our CMake files without Slicer: here they are configured, built and installed
against a stand-in for Slicer's CMake package (Testing/CMake/FakeSlicer, same macros and folder
layout as Slicer 5.8). The installed qt-scripted-modules folder must then segment with the bundled
model with only itself on PYTHONPATH, as an Extension Manager install does.
"""
from __future__ import annotations

import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]
FAKE_SLICER = REPO / "Testing" / "CMake" / "FakeSlicer"
MODULES = "lib/Slicer-5.8/qt-scripted-modules"  # Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR of FakeSlicer
DESCRIPTION = "share/Slicer-5.8/MedSegAI.s4ext"
RUNNER = REPO / "MedSegAIInference" / "medsegai"
RUNNER_DATA = {".py", ".json", ".csv"}  # what the wheel ships: .py and its package-data
# The origin the Extensions Index clones from: Slicer reads the description's scmurl from the
# checkout's "origin" remote and refuses a checkout without one (a developer's tree may have none).
ORIGIN = "https://github.com/medsegai/MedSegAI.git"
CT = "ct/totalsegmentator-examples/tests/reference_files/example_ct_sm.nii.gz"


def _run(cmd, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kwargs)
    if proc.returncode != 0:
        shown = " ".join(str(c) if len(str(c)) < 200 else "<script>" for c in cmd)
        pytest.fail(f"{shown} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def _cmake() -> str:
    # The venv's bin folder first: the PyPI cmake of the test requirements, even when not activated.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    cmake = shutil.which("cmake", path=path)
    if cmake is None:
        pytest.fail("cmake not found: install the test requirements "
                    "(pip install -c constraints.txt -r Testing/requirements-test.txt), which include cmake.")
    return cmake


def _files(root: Path) -> set:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def extension(tmp_path_factory):
    cmake = _cmake()
    work = tmp_path_factory.mktemp("extension")
    build, prefix = work / "build", work / "prefix"
    env = dict(os.environ, GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="remote.origin.url", GIT_CONFIG_VALUE_0=ORIGIN)
    _run([cmake, "-S", REPO, "-B", build, f"-DSlicer_DIR={FAKE_SLICER}", f"-DCMAKE_INSTALL_PREFIX={prefix}",
          "-DBUILD_TESTING=ON"], env=env)
    _run([cmake, "--build", build, "--parallel", "2"], env=env)
    _run([cmake, "--install", build], env=env)
    return SimpleNamespace(cmake=cmake, build=build, prefix=prefix, modules=prefix / MODULES)


def expected_module_files() -> set:
    """What the install must hold, from the source tree as it is now."""
    module = REPO / "MedSegAI"
    # MedSegAI.py and its packages (MedSegAILib, MedSegAITesting); MedSegAI/Testing is the ctest's.
    files = {rel for rel in _files(module) if rel.endswith(".py") and not rel.startswith("Testing/")
             and "__pycache__" not in rel.split("/")}
    files |= {f"Resources/{rel}" for rel in _files(REPO / "Resources")}
    files |= {f"medsegai/{rel}" for rel in _files(RUNNER)
              if "__pycache__" not in rel.split("/") and Path(rel).suffix in RUNNER_DATA}
    return files


def test_runner_data_matches_the_wheel():
    # MedSegAI/CMakeLists.txt copies the same patterns: a new kind of package data goes in both.
    pyproject = (RUNNER.parent / "pyproject.toml").read_text(encoding="utf-8")
    section = pyproject.split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
    patterns = set(re.findall(r'"\*(\.[A-Za-z0-9]+)"', section))
    assert patterns | {".py"} == RUNNER_DATA, patterns


def test_install_holds_module_resources_and_runner(extension):
    installed = _files(extension.modules)
    expected = expected_module_files()
    missing, extra = sorted(expected - installed), sorted(installed - expected)
    assert not missing, f"not installed (MedSegAILib files are listed in MedSegAI/CMakeLists.txt): {missing}"
    assert not extra, f"installed but not expected: {extra}"

    # Named because the module and the runner look for exactly these paths.
    for rel in ("MedSegAI.py", "Resources/UI/MedSegAI.ui", "Resources/Icons/MedSegAI.png",
                "Resources/Models/catalog.json", "Resources/Models/catalog.schema.json",
                "medsegai/__init__.py", "medsegai/service/worker.py", "medsegai/totalseg/class_maps.json",
                "medsegai/terminology/structures.csv"):
        assert rel in installed, rel
    assert any(re.fullmatch(r"Resources/Terminology/[^/]+\.term\.json", f) for f in installed)
    model = {f for f in installed if f.startswith("Resources/Models/medsegai_ct_demo/")}
    assert any(f.endswith("/checkpoint_final.pth") for f in model) and any(f.endswith("/plans.json") for f in model)

    source = {}
    for rel in expected:
        top, _, rest = rel.partition("/")
        source[rel] = {"Resources": REPO / "Resources", "medsegai": RUNNER}.get(top, REPO / "MedSegAI" / top) / rest \
            if rest else REPO / "MedSegAI" / rel
    changed = sorted(rel for rel, src in source.items() if not filecmp.cmp(src, extension.modules / rel, shallow=False))
    assert not changed, f"installed copies differ from the source: {changed}"

    assert not any("__pycache__" in p.parts for p in extension.modules.rglob("*"))
    testing_names = {p.name for p in (REPO / "MedSegAI" / "Testing").rglob("*.py")}
    for rel in installed:
        parts = rel.split("/")
        assert not {"Testing", "Benchmarks"} & set(parts), rel
        assert parts[-1] not in testing_names and not parts[-1].startswith("test_") and parts[-1] != "conftest.py", rel
    outside = _files(extension.prefix) - {f"{MODULES}/{f}" for f in installed}
    assert outside == {DESCRIPTION}


def test_ctest_lists_the_module_python_tests(extension):
    ctest = shutil.which("ctest", path=str(Path(extension.cmake).parent))
    listed = set(re.findall(r"Test\s+#\d+: (\S+)", _run([ctest, "-N"], cwd=extension.build).stdout))
    expected = {"py_MedSegAI", "py_nomainwindow_qSlicerMedSegAIModuleGenericTest"}
    expected |= {f"py_{p.stem}" for p in (REPO / "MedSegAI" / "Testing" / "Python").glob("*.py")}
    assert listed == expected


def test_description_file(extension):
    text = (extension.build / "MedSegAI.s4ext").read_text(encoding="utf-8")
    assert (extension.prefix / DESCRIPTION).read_text(encoding="utf-8") == text
    desc = dict((line.split(" ", 1) + [""])[:2] for line in text.splitlines() if line and not line.startswith("#"))
    assert desc["homepage"].startswith("https://")
    assert desc["category"] == "Segmentation"
    assert desc["depends"].split() == ["PyTorch"]
    assert desc["scm"] == "git" and desc["scmurl"] == ORIGIN
    head = _run(["git", "rev-list", "-n", "1", "HEAD"], cwd=REPO).stdout.strip()
    assert desc["scmrevision"] == head
    urls = [desc["iconurl"], *desc["screenshoturls"].split()]
    assert len(urls) >= 2 and all(u.startswith("https://") for u in urls), urls
    # The icon and the screenshots are served from this repository: the files must be in it.
    for url in urls:
        served = re.fullmatch(r"https://raw\.githubusercontent\.com/[^/]+/[^/]+/[^/]+/(.+)", url)
        assert served and (REPO / served.group(1)).is_file(), url


PROBE = r"""
import json, sys
import SimpleITK as sitk
import medsegai, MedSegAILib
from medsegai.io.image import Image
from medsegai.models import resolve_model
from MedSegAILib.model_choices import load_choices

crop, catalog = sys.argv[1:3]
choices, problem = load_choices(catalog)
merged, merged_problem = load_choices()  # what the panel lists: the runner's merged catalogue
result = medsegai.segment(crop, model="medsegai_ct_demo", device="cpu", threads=2)
print(json.dumps({
    "medsegai": medsegai.__file__, "MedSegAILib": MedSegAILib.__file__,
    "model": str(resolve_model("medsegai_ct_demo")),
    "choices": [c.model for c in choices], "problem": problem,
    "merged": [c.model for c in merged], "merged_problem": merged_problem,
    "same_grid": result.labels.same_grid(Image.from_sitk(sitk.ReadImage(crop))),
    "present": [s.name for s in result.present_segments()],
}))
"""


@pytest.fixture(scope="module")
def standalone(extension, data_dir, tmp_path_factory):
    """A crop of the real CT and an environment in which only the installed tree is importable."""
    import SimpleITK as sitk

    work = tmp_path_factory.mktemp("standalone")
    crop = work / "crop.nii.gz"
    # The abdomen crop of slicer_module/real_data.py (k 8:24, j 20:70, i 25:95), geometry kept.
    sitk.WriteImage(sitk.ReadImage(str(data_dir / CT))[25:95, 20:70, 8:24], str(crop))
    env = {k: v for k, v in os.environ.items() if k not in ("MEDSEGAI_RESOURCES", "PYTHONPATH")}
    # The venv also has medsegai installed editable from the source tree; PYTHONPATH comes first on
    # sys.path, so the installed copy must win (asserted below). No .pyc into the installed tree.
    env.update(PYTHONPATH=str(extension.modules), MEDSEGAI_HOME=str(work / "home"), PYTHONDONTWRITEBYTECODE="1")
    return SimpleNamespace(work=work, crop=crop, env=env, modules=extension.modules)


def test_installed_tree_segments_on_its_own(standalone):
    proc = _run([sys.executable, "-c", PROBE, standalone.crop, standalone.modules / "Resources/Models/catalog.json"],
                cwd=standalone.work, env=standalone.env)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    modules = standalone.modules.resolve()
    assert Path(out["medsegai"]).resolve().is_relative_to(modules), out["medsegai"]
    assert Path(out["MedSegAILib"]).resolve().is_relative_to(modules), out["MedSegAILib"]
    # Found through Resources/ beside medsegai/, where the Slicer install puts it.
    bundled = modules / "Resources" / "Models" / "medsegai_ct_demo"
    assert Path(out["model"]).resolve().is_relative_to(bundled), out["model"]
    assert out["problem"] is None and "medsegai_ct_demo" in out["choices"]
    assert out["merged_problem"] is None and "medsegai_ct_demo" in out["merged"]
    assert out["same_grid"] and out["present"], out


def test_installed_worker_runs_a_job(standalone):
    from medsegai.service.events import decode_event
    from medsegai.run_request import RunRequest
    from medsegai.service.job import JobSpec

    out_dir = standalone.work / "worker-out"
    job = JobSpec(input_path=str(standalone.crop), output_dir=str(out_dir),
                  run=RunRequest(model="medsegai_ct_demo", device="cpu", threads=2)).write(standalone.work / "job.json")
    proc = _run([sys.executable, "-m", "medsegai.service.worker", job], cwd=standalone.work, env=standalone.env)
    events = [decode_event(line) for line in proc.stdout.splitlines()]
    assert events and events[-1].kind == "result", proc.stdout[-2000:]
    result = events[-1].data
    assert any(s["present"] for s in result["segments"])
    outputs = [Path(p) for p in result["outputs"].values()]
    assert outputs and all(p.is_file() and p.parent == out_dir for p in outputs), outputs
