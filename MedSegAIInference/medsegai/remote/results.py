"""A job's output files as they travel back: one zip (stored, the files are compressed already).

The client checks the zip's SHA256 against the server's header, refuses any member whose name
could leave the output folder, and writes every file atomically; if anything fails midway the
files this run wrote are removed again, as a local run does, so a half result never looks done.
"""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path, PurePosixPath
from typing import Dict, List

from ..atomic import atomic_path, removing_new_outputs
from .protocol import RemoteError

_CHUNK = 1 << 20


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def pack_folder(folder: Path, target: Path) -> List[str]:
    """Zip every file under ``folder`` (relative names, POSIX separators) into ``target`` atomically."""
    names = []
    with atomic_path(target) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for p in sorted(q for q in folder.rglob("*") if q.is_file()):
                name = p.relative_to(folder).as_posix()
                zf.write(p, name)
                names.append(name)
    return names


def _safe_member(name: str) -> PurePosixPath:
    p = PurePosixPath(name)
    if p.is_absolute() or not p.parts or any(part in ("", ".", "..") for part in p.parts) or "\\" in name \
            or len(p.parts) > 2:
        raise RemoteError(f"The server's result holds an unexpected file name {name!r}; nothing was written.")
    return p


def extract_result(archive: Path, out_dir: Path, expected_sha256: str) -> Dict[str, Path]:
    """Write the result's files into ``out_dir``; returns {relative name: path}. All or nothing."""
    if expected_sha256 and sha256_of(archive) != expected_sha256:
        raise RemoteError("The result downloaded from the server is damaged (its SHA256 does not match); "
                          "nothing was written. Download it again.")
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise RemoteError(f"The result downloaded from the server is not a zip ({exc}); nothing was written.") from None
    created_dir = not out_dir.exists()
    written: Dict[str, Path] = {}
    with removing_new_outputs(out_dir, created_dir):
        with zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                rel = _safe_member(info.filename)
                target = out_dir.joinpath(*rel.parts)
                with atomic_path(target) as tmp, zf.open(info) as src, open(tmp, "wb") as dst:
                    for block in iter(lambda: src.read(_CHUNK), b""):
                        dst.write(block)
                written[rel.as_posix()] = target
    return written
