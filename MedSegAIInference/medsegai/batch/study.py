"""One study: segment it into a staging folder, then rename the folder into place, marker inside.

The marker (``.medsegai_study.json``) records the input's SHA256 and the options' hash; a study
is done exactly when its folder holds a marker matching both. Everything before the rename is
invisible to a rerun (staging folders are hidden ``.ID.part-*`` and swept away), so ``kill -9``
at any moment leaves either no folder or a complete one.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from ..atomic import atomic_write_json
from ..errors import MedSegAIError
from ..run_request import RunRequest
from .studies import Study, input_sha256

MARKER = ".medsegai_study.json"
STAGING_INFIX = ".part-"


@dataclass(frozen=True)
class StudyOutputs:
    """Which files each study gets: as ``medsegai segment -o OUT/ID/`` with the same flags."""
    masks: bool = True
    probabilities: bool = False
    preview: bool = False

    def to_dict(self) -> Dict[str, Any]:
        return {"masks": self.masks, "probabilities": self.probabilities, "preview": self.preview}


def options_sha256(request: RunRequest, outputs: StudyOutputs) -> str:
    """What decides a study's files. Device and threads are left out: they choose where it runs."""
    run = {k: v for k, v in request.to_dict().items() if k not in ("device", "threads")}
    text = json.dumps({"run": run, "outputs": outputs.to_dict()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def read_marker(folder: Path) -> Optional[Dict[str, Any]]:
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def done_marker(out_root: Path, study: Study, options_hash: str) -> Optional[Dict[str, Any]]:
    """The study's marker if its folder holds a complete result of this input with these options."""
    marker = read_marker(out_root / study.id)
    if marker is None or marker.get("options_sha256") != options_hash:
        return None
    try:
        if marker.get("input_sha256") != input_sha256(study.path):
            return None
    except OSError:
        return None
    return marker


def sweep_staging(out_root: Path) -> int:
    """Remove what interrupted runs left half-written; returns how many were removed."""
    n = 0
    if out_root.is_dir():
        for p in out_root.iterdir():
            if p.name.startswith(".") and (STAGING_INFIX in p.name or ".trash-" in p.name) and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
                n += 1
    return n


def _publish(staging: Path, target: Path) -> None:
    """Move the complete staging folder to ``target``, replacing an out-of-date result of the study."""
    if target.exists():
        if target.is_dir() and (read_marker(target) is not None or not any(target.iterdir())):
            trash = target.with_name(f".{target.name}.trash-{secrets.token_hex(4)}")
            os.replace(target, trash)
            os.replace(staging, target)
            shutil.rmtree(trash, ignore_errors=True)
            return
        raise MedSegAIError(f"{target} exists and was not written by medsegai batch; move it away.")
    os.replace(staging, target)


def segment_study(predictor, study: Study, out_root: Path, request: RunRequest, outputs: StudyOutputs,
                  cancel=None) -> Dict[str, Any]:
    """Segment one study unless a matching result is already there; returns its status record.

    A study's own failure (bad image, unknown structure...) is its record, not an exception, so the
    other studies go on; only a cancel or a bug raises.
    """
    from ..io.read import read_image
    from ..outputs import write_result_files, write_structure_masks

    started = time.perf_counter()
    options_hash = options_sha256(request, outputs)
    record: Dict[str, Any] = {"study": study.id, "input": study.path}
    try:
        digest = input_sha256(study.path)
    except OSError as exc:
        return {**record, "status": "failed", "error": f"The input cannot be read ({exc.strerror or exc}).",
                "seconds": time.perf_counter() - started}
    target = out_root / study.id
    marker = read_marker(target)
    if marker and marker.get("input_sha256") == digest and marker.get("options_sha256") == options_hash:
        return {**record, "status": "skipped", "input_sha256": digest, "seconds": 0.0}  # a retried task
    staging = out_root / f".{study.id}{STAGING_INFIX}{secrets.token_hex(4)}"
    try:
        image = read_image(study.path)
        result = predictor.predict(image, request=request, cancel=cancel)
        files = write_result_files(result, staging, probabilities=outputs.probabilities)
        if outputs.masks:
            files["masks"] = write_structure_masks(result, staging)
        if outputs.preview:
            from ..preview import write_preview

            files["preview"] = write_preview(image, result, staging / "segmentation_preview.png")
        seconds = time.perf_counter() - started
        atomic_write_json(staging / MARKER, {
            "study": study.id, "input": study.path, "input_sha256": digest, "options_sha256": options_hash,
            "options": request.to_dict(), "files": sorted(Path(p).name for p in files.values()),
            "warnings": result.warnings, "seconds": seconds, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                       time.gmtime())})
        _publish(staging, target)
        return {**record, "status": "done", "input_sha256": digest, "seconds": seconds, "warnings": result.warnings}
    except MedSegAIError as exc:
        from ..errors import CancelledError

        if isinstance(exc, CancelledError):
            raise
        return {**record, "status": "failed", "error_type": type(exc).__name__,
                "error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                "input_sha256": digest, "seconds": time.perf_counter() - started}
    except (MemoryError, OSError) as exc:
        return {**record, "status": "failed", "error_type": type(exc).__name__,
                "error": str(exc) or "out of memory", "input_sha256": digest,
                "seconds": time.perf_counter() - started}
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
