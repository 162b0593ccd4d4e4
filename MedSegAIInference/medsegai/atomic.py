"""Atomic file writes: a reader sees the old file or the new one, never a half-written one.

Standard library only: Slicer's GUI process imports this where torch and SimpleITK may be missing.
"""
from __future__ import annotations

import json
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

# Writers such as SimpleITK pick the file format from the name, so the temp keeps the whole suffix.
_DOUBLE_SUFFIXES = (".seg.nrrd", ".nii.gz")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return next((s for s in _DOUBLE_SUFFIXES if name.endswith(s)), path.suffix)


def _new_temp(target: Path) -> Path:
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.part{_suffix(target)}")
        try:
            # Not mkstemp: its 0600 mode would stay on the renamed file; os.open honours the umask.
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new temporary path beside ``path`` with the same suffix; rename it into place on success.

    On any failure inside the block (or in the rename) the temp is removed and ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp(target)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)  # after a successful rename there is nothing left to remove


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: Optional[int] = 2) -> Path:
    # Serialised first: an object json cannot encode fails before any file is touched.
    return atomic_write_text(path, json.dumps(obj, indent=indent))


def _outputs_present(out_dir: Path) -> set:
    found = set()
    for d in (out_dir, out_dir / "masks"):
        if d.is_dir():
            found |= set(d.iterdir())
    return found


def _hold(files: set, out_dir: Path) -> dict:
    """Hard links of the files present, in a hidden folder: {link: original}. A link costs no disk
    space, so it works on the full disk that made the run fail; where links are impossible (another
    file system, FAT) that file is simply not held."""
    held = {}
    if not files:
        return held
    keep = out_dir / f".medsegai-earlier-{secrets.token_hex(4)}"
    for n, f in enumerate(sorted(p for p in files if p.is_file() and not p.is_symlink())):
        link = keep / f"{n}-{f.name}"
        try:
            keep.mkdir(exist_ok=True)
            os.link(f, link)
            held[link] = f
        except OSError:
            continue
    return held


def _release(held: dict) -> None:
    for link in held:
        link.unlink(missing_ok=True)
    for folder in {link.parent for link in held}:
        try:
            folder.rmdir()
        except OSError:
            pass


@contextmanager
def removing_new_outputs(out_dir: Path, created_dir: bool) -> Iterator[None]:
    """On any error (Ctrl+C included), remove what the block added to ``out_dir`` (and ``masks/``),
    put back every file of an earlier run it replaced, and remove ``out_dir`` itself when the caller
    created it: a failed run leaves the folder as it was, never half old and half new results."""
    before = _outputs_present(out_dir)
    held = _hold(before, out_dir)
    try:
        yield
    except BaseException:
        for p in sorted(_outputs_present(out_dir) - before - {link.parent for link in held},
                        key=lambda q: len(q.parts), reverse=True):
            if p.is_dir():
                if not any(p.iterdir()):
                    p.rmdir()
            else:
                p.unlink(missing_ok=True)
        for link, original in held.items():
            try:
                if not os.path.samefile(link, original):
                    os.replace(link, original)  # a rename: needs no free space either
            except OSError:
                try:
                    os.replace(link, original)
                except OSError:
                    pass
        if created_dir and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    finally:
        _release(held)
