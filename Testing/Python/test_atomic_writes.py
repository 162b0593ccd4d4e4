"""``medsegai.atomic``: writes land complete or not at all, and a failed write leaves no temp file."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medsegai.atomic import atomic_path, atomic_write_json, atomic_write_text

REPO = Path(__file__).resolve().parents[2]


def _names(folder: Path) -> set:
    return {p.name for p in folder.iterdir()}


def test_writes_land_complete_with_the_usual_mode(tmp_path):
    text = "é\n" * 100_000
    atomic_write_text(tmp_path / "a.txt", text)
    atomic_write_json(tmp_path / "sub" / "b.json", {"k": [1, 2]})
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == text
    assert json.loads((tmp_path / "sub" / "b.json").read_text()) == {"k": [1, 2]}
    assert _names(tmp_path) == {"a.txt", "sub"} and _names(tmp_path / "sub") == {"b.json"}
    umask = os.umask(0)
    os.umask(umask)
    # Like a plain open(): a temp made by mkstemp would have left the file readable by its owner only.
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("name, suffix", [("seg.seg.nrrd", ".seg.nrrd"), ("ct.NII.GZ", ".nii.gz"),
                                          ("w.pth", ".pth"), ("a.b.json", ".json"), ("README", "")])
def test_temp_keeps_the_suffix(tmp_path, name, suffix):
    with atomic_path(tmp_path / name) as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".part" + suffix) and tmp.is_file()
        tmp.write_bytes(b"x")
    assert _names(tmp_path) == {name}


def test_failure_inside_the_block_keeps_the_old_file(tmp_path):
    target = tmp_path / "settings.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old" and _names(tmp_path) == {"settings.json"}


def test_unserialisable_json_touches_nothing(tmp_path):
    target = tmp_path / "trust.json"
    target.write_text("old")
    with pytest.raises(TypeError):
        atomic_write_json(target, {"x": object()})
    assert target.read_text() == "old" and _names(tmp_path) == {"trust.json"}


def test_read_only_folder_raises_and_leaves_nothing(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "f.txt").write_text("old")
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running with privileges that write into read-only folders")
        with pytest.raises(OSError):
            atomic_write_text(folder / "f.txt", "new")
        assert (folder / "f.txt").read_text() == "old" and _names(folder) == {"f.txt"}
    finally:
        folder.chmod(0o755)


def test_failed_rename_removes_the_temp(tmp_path):
    # A non-empty folder where the file should go: the rename fails even for root.
    (tmp_path / "out.csv").mkdir()
    (tmp_path / "out.csv" / "keep").write_text("x")
    with pytest.raises(OSError):
        atomic_write_text(tmp_path / "out.csv", "a,b\n")
    assert _names(tmp_path) == {"out.csv"} and _names(tmp_path / "out.csv") == {"keep"}


def test_atomic_and_resources_import_nothing_heavy():
    # Loaded as plain files: Slicer's GUI process imports them where these packages may be missing.
    code = (
        "import importlib.util, sys\n"
        "for name in ('atomic', 'resources'):\n"
        f"    spec = importlib.util.spec_from_file_location(name, {str(REPO / 'MedSegAIInference' / 'medsegai')!r}"
        " + f'/{name}.py')\n"
        "    spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "print(sorted({'numpy', 'torch', 'SimpleITK', 'medsegai'} & set(sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr
