"""DICOMweb with requests: STOW-RS to send results to a PACS, WADO-RS to fetch a study to segment.

requests is already a runtime dependency; the two DICOMweb calls needed are small enough that a
second client library (dicomweb-client) would add more than it saves. Tested against a real Orthanc.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import List, Sequence

from ..errors import MedSegAIError

TIMEOUT_S = 120


class PacsError(MedSegAIError):
    """The PACS could not be reached or refused a request."""


def _call(method: str, url: str, **kwargs):
    import requests

    try:
        response = requests.request(method, url, timeout=TIMEOUT_S, **kwargs)
    except requests.exceptions.ConnectionError as exc:
        raise PacsError(f"Cannot reach the PACS at {url} ({type(exc).__name__}: is the address and port right?).") \
            from None
    except requests.exceptions.Timeout:
        raise PacsError(f"The PACS at {url} did not answer within {TIMEOUT_S} s.") from None
    if response.status_code >= 400:
        detail = response.text.strip().splitlines()[0][:200] if response.text.strip() else response.reason
        raise PacsError(f"The PACS refused {method} {url} (HTTP {response.status_code}: {detail}).")
    return response


def stow(base_url: str, files: Sequence[str | os.PathLike]) -> None:
    """Store DICOM files with STOW-RS (POST {base}/studies); raises if the PACS failed any instance."""
    boundary = secrets.token_hex(16)
    body = bytearray()
    for f in files:
        body += f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        body += Path(f).read_bytes() + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    headers = {"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
               "Accept": "application/dicom+json"}
    response = _call("POST", f"{base_url.rstrip('/')}/studies", data=bytes(body), headers=headers)
    try:
        answer = response.json()
    except ValueError:
        return
    failed = (answer or {}).get("00081198", {}).get("Value") if isinstance(answer, dict) else None
    if failed:
        raise PacsError(f"The PACS at {base_url} stored the request but failed {len(failed)} instance(s).")


def _parts(response) -> List[bytes]:
    """The bodies of a multipart/related response (one DICOM file each)."""
    content_type = response.headers.get("Content-Type", "")
    params = dict(p.strip().split("=", 1) for p in content_type.split(";")[1:] if "=" in p)
    boundary = params.get("boundary", "").strip('"')
    if not content_type.startswith("multipart/") or not boundary:
        raise PacsError(f"The PACS answered {content_type or 'without a content type'}, not multipart DICOM.")
    out = []
    for chunk in response.content.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if sep:
            out.append(data[:-2] if data.endswith(b"\r\n") else data)
    return out


def retrieve_study(base_url: str, study_uid: str, dest: Path) -> List[Path]:
    """Every instance of a study (WADO-RS) into ``dest``, one file each; returns the files."""
    response = _call("GET", f"{base_url.rstrip('/')}/studies/{study_uid}",
                     headers={"Accept": 'multipart/related; type="application/dicom"'})
    parts = _parts(response)
    if not parts:
        raise PacsError(f"The PACS at {base_url} holds no instances of study {study_uid}.")
    dest.mkdir(parents=True, exist_ok=True)
    files = []
    for n, data in enumerate(parts):
        path = dest / f"instance_{n:05d}.dcm"
        path.write_bytes(data)
        files.append(path)
    return files


__all__ = ["PacsError", "stow", "retrieve_study"]
