"""The sample CT for the demo: from the local data folder when present, else a verified download.

Lookup order: ``$MEDSEGAI_DATA_DIR`` (default ``../shared/data`` beside the repository), then the
download cache, then a download from a commit-pinned URL of the TotalSegmentator repository
(Apache-2.0), checked against a pinned SHA256 before it is used. A file whose hash differs is
deleted and refused: a moved branch or a tampered mirror cannot slip another file in.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .atomic import atomic_path
from .errors import MedSegAIError

DATA_DIR_ENV = "MEDSEGAI_DATA_DIR"
_REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class SampleFile:
    name: str
    relative_path: str  # inside the data folder
    url: str  # pinned to a commit: the content behind it cannot change
    sha256: str
    licence: str


# TotalSegmentator's 3 mm example torso CT (122 x 101 x 30 voxels, 0.5 MB).
SAMPLE_CT = SampleFile(
    name="example_ct_sm.nii.gz",
    relative_path="ct/totalsegmentator-examples/tests/reference_files/example_ct_sm.nii.gz",
    url="https://raw.githubusercontent.com/wasserth/TotalSegmentator/0e65a448d557382b1e925276212b3bec7f5aff83/"
        "tests/reference_files/example_ct_sm.nii.gz",
    sha256="e50c00b2914e2cac0aaee8e7f3b5f57d44d9f21bfd5c0577271c54c0cb49e9fb",
    licence="Apache-2.0 (wasserth/TotalSegmentator)",
)


# TotalSegmentator's own label map of that CT (its regression reference, `total` values): what the
# demo's simulated clicks aim at.
SAMPLE_LABELS = SampleFile(
    name="example_seg.nii.gz",
    relative_path="ct/totalsegmentator-examples/tests/reference_files/example_seg.nii.gz",
    url="https://raw.githubusercontent.com/wasserth/TotalSegmentator/0e65a448d557382b1e925276212b3bec7f5aff83/"
        "tests/reference_files/example_seg.nii.gz",
    sha256="8be652475a4aaae83103a66bfb3345314b1fc06742807a06cf5005f7a7913a2d",
    licence="Apache-2.0 (wasserth/TotalSegmentator)",
)


class SampleDataError(MedSegAIError):
    """The sample CT is neither available locally nor downloadable and verifiable."""


def data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV) or (_REPO_ROOT.parent / "shared" / "data"))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _cache_dir() -> Path:
    try:
        from .models.cache import cache_dir

        return Path(cache_dir()) / "sample-data"
    except ImportError:  # the model manager is optional
        return Path(os.environ.get("MEDSEGAI_HOME", Path.home() / ".medsegai")) / "sample-data"


def _download(url: str, dest: Path) -> None:
    try:
        from .models.download import _sidecar, download_file
    except ImportError:
        download_file = None
    if download_file is not None:
        try:
            download_file(url, dest)  # proxy- and CA-bundle-aware
        finally:
            # dest is a fresh temp name each time, so its resume sidecar would never be used again.
            _sidecar(dest).unlink(missing_ok=True)
        return
    import requests

    dest.parent.mkdir(parents=True, exist_ok=True)
    with requests.get(url, stream=True, timeout=(15, 60)) as r:
        r.raise_for_status()
        with open(dest, "wb") as fh:
            for chunk in r.iter_content(1 << 20):
                fh.write(chunk)


def sample_ct(sample: SampleFile = SAMPLE_CT, *, allow_download: bool = True, log=print) -> Path:
    """Path to the verified sample file (the CT by default), downloading it into the cache if needed."""
    local = data_dir() / sample.relative_path
    if local.is_file():
        if sha256_of(local) != sample.sha256:
            raise SampleDataError(f"{local} does not have the expected SHA256 {sample.sha256}: it is another file.")
        return local
    cached = _cache_dir() / sample.sha256[:16] / sample.name
    if cached.is_file() and sha256_of(cached) == sample.sha256:
        return cached
    if not allow_download:
        raise SampleDataError(f"The sample file {sample.name} is not at {local} (set {DATA_DIR_ENV}) and downloads "
                              "are off.")
    log(f"downloading the sample file {sample.name} from {sample.url}")
    with atomic_path(cached) as part:  # a failed or refused download leaves nothing in the cache
        try:
            _download(sample.url, part)
        except MedSegAIError:
            raise
        except Exception as exc:  # requests' many exception types: one clear message
            raise SampleDataError(f"Cannot download {sample.name} from {sample.url}: {exc}. Offline, set "
                                  f"{DATA_DIR_ENV} to a folder holding it, or pass your own CT with --input.") from None
        got = sha256_of(part)
        if got != sample.sha256:
            raise SampleDataError(f"The downloaded {sample.name} has SHA256 {got}, expected {sample.sha256}; "
                                  "it was deleted.")
    return cached
