"""Licences: shown before a download; acceptance, where required, given once and remembered.

Acceptance is stored per model id together with a fingerprint of the licence (name, URL, text), so
a changed licence has to be accepted again. Nothing is sent anywhere.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional


from ..atomic import atomic_write_json
from .cache import CacheLayout
from .catalog import LicenseInfo, ModelEntry
from .errors import LicenseNotAcceptedError
from .integrity import now_iso


def license_fingerprint(lic: LicenseInfo) -> str:
    blob = "\n".join((lic.name, lic.url or "", lic.text or ""))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def license_notice(entry: ModelEntry) -> str:
    """The text shown before a download or an import."""
    lic = entry.license
    lines = [f"Model '{entry.id}' is licensed under {lic.name}."]
    if lic.url:
        lines.append(f"Licence: {lic.url}")
    if lic.text:
        lines.append(lic.text)
    if lic.note:
        lines.append(lic.note)
    if entry.citation:
        lines.append(f"Please cite: {entry.citation}")
    if lic.requires_acceptance:
        lines.append("This licence must be accepted before the model can be used.")
    return "\n".join(lines)


def _read(path: Path) -> dict:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


def is_accepted(entry: ModelEntry, layout: Optional[CacheLayout] = None) -> bool:
    if not entry.license.requires_acceptance:
        return True
    layout = layout or CacheLayout.current()
    rec = _read(layout.licenses_file).get(entry.id)
    return isinstance(rec, dict) and rec.get("fingerprint") == license_fingerprint(entry.license)


def record_acceptance(entry: ModelEntry, layout: Optional[CacheLayout] = None) -> None:
    layout = layout or CacheLayout.current()
    path = layout.licenses_file
    path.parent.mkdir(parents=True, exist_ok=True)
    import filelock  # on first use: see locking.py

    with filelock.FileLock(str(path) + ".lock", timeout=30):
        d = _read(path)
        d[entry.id] = {
            "license": entry.license.name,
            "url": entry.license.url,
            "fingerprint": license_fingerprint(entry.license),
            "accepted_at": now_iso(),
        }
        atomic_write_json(path, d)


def ensure_license_accepted(entry: ModelEntry, accept: bool, layout: Optional[CacheLayout] = None) -> None:
    """Record acceptance when ``accept`` is given; refuse when it is required and was never given."""
    if not entry.license.requires_acceptance or is_accepted(entry, layout):
        return
    if accept:
        record_acceptance(entry, layout)
        return
    raise LicenseNotAcceptedError(
        f"The licence of '{entry.id}' ({entry.license.summary()}) must be accepted before it is downloaded or "
        f"used. Read it, then run `medsegai models pull {entry.id} --accept-license` (or tick the licence box "
        "in the Slicer module); the acceptance is remembered."
    )
