"""SHA256 of files and folders, install manifests, and the trust-on-first-use record.

TotalSegmentator publishes no checksums. Where the catalogue has no SHA256, the hash seen at the
first download (or first use of a folder installed by someone else) is recorded in
``<cache>/trust.json``; every later download or use is compared with it, so a file that changed
afterwards (corruption, tampering, a silently replaced release asset) is refused.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional


from ..atomic import atomic_write_json
from ..progress import CancelToken
from .errors import ChecksumError

MANIFEST_NAME = ".medsegai-manifest.json"
_CHUNK = 1 << 20


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def sha256_file(path: Path, cancel: Optional[CancelToken] = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            if cancel is not None:
                cancel.raise_if_cancelled()
            block = f.read(_CHUNK)
            if not block:
                return h.hexdigest()
            h.update(block)


@dataclass(frozen=True)
class FileRecord:
    sha256: str
    size: int


def hash_tree(folder: Path, cancel: Optional[CancelToken] = None) -> Dict[str, FileRecord]:
    """Every regular file below ``folder`` (POSIX relative path -> hash), manifest excluded."""
    folder = Path(folder)
    out: Dict[str, FileRecord] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            rel = p.relative_to(folder).as_posix()
            if rel == MANIFEST_NAME or p.is_symlink() or not p.is_file():
                continue
            out[rel] = FileRecord(sha256_file(p, cancel), p.stat().st_size)
    return out


def compare_tree(folder: Path, expected: Dict[str, FileRecord], cancel: Optional[CancelToken] = None) -> List[str]:
    """Differences between a folder and recorded hashes, as user-facing lines (empty: identical)."""
    actual = hash_tree(folder, cancel)
    problems = []
    for rel, rec in sorted(expected.items()):
        got = actual.get(rel)
        if got is None:
            problems.append(f"missing: {rel}")
        elif got.sha256 != rec.sha256:
            problems.append(f"changed: {rel} (SHA256 {got.sha256[:12]}..., recorded {rec.sha256[:12]}...)")
    for rel in sorted(set(actual) - set(expected)):
        problems.append(f"added: {rel}")
    return problems


def _records_from_json(d: dict) -> Dict[str, FileRecord]:
    return {k: FileRecord(v["sha256"], int(v["size"])) for k, v in d.items()}


@dataclass
class Manifest:
    """Written into an installed model folder before it is renamed into place."""

    model_id: str
    version: str
    source: str  # URL or local path it was installed from
    installed_at: str
    archive_sha256: Optional[str] = None
    files: Dict[str, FileRecord] = field(default_factory=dict)

    def write(self, folder: Path) -> None:
        atomic_write_json(Path(folder) / MANIFEST_NAME, asdict(self))

    @classmethod
    def read(cls, folder: Path) -> Optional["Manifest"]:
        try:
            d = json.loads((Path(folder) / MANIFEST_NAME).read_text(encoding="utf-8"))
            return cls(
                model_id=d["model_id"], version=d["version"], source=d["source"],
                installed_at=d["installed_at"], archive_sha256=d.get("archive_sha256"),
                files=_records_from_json(d.get("files", {})),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None


class TrustStore:
    """``trust.json``: hashes first seen for archives (by model id and version) and foreign folders."""

    def __init__(self, path: Path):
        self.path = Path(path)
        import filelock  # on first use: see locking.py

        self._lock = filelock.FileLock(str(self.path) + ".lock", timeout=30)

    def _read(self) -> dict:
        try:
            d = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            d = {}
        d.setdefault("archives", {})
        d.setdefault("folders", {})
        return d

    def _write(self, d: dict) -> None:
        atomic_write_json(self.path, d)

    @staticmethod
    def archive_key(model_id: str, version: str) -> str:
        return f"{model_id}@{version}"

    def archive(self, model_id: str, version: str) -> Optional[dict]:
        return self._read()["archives"].get(self.archive_key(model_id, version))

    def record_archive(self, model_id: str, version: str, sha256: str, size: int, source: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            d = self._read()
            key = self.archive_key(model_id, version)
            if key not in d["archives"]:  # first use wins; never silently overwrite
                d["archives"][key] = {"sha256": sha256, "size": size, "source": source, "recorded_at": now_iso()}
                self._write(d)

    def folder(self, folder: Path) -> Optional[dict]:
        rec = self._read()["folders"].get(str(Path(folder).resolve()))
        if rec is not None:
            rec = dict(rec, files=_records_from_json(rec.get("files", {})))
        return rec

    def record_folder(self, folder: Path, model_id: str, files: Dict[str, FileRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            d = self._read()
            key = str(Path(folder).resolve())
            if key not in d["folders"]:
                d["folders"][key] = {
                    "model_id": model_id, "recorded_at": now_iso(),
                    "files": {k: asdict(v) for k, v in files.items()},
                }
                self._write(d)

    def forget(self, model_id: str) -> int:
        """Drop every record of ``model_id`` (after a deliberate update of the model). Returns the count."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            d = self._read()
            arch = [k for k in d["archives"] if k.split("@", 1)[0] == model_id]
            fold = [k for k, v in d["folders"].items() if v.get("model_id") == model_id]
            for k in arch:
                del d["archives"][k]
            for k in fold:
                del d["folders"][k]
            if arch or fold:
                self._write(d)
            return len(arch) + len(fold)


def check_archive_hash(
    actual_sha256: str, *, model_id: str, version: str, catalog_sha256: Optional[str], trust: TrustStore, what: str
) -> None:
    """Raise :class:`ChecksumError` when an archive differs from the catalogue or the first-use record."""
    if catalog_sha256:
        if actual_sha256 != catalog_sha256:
            raise ChecksumError(
                f"{what} for '{model_id}' has SHA256 {actual_sha256}, but the catalogue lists {catalog_sha256}. "
                "The file is corrupt or not the published one; it was not installed."
            )
        return
    rec = trust.archive(model_id, version)
    if rec is not None and rec["sha256"] != actual_sha256:
        raise ChecksumError(
            f"{what} for '{model_id}' has SHA256 {actual_sha256}, but the file first seen on {rec['recorded_at']} "
            f"had {rec['sha256']}. The file changed since first use (a replaced release, corruption or tampering); "
            "it was not installed. If the model was updated on purpose, run "
            f"`medsegai models remove {model_id} --forget-hash` and pull it again."
        )


def verify_foreign_folder(folder: Path, model_id: str, trust: TrustStore, cancel: Optional[CancelToken] = None) -> List[str]:
    """Trust on first use for folders MedSegAI did not install (TotalSegmentator's, user paths).

    The first call records the hashes and returns []; later calls return the differences.
    """
    rec = trust.folder(folder)
    if rec is None:
        trust.record_folder(folder, model_id, hash_tree(folder, cancel))
        return []
    return compare_tree(folder, rec["files"], cancel)
