"""What the rest of MedSegAI calls: resolve, pull, import, remove, verify, list, info.

Where a model id is looked up, in order:
1. a bundled model (shipped with the extension, read in place);
2. the MedSegAI cache (``<cache>/models/<id>``), checked against its install manifest;
3. a local folder a user catalogue entry points to (trust on first use);
4. TotalSegmentator's own weights folder (trust on first use), so its users never download twice;
5. a download, only when the caller allows it.
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Union

from ..errors import InvalidModelError
from ..progress import CancelToken, ProgressCallback, ProgressEvent
from .cache import CacheLayout
from .catalog import (
    MODEL_ID_RE, Catalog, ModelEntry, add_user_entry, load_catalog, structures_from_dataset_json,
)
from .download import DownloadOptions, discard_partial, download_file
from .errors import ChecksumError, DownloadError, ModelNotFoundError, ModelNotInstalledError
from .external import find_totalsegmentator_model
from .extract import ExtractLimits
from .install import (
    STAGING_SEP, InstalledModel, check_model_layout, clean_stale_staging, install_archive, install_folder,
    installed, result_folders_in, uninstall,
)
from .integrity import TrustStore, check_archive_hash, compare_tree, sha256_file, verify_foreign_folder
from .licenses import ensure_license_accepted, is_accepted, license_notice
from .locking import model_lock

PathLike = Union[str, "os.PathLike[str]"]
LicenseCallback = Callable[[ModelEntry, str], None]


@dataclass(frozen=True)
class ModelStatus:
    entry: Optional[ModelEntry]
    model_id: str
    location: Optional[Path]  # folder holding the model, if it is available anywhere
    where: str  # "bundled", "cache", "path", "totalsegmentator", "missing"
    license_accepted: bool

    @property
    def available(self) -> bool:
        return self.location is not None


@dataclass(frozen=True)
class VerifyReport:
    model_id: str
    location: Path
    where: str
    problems: List[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def _layout() -> CacheLayout:
    return CacheLayout.current()


def _model_path(folder: Path) -> Path:
    """The single result folder inside ``folder``, or ``folder`` when it holds several."""
    found = result_folders_in(folder)
    return found[0] if len(found) == 1 else folder


def _entry_folder(entry: ModelEntry) -> Optional[Path]:
    if entry.path is not None and entry.path.is_dir() and result_folders_in(entry.path):
        return entry.path
    return None


def locate(model_id: str, catalog: Optional[Catalog] = None, layout: Optional[CacheLayout] = None) -> ModelStatus:
    """Where ``model_id`` is available, without hashing anything (cheap: for lists and menus)."""
    layout = layout or _layout()
    catalog = catalog if catalog is not None else load_catalog(layout)
    entry = catalog.find(model_id)
    accepted = is_accepted(entry, layout) if entry else True
    if entry is not None and entry.bundled:
        folder = _entry_folder(entry)
        return ModelStatus(entry, model_id, folder, "bundled" if folder else "missing", accepted)
    inst = installed(layout, model_id)
    if inst is not None:
        return ModelStatus(entry, model_id, inst.folder, "cache", accepted)
    if entry is not None and entry.path is not None:
        folder = _entry_folder(entry)
        if folder is not None:
            return ModelStatus(entry, model_id, folder, "path", accepted)
    ts = find_totalsegmentator_model(model_id)
    if ts is not None:
        return ModelStatus(entry, model_id, ts, "totalsegmentator", accepted)
    return ModelStatus(entry, model_id, None, "missing", accepted)


def list_models(layout: Optional[CacheLayout] = None, catalog: Optional[Catalog] = None) -> List[ModelStatus]:
    """Every catalogue model plus models in the cache that no catalogue lists."""
    layout = layout or _layout()
    catalog = catalog if catalog is not None else load_catalog(layout)
    out = [locate(e.id, catalog, layout) for e in catalog]
    if layout.models.is_dir():
        for d in sorted(layout.models.iterdir()):
            if d.name not in catalog and installed(layout, d.name) is not None:
                out.append(locate(d.name, catalog, layout))
    return out


def info(model_id: str) -> ModelStatus:
    layout = _layout()
    catalog = load_catalog(layout)
    status = locate(model_id, catalog, layout)
    if status.entry is None and status.location is None:
        catalog.get(model_id)  # raises with suggestions
    return status


def verify(model_id: str, cancel: Optional[CancelToken] = None) -> VerifyReport:
    """Re-hash an available model: against its manifest (cache) or its first-use record (others)."""
    layout = _layout()
    status = locate(model_id, load_catalog(layout), layout)
    if status.location is None:
        raise ModelNotInstalledError(f"'{model_id}' is not installed, so there is nothing to verify.")
    problems: List[str] = []
    if status.where == "cache":
        inst = installed(layout, model_id)
        assert inst is not None
        problems = compare_tree(inst.folder, inst.manifest.files, cancel)
    elif status.where in ("path", "totalsegmentator"):
        problems = verify_foreign_folder(status.location, model_id, TrustStore(layout.trust_file), cancel)
    # Bundled models are part of the installed extension and are checked as such, not here.
    if not problems:
        try:
            check_model_layout(status.location, status.entry, model_id)
        except InvalidModelError as exc:
            problems.append(str(exc))
    return VerifyReport(model_id, status.location, status.where, problems)


def _refuse_if_changed(report: VerifyReport) -> None:
    if not report.ok:
        shown = "; ".join(report.problems[:5]) + (f"; and {len(report.problems) - 5} more" if len(report.problems) > 5 else "")
        fix = (
            f"run `medsegai models pull {report.model_id} --force` to reinstall it"
            if report.where == "cache"
            else f"restore the original files, or run `medsegai models remove {report.model_id} --forget-hash` "
            "if they were changed on purpose"
        )
        raise ChecksumError(
            f"The files of model '{report.model_id}' in {report.location} changed since they were first used "
            f"({shown}). The model was not loaded; {fix}."
        )


def _resolve_path(candidate: Path) -> Path:
    if not candidate.is_dir():
        raise ModelNotFoundError(f"Model folder not found: {candidate}")
    if not result_folders_in(candidate):
        raise InvalidModelError(f"{candidate} holds no nnU-Net result folder.")
    return _model_path(candidate)


def resolve_model(
    id_or_path: PathLike,
    *,
    allow_download: bool = False,
    accept_license: bool = False,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    verify_files: bool = True,
) -> Path:
    """The installed nnU-Net result folder (or the folder holding several) for an id or a path.

    A path is used as it is (after a layout check). An id is looked up as described in the module
    docstring; its files are re-hashed and a changed file is refused (``verify_files``).
    """
    text = os.fspath(id_or_path)
    candidate = Path(text).expanduser()
    if not MODEL_ID_RE.match(text):
        return _resolve_path(candidate)
    layout = _layout()
    catalog = load_catalog(layout)
    status = locate(text, catalog, layout)
    entry = status.entry
    if entry is not None:
        ensure_license_accepted(entry, accept_license, layout)
    if status.location is not None:
        if verify_files and status.where != "bundled":
            if progress is not None:
                progress(ProgressEvent("verify", 0.0, f"Checking the files of {text}"))
            _refuse_if_changed(verify(text, cancel))
        return _model_path(status.location)
    if entry is None:
        if candidate.is_dir():  # a folder in the working directory whose name looks like an id
            return _resolve_path(candidate)
        catalog.get(text)  # raises ModelNotFoundError with suggestions
    assert entry is not None
    if entry.bundled:
        raise ModelNotInstalledError(
            f"The bundled model '{entry.id}' is missing from {entry.path}; reinstall the MedSegAI extension."
        )
    if not entry.urls:
        raise ModelNotInstalledError(f"The folder {entry.path} listed for '{entry.id}' holds no nnU-Net model.")
    if not allow_download:
        raise ModelNotInstalledError(
            f"Model '{entry.id}' is not installed. Download it with `medsegai models pull {entry.id}`, or, offline, "
            f"download {entry.urls[0]} on another machine and run `medsegai models import <zip>`."
        )
    return pull(entry.id, accept_license=accept_license, progress=progress, cancel=cancel)


def pull(
    model_id: str,
    *,
    accept_license: bool = False,
    force: bool = False,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    options: Optional[DownloadOptions] = None,
    on_license: Optional[LicenseCallback] = None,
    limits: ExtractLimits = ExtractLimits(),
) -> Path:
    """Download, verify and install a catalogue model; returns what :func:`resolve_model` returns.

    ``on_license(entry, notice)`` is called before any network access so a UI can show the licence.
    With the model already installed (here or by TotalSegmentator) nothing is downloaded unless ``force``.
    """
    layout = _layout()
    catalog = load_catalog(layout)
    entry = catalog.get(model_id)
    if on_license is not None:
        on_license(entry, license_notice(entry))
    ensure_license_accepted(entry, accept_license, layout)
    if not entry.urls:
        return resolve_model(model_id, cancel=cancel)
    if not force:
        status = locate(model_id, catalog, layout)
        if status.location is not None:
            return resolve_model(model_id, cancel=cancel, progress=progress)
    trust = TrustStore(layout.trust_file)
    layout.ensure()
    with model_lock(layout, model_id, cancel=cancel):
        # Another process may have installed it while this one waited for the lock.
        if not force and installed(layout, model_id) is not None:
            return resolve_model(model_id, cancel=cancel, progress=progress)
        clean_stale_staging(layout, model_id)
        part = layout.downloads / f"{model_id}{STAGING_SEP}{entry.version}.zip.part"
        errors = []
        for url in entry.urls:
            try:
                download_file(url, part, options=options, expected_size=entry.size_bytes, progress=progress, cancel=cancel)
                break
            except DownloadError as exc:
                errors.append(str(exc))
        else:
            raise DownloadError(" | ".join(errors))
        if progress is not None:
            progress(ProgressEvent("verify", 0.0, "Checking SHA256"))
        digest = sha256_file(part, cancel)
        try:
            check_archive_hash(digest, model_id=model_id, version=entry.version, catalog_sha256=entry.sha256,
                               trust=trust, what="The download")
        except ChecksumError:
            discard_partial(part)  # a wrong file must not be resumed
            raise
        try:
            install_archive(layout, model_id, part, entry=entry, source=url, archive_sha256=digest,
                            limits=limits, progress=progress, cancel=cancel)
        except InvalidModelError:
            discard_partial(part)
            raise
        trust.record_archive(model_id, entry.version, digest, part.stat().st_size, url)
        discard_partial(part)
    return resolve_model(model_id, cancel=cancel, verify_files=False)


def _infer_id_from_zip(archive: Path) -> str:
    try:
        with zipfile.ZipFile(archive) as zf:
            tops = {n.split("/", 1)[0] for n in zf.namelist() if n and not n.startswith("__MACOSX")}
    except zipfile.BadZipFile:
        tops = set()
    if len(tops) == 1:
        top = next(iter(tops))
        if MODEL_ID_RE.match(top) and "__" not in top:
            return top
    return archive.name[:-4] if archive.name.lower().endswith(".zip") else archive.stem


def _infer_id_from_folder(folder: Path) -> str:
    from ..nnunet.folder_layout import is_result_folder

    if is_result_folder(folder):
        return folder.parent.name
    return folder.name


def _modality_from(folder: Path) -> str:
    for rf in result_folders_in(folder):
        try:
            channels = json.loads((rf / "dataset.json").read_text()).get("channel_names", {})
        except ValueError:
            continue
        if any(str(v).upper() == "CT" for v in channels.values()):
            return "CT"
        return "MR"
    return "CT"


def import_model(
    path: PathLike,
    model_id: Optional[str] = None,
    *,
    accept_license: bool = False,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    limits: ExtractLimits = ExtractLimits(),
) -> Path:
    """Install a manually downloaded zip (TotalSegmentator's as they are) or a model folder.

    The id defaults to the zip's single top-level folder (``DatasetXXX_...``) or the folder name.
    A catalogue model is checked against its SHA256 (or first-use record) and its structure count;
    a model no catalogue lists is added to the user catalogue.
    """
    src = Path(path).expanduser()
    if not src.exists():
        raise ModelNotFoundError(f"Nothing to import at {src}.")
    is_zip = src.is_file()
    if is_zip and not zipfile.is_zipfile(src):
        raise InvalidModelError(f"{src} is neither a zip archive nor a folder (a truncated download?).")
    mid = model_id or (_infer_id_from_zip(src) if is_zip else _infer_id_from_folder(src))
    if not MODEL_ID_RE.match(mid):
        raise InvalidModelError(f"'{mid}' cannot be a model id; give one with --id (letters, digits, '.', '_', '-').")
    layout = _layout()
    catalog = load_catalog(layout)
    entry = catalog.find(mid)
    if entry is not None:
        if entry.bundled:
            raise InvalidModelError(f"'{mid}' is the bundled model; it cannot be replaced by an import.")
        ensure_license_accepted(entry, accept_license, layout)
    if not is_zip and entry is not None and mid.startswith("Dataset"):
        name = _infer_id_from_folder(src)
        if name.startswith("Dataset") and name != mid:
            raise InvalidModelError(f"The folder is {name}, not {mid}: this is not the right model for '{mid}'.")
    trust = TrustStore(layout.trust_file)
    layout.ensure()
    with model_lock(layout, mid, cancel=cancel):
        clean_stale_staging(layout, mid)
        if is_zip:
            digest = sha256_file(src, cancel)
            if entry is not None:
                check_archive_hash(digest, model_id=mid, version=entry.version, catalog_sha256=entry.sha256,
                                   trust=trust, what=f"The file {src}")
            inst = install_archive(layout, mid, src, entry=entry, source=str(src.resolve()), archive_sha256=digest,
                                   limits=limits, progress=progress, cancel=cancel)
            if entry is not None:
                trust.record_archive(mid, entry.version, digest, src.stat().st_size, str(src.resolve()))
        else:
            inst = install_folder(layout, mid, src, entry=entry, source=str(src.resolve()), progress=progress, cancel=cancel)
    if entry is None:
        _register_imported(layout, inst)
    return _model_path(inst.folder)


def _register_imported(layout: CacheLayout, inst: InstalledModel) -> None:
    """A user catalogue entry for a model imported without one, so it is listed like the others."""
    structures = ()
    if len(inst.result_folders) == 1:
        try:
            structures = structures_from_dataset_json(json.loads((inst.result_folders[0] / "dataset.json").read_text()))
        except ValueError:
            structures = ()
    add_user_entry({
        "id": inst.model_id,
        "version": "local",
        "title": f"{inst.model_id} (imported)",
        "description": f"Imported from {inst.manifest.source}.",
        "task": "custom",
        "modality": _modality_from(inst.folder),
        "spacing_mm": None,
        "structures": [{"value": s.value, "name": s.name} for s in structures],
        "license": {"name": "not recorded", "text": "Imported by the user; its licence was not recorded.",
                    "requires_acceptance": False},
        "path": str(inst.folder),
    }, layout)


def remove(model_id: str, *, forget_hash: bool = False) -> bool:
    """Delete a model from the MedSegAI cache (never TotalSegmentator's or bundled files).

    ``forget_hash`` also drops the hashes recorded at first use, for a model updated on purpose.
    Returns whether anything was removed or forgotten.
    """
    layout = _layout()
    removed = False
    with model_lock(layout, model_id):
        removed = uninstall(layout, model_id)
        clean_stale_staging(layout, model_id)
        for part in layout.downloads.glob(f"{model_id}{STAGING_SEP}*.zip.part") if layout.downloads.is_dir() else ():
            discard_partial(part)
            removed = True
    if forget_hash:
        removed = TrustStore(layout.trust_file).forget(model_id) > 0 or removed
    return removed
