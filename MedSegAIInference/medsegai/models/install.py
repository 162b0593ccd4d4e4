"""Atomic installation of a model into the cache.

Everything happens in a private staging folder under ``<cache>/tmp`` (same file system as
``<cache>/models``): extract or copy, check the nnU-Net layout, hash every file into the manifest,
then one ``rename`` puts the folder in place. A crash at any point leaves either the old model or no
model at ``models/<id>``, never half of one; leftover staging folders are removed the next time the
same model is installed (under its lock). Callers hold :func:`locking.model_lock`.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from ..errors import InvalidModelError
from ..progress import CancelToken, ProgressCallback
from .cache import CacheLayout
from .catalog import ModelEntry
from .extract import ExtractLimits, safe_extract_zip
from .integrity import MANIFEST_NAME, Manifest, hash_tree, now_iso

STAGING_SEP = "+"  # not allowed in model ids, so "<id>+..." never matches another id's staging folder


@dataclass(frozen=True)
class InstalledModel:
    model_id: str
    folder: Path
    result_folders: List[Path]
    manifest: Manifest


def result_folders_in(folder: Path) -> List[Path]:
    from ..nnunet.folder_layout import find_result_folders

    return find_result_folders(folder)


def check_model_layout(folder: Path, entry: Optional[ModelEntry], model_id: str) -> List[Path]:
    """nnU-Net layout (through the runner's own checker) and agreement with the catalogue entry."""
    from ..nnunet.folder_layout import validate_result_folder

    found = result_folders_in(folder)
    if not found:
        raise InvalidModelError(
            f"No nnU-Net result folder (<trainer>__<plans>__<configuration>/ with plans.json, dataset.json "
            f"and fold_N/checkpoint_final.pth) was found in the files for '{model_id}'."
        )
    for rf in found:
        validate_result_folder(rf)
        if entry is not None and entry.structures:
            labels = json.loads((rf / "dataset.json").read_text()).get("labels", {})
            n = sum(1 for v in labels.values() if isinstance(v, int) and not isinstance(v, bool) and v >= 1)
            if n != len(entry.structures):
                raise InvalidModelError(
                    f"The model in {rf.name} has {n} structures but catalogue entry '{model_id}' lists "
                    f"{len(entry.structures)}: this is not the right file for '{model_id}'."
                )
    return found


def _single_top_folder(content: Path) -> Optional[Path]:
    children = [c for c in content.iterdir() if c.name not in ("__MACOSX",)]
    if len(children) == 1 and children[0].is_dir():
        return children[0]
    return None


def _normalise_root(content: Path, model_id: str) -> Path:
    """Strip a single top-level folder (TotalSegmentator zips hold ``DatasetXXX_.../``).

    The installed folder is then ``models/<id>/<trainer>__<plans>__<cfg>/``, the same shape as
    TotalSegmentator's weights folder, so ``models/`` can serve as ``TOTALSEG_WEIGHTS_PATH``.
    """
    from ..nnunet.folder_layout import is_result_folder

    top = _single_top_folder(content)
    if top is None or is_result_folder(top):
        return content
    if top.name.startswith("Dataset") and model_id.startswith("Dataset") and top.name != model_id:
        raise InvalidModelError(
            f"The archive holds {top.name}, not {model_id}: this is not the right file for '{model_id}'."
        )
    return top


def clean_stale_staging(layout: CacheLayout, model_id: str) -> None:
    if layout.tmp.is_dir():
        for p in layout.tmp.glob(f"{model_id}{STAGING_SEP}*"):
            shutil.rmtree(p, ignore_errors=True)


def _new_staging(layout: CacheLayout, model_id: str) -> Path:
    layout.ensure()
    return Path(tempfile.mkdtemp(prefix=f"{model_id}{STAGING_SEP}", dir=layout.tmp))


def _finish(
    layout: CacheLayout, staging: Path, root: Path, model_id: str, entry: Optional[ModelEntry],
    source: str, archive_sha256: Optional[str], cancel: Optional[CancelToken],
) -> InstalledModel:
    check_model_layout(root, entry, model_id)
    manifest = Manifest(
        model_id=model_id, version=entry.version if entry else "local", source=source,
        installed_at=now_iso(), archive_sha256=archive_sha256, files=hash_tree(root, cancel),
    )
    manifest.write(root)
    if cancel is not None:
        cancel.raise_if_cancelled()
    target = layout.model_dir(model_id)
    if target.exists():
        os.replace(target, staging / "previous")  # moved aside, deleted with the staging folder
    os.replace(root, target)
    return InstalledModel(model_id, target, result_folders_in(target), manifest)


def install_archive(
    layout: CacheLayout, model_id: str, archive: Path, *, entry: Optional[ModelEntry], source: str,
    archive_sha256: Optional[str], limits: ExtractLimits = ExtractLimits(),
    progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None,
) -> InstalledModel:
    clean_stale_staging(layout, model_id)
    staging = _new_staging(layout, model_id)
    try:
        content = safe_extract_zip(archive, staging / "content", limits=limits, progress=progress, cancel=cancel)
        root = _normalise_root(content, model_id)
        return _finish(layout, staging, root, model_id, entry, source, archive_sha256, cancel)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _refuse_links(folder: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink():
                raise InvalidModelError(f"{p} is a symbolic link; copy the real files into the model folder.")


def install_folder(
    layout: CacheLayout, model_id: str, folder: Path, *, entry: Optional[ModelEntry], source: str,
    progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None,
) -> InstalledModel:
    from ..nnunet.folder_layout import is_result_folder

    folder = Path(folder)
    _refuse_links(folder)
    clean_stale_staging(layout, model_id)
    staging = _new_staging(layout, model_id)
    try:
        # A bare result folder is kept as a sub-folder so the installed shape is always
        # models/<id>/<trainer>__<plans>__<cfg>/.
        if is_result_folder(folder):
            root = staging / "content"
            shutil.copytree(folder, root / folder.name)
        else:
            root = staging / "content"
            shutil.copytree(folder, root)
            root = _normalise_root(root, model_id)
        return _finish(layout, staging, root, model_id, entry, source, None, cancel)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def installed(layout: CacheLayout, model_id: str) -> Optional[InstalledModel]:
    """The cached install of ``model_id`` (a folder without a manifest does not count)."""
    folder = layout.model_dir(model_id)
    if not (folder / MANIFEST_NAME).is_file():
        return None
    manifest = Manifest.read(folder)
    if manifest is None:
        return None
    return InstalledModel(model_id, folder, result_folders_in(folder), manifest)


def uninstall(layout: CacheLayout, model_id: str) -> bool:
    target = layout.model_dir(model_id)
    if not target.exists():
        return False
    staging = _new_staging(layout, model_id)
    os.replace(target, staging / "removed")  # gone from models/ in one step, then deleted
    shutil.rmtree(staging, ignore_errors=True)
    return True
