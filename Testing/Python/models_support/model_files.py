"""Small nnU-Net v2 result folders and zips with the layout of TotalSegmentator's weights.

The checkpoint is random bytes: these tests check installation and integrity, not inference
(``validate_result_folder`` checks the layout, not the weights).
"""
from __future__ import annotations

import json
import random
import stat
import zipfile
from pathlib import Path
from typing import Dict, Iterable, Optional, Tuple

TRAINER_FOLDER = "nnUNetTrainerNoMirroring__nnUNetPlans__3d_fullres"


def result_folder_files(n_labels: int = 3, seed: int = 0, checkpoint_bytes: int = 200_000) -> Dict[str, bytes]:
    labels = {"background": 0}
    labels.update({f"structure_{i}": i for i in range(1, n_labels + 1)})
    dataset = {"channel_names": {"0": "CT"}, "labels": labels, "numTraining": 1, "file_ending": ".nii.gz"}
    plans = {"dataset_name": "test", "plans_name": "nnUNetPlans", "configurations": {"3d_fullres": {}}}
    ckpt = random.Random(seed).randbytes(checkpoint_bytes)  # incompressible, like real weights
    return {
        "plans.json": json.dumps(plans).encode(),
        "dataset.json": json.dumps(dataset).encode(),
        "fold_0/checkpoint_final.pth": ckpt,
    }


def make_model_folder(root: Path, dataset: str, n_labels: int = 3, seed: int = 0) -> Path:
    """``root/<dataset>/<trainer>__nnUNetPlans__3d_fullres/...``; returns ``root/<dataset>``."""
    base = Path(root) / dataset
    for rel, data in result_folder_files(n_labels, seed).items():
        p = base / TRAINER_FOLDER / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return base


def model_zip_bytes(dataset: str, n_labels: int = 3, seed: int = 0, extra: Iterable[Tuple[str, bytes]] = ()) -> bytes:
    """A zip shaped like TotalSegmentator's: ``<dataset>/<trainer>__nnUNetPlans__3d_fullres/...``."""
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, data in result_folder_files(n_labels, seed).items():
            zf.writestr(_fixed_time(f"{dataset}/{TRAINER_FOLDER}/{rel}"), data)
        for name, data in extra:
            zf.writestr(_fixed_time(name), data)
    return buf.getvalue()


def _fixed_time(name: str) -> zipfile.ZipInfo:
    # A fixed timestamp makes equal inputs give byte-identical zips: tests compare hashes.
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def write_zip(path: Path, data: bytes) -> Path:
    Path(path).write_bytes(data)
    return Path(path)


def zip_with_symlink(path: Path, dataset: str, link_name: str, target: str) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for rel, data in result_folder_files().items():
            zf.writestr(f"{dataset}/{TRAINER_FOLDER}/{rel}", data)
        info = zipfile.ZipInfo(link_name)
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, target)
    return Path(path)


def catalog_entry(model_id: str, urls=None, path: Optional[str] = None, n_labels: int = 3, sha256=None,
                  requires_acceptance: bool = False, size_bytes=None) -> dict:
    entry = {
        "id": model_id,
        "version": "1.0",
        "task": "test",
        "modality": "CT",
        "spacing_mm": [3.0, 3.0, 3.0],
        "structures": [{"value": i, "name": f"structure_{i}"} for i in range(1, n_labels + 1)],
        "license": {"name": "Test-Licence", "text": "Use only in tests.", "requires_acceptance": requires_acceptance},
        "size_bytes": size_bytes,
        "sha256": sha256,
    }
    if urls is not None:
        entry["urls"] = list(urls)
    if path is not None:
        entry["path"] = path
    return entry


def write_user_catalog(home: Path, entries) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "catalog.user.json"
    path.write_text(json.dumps({"schema_version": 1, "models": list(entries)}, indent=2))
    return path
