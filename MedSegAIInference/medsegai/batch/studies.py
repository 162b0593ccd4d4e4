"""Which studies a batch has: one per image file or DICOM series folder, or the rows of a CSV."""
from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

from ..errors import MedSegAIError

IMAGE_FILE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_CHUNK = 1 << 20


class BatchInputError(MedSegAIError):
    """The batch's input folder or manifest cannot be used as it is."""


@dataclass(frozen=True)
class Study:
    id: str  # also the name of its output folder
    path: str

    def to_dict(self) -> Dict[str, str]:
        return {"id": self.id, "path": self.path}


def _image_stem(name: str):
    low = name.lower()
    for suffix in IMAGE_FILE_SUFFIXES:
        if low.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def _is_dicom_folder(folder: Path) -> bool:
    for p in folder.rglob("*"):
        if p.is_file():
            if p.suffix.lower() == ".dcm":
                return True
            try:
                with open(p, "rb") as fh:
                    fh.seek(128)
                    if fh.read(4) == b"DICM":
                        return True
            except OSError:
                continue
    return False


def _safe_id(text: str) -> str:
    out = _UNSAFE.sub("_", text).strip("._")
    return out or "study"


def discover(source) -> List[Study]:
    """The studies of a folder or CSV manifest, sorted by id; duplicate ids are an error."""
    source = Path(source)
    if not source.exists():
        raise BatchInputError(f"The batch input {source} does not exist.")
    if source.is_file():
        if source.suffix.lower() != ".csv":
            raise BatchInputError(f"The batch input {source} is a file; give a folder of studies or a CSV manifest.")
        studies = _from_csv(source)
    else:
        studies = []
        for p in sorted(source.iterdir()):
            if p.name.startswith("."):
                continue
            if p.is_file():
                stem = _image_stem(p.name)
                if stem is not None:
                    studies.append(Study(_safe_id(stem), str(p.resolve())))
            elif p.is_dir() and _is_dicom_folder(p):
                studies.append(Study(_safe_id(p.name), str(p.resolve())))
    if not studies:
        raise BatchInputError(f"No studies in {source}: it holds no image files ({', '.join(IMAGE_FILE_SUFFIXES)}) "
                              f"and no DICOM series folders.")
    seen: Dict[str, str] = {}
    for s in studies:
        if s.id in seen:
            raise BatchInputError(f"Two studies would share the output name '{s.id}': {seen[s.id]} and {s.path}; "
                                  f"rename one, or give ids in a CSV manifest.")
        seen[s.id] = s.path
    return sorted(studies, key=lambda s: s.id)


def _from_csv(path: Path) -> List[Study]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BatchInputError(f"The manifest {path} cannot be read ({exc}).") from None
    if not rows or "path" not in rows[0]:
        raise BatchInputError(f"The manifest {path} needs a 'path' column (and optionally 'id').")
    studies = []
    for n, row in enumerate(rows, 2):
        raw = (row.get("path") or "").strip()
        if not raw:
            raise BatchInputError(f"{path}, line {n}: the path is empty.")
        p = Path(raw)
        p = p if p.is_absolute() else (path.parent / p)
        name = (row.get("id") or "").strip() or _image_stem(p.name) or p.name
        studies.append(Study(_safe_id(name), str(p.resolve())))
    return studies


def select_part(studies: List[Study], num_parts: int, part_id: int) -> List[Study]:
    """Every num_parts-th study starting at part_id: parts run on separate machines never overlap."""
    if num_parts < 1 or not 0 <= part_id < num_parts:
        raise BatchInputError(f"--part-id must lie in 0..{num_parts - 1} (got {part_id} with --num-parts {num_parts}).")
    return studies[part_id::num_parts]


def input_sha256(path) -> str:
    """SHA256 of a study's input: the file, or a DICOM folder's files (relative names and contents)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if path.is_dir():
            digest.update(f.relative_to(path).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(_CHUNK), b""):
                digest.update(block)
    return digest.hexdigest()
