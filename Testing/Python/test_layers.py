"""The layers hold: nothing imports upward, no import circles between the runner's parts, and the
plain runner does not pull in the features built on top of it."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Set

REPO = Path(__file__).resolve().parents[2]
RUNNER = REPO / "MedSegAIInference" / "medsegai"
MODULE = REPO / "MedSegAI"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, root: Path) -> Set[str]:
    """Every module a file imports, at the top or inside functions, relative imports resolved."""
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found |= {f"{mod}.{a.name}" for a in node.names}  # "from . import api" imports a module
    return found


def _graph(root: Path, top: str) -> Dict[str, Set[str]]:
    return {_module_name(p, root): _imports(p, root) for p in (root / top).rglob("*.py")}


def _part(module: str) -> str:
    """medsegai.inference.pipeline -> inference; medsegai.predictor -> predictor."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


# Which parts of the runner each part may import: a part never imports one built on top of it.
RUNNER_BASE = {"errors", "progress", "atomic", "resources", "run_request", "io", "nnunet", "totalseg",
               "terminology", "result", "system_memory", "body_region", "reliability", "__version__"}
ALLOWED = {
    "inference": RUNNER_BASE | {"models"},  # the model manager finds installed models
    "uncertainty": RUNNER_BASE | {"inference"},
    "predictor": RUNNER_BASE | {"inference", "uncertainty", "models"},
    "training": RUNNER_BASE | {"inference", "models", "predictor"},  # validation runs the predictor
}


def test_runner_parts_import_only_downward():
    graph = _graph(RUNNER.parent, "medsegai")
    bad = []
    for module, imports in graph.items():
        allowed = ALLOWED.get(_part(module))
        if allowed is None:
            continue
        for imp in imports:
            if imp.startswith("medsegai.") and _part(imp) not in allowed | {_part(module)}:
                bad.append(f"{module} imports {imp}")
    assert not bad, "\n".join(sorted(bad))


def test_no_import_circle_between_runner_parts():
    graph = _graph(RUNNER.parent, "medsegai")
    edges: Dict[str, Set[str]] = {}
    for module, imports in graph.items():
        for imp in imports:
            if imp.startswith("medsegai.") and _part(imp) != _part(module):
                edges.setdefault(_part(module), set()).add(_part(imp))
    # The top-level package and the CLI front ends legitimately see everything.
    front = {"__init__", "cli", "api", "demo"}
    cycles = []
    for a, targets in edges.items():
        for b in targets:
            if a not in front and b not in front and a in edges.get(b, set()):
                cycles.append(tuple(sorted((a, b))))
    assert not cycles, f"import circles: {sorted(set(cycles))}"


def test_runner_never_imports_slicer_or_qt():
    bad = [f"{m} imports {i}" for m, imps in _graph(RUNNER.parent, "medsegai").items() for i in imps
           if i.split(".")[0] in {"slicer", "qt", "ctk", "vtk", "MedSegAI", "MedSegAILib", "PythonQt"}]
    assert not bad, "\n".join(bad)


def test_slicer_logic_has_no_qt_and_nothing_imports_the_module_file():
    graph = {**_graph(MODULE, "MedSegAILib"), **_graph(MODULE, "MedSegAITesting")}
    bad = []
    for module, imports in graph.items():
        for imp in imports:
            top = imp.split(".")[0]
            if module.startswith("MedSegAILib") and top in {"qt", "ctk", "PythonQt"}:
                bad.append(f"{module} imports Qt ({imp})")
            if top == "MedSegAI" or (module.startswith("MedSegAILib") and top == "MedSegAIGui"):
                bad.append(f"{module} imports upward ({imp})")
    assert not bad, "\n".join(sorted(bad))


def test_plain_prediction_does_not_load_the_uncertainty_code(ts_ref):
    code = (
        "import sys\n"
        "import medsegai.run_request\n"
        "assert 'torch' not in sys.modules, 'the run request pulled in torch'\n"
        "from medsegai import Predictor\n"
        f"r = Predictor(model='medsegai_ct_demo', device='cpu', threads=1).predict({str(ts_ref / 'example_ct_sm.nii.gz')!r})\n"
        "assert r.labels.array.any()\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('medsegai.uncertainty'))\n"
        "assert not loaded, loaded\n"
    )
    env = {**os.environ, "PYTHONPATH": str(RUNNER.parent)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]


# The server, the remote client and the batch runner sit on top of everything; only the CLI's
# registry names them. Below them nothing may import them, and the client never needs the server.
TOP_LAYERS = {"server": {"server", "remote", "cli"}, "batch": {"batch", "cli"}, "remote": {"remote", "server", "cli"}}


def test_server_batch_and_remote_are_top_layers():
    bad = []
    for module, imports in _graph(RUNNER.parent, "medsegai").items():
        for imp in imports:
            part = _part(imp) if imp.startswith("medsegai.") else None
            if part in TOP_LAYERS and _part(module) not in TOP_LAYERS[part]:
                bad.append(f"{module} imports {imp}")
    assert not bad, "\n".join(sorted(bad))


def test_plain_prediction_and_the_cli_never_import_fastapi_or_ray(ts_ref):
    code = (
        "import sys\n"
        "from medsegai.cli import build_parser\n"
        "build_parser().parse_args(['segment', '-i', 'x', '-o', 'y'])\n"
        "from medsegai import Predictor\n"
        f"r = Predictor(model='medsegai_ct_demo', device='cpu', threads=1).predict({str(ts_ref / 'example_ct_sm.nii.gz')!r})\n"
        "assert r.labels.array.any()\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'uvicorn', 'starlette', 'ray')\n"
        "               or m.startswith(('medsegai.server.app', 'medsegai.batch.ray_run')))\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "PYTHONPATH": str(RUNNER.parent)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
