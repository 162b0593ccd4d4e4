"""Extraction of model zips that refuses anything that could write outside the target folder.

Refused before a single byte is written: absolute paths and drive letters, ``..`` components,
backslashes (Windows separators that mean something else on POSIX), duplicate names, symlinks and
other special files, encrypted members, more members or more uncompressed bytes than the limits,
and members that inflate suspiciously (zip bombs). While extracting, bytes written are counted
against the declared sizes, and zipfile's CRC check catches corrupt or truncated data.
"""
from __future__ import annotations

import re
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import List, Optional

from ..progress import CancelToken, ProgressCallback, ProgressEvent
from .errors import UnsafeArchiveError

_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_IGNORED_PREFIXES = ("__MACOSX/",)  # resource forks macOS' archiver adds; never part of a model


@dataclass(frozen=True)
class ExtractLimits:
    # TotalSegmentator's largest zips hold a few hundred MB; 16 GiB leaves room for ensembles of
    # folds while still stopping a bomb before it fills the disk.
    max_total_bytes: int = 16 * 1024**3
    max_members: int = 10_000
    max_ratio: float = 250.0  # uncompressed / compressed, checked for members above ratio_min_bytes
    ratio_min_bytes: int = 16 * 1024**2


def _member_problem(info: zipfile.ZipInfo) -> Optional[str]:
    name = info.filename
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/") or _DRIVE_RE.match(name):
        return "is an absolute path"
    parts = PurePosixPath(name).parts
    if any(p == ".." for p in parts):
        return "points outside the archive ('..')"
    if info.flag_bits & 0x1:
        return "is encrypted"
    mode = (info.external_attr >> 16) & 0xFFFF
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFLNK:
        return "is a symbolic link"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "is a special file (device, pipe or socket)"
    return None


def inspect_zip(archive: Path, limits: ExtractLimits = ExtractLimits()) -> List[zipfile.ZipInfo]:
    """Members to extract, after every check that needs no decompression."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise UnsafeArchiveError(
            f"{archive} is not a zip archive or is truncated (no central directory). Download it again."
        ) from None
    except OSError as exc:
        raise UnsafeArchiveError(f"Cannot read {archive}: {exc}.") from None
    with zf:
        infos = [i for i in zf.infolist() if not i.filename.startswith(_IGNORED_PREFIXES)]
    if len(infos) > limits.max_members:
        raise UnsafeArchiveError(f"{archive} holds {len(infos)} members (limit {limits.max_members}); refused.")
    seen = set()
    total = 0
    for info in infos:
        problem = _member_problem(info)
        if problem:
            raise UnsafeArchiveError(f"{archive} is unsafe: member '{info.filename}' {problem}. Nothing was extracted.")
        key = PurePosixPath(info.filename).as_posix().rstrip("/")
        if key in seen:
            raise UnsafeArchiveError(f"{archive} holds '{info.filename}' twice; refused.")
        seen.add(key)
        total += info.file_size
        if total > limits.max_total_bytes:
            raise UnsafeArchiveError(
                f"{archive} would expand to more than {limits.max_total_bytes / 1024**3:.1f} GiB (zip bomb?); refused."
            )
        if (
            info.file_size > limits.ratio_min_bytes
            and info.file_size > limits.max_ratio * max(info.compress_size, 1)
        ):
            raise UnsafeArchiveError(
                f"{archive} is unsafe: member '{info.filename}' inflates {info.file_size / max(info.compress_size, 1):.0f}x "
                f"(limit {limits.max_ratio:.0f}x; zip bomb?). Nothing was extracted."
            )
    return infos


def safe_extract_zip(
    archive: Path,
    dest: Path,
    *,
    limits: ExtractLimits = ExtractLimits(),
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> Path:
    """Extract ``archive`` into the new or empty folder ``dest``; returns ``dest``."""
    archive, dest = Path(archive), Path(dest)
    infos = inspect_zip(archive, limits)
    total = sum(i.file_size for i in infos) or 1
    free = shutil.disk_usage(dest.parent if not dest.exists() else dest).free
    if sum(i.file_size for i in infos) > free:
        raise UnsafeArchiveError(f"Not enough disk space to extract {archive} ({total / 1e6:.0f} MB needed).")
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    written = 0
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in infos:
                if cancel is not None:
                    cancel.raise_if_cancelled()
                target = (root / info.filename).resolve()
                if target != root and root not in target.parents:  # defence in depth
                    raise UnsafeArchiveError(f"{archive}: member '{info.filename}' resolves outside the target.")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                member_written = 0
                with zf.open(info) as src, open(target, "xb") as out:
                    while True:
                        block = src.read(1 << 20)
                        if not block:
                            break
                        member_written += len(block)
                        written += len(block)
                        if member_written > info.file_size or written > limits.max_total_bytes:
                            raise UnsafeArchiveError(f"{archive}: member '{info.filename}' is larger than declared; refused.")
                        out.write(block)
                        if cancel is not None:
                            cancel.raise_if_cancelled()
                if member_written != info.file_size:
                    raise UnsafeArchiveError(f"{archive}: member '{info.filename}' is shorter than declared (truncated).")
                if progress is not None:
                    progress(ProgressEvent("extract", written / total, info.filename))
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise UnsafeArchiveError(f"{archive} is corrupt or truncated ({exc}). Download it again.") from None
    return dest
